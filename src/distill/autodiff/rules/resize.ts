/**
 * Resize gradients. Resize (nearest or linear) of a 4-D tensor over H and W is
 * separable: Y = A_h X A_w^T with constant interpolation matrices, so
 * dX = A_h^T dY A_w (two MatMuls), exact for every scale and coordinate mode
 * the matrices reproduce. The matrices follow onnxruntime's CPU Resize
 * (checked by a forward-parity test); integer nearest upsampling takes the
 * cheaper Reshape + ReduceSum path.
 */
import { registerGradient, type GradContext } from '../registry.js';
import { A } from '../emit.js';
import { attrStr, constNumbers, unsupported } from './util.js';

export type ResizeMode = 'nearest' | 'linear';
export type CoordinateMode = 'half_pixel' | 'align_corners' | 'asymmetric' | 'pytorch_half_pixel';
export type NearestMode = 'round_prefer_floor' | 'round_prefer_ceil' | 'floor' | 'ceil';

const f = Math.fround;

function originalCoordinate(o: number, scale: number, outLen: number, inLen: number, coord: CoordinateMode): number {
  switch (coord) {
    case 'half_pixel':
      return f(f(f(o + 0.5) / scale) - 0.5);
    case 'pytorch_half_pixel':
      return outLen > 1 ? f(f(f(o + 0.5) / scale) - 0.5) : 0;
    case 'align_corners':
      return outLen === 1 ? 0 : f(f(o * (inLen - 1)) / (outLen - 1));
    case 'asymmetric':
      return f(o / scale);
  }
}

function nearestIndex(x: number, mode: NearestMode): number {
  switch (mode) {
    case 'round_prefer_floor':
      return x === Math.trunc(x) + 0.5 ? Math.floor(x) : roundHalfAway(x);
    case 'round_prefer_ceil':
      return roundHalfAway(x);
    case 'floor':
      return Math.floor(x);
    case 'ceil':
      return Math.ceil(x);
  }
}
function roundHalfAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/**
 * The [outLen x inLen] row-major matrix of a 1-D Resize as onnxruntime's CPU
 * kernel computes it (`scale` is the float32 scale onnxruntime uses: the scales
 * input, or outLen / inLen when sizes were given).
 */
export function resizeMatrix(
  inLen: number,
  outLen: number,
  scale: number,
  mode: ResizeMode,
  coord: CoordinateMode,
  nearest: NearestMode = 'round_prefer_floor',
): Float32Array {
  const m = new Float32Array(outLen * inLen);
  const s = f(scale);
  for (let o = 0; o < outLen; o++) {
    const x = originalCoordinate(o, s, outLen, inLen, coord);
    if (mode === 'nearest') {
      const i = Math.min(Math.max(nearestIndex(x, nearest), 0), inLen - 1);
      m[o * inLen + i] = 1;
    } else {
      const xc = Math.max(0, Math.min(x, inLen - 1));
      const i0 = Math.min(Math.trunc(xc), inLen - 1);
      const i1 = Math.min(i0 + 1, inLen - 1);
      if (i0 === i1) m[o * inLen + i0] += 1;
      else {
        const w1 = f(xc - i0);
        m[o * inLen + i0] += f(1 - w1);
        m[o * inLen + i1] += w1;
      }
    }
  }
  return m;
}

/** Whether `m` is nearest upsampling by the integer factor s (each input row repeated s times). */
function isBlockRepeat(m: Float32Array, inLen: number, outLen: number): number | undefined {
  if (outLen % inLen !== 0) return undefined;
  const s = outLen / inLen;
  for (let o = 0; o < outLen; o++) {
    for (let i = 0; i < inLen; i++) if (m[o * inLen + i] !== (i === Math.floor(o / s) ? 1 : 0)) return undefined;
  }
  return s;
}

function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c]!;
  return t;
}

/** The scales onnxruntime uses for the H and W axes of this Resize node. */
function resizeScales(ctx: GradContext): [number, number] {
  const xs = ctx.inputShapes[0]!;
  const ys = ctx.outputShapes[0]!;
  const scalesName = ctx.node.inputs[2];
  if (scalesName) {
    const sc = constNumbers(ctx.constantInput(2));
    if (!sc) throw unsupported(ctx, 'scales must be a constant');
    if (sc.length === 4) {
      if (sc[0] !== 1 || sc[1] !== 1) throw unsupported(ctx, 'only H and W may be resized');
      return [sc[2]!, sc[3]!];
    }
  }
  if (ys[0] !== xs[0] || ys[1] !== xs[1]) throw unsupported(ctx, 'only H and W may be resized');
  return [f(ys[2]! / xs[2]!), f(ys[3]! / xs[3]!)];
}

export function registerResizeGradient(): void {
  registerGradient('Resize', (ctx) => {
    const dY = ctx.dY[0];
    const none: (string | undefined)[] = ctx.node.inputs.map(() => undefined);
    if (!dY || !ctx.needsGrad(0)) return none;
    const xs = ctx.inputShapes[0]!;
    const ys = ctx.outputShapes[0]!;
    if (xs.length !== 4) throw unsupported(ctx, `rank ${xs.length} (only 4-D NCHW)`);
    const mode = attrStr(ctx, 'mode', 'nearest');
    if (mode !== 'nearest' && mode !== 'linear') throw unsupported(ctx, `mode ${mode} (nearest and linear are supported)`);
    const coord = attrStr(ctx, 'coordinate_transformation_mode', 'half_pixel');
    if (!['half_pixel', 'align_corners', 'asymmetric', 'pytorch_half_pixel'].includes(coord)) {
      throw unsupported(ctx, `coordinate_transformation_mode ${coord}`);
    }
    const nearest = attrStr(ctx, 'nearest_mode', 'round_prefer_floor') as NearestMode;
    for (const a of ['antialias', 'axes', 'keep_aspect_ratio_policy']) {
      if (ctx.attr(a)) throw unsupported(ctx, `attribute ${a}`);
    }
    const [sh, sw] = resizeScales(ctx);
    const [h, w, oh, ow] = [xs[2]!, xs[3]!, ys[2]!, ys[3]!];
    const ah = resizeMatrix(h, oh, sh, mode, coord as CoordinateMode, nearest);
    const aw = resizeMatrix(w, ow, sw, mode, coord as CoordinateMode, nearest);
    const b = ctx.b;
    const rh = isBlockRepeat(ah, h, oh);
    const rw = isBlockRepeat(aw, w, ow);
    let dx: string;
    if (rh !== undefined && rw !== undefined) {
      const r6 = b.op('Reshape', [dY, b.i64([xs[0]!, xs[1]!, h, rh, w, rw])]);
      dx = b.op('ReduceSum', [r6, b.i64([3, 5])], { keepdims: A.int(0) });
    } else {
      // [N,C,OH,OW] x A_w [OW,W] -> [N,C,OH,W]; A_h^T [H,OH] x that -> [N,C,H,W].
      dx = b.op('MatMul', [dY, b.f32(aw, [ow, w])]);
      dx = b.op('MatMul', [b.f32(transpose(ah, oh, h), [h, oh]), dx]);
    }
    none[0] = dx;
    return none;
  });
}
