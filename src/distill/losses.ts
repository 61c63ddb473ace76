/**
 * Distillation losses appended to a student's forward graph as ONNX subgraphs, so that the training
 * engine differentiates them like the rest of the network and one onnxruntime run gives loss + gradients.
 *
 * With z the student's logits, y the 0/1 mask, t the teacher's logits and T the temperature:
 * - BCE-with-logits, stable form: mean(softplus(z) - z*y), softplus(z) = relu(z) + log(1 + exp(-|z|))
 *   (never exponentiates a large positive number);
 * - soft Dice: 1 - mean_n (2 sum(p*y) + s) / (sum p + sum y + s), p = sigmoid(z), s = 1 (sums per image,
 *   so an image with an empty mask and an empty prediction scores 1, matching the metric's convention);
 * - pixel-wise KD: T^2 * mean(KL(Bernoulli(sigmoid(t/T)) || Bernoulli(sigmoid(z/T)))), written as the
 *   soft-target BCE of z/T minus the teacher's own entropy (the same gradient as the BCE, and 0 when the
 *   student matches the teacher, which makes the logged value readable). T^2 keeps the gradient's size
 *   independent of T (Hinton et al.).
 * - optional feature distillation: a 1x1 conv adapter from a student feature map to a teacher feature map
 *   of the same spatial size, mean squared error. Only for teachers that export a feature map as an
 *   extra output; the bundled teacher exports logits only, so `distill` does not use it by default.
 * Total = w_bce * BCE + w_dice * Dice + w_kd * KD (+ w_feat * feature).
 */
import { GraphBuilder } from '../onnx/builder.js';
import { DataType, type Model, type ValueInfo } from '../onnx/ir.js';
import { floatTensor, int64Tensor } from '../onnx/tensor.js';
import { mulberry32 } from '../runtime/metrics.js';
import { LesionFuseError } from '../util/errors.js';

export interface LossWeights {
  bce: number;
  dice: number;
  kd: number;
}

/** bce 1, dice 1, kd 1 (KD dropped automatically when distillation is off). */
export const DEFAULT_LOSS_WEIGHTS: LossWeights = { bce: 1, dice: 1, kd: 1 };
export const DEFAULT_TEMPERATURE = 2;

export interface LossOptions {
  /** Weights of the terms (defaults {@link DEFAULT_LOSS_WEIGHTS}). */
  weights?: Partial<LossWeights>;
  /** KD temperature T (default 2). */
  temperature?: number;
  /** Include the KD term and its `teacher_logits` input (default true). false = mask-only training. */
  kd?: boolean;
  /** The forward graph's logits output (default: its only output). */
  logits?: string;
  /** Dice smoothing s (default 1). */
  diceSmooth?: number;
  /**
   * Feature distillation, only for teachers that export a feature map: a trainable 1x1 conv adapter maps
   * the student value `studentFeature` [N, Cs, h, w] to the teacher's channels, and the mean squared error
   * against the graph input `teacher_feature` [N, Ct, h, w] is added with `weight`.
   */
  feature?: { studentFeature: string; studentChannels: number; teacherChannels: number; height: number; width: number; weight: number; seed?: number };
}

/** Names in the loss graph the trainer feeds and reads. */
export interface LossGraph {
  model: Model;
  /** The scalar to minimise. */
  loss: string;
  /** Scalar outputs of the single terms (unweighted), for logging. */
  components: { bce: string; dice: string; kd?: string; feature?: string };
  /** Data inputs: `mask` [N,1,H,W] 0/1, with KD `teacher_logits` [N,1,H,W], with feature KD `teacher_feature`. */
  inputs: { mask: string; teacher?: string; teacherFeature?: string };
  /** Trainable parameters the losses add (the feature adapter), to train with the student's. */
  adapterParams: string[];
  /** The logits output (kept as a graph output for monitoring). */
  logits: string;
}

function logitsInfo(model: Model, name?: string): ValueInfo {
  const outs = model.graph.outputs;
  const info = name ? outs.find((o) => o.name === name) : outs.length === 1 ? outs[0] : undefined;
  if (!info) {
    throw new LesionFuseError(
      name ? `the model has no output '${name}' (outputs: ${outs.map((o) => o.name).join(', ')})` : `the model has ${outs.length} outputs; name the logits output`,
    );
  }
  return info;
}

/** A scalar float constant as an initializer. */
function scalar(b: GraphBuilder, name: string, v: number): string {
  return b.initializer(name, floatTensor([], [v]));
}

/** softplus(v) = relu(v) + log(1 + exp(-|v|)), element-wise. */
function softplus(b: GraphBuilder, v: string, one: string): string {
  const e = b.op('Exp', [b.op('Neg', [b.op('Abs', [v])])]);
  return b.op('Add', [b.op('Relu', [v]), b.op('Log', [b.op('Add', [one, e])])]);
}

