/**
 * Helpers for the gradient tests: tiny hand-made graphs, and a checker that
 * compares the engine's analytic gradients with central finite differences.
 *
 * Loss: L = sum(Y * R) with a fixed random R, so dL/dY = R exercises every
 * output element with a different weight. The finite differences take Y from
 * onnxruntime (float32) and form L in float64 in JS, so the only float32
 * error is in Y itself.
 */
import * as ort from '../../src/util/ort.js';
import { DataType, type Attribute, type Initializer, type Model, type Node } from '../../src/onnx/ir.js';
import { encodeModel } from '../../src/onnx/io.js';
import { numel } from '../../src/onnx/tensor.js';
import { buildTrainingModel, gradientName } from '../../src/distill/autodiff/backward.js';
import { probeShapes } from '../../src/distill/autodiff/shapes.js';
import { Rng } from '../../src/distill/engine/rng.js';

import { A, type GradOptions } from '../../src/distill/autodiff/emit.js';
export { A };

let nodeCount = 0;
export function node(opType: string, inputs: string[], outputs: string[], attributes: Record<string, Attribute> = {}): Node {
  return { name: `${opType}_${nodeCount++}`, opType, domain: '', inputs, outputs, attributes };
}

export function randTensor(rng: Rng, name: string, dims: number[], scale = 1): Initializer {
  const v = new Float32Array(numel(dims));
  for (let i = 0; i < v.length; i++) v[i] = rng.normal() * scale;
  return { name, dataType: DataType.FLOAT, dims, values: v };
}
export function i64Init(name: string, values: number[], dims = [values.length]): Initializer {
  return { name, dataType: DataType.INT64, dims, values: BigInt64Array.from(values.map(BigInt)) };
}
export function f32Init(name: string, values: number[], dims = [values.length]): Initializer {
  return { name, dataType: DataType.FLOAT, dims, values: Float32Array.from(values) };
}

export function makeModel(nodes: Node[], initializers: Initializer[], outputs: string[], opset = 17): Model {
  return {
    irVersion: 8,
    opsetImports: [{ domain: '', version: opset }],
    producerName: 'lesionfuse-test',
    producerVersion: '0',
    domain: '',
    modelVersion: 1,
    docString: '',
    metadata: {},
    graph: {
      name: 'g',
      nodes,
      inputs: [],
      outputs: outputs.map((name) => ({ name, dataType: DataType.FLOAT, shape: null })),
      initializers,
      valueInfo: [],
    },
  };
}

export interface GradCheckResult {
  /** Worst |fd - analytic| / (max |analytic| over the param + tiny), per param. */
  worst: Record<string, number>;
  checked: number;
}

/**
 * Check d(sum(Y*R))/d(param) for each param (initializers of `forward` holding
 * the inputs to differentiate). `y` is the output to weight. Samples up to
 * `samples` elements per param.
 */
