/**
 * Segmentation metrics on binary masks (Uint8Array of 0/1, row-major, at the ORIGINAL image resolution).
 *
 * Written by hand so that every stage (evaluation, quantization gate, distillation selection, reports)
 * scores the same way. Conventions, chosen so that a "no lesion" image predicted as "no lesion" is a
 * perfect answer (docs/inputs.md, "Masks"; docs/benchmarks.md, "Empty masks"):
 * - truth and prediction both empty: Dice = IoU = thresholded Jaccard = boundary F = 1, HD95 = 0;
 * - exactly one of them empty: Dice = IoU = thresholded Jaccard = boundary F = 0, HD95 = NaN
 *   (undefined: there is no surface to measure from). Means skip NaN and report how many were used
 *   (see {@link meanOf}).
 * - sensitivity is NaN when the truth has no lesion pixel (unless the prediction is empty too: 1);
 *   specificity is NaN when the truth has no background pixel (unless the prediction is full too: 1).
 */
import { LesionFuseError } from '../util/errors.js';

/** Pixel counts of a prediction against the truth. */
export interface Confusion {
  tp: number;
  fp: number;
  fn: number;
  tn: number;
}

function checkPair(pred: Uint8Array, truth: Uint8Array): void {
  if (pred.length !== truth.length) {
    throw new LesionFuseError(`prediction has ${pred.length} pixels but the truth has ${truth.length}: masks must be the same size`);
  }
}

/** True-positive, false-positive, false-negative and true-negative pixel counts (non-zero = lesion). */
export function confusion(pred: Uint8Array, truth: Uint8Array): Confusion {
  checkPair(pred, truth);
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let i = 0; i < pred.length; i++) {
    const p = pred[i]! !== 0;
    const t = truth[i]! !== 0;
    if (p && t) tp++;
    else if (p) fp++;
    else if (t) fn++;
  }
  return { tp, fp, fn, tn: pred.length - tp - fp - fn };
}

/** Dice = 2|P∩T| / (|P| + |T|); 1 when both are empty. */
export function dice(pred: Uint8Array, truth: Uint8Array): number {
  const c = confusion(pred, truth);
  const denom = 2 * c.tp + c.fp + c.fn;
  return denom === 0 ? 1 : (2 * c.tp) / denom;
}

/** IoU (Jaccard) = |P∩T| / |P∪T|; 1 when both are empty. */
export function iou(pred: Uint8Array, truth: Uint8Array): number {
  const c = confusion(pred, truth);
  const union = c.tp + c.fp + c.fn;
  return union === 0 ? 1 : c.tp / union;
}

/** The ISIC 2018 challenge score per image: IoU, counted as 0 below `cutoff` (default 0.65). */
export function thresholdedJaccard(pred: Uint8Array, truth: Uint8Array, cutoff = 0.65): number {
  const j = iou(pred, truth);
  return j < cutoff ? 0 : j;
}

/** TP / (TP + FN): the fraction of lesion pixels found. NaN when the truth has no lesion (1 if the prediction is empty too). */
export function sensitivity(pred: Uint8Array, truth: Uint8Array): number {
  const c = confusion(pred, truth);
  if (c.tp + c.fn === 0) return c.fp === 0 ? 1 : NaN;
  return c.tp / (c.tp + c.fn);
}

/** TN / (TN + FP): the fraction of skin pixels kept as skin. NaN when the truth is all lesion (1 if the prediction is full too). */
export function specificity(pred: Uint8Array, truth: Uint8Array): number {
  const c = confusion(pred, truth);
  if (c.tn + c.fp === 0) return c.fn === 0 ? 1 : NaN;
  return c.tn / (c.tn + c.fp);
}

function checkSize(mask: Uint8Array, width: number, height: number, what: string): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0 || mask.length !== width * height) {
    throw new LesionFuseError(`${what} has ${mask.length} pixels, which is not ${width} x ${height}`);
  }
}

/**
 * Boundary pixels of a mask: lesion pixels with a 4-neighbour that is background or outside the image
 * (the same as `mask XOR erosion(mask, cross)` with the image surround counted as background, as medpy
 * and the ISIC scorers do). Returns a 0/1 mask.
 */
