/**
 * Conv and ConvTranspose gradients (docs/gradients.md, rows Conv and ConvTranspose).
 *
 * dX of a Conv is a ConvTranspose with the same weights, with output_padding
 * chosen so that the result is exactly the input size. dW of any grouped Conv
 * is ONE Conv over transposed tensors with stride and dilation swapped: the
 * batch axis becomes the reduction (channel) axis. For g groups the channels
 * are ordered (group, batch) so that `group=g` keeps the groups apart; g=1 and
 * depthwise (g=C) are the two ends of the same formula.
 */
import type { GradEmitter } from '../emit.js';
import { A } from '../emit.js';
import { registerGradient, type GradContext } from '../registry.js';
import { attrInt, attrInts, attrStr, unsupported } from './util.js';

export interface ConvGeometry {
  strides: number[];
  dilations: number[];
  /** [begin..., end...] as in ONNX. */
  pads: number[];
  group: number;
  kernel: number[];
}

/** Explicit pads for a Conv (resolving auto_pad), from the static input shape. */
export function convGeometry(ctx: GradContext, xShape: readonly number[], wShape: readonly number[]): ConvGeometry {
  const r = xShape.length - 2;
  const kernel = attrInts(ctx, 'kernel_shape') ?? wShape.slice(2);
  const strides = attrInts(ctx, 'strides') ?? new Array(r).fill(1);
  const dilations = attrInts(ctx, 'dilations') ?? new Array(r).fill(1);
  const group = attrInt(ctx, 'group', 1);
  const autoPad = attrStr(ctx, 'auto_pad', 'NOTSET');
  let pads = attrInts(ctx, 'pads') ?? new Array(2 * r).fill(0);
  if (autoPad === 'VALID') pads = new Array(2 * r).fill(0);
  else if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    pads = new Array(2 * r).fill(0);
    for (let i = 0; i < r; i++) {
      const h = xShape[i + 2]!;
      const out = Math.ceil(h / strides[i]!);
      const total = Math.max(0, (out - 1) * strides[i]! + dilations[i]! * (kernel[i]! - 1) + 1 - h);
      const small = Math.floor(total / 2);
      pads[i] = autoPad === 'SAME_UPPER' ? small : total - small;
      pads[i + r] = total - pads[i]!;
    }
  } else if (autoPad !== 'NOTSET') throw unsupported(ctx, `auto_pad ${autoPad}`);
  return { strides, dilations, pads, group, kernel };
}

/** Permutation swapping axes 0 and 1 of a rank-n tensor. */
function swap01(n: number): number[] {
  return [1, 0, ...Array.from({ length: n - 2 }, (_, i) => i + 2)];
}

/**
 * The weight gradient of Y = Conv(X, W) (shape [M, C/g, k...]) as one Conv:
 * out[c', m, j] = sum_{n, o} X_pad[n, g(m)*Cg + c', o*s + j*d] * dY[n, m, o].
 * Also serves ConvTranspose with the roles of X and dY exchanged.
 */