export async function gradCheck(
  forward: Model,
  y: string,
  params: string[],
  opts: { eps?: number; samples?: number; seed?: number; ones?: boolean; gradOptions?: GradOptions } = {},
): Promise<GradCheckResult> {
  const eps = opts.eps ?? 1e-2;
  const rng = new Rng(opts.seed ?? 7);
  const shapes = await probeShapes(forward);
  const ys = shapes.get(y)!;
  const r = randTensor(rng, '__R', ys);
  // `ones`: Y is already a per-element loss; L = sum(Y).
  if (opts.ones) (r.values as Float32Array).fill(1);
  const withLoss: Model = structuredClone(forward);
  withLoss.graph.initializers.push(r);
  withLoss.graph.nodes.push(node('Mul', [y, '__R'], ['__YR']), node('ReduceSum', ['__YR'], ['__loss'], { keepdims: { type: 'int', value: 0 } }));
  withLoss.graph.outputs = [{ name: '__loss', dataType: DataType.FLOAT, shape: [] }];
  const shapes2 = await probeShapes(withLoss);
  const tm = buildTrainingModel(withLoss, { loss: '__loss', params, shapes: shapes2, gradOptions: opts.gradOptions });
  const session = await ort.InferenceSession.create(encodeModel(tm.model), { intraOpNumThreads: 1, graphOptimizationLevel: 'disabled' });
  const values = new Map<string, Float32Array>();
  for (const p of params) values.set(p, Float32Array.from(withLoss.graph.initializers.find((t) => t.name === p)!.values as Float32Array));
  const feeds: Record<string, ort.Tensor> = {};
  for (const p of tm.params) feeds[p.name] = new ort.Tensor('float32', values.get(p.name)!, p.dims);
  for (const s of tm.state) feeds[s.name] = new ort.Tensor('float32', s.initial, s.dims);
  const res = await session.run(feeds);

  // The forward with the params as inputs, for the finite differences.
  const fwd: Model = structuredClone(forward);
  fwd.graph.initializers = fwd.graph.initializers.filter((t) => !params.includes(t.name));
  fwd.graph.inputs = params.map((p) => ({ name: p, dataType: DataType.FLOAT, shape: tm.params.find((q) => q.name === p)!.dims }));
  fwd.graph.outputs = [{ name: y, dataType: DataType.FLOAT, shape: null }];
  const fs = await ort.InferenceSession.create(encodeModel(fwd), { intraOpNumThreads: 1, graphOptimizationLevel: 'disabled' });
  const rv = r.values as Float32Array;
  const lossAt = async (): Promise<number> => {
    const out = await fs.run(feeds);
    const yv = out[y]!.data as Float32Array;
    let s = 0;
    for (let i = 0; i < yv.length; i++) s += yv[i]! * rv[i]!;
    return s;
  };
  const worst: Record<string, number> = {};
  let checked = 0;
  for (const p of params) {
    const v = values.get(p)!;
    const an = res[gradientName(p)]!.data as Float32Array;
    let maxAn = 0;
    for (const a of an) maxAn = Math.max(maxAn, Math.abs(a));
    const n = v.length;
    const idx = n <= (opts.samples ?? 40) ? Array.from({ length: n }, (_, i) => i) : Array.from({ length: opts.samples ?? 40 }, () => rng.int(n));
    let w = 0;
    for (const i of idx) {
      const orig = v[i]!;
      v[i] = orig + eps;
      const up = v[i]!;
      const lp = await lossAt();
      v[i] = orig - eps;
      const down = v[i]!;
      const lm = await lossAt();
      v[i] = orig;
      // The step actually taken, after float32 rounding of the perturbed value.
      const fd = (lp - lm) / (up - down);
      w = Math.max(w, Math.abs(fd - an[i]!) / (maxAn + 1e-12));
      checked++;
    }
    worst[p] = w;
  }
  await session.release();
  await fs.release();
  return { worst, checked };
}

/**
 * A small student-like U-Net in training form (BatchNorm with training_mode=1,
 * so finite differences see batch statistics too): conv-BN-ReLU, MaxPool,
 * conv-BN-ReLU, up by ConvTranspose k2s2 plus a linear Resize x2 of the same
 * bottleneck (added), Concat with the skip, conv-ReLU, 1x1 conv to logits;
 * per-pixel stable BCE-with-logits `bce_map` and its mean `loss`.
 * Data inputs: image [N,3,H,W], mask [N,1,H,W].
 */