/** Append the losses to `forward` (which is not modified). */
export function appendLosses(forward: Model, opts: LossOptions = {}): LossGraph {
  const w = { ...DEFAULT_LOSS_WEIGHTS, ...opts.weights };
  const kd = opts.kd ?? true;
  const T = opts.temperature ?? DEFAULT_TEMPERATURE;
  const smooth = opts.diceSmooth ?? 1;
  for (const [k, v] of Object.entries(w)) {
    if (!Number.isFinite(v) || v < 0) throw new LesionFuseError(`loss weight ${k} must be a finite number >= 0, got ${v}`, { subject: '--loss-weights' });
  }
  if (!(T > 0) || !Number.isFinite(T)) throw new LesionFuseError(`temperature must be > 0, got ${T}`, { subject: '--temperature' });
  const info = logitsInfo(forward, opts.logits);
  const z = info.name;
  const shape = info.shape;
  const b = GraphBuilder.from(structuredClone(forward));
  const y = b.input('mask', DataType.FLOAT, shape ? [...shape] : null);
  const one = scalar(b, 'loss.one', 1);
  const allButBatch = b.initializer('loss.axes_chw', int64Tensor([3], [1, 2, 3]));

  // BCE with logits.
  const bceMap = b.op('Sub', [softplus(b, z, one), b.op('Mul', [z, y])]);
  const bce = b.op('ReduceMean', [bceMap], { keepdims: 0 }, { output: 'loss_bce' });

  // Soft Dice per image.
  const p = b.op('Sigmoid', [z]);
  const s = scalar(b, 'loss.dice_smooth', smooth);
  const two = scalar(b, 'loss.two', 2);
  const inter = b.op('ReduceSum', [b.op('Mul', [p, y]), allButBatch], { keepdims: 0 });
  const sumP = b.op('ReduceSum', [p, allButBatch], { keepdims: 0 });
  const sumY = b.op('ReduceSum', [y, allButBatch], { keepdims: 0 });
  const num = b.op('Add', [b.op('Mul', [two, inter]), s]);
  const den = b.op('Add', [b.op('Add', [sumP, sumY]), s]);
  const diceLoss = b.op('Sub', [one, b.op('ReduceMean', [b.op('Div', [num, den])], { keepdims: 0 })], {}, { output: 'loss_dice' });

  const supervised = [b.op('Mul', [scalar(b, 'loss.w_bce', w.bce), bce]), b.op('Mul', [scalar(b, 'loss.w_dice', w.dice), diceLoss])] as const;

  let kdLoss: string | undefined;
  let teacher: string | undefined;
  if (kd) {
    teacher = b.input('teacher_logits', DataType.FLOAT, shape ? [...shape] : null);
    const invT = scalar(b, 'loss.inv_temperature', 1 / T);
    const zs = b.op('Mul', [z, invT]);
    const ts = b.op('Mul', [teacher, invT]);
    const pt = b.op('Sigmoid', [ts]);
    const student = b.op('Sub', [softplus(b, zs, one), b.op('Mul', [zs, pt])]);
    const entropy = b.op('Sub', [softplus(b, ts, one), b.op('Mul', [ts, pt])]);
    kdLoss = b.op('Mul', [scalar(b, 'loss.t_squared', T * T), b.op('ReduceMean', [b.op('Sub', [student, entropy])], { keepdims: 0 })], {}, { output: 'loss_kd' });
  }
  const terms: string[] = [...supervised];
  if (kdLoss) terms.push(b.op('Mul', [scalar(b, 'loss.w_kd', w.kd), kdLoss]));

  let teacherFeature: string | undefined;
  let featureLoss: string | undefined;
  let adapterParams: string[] = [];
  if (opts.feature) {
    const f = opts.feature;
    if (!(f.weight >= 0)) throw new LesionFuseError(`feature loss weight must be >= 0, got ${f.weight}`);
    const cs = f.studentChannels;
    const ct = f.teacherChannels;
    // Uniform init with the variance of a linear layer (fan-in cs), from a seeded generator.
    const rand = mulberry32(f.seed ?? 0);
    const wv = new Float32Array(ct * cs).map(() => (rand() * 2 - 1) * Math.sqrt(3 / cs));
    adapterParams = [
      b.initializer('feature_adapter.weight', floatTensor([ct, cs, 1, 1], wv)),
      b.initializer('feature_adapter.bias', floatTensor([ct], new Float32Array(ct))),
    ];
    teacherFeature = b.input('teacher_feature', DataType.FLOAT, [shape?.[0] ?? 'N', ct, f.height, f.width]);
    const adapted = b.op('Conv', [f.studentFeature, ...adapterParams], { kernel_shape: [1, 1] });
    const diff = b.op('Sub', [adapted, teacherFeature]);
    featureLoss = b.op('ReduceMean', [b.op('Mul', [diff, diff])], { keepdims: 0 }, { output: 'loss_feature' });
    terms.push(b.op('Mul', [scalar(b, 'loss.w_feature', f.weight), featureLoss]));
  }
  let acc = terms[0]!;
  for (let i = 1; i < terms.length; i++) acc = b.op('Add', [acc, terms[i]!], {}, i === terms.length - 1 ? { output: 'loss' } : {});

  // Outputs: the loss first, then the unweighted terms, then the logits.
  b.graph.outputs = [];
  const scalarType = { dataType: DataType.FLOAT, shape: [] };
  b.output('loss', undefined, scalarType);
  b.output('loss_bce', undefined, scalarType);
  b.output('loss_dice', undefined, scalarType);
  if (kdLoss) b.output('loss_kd', undefined, scalarType);
  if (featureLoss) b.output('loss_feature', undefined, scalarType);
  b.output(z, undefined, { dataType: info.dataType, shape: info.shape ? [...info.shape] : null });
  const model0 = b.build();
  return {
    model: model0,
    loss: 'loss',
    components: { bce: 'loss_bce', dice: 'loss_dice', ...(kdLoss ? { kd: 'loss_kd' } : {}), ...(featureLoss ? { feature: 'loss_feature' } : {}) },
    inputs: { mask: y, ...(teacher ? { teacher } : {}), ...(teacherFeature ? { teacherFeature } : {}) },
    adapterParams,
    logits: z,
  };
}

function opsetOf(m: Model): number {
  const o = m.opsetImports.find((x) => x.domain === '' || x.domain === 'ai.onnx');
  if (!o) throw new LesionFuseError('the model has no default-domain opset import');
  return o.version;
}

