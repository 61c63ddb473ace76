/** Gradients of reductions (ReduceSum, ReduceMean) and of MatMul / Gemm. */
import { numel } from '../../../onnx/tensor.js';
import { A } from '../emit.js';
import { registerGradient, type GradContext } from '../registry.js';
import { attrFloat, attrInt, attrInts, constNumbers, unbroadcast, unsupported } from './util.js';

/** The reduced axes of a ReduceSum/ReduceMean (axes attribute or input, per opset). */
function reducedAxes(ctx: GradContext): number[] {
  const rank = ctx.inputShapes[0]!.length;
  let axes = attrInts(ctx, 'axes');
  if (!axes && ctx.node.inputs[1]) {
    axes = constNumbers(ctx.constantInput(1));
    if (!axes) throw unsupported(ctx, 'axes must be a constant');
  }
  if (!axes || axes.length === 0) {
    if (attrInt(ctx, 'noop_with_empty_axes', 0) === 1) return [];
    return Array.from({ length: rank }, (_, i) => i);
  }
  return axes.map((a) => (a < 0 ? a + rank : a));
}

function reduceGrad(mean: boolean) {
  return (ctx: GradContext): (string | undefined)[] => {
    const out: (string | undefined)[] = ctx.node.inputs.map(() => undefined);
    const dY = ctx.dY[0];
    if (!dY || !ctx.needsGrad(0)) return out;
    const b = ctx.b;
    const xs = ctx.inputShapes[0]!;
    const axes = reducedAxes(ctx);
    let g = dY;
    if (attrInt(ctx, 'keepdims', 1) === 0 && axes.length > 0) {
      g = b.op('Reshape', [g, b.i64(xs.map((d, i) => (axes.includes(i) ? 1 : d)))]);
    }
    if (mean) {
      const count = numel(axes.map((a) => xs[a]!));
      g = b.op('Mul', [g, b.scalar(1 / count)]);
    }
    out[0] = b.op('Expand', [g, b.i64(xs as number[])]);
    return out;
  };
}

/** numpy broadcast of two shapes (static). */
function broadcastShapes(x: number[], y: number[]): number[] {
  const n = Math.max(x.length, y.length);
  return Array.from({ length: n }, (_, i) => {
    const dx = x[x.length - n + i] ?? 1;
    const dy = y[y.length - n + i] ?? 1;
    return Math.max(dx, dy);
  });
}

/** Swap the last two axes. */
function tr(ctx: GradContext, v: string, rank: number): string {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
  return ctx.b.op('Transpose', [v], { perm: A.ints(perm) });
}

export function registerLinalgGradients(): void {
  registerGradient('ReduceSum', reduceGrad(false));
  registerGradient('ReduceMean', reduceGrad(true));

  // MatMul with numpy semantics: 1-D operands are promoted to 2-D, batch axes broadcast.
  registerGradient('MatMul', (ctx) => {
    const dY = ctx.dY[0];
    if (!dY) return [undefined, undefined];
    const b = ctx.b;
    let [as, bs] = ctx.inputShapes as [number[], number[]];
    let a = ctx.node.inputs[0]!;
    let bb = ctx.node.inputs[1]!;
    const aOrig = as;
    const bOrig = bs;
    if (as.length === 1) {
      as = [1, as[0]!];
      a = b.op('Reshape', [a, b.i64(as)]);
    }
    if (bs.length === 1) {
      bs = [bs[0]!, 1];
      bb = b.op('Reshape', [bb, b.i64(bs)]);
    }
    const batch = broadcastShapes(as.slice(0, -2), bs.slice(0, -2));
    const ys = [...batch, as[as.length - 2]!, bs[bs.length - 1]!];
    const g = b.op('Reshape', [dY, b.i64(ys)]);
    const out: (string | undefined)[] = [undefined, undefined];
    if (ctx.needsGrad(0)) {
      const full = b.op('MatMul', [g, tr(ctx, bb, bs.length)]);
      const da = unbroadcast(b, full, [...batch, as[as.length - 2]!, as[as.length - 1]!], as);
      out[0] = b.op('Reshape', [da, b.i64(aOrig)]);
    }
    if (ctx.needsGrad(1)) {
      const full = b.op('MatMul', [tr(ctx, a, as.length), g]);
      const db = unbroadcast(b, full, [...batch, bs[bs.length - 2]!, bs[bs.length - 1]!], bs);
      out[1] = b.op('Reshape', [db, b.i64(bOrig)]);
    }
    return out;
  });

  // Gemm: Y = alpha * A' B' + beta * C with A' = transA ? A^T : A (same for B).
  registerGradient('Gemm', (ctx) => {
    const dY = ctx.dY[0];
    if (!dY) return [undefined, undefined, undefined];
    const b = ctx.b;
    const alpha = attrFloat(ctx, 'alpha', 1);
    const beta = attrFloat(ctx, 'beta', 1);
    const ta = attrInt(ctx, 'transA', 0);
    const tb = attrInt(ctx, 'transB', 0);
    const [a, bm] = [ctx.node.inputs[0]!, ctx.node.inputs[1]!];
    const gemm = (x: string, y: string, tx: number, ty: number): string =>
      b.op('Gemm', [x, y], { alpha: A.float(alpha), transA: A.int(tx), transB: A.int(ty) });
    const out: (string | undefined)[] = [undefined, undefined, undefined];
    // dA' = alpha dY B'^T; dA = transA ? (dA')^T : dA'.
    if (ctx.needsGrad(0)) out[0] = ta === 0 ? gemm(dY, bm, 0, tb ? 0 : 1) : gemm(bm, dY, tb ? 1 : 0, 1);
    // dB' = alpha A'^T dY; dB = transB ? (dB')^T : dB'.
    if (ctx.needsGrad(1)) out[1] = tb === 0 ? gemm(a, dY, ta ? 0 : 1, 0) : gemm(dY, a, 1, ta ? 1 : 0);
    if (ctx.node.inputs[2] && ctx.needsGrad(2)) {
      const scaled = beta === 1 ? dY : b.op('Mul', [dY, b.scalar(beta)]);
      out[2] = unbroadcast(b, scaled, ctx.outputShapes[0]!, ctx.inputShapes[2]!);
    }
    return out;
  });
}