export function boundaryPixels(mask: Uint8Array, width: number, height: number): Uint8Array {
  checkSize(mask, width, height, 'mask');
  const out = new Uint8Array(mask.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      if (mask[i] === 0) continue;
      if (
        x === 0 || y === 0 || x === width - 1 || y === height - 1 ||
        mask[i - 1] === 0 || mask[i + 1] === 0 || mask[i - width] === 0 || mask[i + width] === 0
      ) {
        out[i] = 1;
      }
    }
  }
  return out;
}

const INF = 1e20;

/** One-dimensional squared distance transform (Felzenszwalb & Huttenlocher, 2012) of f into d. */
function dt1d(f: Float64Array, n: number, d: Float64Array, v: Int32Array, z: Float64Array): void {
  let k = 0;
  v[0] = 0;
  z[0] = -Infinity;
  z[1] = Infinity;
  for (let q = 1; q < n; q++) {
    let s: number;
    for (;;) {
      const vk = v[k]!;
      s = (f[q]! + q * q - (f[vk]! + vk * vk)) / (2 * q - 2 * vk);
      if (s <= z[k]! && k > 0) k--;
      else break;
    }
    k++;
    v[k] = q;
    z[k] = s;
    z[k + 1] = Infinity;
  }
  k = 0;
  for (let q = 0; q < n; q++) {
    while (z[k + 1]! < q) k++;
    const vk = v[k]!;
    d[q] = (q - vk) * (q - vk) + f[vk]!;
  }
}

/**
 * Exact squared Euclidean distance from every pixel to the nearest non-zero pixel of `features`
 * (separable: column distances by two sweeps, then Felzenszwalb-Huttenlocher's parabola envelope per
 * row; O(width x height)). Pixels are 1 apart; when
 * `features` has no non-zero pixel every distance is a huge number (1e20 or more).
 */
export function squaredDistanceTransform(features: Uint8Array, width: number, height: number): Float64Array {
  checkSize(features, width, height, 'feature mask');
  const out = new Float64Array(width * height);
  // Columns: for a binary image the first pass is the distance to the nearest feature in the same
  // column, found by a downward and an upward sweep over whole rows (row-major, cache friendly).
  const far = width + height + 1;
  for (let x = 0; x < width; x++) out[x] = features[x] ? 0 : far;
  for (let y = 1; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) out[row + x] = features[row + x] ? 0 : out[row - width + x]! + 1;
  }
  for (let y = height - 2; y >= 0; y--) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const below = out[row + width + x]! + 1;
      if (below < out[row + x]!) out[row + x] = below;
    }
  }
  for (let i = 0; i < out.length; i++) out[i] = out[i]! >= far ? INF : out[i]! * out[i]!;
  // Rows: the exact lower envelope of parabolas (Felzenszwalb-Huttenlocher).
  const f = new Float64Array(width);
  const d = new Float64Array(width);
  const v = new Int32Array(width);
  const z = new Float64Array(width + 1);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) f[x] = out[row + x]!;
    dt1d(f, width, d, v, z);
    for (let x = 0; x < width; x++) out[row + x] = d[x]!;
  }
  return out;
}

/** Distances (pixels) from each boundary pixel of `from` to the nearest boundary pixel of `to`. */
function directedSurfaceDistances(fromBoundary: Uint8Array, toBoundary: Uint8Array, width: number, height: number): number[] {
  const dt = squaredDistanceTransform(toBoundary, width, height);
  const out: number[] = [];
  for (let i = 0; i < fromBoundary.length; i++) if (fromBoundary[i]) out.push(Math.sqrt(dt[i]!));
  return out;
}

function isEmpty(m: Uint8Array): boolean {
  for (let i = 0; i < m.length; i++) if (m[i] !== 0) return false;
  return true;
}

/**
 * Both directed surface-distance sets of two non-empty masks: from each prediction boundary pixel to the
 * truth's boundary, and from each truth boundary pixel to the prediction's (pixels). Shared by HD95 and
 * boundary F so that an evaluation computes each distance transform once.
 */