export function convWeightGrad(
  b: GradEmitter,
  x: string,
  xShape: readonly number[],
  dY: string,
  dYShape: readonly number[],
  geo: ConvGeometry,
): string {
  const [n, c] = xShape as [number, number];
  const m = dYShape[1]!;
  const g = geo.group;
  const sx = xShape.slice(2);
  const sy = dYShape.slice(2);
  const r = sx.length;
  const rest = Array.from({ length: r }, (_, i) => i + 3);
  let xt: string;
  let gt: string;
  if (g === 1) {
    xt = b.op('Transpose', [x], { perm: A.ints(swap01(r + 2)) });
    gt = b.op('Transpose', [dY], { perm: A.ints(swap01(r + 2)) });
  } else {
    // X [N,C,..] -> [N,g,Cg,..] -> [Cg,g,N,..] -> [Cg, g*N, ..]
    const x5 = b.op('Reshape', [x, b.i64([n, g, c / g, ...sx])]);
    const x5t = b.op('Transpose', [x5], { perm: A.ints([2, 1, 0, ...rest]) });
    xt = b.op('Reshape', [x5t, b.i64([c / g, g * n, ...sx])]);
    // dY [N,M,..] -> [N,g,Mg,..] -> [g,Mg,N,..] -> [M, N, ..]
    const g5 = b.op('Reshape', [dY, b.i64([n, g, m / g, ...sy])]);
    const g5t = b.op('Transpose', [g5], { perm: A.ints([1, 2, 0, ...rest]) });
    gt = b.op('Reshape', [g5t, b.i64([m, n, ...sy])]);
  }
  let w = b.op('Conv', [xt, gt], {
    strides: A.ints(geo.dilations),
    dilations: A.ints(geo.strides),
    pads: A.ints(geo.pads),
    group: A.int(g),
  });
  // The result's spatial size k' >= k: the extra rows come from the end padding and are cut off.
  const kp = sx.map((h, i) => Math.floor((h + geo.pads[i]! + geo.pads[i + r]! - geo.strides[i]! * (sy[i]! - 1) - 1) / geo.dilations[i]!) + 1);
  if (kp.some((v, i) => v !== geo.kernel[i])) {
    const axes = Array.from({ length: r }, (_, i) => i + 2);
    w = b.op('Slice', [w, b.i64(new Array(r).fill(0)), b.i64(geo.kernel), b.i64(axes)]);
  }
  return b.op('Transpose', [w], { perm: A.ints(swap01(r + 2)) });
}

/**
 * What both MatMul forms of the weight gradient share: the sizes, dY^T [N, OH*OW, M], and the strided Slice
 * of the padded X [N, C, OH, OW] that kernel offset (i, j) multiplies.
 */
function patchGrid(b: GradEmitter, x: string, xShape: readonly number[], dY: string, dYShape: readonly number[], geo: ConvGeometry) {
  const [n, c] = xShape as [number, number];
  const [, m, oh, ow] = dYShape as [number, number, number, number];
  const [kh, kw] = geo.kernel as [number, number];
  const [sh, sw] = geo.strides as [number, number];
  const [dh, dw] = geo.dilations as [number, number];
  const [pt, pl, pb, pr] = geo.pads as [number, number, number, number];
  const xp = pt || pl || pb || pr ? b.op('Pad', [x, b.i64([0, 0, pt, pl, 0, 0, pb, pr])]) : x;
  const gT = b.op('Transpose', [b.op('Reshape', [dY, b.i64([n, m, oh * ow])])], { perm: A.ints([0, 2, 1]) });
  const slice = (i: number, j: number) =>
    b.op('Slice', [xp, b.i64([i * dh, j * dw]), b.i64([i * dh + sh * (oh - 1) + 1, j * dw + sw * (ow - 1) + 1]), b.i64([2, 3]), b.i64([sh, sw])]);
  return { n, c, m, oh, ow, kh, kw, gT, slice };
}

/**
 * The same weight gradient as one batched MatMul over explicit patches
 * (im2col in ONNX ops: kh*kw strided Slices of the padded X) [N, C*kh*kw, OH*OW],
 * times dY^T [N, OH*OW, M], summed over N. Groups of 1 only. More memory than the Conv form, but one large GEMM instead of a Conv
 * with a huge kernel and a thin output; the benchmark measures which wins.
 */
export function convWeightGradMatMul(
  b: GradEmitter,
  x: string,
  xShape: readonly number[],
  dY: string,
  dYShape: readonly number[],
  geo: ConvGeometry,
): string {
  const { n, c, m, oh, ow, kh, kw, gT, slice } = patchGrid(b, x, xShape, dY, dYShape, geo);
  // kh*kw strided Slices of the padded input, stacked: measured faster in onnxruntime than producing the
  // patches with a one-hot-kernel Conv (whose NCHWc output reorder alone cost more than the Slices).
  const patches: string[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) patches.push(b.op('Unsqueeze', [slice(i, j), b.i64([2])]));
  }
  const cols = b.op('Reshape', [b.op('Concat', patches, { axis: A.int(2) }), b.i64([n, c * kh * kw, oh * ow])]);
  const perImage = b.op('MatMul', [cols, gT]); // [N, C*K, M]
  const summed = b.op('ReduceSum', [perImage, b.i64([0])], { keepdims: A.int(0) }); // [C*K, M]
  return b.op('Reshape', [b.op('Transpose', [summed], { perm: A.ints([1, 0]) }), b.i64([m, c, kh, kw])]);
}

