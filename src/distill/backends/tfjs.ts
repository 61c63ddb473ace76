/**
 * Optional TensorFlow.js backend for sites with a GPU and internet access:
 * `@tensorflow/tfjs-node-gpu` (or `@tensorflow/tfjs-node`) is imported
 * dynamically when installed and is never a dependency (both download
 * libtensorflow at install time, which an offline machine cannot do).
 *
 * It runs the SAME forward + loss ONNX graph as the engine (student + losses),
 * interpreted op by op onto tfjs ops in NHWC layout, takes gradients with
 * tfjs's autodiff (`variableGrads`), and applies the engine's own AdamW and
 * clipping in TypeScript, so results are comparable to the ONNX engine.
 * Supported ops: Conv (group 1 or depthwise), ConvTranspose (no pads),
 * BatchNormalization (batch statistics), Relu, LeakyRelu, Sigmoid, Add, Sub,
 * Mul, Div, Abs, Neg, Exp, Log, Sqrt, MaxPool, AveragePool (no pads),
 * GlobalAveragePool, Resize (nearest asymmetric; linear half_pixel or
 * align_corners), Concat, ReduceMean, ReduceSum, Identity.
 */
import type { Attribute, Model, Node, TensorData } from '../../onnx/ir.js';
import { tensorToFloat32 } from '../../onnx/tensor.js';
import { LesionFuseError } from '../../util/errors.js';
import { AdamW, clipGradNorm, type AdamWOptions } from '../engine/optim.js';
import { learningRateAt, type LrSchedule } from '../engine/schedule.js';

/** A tfjs tensor, as far as this backend uses it. */
export interface TfTensor {
  readonly shape: number[];
  dataSync(): Float32Array | Int32Array | Uint8Array;
  dispose(): void;
}
/** A tfjs variable. */
export interface TfVariable extends TfTensor {
  assign(t: TfTensor): void;
}
type Pad = 'valid' | 'same' | number | number[][];

/** The subset of the tfjs API this backend calls; a fake implementing it drives the tests. */
export interface TfLike {
  tensor(values: Float32Array, shape: number[]): TfTensor;
  variable(initial: TfTensor, trainable?: boolean, name?: string): TfVariable;
  tidy<T>(fn: () => T): T;
  variableGrads(f: () => TfTensor, varList?: TfVariable[]): { value: TfTensor; grads: Record<string, TfTensor> };
  transpose(x: TfTensor, perm: number[]): TfTensor;
  reshape(x: TfTensor, shape: number[]): TfTensor;
  conv2d(x: TfTensor, filter: TfTensor, strides: [number, number], pad: Pad, dataFormat: 'NHWC', dilations: [number, number]): TfTensor;
  depthwiseConv2d(x: TfTensor, filter: TfTensor, strides: [number, number], pad: Pad, dataFormat: 'NHWC', dilations: [number, number]): TfTensor;
  conv2dTranspose(x: TfTensor, filter: TfTensor, outputShape: number[], strides: [number, number], pad: Pad): TfTensor;
  add(a: TfTensor, b: TfTensor): TfTensor;
  sub(a: TfTensor, b: TfTensor): TfTensor;
  mul(a: TfTensor, b: TfTensor): TfTensor;
  div(a: TfTensor, b: TfTensor): TfTensor;
  relu(x: TfTensor): TfTensor;
  leakyRelu(x: TfTensor, alpha: number): TfTensor;
  sigmoid(x: TfTensor): TfTensor;
  abs(x: TfTensor): TfTensor;
  neg(x: TfTensor): TfTensor;
  exp(x: TfTensor): TfTensor;
  log(x: TfTensor): TfTensor;
  sqrt(x: TfTensor): TfTensor;
  maxPool(x: TfTensor, filterSize: [number, number], strides: [number, number], pad: Pad): TfTensor;
  avgPool(x: TfTensor, filterSize: [number, number], strides: [number, number], pad: Pad): TfTensor;
  moments(x: TfTensor, axes: number[], keepDims?: boolean): { mean: TfTensor; variance: TfTensor };
  batchNorm(x: TfTensor, mean: TfTensor, variance: TfTensor, offset: TfTensor, scale: TfTensor, varianceEpsilon: number): TfTensor;
  concat(xs: TfTensor[], axis: number): TfTensor;
  mean(x: TfTensor, axis?: number[], keepDims?: boolean): TfTensor;
  sum(x: TfTensor, axis?: number[], keepDims?: boolean): TfTensor;
  image: {
    resizeBilinear(x: TfTensor, size: [number, number], alignCorners?: boolean, halfPixelCenters?: boolean): TfTensor;
    resizeNearestNeighbor(x: TfTensor, size: [number, number], alignCorners?: boolean, halfPixelCenters?: boolean): TfTensor;
  };
}