export function surfaceDistances(pred: Uint8Array, truth: Uint8Array, width: number, height: number): { predToTruth: number[]; truthToPred: number[] } {
  const pb = boundaryPixels(pred, width, height);
  const tb = boundaryPixels(truth, width, height);
  // Every boundary pixel (and so every nearest one) lies in the bounding box of both boundaries: the
  // distance transforms run on that box only, which is exact and much smaller for typical lesions.
  let x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      if (pb[row + x] || tb[row + x]) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  if (x1 < 0) return { predToTruth: [], truthToPred: [] };
  const bw = x1 - x0 + 1;
  const bh = y1 - y0 + 1;
  const crop = (m: Uint8Array): Uint8Array => {
    const c = new Uint8Array(bw * bh);
    for (let y = 0; y < bh; y++) c.set(m.subarray((y + y0) * width + x0, (y + y0) * width + x0 + bw), y * bw);
    return c;
  };
  const pc = crop(pb);
  const tc = crop(tb);
  return { predToTruth: directedSurfaceDistances(pc, tc, bw, bh), truthToPred: directedSurfaceDistances(tc, pc, bw, bh) };
}

function hd95From(d: { predToTruth: number[]; truthToPred: number[] }): number {
  return percentile(d.predToTruth.concat(d.truthToPred), 95);
}

function boundaryFFrom(d: { predToTruth: number[]; truthToPred: number[] }, tolerancePx: number): number {
  const within = (x: number[]): number => x.filter((v) => v <= tolerancePx + 1e-9).length / x.length;
  const precision = within(d.predToTruth);
  const recall = within(d.truthToPred);
  return precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
}

/**
 * The q-th percentile (0..100) of `values` with linear interpolation between order statistics
 * (numpy's default, which medpy's hd95 uses). `values` is not modified.
 */
export function percentile(values: number[] | Float64Array, q: number): number {
  if (values.length === 0) return NaN;
  const s = Float64Array.from(values).sort();
  const pos = (q / 100) * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

/**
 * 95th percentile Hausdorff distance in pixels: the 95th percentile (linear interpolation) of the
 * symmetric surface distances, i.e. the distances from every boundary pixel of the prediction to the
 * truth's boundary together with those from every truth boundary pixel to the prediction's boundary
 * (medpy's `hd95`). 0 when both masks are empty, NaN when exactly one is.
 */
export function hd95(pred: Uint8Array, truth: Uint8Array, width: number, height: number): number {
  checkPair(pred, truth);
  checkSize(pred, width, height, 'prediction');
  const pe = isEmpty(pred);
  const te = isEmpty(truth);
  if (pe && te) return 0;
  if (pe || te) return NaN;
  return hd95From(surfaceDistances(pred, truth, width, height));
}

/**
 * Boundary F-score with a tolerance in pixels (default 2): precision = the fraction of predicted
 * boundary pixels within `tolerancePx` (Euclidean, inclusive) of the truth's boundary, recall = the
 * fraction of truth boundary pixels within it of the prediction's; F = 2PR / (P + R).
 * 1 when both masks are empty, 0 when exactly one is.
 */
export function boundaryF(pred: Uint8Array, truth: Uint8Array, width: number, height: number, tolerancePx = 2): number {
  checkPair(pred, truth);
  checkSize(pred, width, height, 'prediction');
  const pe = isEmpty(pred);
  const te = isEmpty(truth);
  if (pe && te) return 1;
  if (pe || te) return 0;
  return boundaryFFrom(surfaceDistances(pred, truth, width, height), tolerancePx);
}

/** The metric names every report uses, in table order. */
export const METRIC_NAMES = ['dice', 'iou', 'thresholded_jaccard', 'sensitivity', 'specificity', 'hd95', 'boundary_f'] as const;
export type MetricName = (typeof METRIC_NAMES)[number];
export type ImageMetrics = Record<MetricName, number>;

/** Every metric for one image. `boundaryTolerancePx` defaults to 2. */
export function imageMetrics(
  pred: Uint8Array,
  truth: Uint8Array,
  width: number,
  height: number,
  opts: { boundaryTolerancePx?: number } = {},
): ImageMetrics {
  checkPair(pred, truth);
  checkSize(truth, width, height, 'truth');
  // One confusion count and one pair of distance transforms for all metrics (same definitions as the
  // single-metric functions above, which the tests compare against).
  const c = confusion(pred, truth);
  const union = c.tp + c.fp + c.fn;
  const j = union === 0 ? 1 : c.tp / union;
  const pe = c.tp + c.fp === 0;
  const te = c.tp + c.fn === 0;
  let hd = 0;
  let bf = 1;
  if (pe !== te) {
    hd = NaN;
    bf = 0;
  } else if (!pe) {
    const d = surfaceDistances(pred, truth, width, height);
    hd = hd95From(d);
    bf = boundaryFFrom(d, opts.boundaryTolerancePx ?? 2);
  }
  return {
    dice: union === 0 ? 1 : (2 * c.tp) / (2 * c.tp + c.fp + c.fn),
    iou: j,
    thresholded_jaccard: j < 0.65 ? 0 : j,
    sensitivity: c.tp + c.fn === 0 ? (c.fp === 0 ? 1 : NaN) : c.tp / (c.tp + c.fn),
    specificity: c.tn + c.fp === 0 ? (c.fn === 0 ? 1 : NaN) : c.tn / (c.tn + c.fp),
    hd95: hd,
    boundary_f: bf,
  };
}

/** Mean over the finite values, with how many there were and how many were skipped as NaN. */
export function meanOf(values: readonly number[]): { mean: number; n: number; nSkipped: number } {
  let s = 0;
  let n = 0;
  for (const v of values) {
    if (Number.isFinite(v)) {
      s += v;
      n++;
    }
  }
  return { mean: n === 0 ? NaN : s / n, n, nSkipped: values.length - n };
}

/** mulberry32: a tiny seeded PRNG (uniform in [0, 1)), so bootstrap intervals are reproducible. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface BootstrapOptions {
  /** Resamples (default 2000). */
  iterations?: number;
  /** PRNG seed (default 0): the same values and seed always give the same interval. */
  seed?: number;
  /** 1 - confidence (default 0.05 for a 95% interval). */
  alpha?: number;
}

