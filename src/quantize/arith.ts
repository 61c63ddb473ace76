/**
 * INT8 quantization arithmetic, written to match onnxruntime's Python quantizer
 * (`onnxruntime.quantization.quant_utils.compute_scale_zp`, `quantize_nparray`,
 * `BaseQuantizer.quantize_bias_static_impl` and the QDQ quantizer's weight-scale
 * adjustment for int32 bias) bit for bit, so that a side-by-side comparison with
 * that peer compares calibration and graph choices, not rounding noise.
 *
 * Conventions (see docs/quantization.md, "The arithmetic"): r = s * (q - z); rounding is
 * round half to even (numpy `round`, ONNX QuantizeLinear); values saturate to the
 * type's full range; scales are computed in float64 and stored as float32, like
 * the peer does (`scale.astype(float32)` after a float64 division).
 */
import { LesionFuseError } from '../util/errors.js';

/** The integer types LesionFuse quantizes to. */
export type QuantType = 'int8' | 'uint8';

/** Inclusive integer range used to derive a scale. */
export interface QRange {
  qmin: number;
  qmax: number;
}

/** Scale and zero point of one tensor (or one channel): r = scale * (q - zeroPoint). */
export interface QParams {
  /** float32 value (already rounded with Math.fround). */
  scale: number;
  zeroPoint: number;
}

/** Smallest positive normal float32 (numpy.finfo(float32).tiny): scales below it count as degenerate. */
export const FLOAT32_TINY = 1.1754943508222875e-38;
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

/** The full range of a type: what QuantizeLinear saturates to. */
export function fullRange(type: QuantType): QRange {
  return type === 'int8' ? { qmin: -128, qmax: 127 } : { qmin: 0, qmax: 255 };
}

/**
 * The range used to derive a scale, as the peer's `get_qmin_qmax_for_qType` picks it:
 * reduce_range first ((-64, 64) for int8, (0, 127) for uint8), then the symmetric int8
 * range (-127, 127), else the full range. Symmetric uint8 keeps (0, 255), so its zero
 * point is round(127.5) = 128 (half to even), not 127.
 */
export function quantRange(type: QuantType, opts: { symmetric?: boolean; reduceRange?: boolean } = {}): QRange {
  if (opts.reduceRange) return type === 'int8' ? { qmin: -64, qmax: 64 } : { qmin: 0, qmax: 127 };
  if (opts.symmetric && type === 'int8') return { qmin: -127, qmax: 127 };
  return fullRange(type);
}