export type TfjsAvailability = { available: true; module: string } | { available: false; reason: string };

const MODULES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'];

async function importTf(): Promise<{ tf: TfLike; module: string } | { error: string }> {
  const errors: string[] = [];
  for (const m of MODULES) {
    try {
      const mod = (await import(m)) as { default?: TfLike } & TfLike;
      return { tf: (mod.default ?? mod) as TfLike, module: m };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      errors.push(`${m}: ${code === 'ERR_MODULE_NOT_FOUND' ? 'not installed' : (err as Error).message.split('\n')[0]}`);
    }
  }
  return { error: errors.join('; ') };
}

/**
 * Whether a tfjs Node backend can be used here, and why not. Never throws.
 * Here (offline CPU machine) it reports both packages as not installed.
 */
export async function tfjsBackendAvailability(): Promise<TfjsAvailability> {
  const r = await importTf();
  if ('error' in r) return { available: false, reason: `${r.error} (install one with npm where the network is reachable; LesionFuse never requires it)` };
  return { available: true, module: r.module };
}

/** The installed tfjs module, or a LesionFuseError saying why there is none. */
export async function loadTfjs(): Promise<TfLike> {
  const r = await importTf();
  if ('error' in r) throw new LesionFuseError(`the tfjs backend is not available: ${r.error}`, { subject: '--backend tfjs' });
  return r.tf;
}

export interface TfjsTrainerOptions {
  /** Scalar loss value of the graph. */
  loss: string;
  /** Initializers to train (as the engine's `params`). */
  params: string[];
  optimizer?: AdamWOptions;
  schedule?: LrSchedule;
  clipNorm?: number;
}

/** A value during interpretation: rank-4 activations are kept NHWC. */
interface Val {
  t: TfTensor;
  nhwc: boolean;
}

const NCHW_TO_NHWC = [0, 2, 3, 1];
/** ONNX (NCHW) axis -> NHWC axis. */
const AXIS = [0, 3, 1, 2];

function ints(a: Attribute | undefined, dflt: number[]): number[] {
  return a && a.type === 'ints' ? a.value : dflt;
}
function num(a: Attribute | undefined, dflt: number): number {
  return a && (a.type === 'int' || a.type === 'float') ? a.value : dflt;
}
function str(a: Attribute | undefined, dflt: string): string {
  return a && a.type === 'string' ? a.value : dflt;
}

/**
 * Trains the parameters of an ONNX forward+loss graph with tfjs. Same
 * contract as the engine's Trainer step: one call = forward, loss, gradients,
 * clipping, AdamW.
 */
export class TfjsGraphTrainer {
  private readonly vars = new Map<string, TfVariable>();
  private readonly consts = new Map<string, TensorData>();
  private readonly opt: AdamW;
  private readonly nodes: Node[];

  constructor(
    private readonly tf: TfLike,
    model: Model,
    private readonly opts: TfjsTrainerOptions,
  ) {
    this.opt = new AdamW(opts.optimizer);
    this.nodes = model.graph.nodes;
    const trained = new Set(opts.params);
    for (const init of model.graph.initializers) {
      if (trained.has(init.name)) {
        this.vars.set(init.name, tf.variable(tf.tensor(tensorToFloat32(init), init.dims), true, init.name));
      } else this.consts.set(init.name, init);
    }
    for (const p of opts.params) if (!this.vars.has(p)) throw new LesionFuseError(`parameter '${p}' is not an initializer`, { subject: 'tfjs backend' });
    for (const n of this.nodes) {
      if (!SUPPORTED.has(n.opType)) {
        throw new LesionFuseError(`op ${n.opType} (node '${n.name}') is not mapped to tfjs; supported: ${[...SUPPORTED].sort().join(', ')}`, { subject: 'tfjs backend' });
      }
    }
  }

  private constNumbers(name: string): number[] {
    const c = this.consts.get(name);
    if (!c) throw new LesionFuseError(`'${name}' must be a constant initializer`, { subject: 'tfjs backend' });
    return Array.from(tensorToFloat32(c));
  }