/**
 * The MatMul weight gradient one kernel offset at a time: for each (i, j), one strided Slice of the padded
 * X [N, C, OH*OW] times dY^T [N, OH*OW, M] gives dW[:, :, i, j] per image; the kh*kw small results are
 * stacked and summed over N. Needs one input-sized slice at a time instead of kh*kw of them stacked, so it
 * has no memory budget, and it skips the big Concat.
 */
export function convWeightGradOffsets(
  b: GradEmitter,
  x: string,
  xShape: readonly number[],
  dY: string,
  dYShape: readonly number[],
  geo: ConvGeometry,
): string {
  const { n, c, m, oh, ow, kh, kw, gT, slice } = patchGrid(b, x, xShape, dY, dYShape, geo);
  const parts: string[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const g = b.op('MatMul', [b.op('Reshape', [slice(i, j), b.i64([n, c, oh * ow])]), gT]); // [N, C, M]
      parts.push(b.op('Unsqueeze', [g, b.i64([3])]));
    }
  }
  const stacked = parts.length === 1 ? parts[0]! : b.op('Concat', parts, { axis: A.int(3) }); // [N, C, M, K]
  const summed = b.op('ReduceSum', [stacked, b.i64([0])], { keepdims: A.int(0) }); // [C, M, K]
  return b.op('Reshape', [b.op('Transpose', [summed], { perm: A.ints([1, 0, 2]) }), b.i64([m, c, kh, kw])]);
}

