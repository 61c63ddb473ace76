/**
 * The student zoo: small encoder-decoders built as ONNX graphs with the SDK's own builder, so that the
 * training engine can differentiate them and every later stage (rewrite, quantize, runtime) reads them
 * like any other model.
 *
 * | name | blocks | default width / depth | parameters at default (192 x 256 input) |
 * |---|---|---|---|
 * | `unet-small` | U-Net: two conv3x3-BN-ReLU per level, max-pool down, nearest x2 up + concat skip | 16 / 4 | about 1.96M (2.6G multiply-adds) |
 * | `mobile-unet` | MobileNetV2 inverted residuals (expand 4) down, depthwise-separable decoder | 16 / 4 | about 1.09M (0.98G multiply-adds) |
 * | `ultralight` | depthwise-separable convs everywhere, narrow | 8 / 4 | about 65K (0.12G multiply-adds) |
 *
 * Channels at level i are `width * 2^i`; `depth` is the number of x2 downsamplings, so H and W must be
 * multiples of 2^depth. Doubling `width` roughly quadruples the parameters (the 3x3 and 1x1 weights are
 * quadratic in width; BatchNormalization, depthwise and the first conv are linear).
 *
 * Every student takes `image` [N, 3, H, W] (RGB, ImageNet-normalised) and returns `logits` [N, 1, H, W].
 */
import type { Model } from '../../onnx/ir.js';
import { LesionFuseError } from '../../util/errors.js';
import { StudentContext, type BuildMode, type Feature } from './layers.js';

export const STUDENT_NAMES = ['unet-small', 'mobile-unet', 'ultralight'] as const;
export type StudentName = (typeof STUDENT_NAMES)[number];

/** The ONNX opset the students are built with; the training engine's TRAINING_OPSET (checked in the tests). */
export const STUDENT_OPSET = 17;

export interface StudentOptions {
  /** Channels at the first level (defaults: unet-small 16, mobile-unet 16, ultralight 8). */
  width?: number;
  /** Number of x2 downsamplings (default 4; 1-5). */
  depth?: number;
  /** Fixed input size; H and W must be multiples of 2^depth. */
  inputSize: { height: number; width: number };
  /** Seed of the weight initialisation (default 0). */
  seed?: number;
  /** 'train' (BatchNormalization in training mode, default) or 'infer' (running statistics). */
  mode?: BuildMode;
  /** The batch dimension: a number for a fixed training batch, or a name (default 'N') for a dynamic one. */
  batch?: number | string;
}

export interface StudentGraph {
  name: StudentName;
  width: number;
  depth: number;
  model: Model;
  /** Trainable initializer names (conv weights/biases, BN scale/shift). */
  params: string[];
  /** BN running mean/var initializer names (updated from batch statistics, not by gradient). */
  runningStats: string[];
  /** Number of trainable parameters (running statistics not counted). */
  paramCount: number;
  /** Conv multiply-adds for one image at `inputSize`. */
  macs: number;
  inputName: 'image';
  outputName: 'logits';
  /** The feature map the decoder starts from (for optional feature distillation), with its shape. */
  bottleneck: Feature;
}

const DEFAULT_WIDTH: Record<StudentName, number> = { 'unet-small': 16, 'mobile-unet': 16, ultralight: 8 };

function unetSmall(ctx: StudentContext, x: Feature, width: number, depth: number): { logits: Feature; bottleneck: Feature } {
  const skips: Feature[] = [];
  let h = x;
  for (let i = 0; i < depth; i++) {
    const c = width * 2 ** i;
    h = ctx.convBnRelu(`enc${i}.conv1`, h, c);
    h = ctx.convBnRelu(`enc${i}.conv2`, h, c);
    skips.push(h);
    h = ctx.maxPool(h);
  }
  const cb = width * 2 ** depth;
  h = ctx.convBnRelu('bottleneck.conv1', h, cb);
  h = ctx.convBnRelu('bottleneck.conv2', h, cb);
  const bottleneck = h;
  for (let i = depth - 1; i >= 0; i--) {
    const c = width * 2 ** i;
    h = ctx.concat(ctx.upsample2(h), skips[i]!);
    h = ctx.convBnRelu(`dec${i}.conv1`, h, c);
    h = ctx.convBnRelu(`dec${i}.conv2`, h, c);
  }
  return { logits: ctx.head(h), bottleneck };
}

function mobileUnet(ctx: StudentContext, x: Feature, width: number, depth: number): { logits: Feature; bottleneck: Feature } {
  const expand = 4;
  const skips: Feature[] = [];
  let h = ctx.convBnRelu('stem', x, width);
  skips.push(h);
  for (let i = 1; i <= depth; i++) {
    const c = width * 2 ** i;
    h = ctx.invertedResidual(`enc${i}.ir1`, h, c, 2, expand);
    h = ctx.invertedResidual(`enc${i}.ir2`, h, c, 1, expand);
    if (i < depth) skips.push(h);
  }
  const bottleneck = h;
  for (let i = depth - 1; i >= 0; i--) {
    const c = width * 2 ** i;
    h = ctx.concat(ctx.upsample2(h), skips[i]!);
    h = ctx.convBnRelu(`dec${i}.reduce`, h, c, { kernel: 1 });
    h = ctx.separable(`dec${i}.sep`, h, c);
  }
  return { logits: ctx.head(h), bottleneck };
}