  /** Interpret the graph; returns the loss tensor (inside a tidy/variableGrads scope). */
  private run(feeds: Record<string, { dims: number[]; data: Float32Array }>): TfTensor {
    const tf = this.tf;
    const env = new Map<string, Val>();
    const get = (name: string): Val => {
      const v = env.get(name);
      if (v) return v;
      const p = this.vars.get(name);
      if (p) return { t: p, nhwc: false };
      const c = this.consts.get(name);
      if (c) {
        const val = { t: tf.tensor(tensorToFloat32(c), c.dims), nhwc: false };
        env.set(name, val);
        return val;
      }
      throw new LesionFuseError(`value '${name}' is not available`, { subject: 'tfjs backend' });
    };
    for (const [name, f] of Object.entries(feeds)) {
      const t = tf.tensor(f.data, f.dims);
      env.set(name, f.dims.length === 4 ? { t: tf.transpose(t, NCHW_TO_NHWC), nhwc: true } : { t, nhwc: false });
    }
    /** The operand in NHWC when the other operand is an NHWC activation (ONNX broadcasting is NCHW). */
    const toNhwc = (v: Val): TfTensor => {
      if (v.nhwc) return v.t;
      const r = v.t.shape.length;
      if (r === 0) return v.t;
      const padded = tf.reshape(v.t, [...new Array(4 - r).fill(1), ...v.t.shape]);
      return tf.transpose(padded, NCHW_TO_NHWC);
    };
    const binary = (n: Node, f: (a: TfTensor, b: TfTensor) => TfTensor): Val => {
      const a = get(n.inputs[0]!);
      const b = get(n.inputs[1]!);
      if (a.nhwc || b.nhwc) return { t: f(toNhwc(a), toNhwc(b)), nhwc: true };
      return { t: f(a.t, b.t), nhwc: false };
    };
    const unary = (n: Node, f: (a: TfTensor) => TfTensor): Val => {
      const a = get(n.inputs[0]!);
      return { t: f(a.t), nhwc: a.nhwc };
    };
    const pads2d = (n: Node): { pad: Pad; p: number[] } => {
      const p = ints(n.attributes['pads'], [0, 0, 0, 0]);
      if (p.every((v) => v === 0)) return { pad: 'valid', p };
      return { pad: [[0, 0], [p[0]!, p[2]!], [p[1]!, p[3]!], [0, 0]], p };
    };
    for (const n of this.nodes) {
      const A = n.attributes;
      let out: Val;
      switch (n.opType) {
        case 'Conv': {
          const x = get(n.inputs[0]!);
          const w = get(n.inputs[1]!).t;
          const [m, cg] = w.shape as [number, number];
          const c = x.t.shape[3]!;
          const group = num(A['group'], 1);
          const strides = ints(A['strides'], [1, 1]) as [number, number];
          const dil = ints(A['dilations'], [1, 1]) as [number, number];
          const { pad } = pads2d(n);
          let y: TfTensor;
          if (group === 1) y = tf.conv2d(x.t, tf.transpose(w, [2, 3, 1, 0]), strides, pad, 'NHWC', dil);
          else if (group === c && cg === 1) {
            const f = tf.transpose(tf.reshape(w, [c, m / c, w.shape[2]!, w.shape[3]!]), [2, 3, 0, 1]);
            y = tf.depthwiseConv2d(x.t, f, strides, pad, 'NHWC', dil);
          } else throw new LesionFuseError(`Conv node '${n.name}': group ${group} (only 1 or depthwise) is not mapped`, { subject: 'tfjs backend' });
          if (n.inputs[2]) y = tf.add(y, get(n.inputs[2]).t);
          out = { t: y, nhwc: true };
          break;
        }
        case 'ConvTranspose': {
          const x = get(n.inputs[0]!);
          const w = get(n.inputs[1]!).t;
          const [, cout, kh, kw] = w.shape as [number, number, number, number];
          const strides = ints(A['strides'], [1, 1]) as [number, number];
          if (ints(A['pads'], [0, 0, 0, 0]).some((v) => v !== 0) || num(A['group'], 1) !== 1 || ints(A['output_padding'], [0, 0]).some((v) => v !== 0)) {
            throw new LesionFuseError(`ConvTranspose node '${n.name}': only unpadded, ungrouped forms are mapped`, { subject: 'tfjs backend' });
          }
          const [nb, h, wd] = x.t.shape as [number, number, number];
          const shape = [nb, strides[0] * (h - 1) + kh, strides[1] * (wd - 1) + kw, cout];
          let y = tf.conv2dTranspose(x.t, tf.transpose(w, [2, 3, 1, 0]), shape, strides, 'valid');
          if (n.inputs[2]) y = tf.add(y, get(n.inputs[2]).t);
          out = { t: y, nhwc: true };
          break;
        }
        case 'BatchNormalization': {
          const x = get(n.inputs[0]!);
          const { mean, variance } = tf.moments(x.t, [0, 1, 2]);
          out = { t: tf.batchNorm(x.t, mean, variance, get(n.inputs[2]!).t, get(n.inputs[1]!).t, num(A['epsilon'], 1e-5)), nhwc: true };
          break;
        }
        case 'Relu':
          out = unary(n, (a) => tf.relu(a));
          break;
        case 'LeakyRelu':
          out = unary(n, (a) => tf.leakyRelu(a, num(A['alpha'], 0.01)));
          break;
        case 'Sigmoid':
          out = unary(n, (a) => tf.sigmoid(a));
          break;
        case 'Abs':
          out = unary(n, (a) => tf.abs(a));
          break;
        case 'Neg':
          out = unary(n, (a) => tf.neg(a));
          break;
        case 'Exp':
          out = unary(n, (a) => tf.exp(a));
          break;
        case 'Log':
          out = unary(n, (a) => tf.log(a));
          break;
        case 'Sqrt':
          out = unary(n, (a) => tf.sqrt(a));
          break;
        case 'Identity':
          out = get(n.inputs[0]!);
          break;
        case 'Add':
          out = binary(n, (a, b) => tf.add(a, b));
          break;
        case 'Sub':
          out = binary(n, (a, b) => tf.sub(a, b));
          break;
        case 'Mul':
          out = binary(n, (a, b) => tf.mul(a, b));
          break;
        case 'Div':
          out = binary(n, (a, b) => tf.div(a, b));
          break;
        case 'MaxPool':
        case 'AveragePool': {
          const k = ints(A['kernel_shape'], [2, 2]) as [number, number];
          const s = ints(A['strides'], k) as [number, number];
          if (ints(A['pads'], [0, 0, 0, 0]).some((v) => v !== 0) || num(A['ceil_mode'], 0) !== 0) {
            throw new LesionFuseError(`${n.opType} node '${n.name}': only unpadded floor-mode pooling is mapped`, { subject: 'tfjs backend' });
          }
          const x = get(n.inputs[0]!).t;
          out = { t: n.opType === 'MaxPool' ? tf.maxPool(x, k, s, 'valid') : tf.avgPool(x, k, s, 'valid'), nhwc: true };
          break;
        }
        case 'GlobalAveragePool':
          out = { t: tf.mean(get(n.inputs[0]!).t, [1, 2], true), nhwc: true };
          break;
        case 'Resize': {
          const x = get(n.inputs[0]!).t;
          const [, h, w] = x.shape as [number, number, number];
          let size: [number, number];
          if (n.inputs[2]) {
            const sc = this.constNumbers(n.inputs[2]);
            size = [Math.floor(h * sc[2]!), Math.floor(w * sc[3]!)];
          } else {
            const sz = this.constNumbers(n.inputs[3]!);
            size = [sz[2]!, sz[3]!];
          }
          const mode = str(A['mode'], 'nearest');
          const coord = str(A['coordinate_transformation_mode'], 'half_pixel');
          let y: TfTensor;
          if (mode === 'nearest' && coord === 'asymmetric' && str(A['nearest_mode'], 'round_prefer_floor') === 'floor') y = tf.image.resizeNearestNeighbor(x, size, false, false);
          else if (mode === 'linear' && (coord === 'half_pixel' || coord === 'pytorch_half_pixel')) y = tf.image.resizeBilinear(x, size, false, true);
          else if (mode === 'linear' && coord === 'align_corners') y = tf.image.resizeBilinear(x, size, true, false);
          else throw new LesionFuseError(`Resize node '${n.name}': ${mode}/${coord} is not mapped`, { subject: 'tfjs backend' });
          out = { t: y, nhwc: true };
          break;
        }
        case 'Concat': {
          const xs = n.inputs.map(get);
          let axis = num(A['axis'], 0);
          const anyNhwc = xs.some((v) => v.nhwc);
          if (anyNhwc) {
            if (axis < 0) axis += 4;
            out = { t: tf.concat(xs.map(toNhwc), AXIS[axis]!), nhwc: true };
          } else out = { t: tf.concat(xs.map((v) => v.t), axis), nhwc: false };
          break;
        }
        case 'ReduceMean':
        case 'ReduceSum': {
          const x = get(n.inputs[0]!);
          const rank = x.t.shape.length;
          let axes = ints(A['axes'], []);
          if (axes.length === 0 && n.inputs[1]) axes = this.constNumbers(n.inputs[1]);
          if (axes.length === 0) axes = Array.from({ length: rank }, (_, i) => i);
          axes = axes.map((a) => (a < 0 ? a + rank : a));
          const keep = num(A['keepdims'], 1) === 1;
          const f = n.opType === 'ReduceMean' ? tf.mean.bind(tf) : tf.sum.bind(tf);
          if (!x.nhwc) out = { t: f(x.t, axes, keep), nhwc: false };
          else {
            const y = f(x.t, axes.map((a) => AXIS[a]!), keep);
            // kept rank-4 results stay NHWC; reduced ones list the remaining NCHW axes in NHWC order, which
            // is the NCHW order unless both C and a spatial axis survive (then go back to NCHW).
            const left = [0, 1, 2, 3].filter((a) => !axes.includes(a));
            if (keep) out = { t: y, nhwc: true };
            else if (left.includes(1) && left.some((a) => a >= 2)) {
              throw new LesionFuseError(`${n.opType} node '${n.name}': reducing a spatial axis but keeping C without keepdims is not mapped`, { subject: 'tfjs backend' });
            } else out = { t: y, nhwc: false };
          }
          break;
        }
        default:
          throw new LesionFuseError(`op ${n.opType} (node '${n.name}') is not mapped to tfjs`, { subject: 'tfjs backend' });
      }
      env.set(n.outputs[0]!, out);
    }
    const loss = env.get(this.opts.loss);
    if (!loss) throw new LesionFuseError(`loss '${this.opts.loss}' was not computed`, { subject: 'tfjs backend' });
    return loss.t;
  }

