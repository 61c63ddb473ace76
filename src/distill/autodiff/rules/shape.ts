/** Gradients of ops that only move data: Reshape and friends, Transpose, Concat, Split, Slice, Pad. */
import { numel } from '../../../onnx/tensor.js';
import { A } from '../emit.js';
import { registerGradient, type GradContext } from '../registry.js';
import { attrInt, attrInts, attrStr, constNumbers, gradOrZeros, unsupported } from './util.js';

function reshapeBack(ctx: GradContext): (string | undefined)[] {
  const out: (string | undefined)[] = ctx.node.inputs.map(() => undefined);
  const dY = ctx.dY[0];
  if (dY && ctx.needsGrad(0)) out[0] = ctx.b.op('Reshape', [dY, ctx.b.i64(ctx.inputShapes[0] as number[])]);
  return out;
}

/** Normalised [start, step, count] per axis of a Slice with constant starts/ends/axes/steps. */
function sliceRanges(ctx: GradContext): { start: number; step: number; count: number }[] {
  const xs = ctx.inputShapes[0]!;
  const num = (i: number): number[] | undefined => {
    if (!ctx.node.inputs[i]) return undefined;
    const v = constNumbers(ctx.constantInput(i));
    if (!v) throw unsupported(ctx, 'starts/ends/axes/steps must be constants');
    return v;
  };
  const starts = num(1)!;
  const ends = num(2)!;
  const axes = num(3) ?? starts.map((_, i) => i);
  const steps = num(4) ?? starts.map(() => 1);
  const ranges = xs.map((d) => ({ start: 0, step: 1, count: d }));
  axes.forEach((a0, i) => {
    const a = a0 < 0 ? a0 + xs.length : a0;
    const d = xs[a]!;
    const st = steps[i]!;
    let s = starts[i]!;
    let e = ends[i]!;
    if (s < 0) s += d;
    if (e < 0) e += d;
    if (st > 0) {
      s = Math.min(Math.max(s, 0), d);
      e = Math.min(Math.max(e, 0), d);
    } else {
      s = Math.min(Math.max(s, 0), d - 1);
      e = Math.min(Math.max(e, -1), d - 1);
    }
    const count = Math.max(0, Math.ceil((e - s) / st));
    ranges[a] = { start: s, step: st, count };
  });
  return ranges;
}

export function registerShapeGradients(): void {
  for (const op of ['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze']) registerGradient(op, reshapeBack);

  registerGradient('Transpose', (ctx) => {
    const dY = ctx.dY[0];
    if (!dY || !ctx.needsGrad(0)) return [undefined];
    const rank = ctx.inputShapes[0]!.length;
    const perm = attrInts(ctx, 'perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
    const inv = new Array<number>(rank);
    perm.forEach((p, i) => (inv[p] = i));
    return [ctx.b.op('Transpose', [dY], { perm: A.ints(inv) })];
  });

  registerGradient('Concat', (ctx) => {
    const dY = ctx.dY[0];
    const n = ctx.node.inputs.length;
    if (!dY) return new Array(n).fill(undefined);
    const rank = ctx.outputShapes[0]!.length;
    let axis = attrInt(ctx, 'axis', 0);
    if (axis < 0) axis += rank;
    const sizes = ctx.inputShapes.map((s) => s[axis]!);
    const parts = ctx.b.opN('Split', [dY, ctx.b.i64(sizes)], n, { axis: A.int(axis) });
    return parts.map((p, i) => (ctx.needsGrad(i) ? p : undefined));
  });

  registerGradient('Split', (ctx) => {
    const out: (string | undefined)[] = ctx.node.inputs.map(() => undefined);
    if (!ctx.needsGrad(0) || ctx.dY.every((g) => !g)) return out;
    const rank = ctx.inputShapes[0]!.length;
    let axis = attrInt(ctx, 'axis', 0);
    if (axis < 0) axis += rank;
    const parts = ctx.node.outputs.map((_, i) => gradOrZeros(ctx, i));
    out[0] = ctx.b.op('Concat', parts, { axis: A.int(axis) });
    return out;
  });

  // Slice: the gradient is dY placed back where it came from (Pad for unit steps, ScatterND otherwise).
  registerGradient('Slice', (ctx) => {
    const out: (string | undefined)[] = ctx.node.inputs.map(() => undefined);
    const dY = ctx.dY[0];
    if (!dY || !ctx.needsGrad(0)) return out;
    const b = ctx.b;
    const xs = ctx.inputShapes[0]!;
    const ranges = sliceRanges(ctx);
    if (ranges.every((r) => r.step === 1)) {
      const pads = [...ranges.map((r) => r.start), ...ranges.map((r, i) => xs[i]! - r.start - r.count)];
      out[0] = pads.every((p) => p === 0) ? dY : b.op('Pad', [dY, b.i64(pads)]);
      return out;
    }
    const ys = ranges.map((r) => r.count);
    const total = numel(ys);
    const idx = new Array<number>(total * xs.length);
    for (let flat = 0; flat < total; flat++) {
      let rem = flat;
      for (let a = xs.length - 1; a >= 0; a--) {
        const i = rem % ys[a]!;
        rem = Math.floor(rem / ys[a]!);
        idx[flat * xs.length + a] = ranges[a]!.start + i * ranges[a]!.step;
      }
    }
    out[0] = b.op('ScatterND', [b.zeros(xs as number[]), b.i64(idx, [...ys, xs.length]), dY]);
    return out;
  });

  // Pad (constant mode, constant pads): the gradient is the Slice of dY that the input occupies.
  registerGradient('Pad', (ctx) => {
    const out: (string | undefined)[] = ctx.node.inputs.map(() => undefined);
    const dY = ctx.dY[0];
    if (!dY || !ctx.needsGrad(0)) return out;
    if (attrStr(ctx, 'mode', 'constant') !== 'constant') throw unsupported(ctx, 'only constant mode');
    if (ctx.node.inputs[3]) throw unsupported(ctx, 'the axes input');
    const pads = constNumbers(ctx.constantInput(1));
    if (!pads) throw unsupported(ctx, 'pads must be a constant');
    const xs = ctx.inputShapes[0]!;
    const r = xs.length;
    if (pads.some((p) => p < 0)) throw unsupported(ctx, 'negative pads');
    const starts = pads.slice(0, r);
    const ends = xs.map((d, i) => starts[i]! + d);
    out[0] = ctx.b.op('Slice', [dY, ctx.b.i64(starts), ctx.b.i64(ends), ctx.b.i64(xs.map((_, i) => i))]);
    return out;
  });
}