export function tinyUNet(rng: Rng, n: number, h: number, w: number): { nodes: Node[]; inits: Initializer[]; inputs: { name: string; dims: number[] }[] } {
  const c1 = 4;
  const c2 = 6;
  const inits: Initializer[] = [
    randTensor(rng, 'enc1.w', [c1, 3, 3, 3], 0.4),
    randTensor(rng, 'enc1.bn.g', [c1], 0.2),
    randTensor(rng, 'enc1.bn.b', [c1], 0.1),
    f32Init('enc1.bn.m', new Array(c1).fill(0)),
    f32Init('enc1.bn.v', new Array(c1).fill(1)),
    randTensor(rng, 'enc2.w', [c2, c1, 3, 3], 0.3),
    randTensor(rng, 'enc2.bn.g', [c2], 0.2),
    randTensor(rng, 'enc2.bn.b', [c2], 0.1),
    f32Init('enc2.bn.m', new Array(c2).fill(0)),
    f32Init('enc2.bn.v', new Array(c2).fill(1)),
    randTensor(rng, 'up.w', [c2, c1, 2, 2], 0.3),
    randTensor(rng, 'up.b', [c1], 0.1),
    randTensor(rng, 'proj.w', [c1, c2, 1, 1], 0.3),
    randTensor(rng, 'dec.w', [c1, 2 * c1, 3, 3], 0.3),
    randTensor(rng, 'dec.b', [c1], 0.1),
    randTensor(rng, 'head.w', [1, c1, 1, 1], 0.5),
    randTensor(rng, 'head.b', [1], 0.1),
    f32Init('scales2', [1, 1, 2, 2]),
    f32Init('one', [1], []),
  ];
  for (const t of inits) for (const k of ['g']) if (t.name.endsWith(`.bn.${k}`)) (t.values as Float32Array).forEach((v, i, a) => (a[i] = 1 + v));
  const p1 = { pads: A.ints([1, 1, 1, 1]) };
  const bn = (x: string, pre: string, y: string) =>
    node('BatchNormalization', [x, `${pre}.g`, `${pre}.b`, `${pre}.m`, `${pre}.v`], [y, `${pre}.m_out`, `${pre}.v_out`], {
      epsilon: A.float(1e-5),
      momentum: A.float(0.9),
      training_mode: A.int(1),
    });
  const nodes: Node[] = [
    node('Conv', ['image', 'enc1.w'], ['e1c'], p1),
    bn('e1c', 'enc1.bn', 'e1n'),
    node('Relu', ['e1n'], ['e1']),
    node('MaxPool', ['e1'], ['p1'], { kernel_shape: A.ints([2, 2]), strides: A.ints([2, 2]) }),
    node('Conv', ['p1', 'enc2.w'], ['e2c'], p1),
    bn('e2c', 'enc2.bn', 'e2n'),
    node('Relu', ['e2n'], ['e2']),
    node('ConvTranspose', ['e2', 'up.w', 'up.b'], ['u1'], { strides: A.ints([2, 2]) }),
    node('Resize', ['e2', '', 'scales2'], ['r2'], { mode: A.str('linear'), coordinate_transformation_mode: A.str('half_pixel') }),
    node('Conv', ['r2', 'proj.w'], ['r2p']),
    node('Add', ['u1', 'r2p'], ['up']),
    node('Concat', ['e1', 'up'], ['cat'], { axis: A.int(1) }),
    node('Conv', ['cat', 'dec.w', 'dec.b'], ['d1c'], p1),
    node('Relu', ['d1c'], ['d1']),
    node('Conv', ['d1', 'head.w', 'head.b'], ['logits']),
    // BCE with logits, stable: relu(z) - z*y + log(1 + exp(-|z|))
    node('Relu', ['logits'], ['bz']),
    node('Mul', ['logits', 'mask'], ['zy']),
    node('Abs', ['logits'], ['az']),
    node('Neg', ['az'], ['naz']),
    node('Exp', ['naz'], ['eaz']),
    node('Add', ['one', 'eaz'], ['l1p']),
    node('Log', ['l1p'], ['lg']),
    node('Sub', ['bz', 'zy'], ['bzy']),
    node('Add', ['bzy', 'lg'], ['bce_map']),
    node('ReduceMean', ['bce_map'], ['loss'], { keepdims: A.int(0) }),
  ];
  return { nodes, inits, inputs: [{ name: 'image', dims: [n, 3, h, w] }, { name: 'mask', dims: [n, 1, h, w] }] };
}