export function registerConvGradients(): void {
  registerGradient('Conv', (ctx) => {
    const dY = ctx.dY[0];
    if (!dY) return [undefined, undefined, undefined];
    const b = ctx.b;
    const [xs, ws] = ctx.inputShapes as [number[], number[]];
    const ys = ctx.outputShapes[0]!;
    const geo = convGeometry(ctx, xs, ws);
    const r = xs.length - 2;
    const out: (string | undefined)[] = [undefined, undefined, undefined];
    const flipPads = geo.kernel.map((k, i) => [geo.dilations[i]! * (k - 1) - geo.pads[i]!, geo.dilations[i]! * (k - 1) - geo.pads[i + r]!]);
    const canFlip = b.options.convInputGrad !== 'convtranspose' && r === 2 && geo.strides.every((v) => v === 1) && flipPads.every(([a, c]) => a! >= 0 && c! >= 0);
    if (ctx.needsGrad(0) && canFlip) {
      // Stride 1: the adjoint is itself a Conv, with the kernel flipped and its channel roles swapped
      // ([M, C/g, k, k] -> [C, M/g, k, k] per group) and pads d(k-1) - p. onnxruntime's Conv is much
      // faster than its ConvTranspose (col2im), and the flip costs one small Slice of the weights.
      const [m, cg] = ws as [number, number];
      const g = geo.group;
      const k = geo.kernel;
      const w5 = b.op('Reshape', [ctx.node.inputs[1]!, b.i64([g, m / g, cg, ...k])]);
      const wt = b.op('Reshape', [b.op('Transpose', [w5], { perm: A.ints([0, 2, 1, 3, 4]) }), b.i64([g * cg, m / g, ...k])]);
      const big = 2 ** 62;
      const wf = b.op('Slice', [wt, b.i64([-1, -1]), b.i64([-big, -big]), b.i64([2, 3]), b.i64([-1, -1])]);
      out[0] = b.op('Conv', [dY, wf], {
        strides: A.ints([1, 1]),
        dilations: A.ints(geo.dilations),
        pads: A.ints([flipPads[0]![0]!, flipPads[1]![0]!, flipPads[0]![1]!, flipPads[1]![1]!]),
        group: A.int(g),
        kernel_shape: A.ints(k),
      });
    } else if (ctx.needsGrad(0)) {
      const outputPadding = xs.slice(2).map((h, i) => {
        const span = h + geo.pads[i]! + geo.pads[i + r]! - geo.dilations[i]! * (geo.kernel[i]! - 1) - 1;
        return span % geo.strides[i]!;
      });
      out[0] = b.op('ConvTranspose', [dY, ctx.node.inputs[1]!], {
        strides: A.ints(geo.strides),
        dilations: A.ints(geo.dilations),
        pads: A.ints(geo.pads),
        group: A.int(geo.group),
        kernel_shape: A.ints(geo.kernel),
        output_padding: A.ints(outputPadding),
      });
    }
    if (ctx.needsGrad(1)) {
      // 'auto': one Slice + MatMul per kernel offset for group-1 2-D convs (fastest of the three forms in the
      // benchmark, reports/engine, and needs only one input-sized slice at a time), else the Conv form.
      const colsBytes = 4 * xs[0]! * xs[1]! * geo.kernel.reduce((a, v) => a * v, 1) * ys.slice(2).reduce((a, v) => a * v, 1);
      const mode = b.options.convWeightGrad ?? 'auto';
      const useMatMul = geo.group === 1 && r === 2 && mode === 'matmul' && colsBytes <= (b.options.patchBudgetBytes ?? 256 * 2 ** 20);
      const offsets = geo.group === 1 && r === 2 && (mode === 'offsets' || mode === 'auto');
      out[1] = (offsets ? convWeightGradOffsets : useMatMul ? convWeightGradMatMul : convWeightGrad)(b, ctx.node.inputs[0]!, xs, dY, ys, geo);
    }
    if (ctx.node.inputs[2] && ctx.needsGrad(2)) {
      out[2] = b.op('ReduceSum', [dY, b.i64([0, ...Array.from({ length: r }, (_, i) => i + 2)])], { keepdims: A.int(0) });
    }
    return out;
  });

  // ConvTranspose is the adjoint of Conv: dX = Conv(dY, W); dW = the Conv dW trick with X and dY exchanged.
  registerGradient('ConvTranspose', (ctx) => {
    const dY = ctx.dY[0];
    if (!dY) return [undefined, undefined, undefined];
    if (ctx.attr('output_shape')) throw unsupported(ctx, 'output_shape is not supported; give pads and output_padding');
    const autoPad = attrStr(ctx, 'auto_pad', 'NOTSET');
    if (autoPad !== 'NOTSET' && autoPad !== 'VALID') throw unsupported(ctx, `auto_pad ${autoPad}`);
    const b = ctx.b;
    const [xs, ws] = ctx.inputShapes as [number[], number[]];
    const ys = ctx.outputShapes[0]!;
    const r = xs.length - 2;
    const geo: ConvGeometry = {
      kernel: attrInts(ctx, 'kernel_shape') ?? ws.slice(2),
      strides: attrInts(ctx, 'strides') ?? new Array(r).fill(1),
      dilations: attrInts(ctx, 'dilations') ?? new Array(r).fill(1),
      pads: autoPad === 'VALID' ? new Array(2 * r).fill(0) : (attrInts(ctx, 'pads') ?? new Array(2 * r).fill(0)),
      group: attrInt(ctx, 'group', 1),
    };
    const out: (string | undefined)[] = [undefined, undefined, undefined];
    if (ctx.needsGrad(0)) {
      out[0] = b.op('Conv', [dY, ctx.node.inputs[1]!], {
        strides: A.ints(geo.strides),
        dilations: A.ints(geo.dilations),
        pads: A.ints(geo.pads),
        group: A.int(geo.group),
        kernel_shape: A.ints(geo.kernel),
      });
    }
    if (ctx.needsGrad(1)) out[1] = convWeightGrad(b, dY, ys, ctx.node.inputs[0]!, xs, geo);
    if (ctx.node.inputs[2] && ctx.needsGrad(2)) {
      out[2] = b.op('ReduceSum', [dY, b.i64([0, ...Array.from({ length: r }, (_, i) => i + 2)])], { keepdims: A.int(0) });
    }
    return out;
  });
}