/** Round to the nearest integer, ties to the even one (numpy.round, ONNX QuantizeLinear). */
export function roundHalfToEven(x: number): number {
  if (!Number.isFinite(x)) return x;
  const f = Math.floor(x);
  const diff = x - f;
  if (diff < 0.5) return f;
  if (diff > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Scale and zero point for a real range [rmin, rmax] (float32 values), as
 * `compute_scale_zp` computes them: the range is widened to include 0, optionally
 * to a minimum width, optionally made symmetric; scale = (rmax - rmin) / (qmax - qmin)
 * in float64, stored as float32; a scale below float32 tiny means a degenerate range
 * (all zeros): scale 1, zero point 0. Symmetric: z = round((qmin + qmax) / 2);
 * asymmetric: z = round(qmin - rmin / scale) with the float64 scale.
 */
export function computeScaleZeroPoint(
  rmin: number,
  rmax: number,
  range: QRange,
  opts: { symmetric?: boolean; minRealRange?: number } = {},
): QParams {
  const { qmin, qmax } = range;
  if (qmin > 0 || qmax < 0) throw new LesionFuseError(`quantization range must contain 0, got [${qmin}, ${qmax}]`);
  if (!Number.isFinite(rmin) || !Number.isFinite(rmax)) {
    throw new LesionFuseError(`cannot quantize a tensor whose range is not finite: [${rmin}, ${rmax}]`);
  }
  let lo = Math.fround(Math.min(Math.fround(rmin), 0));
  let hi = Math.fround(Math.max(Math.fround(rmax), 0));
  if (opts.minRealRange !== undefined) hi = Math.max(hi, Math.fround(lo + Math.fround(opts.minRealRange)));
  if (opts.symmetric) {
    const absmax = Math.max(Math.abs(lo), Math.abs(hi));
    lo = -absmax;
    hi = absmax;
  }
  const scale64 = (hi - lo) / (qmax - qmin);
  if (scale64 < FLOAT32_TINY) return { scale: 1, zeroPoint: 0 };
  const zeroPoint = opts.symmetric ? roundHalfToEven((qmin + qmax) / 2) : roundHalfToEven(qmin - lo / scale64);
  return { scale: Math.fround(scale64), zeroPoint };
}

/** Activation parameters from a calibrated range (asymmetric by default, like the peer). */
export function activationParams(
  rmin: number,
  rmax: number,
  type: QuantType,
  opts: { symmetric?: boolean; reduceRange?: boolean; minRealRange?: number } = {},
): QParams {
  return computeScaleZeroPoint(rmin, rmax, quantRange(type, opts), opts);
}

/** Saturate an integer to a range. */
export function saturate(q: number, range: QRange): number {
  return q < range.qmin ? range.qmin : q > range.qmax ? range.qmax : q;
}

/**
 * q = saturate(round(r / s) + z), with r / s a float32 division as in `quantize_nparray`
 * (numpy divides a float32 array by a float32 scale in float32) and saturation to the
 * type's full range.
 */
export function quantizeValue(r: number, p: QParams, type: QuantType): number {
  const q = roundHalfToEven(Math.fround(Math.fround(r) / p.scale)) + p.zeroPoint;
  return saturate(Number.isNaN(q) ? p.zeroPoint : q, fullRange(type));
}

/** Quantize a whole array with one scale and zero point. */
export function quantizeArray(values: Float32Array, p: QParams, type: QuantType): Int8Array | Uint8Array {
  const out = type === 'int8' ? new Int8Array(values.length) : new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = quantizeValue(values[i]!, p, type);
  return out;
}

/** r = s * (q - z), in float32 as DequantizeLinear computes it. */
export function dequantizeValue(q: number, p: QParams): number {
  return Math.fround(p.scale * (q - p.zeroPoint));
}

/** Quantize then dequantize: what a QDQ pair does to a value. */
export function fakeQuantize(r: number, p: QParams, type: QuantType): number {
  return dequantizeValue(quantizeValue(r, p, type), p);
}

/** The elements of channel `c` along `axis` of a row-major tensor, visited in order. */
function forEachInChannel(dims: readonly number[], axis: number, c: number, fn: (flatIndex: number) => void): void {
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const n = dims[axis]!;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  for (let o = 0; o < outer; o++) {
    const base = (o * n + c) * inner;
    for (let i = 0; i < inner; i++) fn(base + i);
  }
}

/** Per-channel quantized weights: int8 values plus one float32 scale per channel (zero points all 0). */
export interface PerChannelWeights {
  axis: number;
  values: Int8Array;
  scales: Float32Array;
  /** Always zeros for symmetric int8 weights; kept explicit because DequantizeLinear takes them. */
  zeroPoints: Int8Array;
}

function checkAxis(dims: readonly number[], axis: number, what: string): void {
  if (!(axis >= 0 && axis < dims.length)) throw new LesionFuseError(`${what}: axis ${axis} is out of range for shape [${dims.join(', ')}]`);
}

/** Per-channel symmetric int8 scales (a_c / 127, or a_c / 64 with reduceRange), one per index of `axis`. */
export function perChannelWeightScales(
  w: Float32Array,
  dims: readonly number[],
  axis: number,
  opts: { reduceRange?: boolean } = {},
): Float32Array {
  checkAxis(dims, axis, 'per-channel weight scales');
  const range = quantRange('int8', { symmetric: true, reduceRange: opts.reduceRange });
  const n = dims[axis]!;
  const scales = new Float32Array(n);
  for (let c = 0; c < n; c++) {
    let lo = Infinity;
    let hi = -Infinity;
    forEachInChannel(dims, axis, c, (i) => {
      const v = w[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    });
    if (lo === Infinity) {
      lo = 0;
      hi = 0;
    }
    scales[c] = computeScaleZeroPoint(lo, hi, range, { symmetric: true }).scale;
  }
  return scales;
}

/** Quantize weights per channel with the given scales (zero point 0), saturating to [-128, 127]. */
export function quantizePerChannel(w: Float32Array, dims: readonly number[], axis: number, scales: Float32Array): Int8Array {
  checkAxis(dims, axis, 'per-channel quantization');
  if (scales.length !== dims[axis]) {
    throw new LesionFuseError(`per-channel quantization: ${scales.length} scales for ${dims[axis]} channels`);
  }
  const out = new Int8Array(w.length);
  for (let c = 0; c < scales.length; c++) {
    const p = { scale: scales[c]!, zeroPoint: 0 };
    forEachInChannel(dims, axis, c, (i) => {
      out[i] = quantizeValue(w[i]!, p, 'int8');
    });
  }
  return out;
}

/** Per-channel symmetric int8 weights (the default for Conv, ConvTranspose, Gemm and MatMul weights). */
export function quantizeWeightsPerChannel(
  w: Float32Array,
  dims: readonly number[],
  axis: number,
  opts: { reduceRange?: boolean } = {},
): PerChannelWeights {
  const scales = perChannelWeightScales(w, dims, axis, opts);
  return { axis, values: quantizePerChannel(w, dims, axis, scales), scales, zeroPoints: new Int8Array(scales.length) };
}

/**
 * Per-tensor weights of a given type: symmetric int8 (z = 0) or, when `type` is
 * uint8, asymmetric uint8 over [min(w, 0), max(w, 0)] as the peer does for
 * QUInt8 weights. The uint8 per-tensor form is the trap the ViT-safe default avoids.
 */
export function quantizeWeightsPerTensor(
  w: Float32Array,
  type: QuantType,
  opts: { reduceRange?: boolean } = {},
): { values: Int8Array | Uint8Array; params: QParams } {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of w) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo === Infinity) {
    lo = 0;
    hi = 0;
  }
  const symmetric = type === 'int8';
  const params = computeScaleZeroPoint(lo, hi, quantRange(type, { symmetric, reduceRange: opts.reduceRange }), { symmetric });
  return { values: quantizeArray(w, params, type), params };
}

/**
 * Raise weight scales whose bias scale (s_in * s_w) would make the int32 bias
 * overflow, as the peer's QDQ quantizer does by default
 * (`_adjust_weight_scale_for_int32_bias`): the smallest valid bias scale for a
 * channel with bias b is 1.0001 * 2|b| / (2^32 - 2). Returns the indices changed.
 * `weightScales` has one entry (per tensor) or one per bias element.
 */
export function adjustWeightScalesForBias(bias: Float32Array, inputScale: number, weightScales: Float32Array): number[] {
  const qrange = INT32_MAX - (INT32_MIN + 1);
  const changed: number[] = [];
  const eps = 1.0001;
  if (weightScales.length === 1) {
    let absmax = 0;
    for (const b of bias) absmax = Math.max(absmax, Math.abs(b));
    const smallest = (eps * (2 * absmax)) / qrange;
    const candidate = inputScale * weightScales[0]!;
    if (candidate < smallest && candidate > 0) {
      weightScales[0] = Math.fround(weightScales[0]! * (smallest / candidate));
      changed.push(0);
    }
    return changed;
  }
  if (weightScales.length !== bias.length) {
    throw new LesionFuseError(`bias has ${bias.length} values but the weight has ${weightScales.length} channel scales`);
  }
  for (let i = 0; i < bias.length; i++) {
    const smallest = (eps * (2 * Math.abs(bias[i]!))) / qrange;
    const candidate = inputScale * weightScales[i]!;
    if (candidate < smallest && candidate > 0) {
      weightScales[i] = Math.fround(weightScales[i]! * (smallest / candidate));
      changed.push(i);
    }
  }
  return changed;
}

/** An int32 bias and its scales (s_b = s_in * s_w per channel, zero point 0). */
export interface QuantizedBias {
  values: Int32Array;
  scales: Float32Array;
  /** How many values had to be clipped to the int32 range (the peer warns; so do we). */
  clipped: number;
}

/**
 * Quantize a bias to int32 with s_b = float32(s_in * s_w[c]) (times beta), z = 0,
 * q = clip(round(b / s_b)) computed in float64 as the peer does.
 */
export function quantizeBias(bias: Float32Array, inputScale: number, weightScales: Float32Array, beta = 1): QuantizedBias {
  const perChannel = weightScales.length !== 1;
  if (perChannel && weightScales.length !== bias.length) {
    throw new LesionFuseError(`bias has ${bias.length} values but the weight has ${weightScales.length} channel scales`);
  }
  const scales = new Float32Array(weightScales.length);
  for (let i = 0; i < weightScales.length; i++) scales[i] = Math.fround(Math.fround(inputScale * weightScales[i]!) * beta);
  const values = new Int32Array(bias.length);
  let clipped = 0;
  for (let i = 0; i < bias.length; i++) {
    let s = scales[perChannel ? i : 0]!;
    if (s === 0) s = 1;
    let q = roundHalfToEven(bias[i]! / s);
    if (q < INT32_MIN || q > INT32_MAX) {
      clipped++;
      q = q < INT32_MIN ? INT32_MIN : INT32_MAX;
    }
    values[i] = q;
  }
  return { values, scales, clipped };
}