function ultralight(ctx: StudentContext, x: Feature, width: number, depth: number): { logits: Feature; bottleneck: Feature } {
  const skips: Feature[] = [];
  let h = ctx.convBnRelu('stem', x, width);
  h = ctx.separable('enc0.sep', h, width);
  skips.push(h);
  for (let i = 1; i <= depth; i++) {
    const c = width * 2 ** i;
    h = ctx.maxPool(h);
    h = ctx.separable(`enc${i}.sep1`, h, c);
    h = ctx.separable(`enc${i}.sep2`, h, c);
    if (i < depth) skips.push(h);
  }
  const bottleneck = h;
  for (let i = depth - 1; i >= 0; i--) {
    const c = width * 2 ** i;
    h = ctx.concat(ctx.upsample2(h), skips[i]!);
    h = ctx.separable(`dec${i}.sep1`, h, c);
    h = ctx.separable(`dec${i}.sep2`, h, c);
  }
  return { logits: ctx.head(h), bottleneck };
}

const BUILDERS: Record<StudentName, typeof unetSmall> = {
  'unet-small': unetSmall,
  'mobile-unet': mobileUnet,
  ultralight,
};

/** Check a student name typed by a user; throws with the allowed names. */
export function parseStudentName(name: string): StudentName {
  if ((STUDENT_NAMES as readonly string[]).includes(name)) return name as StudentName;
  throw new LesionFuseError(`unknown student '${name}'; available: ${STUDENT_NAMES.join(', ')}`, { subject: '--student' });
}

/**
 * Build a student. The same name, options and seed always give the same graph and the same initial
 * weights; `mode: 'infer'` gives the same graph with BatchNormalization on its running statistics, under
 * the same initializer names (so trained weights drop straight in, see {@link inferenceStudent}).
 */
export function buildStudent(name: StudentName, opts: StudentOptions): StudentGraph {
  const student = parseStudentName(name);
  const width = opts.width ?? DEFAULT_WIDTH[student];
  const depth = opts.depth ?? 4;
  const { height, width: w } = opts.inputSize;
  if (!Number.isInteger(width) || width < 1 || width > 256) throw new LesionFuseError(`width must be an integer in 1..256, got ${width}`, { subject: '--width' });
  if (!Number.isInteger(depth) || depth < 1 || depth > 5) throw new LesionFuseError(`depth must be an integer in 1..5, got ${depth}`, { subject: '--depth' });
  const m = 2 ** depth;
  if (!Number.isInteger(height) || !Number.isInteger(w) || height <= 0 || w <= 0 || height % m !== 0 || w % m !== 0) {
    throw new LesionFuseError(`input size ${height}x${w}: H and W must be positive multiples of ${m} for depth ${depth}`, { subject: 'input size' });
  }
  const mode = opts.mode ?? 'train';
  const batch = opts.batch ?? 'N';
  const ctx = new StudentContext(`${student}-w${width}-d${depth}`, mode, opts.seed ?? 0);
  const x = ctx.input('image', height, w, batch);
  const { logits, bottleneck } = BUILDERS[student](ctx, x, width, depth);
  const model = ctx.finish(logits, batch, STUDENT_OPSET, {});
  model.docString = `LesionFuse student ${student} (width ${width}, depth ${depth}), ${mode} graph`;
  return {
    name: student,
    width,
    depth,
    model,
    params: ctx.params,
    runningStats: ctx.runningStats,
    paramCount: ctx.paramCount,
    macs: ctx.macs,
    inputName: 'image',
    outputName: 'logits',
    bottleneck,
  };
}

/**
 * The inference graph of a student with trained values: BatchNormalization on running statistics, no
 * loss, dynamic batch. `values` maps initializer names (params and running statistics) to their values;
 * a name missing from `values` keeps its initial value, a name the student does not have is an error.
 */
export function inferenceStudent(
  name: StudentName,
  opts: Omit<StudentOptions, 'mode' | 'batch'>,
  values: ReadonlyMap<string, Float32Array>,
): StudentGraph {
  const s = buildStudent(name, { ...opts, mode: 'infer', batch: 'N' });
  const byName = new Map(s.model.graph.initializers.map((i) => [i.name, i]));
  for (const [k, v] of values) {
    const init = byName.get(k);
    if (!init) throw new LesionFuseError(`student ${name} has no weight named '${k}'`);
    if (init.values.length !== v.length) {
      throw new LesionFuseError(`weight '${k}' has ${v.length} values but student ${name} expects ${init.values.length}`);
    }
    init.values = Float32Array.from(v);
  }
  return s;
}