  /** Loss and gradients (NCHW/ONNX layout, by parameter name) without an update. */
  lossAndGrads(feeds: Record<string, { dims: number[]; data: Float32Array }>): { loss: number; grads: Map<string, Float32Array> } {
    const tf = this.tf;
    return tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => this.run(feeds), [...this.vars.values()]);
      const out = new Map<string, Float32Array>();
      for (const name of this.opts.params) {
        const g = grads[name];
        out.set(name, g ? Float32Array.from(g.dataSync()) : new Float32Array(this.vars.get(name)!.dataSync().length));
      }
      return { loss: value.dataSync()[0]!, grads: out };
    });
  }

  /** One training step: loss and gradients from tfjs, clipping and AdamW in TypeScript. */
  step(feeds: Record<string, { dims: number[]; data: Float32Array }>): { loss: number; lr: number; gradNorm: number } {
    const { loss, grads } = this.lossAndGrads(feeds);
    const gradNorm = clipGradNorm(grads.values(), this.opts.clipNorm && this.opts.clipNorm > 0 ? this.opts.clipNorm : Infinity);
    const lr = learningRateAt(this.opts.schedule ?? { kind: 'constant' }, this.opt.lr, this.opt.state.step);
    const params = new Map<string, { data: Float32Array; dims: number[] }>();
    for (const [name, v] of this.vars) params.set(name, { data: Float32Array.from(v.dataSync()), dims: v.shape });
    this.opt.step(params, grads, lr);
    for (const [name, p] of params) {
      const t = this.tf.tensor(p.data, p.dims);
      this.vars.get(name)!.assign(t);
      t.dispose();
    }
    return { loss, lr, gradNorm };
  }

  /** Current parameter values (ONNX layout). */
  weights(): Map<string, Float32Array> {
    return new Map([...this.vars].map(([k, v]) => [k, Float32Array.from(v.dataSync())]));
  }
}

const SUPPORTED = new Set([
  'Conv', 'ConvTranspose', 'BatchNormalization', 'Relu', 'LeakyRelu', 'Sigmoid', 'Abs', 'Neg', 'Exp', 'Log', 'Sqrt', 'Identity',
  'Add', 'Sub', 'Mul', 'Div', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'Resize', 'Concat', 'ReduceMean', 'ReduceSum',
]);