/**
 * Percentile bootstrap interval of the mean: resample the values with replacement `iterations` times,
 * take the alpha/2 and 1 - alpha/2 percentiles of the resampled means. NaN values are left out first
 * (as in {@link meanOf}); [NaN, NaN] when nothing is left.
 */
export function bootstrapCI(values: readonly number[], opts: BootstrapOptions = {}): [number, number] {
  const iterations = opts.iterations ?? 2000;
  const alpha = opts.alpha ?? 0.05;
  if (!(alpha > 0 && alpha < 1)) throw new LesionFuseError(`bootstrap alpha must be in (0, 1), got ${alpha}`);
  if (!Number.isInteger(iterations) || iterations < 1) throw new LesionFuseError(`bootstrap iterations must be a positive integer, got ${iterations}`);
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length === 0) return [NaN, NaN];
  const rand = mulberry32(opts.seed ?? 0);
  const means = new Float64Array(iterations);
  for (let it = 0; it < iterations; it++) {
    let s = 0;
    for (let i = 0; i < v.length; i++) s += v[Math.floor(rand() * v.length)]!;
    means[it] = s / v.length;
  }
  return [percentile(means, (100 * alpha) / 2), percentile(means, 100 * (1 - alpha / 2))];
}

/** A paired comparison of two models scored on the same images: a[i] and b[i] belong to image i. */
export interface PairedDifference {
  /** Images where both values are finite (the others are left out, e.g. an undefined HD95). */
  n: number;
  /** Mean of a[i] - b[i]. */
  mean: number;
  /** Percentile bootstrap interval of that mean ({@link bootstrapCI}). */
  ci95: [number, number];
  /** Images where a is better than b, and where it is worse (ties count in neither). */
  better: number;
  worse: number;
}

/**
 * Mean per-image difference a - b with its bootstrap interval: the comparison that removes the
 * image-to-image spread two unpaired means would carry. `lowerIsBetter` (e.g. HD95) flips better/worse.
 */
export function pairedDifference(
  a: readonly number[],
  b: readonly number[],
  opts: BootstrapOptions & { lowerIsBetter?: boolean } = {},
): PairedDifference {
  if (a.length !== b.length) throw new LesionFuseError(`paired values need the same images: ${a.length} vs ${b.length} values`);
  const d: number[] = [];
  for (let i = 0; i < a.length; i++) if (Number.isFinite(a[i]) && Number.isFinite(b[i])) d.push(a[i]! - b[i]!);
  const sign = opts.lowerIsBetter ? -1 : 1;
  return {
    n: d.length,
    mean: d.length ? d.reduce((s, x) => s + x, 0) / d.length : NaN,
    ci95: bootstrapCI(d, opts),
    better: d.filter((x) => sign * x > 0).length,
    worse: d.filter((x) => sign * x < 0).length,
  };
}
