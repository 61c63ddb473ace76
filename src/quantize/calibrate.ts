/**
 * Calibration: run the float model on real images with every tensor that needs a scale
 * exposed as an extra output, and reduce what flows through each tensor to a range.
 *
 * Everything streams: a calibrator sees one batch at a time and keeps O(1) state per
 * tensor (a running min/max, or a histogram with a fixed number of bins that widens by
 * merging bins pairwise), so memory does not grow with the number of images: the
 * out-of-memory failures users hit with other quantizers' histogram calibrators come
 * from keeping every batch, or from histograms that gain bins as ranges grow.
 */
import * as ort from '../util/ort.js';
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { DataType, type Model } from '../onnx/ir.js';
import { cloneModel } from '../onnx/graph.js';
import { encodeModel } from '../onnx/io.js';
import { LesionFuseError } from '../util/errors.js';
import { Progress } from '../util/progress.js';
import { log } from '../util/log.js';
import { isRegularFile } from '../util/files.js';
import { IMAGE_EXTENSIONS } from '../runtime/image.js';
import type { TensorRange } from './qdq.js';

export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy';
export const CALIBRATION_METHODS: readonly CalibrationMethod[] = ['minmax', 'percentile', 'entropy'];

/** One interface for every calibrator: observe batches of a tensor's values, then give ranges. */
export interface Calibrator {
  readonly method: CalibrationMethod;
  /** Add one batch of `tensor`'s values (any layout; NaNs are ignored). */
  observe(tensor: string, values: Float32Array): void;
  /** The range chosen for every tensor observed so far. */
  ranges(): Map<string, TensorRange>;
  /**
   * Present when a batch's min and max are all the calibrator needs: calibration then reduces each
   * tensor inside onnxruntime (ReduceMin/ReduceMax nodes) instead of copying it out.
   */
  observeRange?(tensor: string, min: number, max: number): void;
}

function batchMinMax(values: Float32Array): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

/** The running min and max of each tensor: the peer's default (MinMax, no moving average). */
export class MinMaxCalibrator implements Calibrator {
  readonly method = 'minmax' as const;
  private readonly state = new Map<string, TensorRange>();
  observe(tensor: string, values: Float32Array): void {
    const b = batchMinMax(values);
    if (b.min === Infinity) return;
    this.observeRange(tensor, b.min, b.max);
  }
  observeRange(tensor: string, min: number, max: number): void {
    if (Number.isNaN(min) || Number.isNaN(max)) return;
    const s = this.state.get(tensor);
    if (!s) this.state.set(tensor, { min, max });
    else {
      if (min < s.min) s.min = min;
      if (max > s.max) s.max = max;
    }
  }
  ranges(): Map<string, TensorRange> {
    return new Map([...this.state].map(([k, v]) => [k, { ...v }]));
  }
}

/**
 * A histogram over [-T, T] with a fixed, even number of bins (a multiple of 4). When a
 * batch holds a value beyond T, T doubles and bins merge pairwise, so memory stays
 * `bins` counters per tensor however wide the range gets.
 */
export class BoundedHistogram {
  readonly counts: Float64Array;
  /** Half-width of the covered range; 0 until a non-zero value is seen. */
  threshold = 0;
  min = Infinity;
  max = -Infinity;
  private zerosBeforeRange = 0;
  constructor(readonly bins: number) {
    if (!(Number.isInteger(bins) && bins >= 8 && bins % 4 === 0)) throw new LesionFuseError(`histogram bins must be a multiple of 4 and at least 8, got ${bins}`);
    this.counts = new Float64Array(bins);
  }
  get binWidth(): number {
    return (2 * this.threshold) / this.bins;
  }
  add(values: Float32Array): void {
    const b = batchMinMax(values);
    if (b.min === Infinity) return;
    this.min = Math.min(this.min, b.min);
    this.max = Math.max(this.max, b.max);
    const absmax = Math.max(Math.abs(b.min), Math.abs(b.max));
    if (this.threshold === 0) {
      if (absmax === 0) {
        this.zerosBeforeRange += values.length;
        return;
      }
      this.threshold = absmax;
      this.counts[this.bins / 2] += this.zerosBeforeRange;
      this.zerosBeforeRange = 0;
    }
    while (absmax > this.threshold) this.widen();
    const T = this.threshold;
    const scale = this.bins / (2 * T);
    const last = this.bins - 1;
    const c = this.counts;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (v !== v) continue; // NaN
      let k = Math.floor((v + T) * scale);
      if (k < 0) k = 0;
      else if (k > last) k = last;
      c[k]! += 1;
    }
  }
  /** Double the range: old bin i lands in new bin bins/4 + floor(i/2). */
  private widen(): void {
    const old = Float64Array.from(this.counts);
    this.counts.fill(0);
    const q = this.bins / 4;
    for (let i = 0; i < this.bins; i++) this.counts[q + (i >> 1)]! += old[i]!;
    this.threshold *= 2;
  }
  total(): number {
    let s = this.zerosBeforeRange;
    for (const v of this.counts) s += v;
    return s;
  }
  /** Left edge of bin k. */
  edge(k: number): number {
    return -this.threshold + k * this.binWidth;
  }
}

abstract class HistogramCalibrator implements Calibrator {
  abstract readonly method: CalibrationMethod;
  protected readonly hists = new Map<string, BoundedHistogram>();
  constructor(protected readonly bins: number) {}
  observe(tensor: string, values: Float32Array): void {
    let h = this.hists.get(tensor);
    if (!h) {
      h = new BoundedHistogram(this.bins);
      this.hists.set(tensor, h);
    }
    h.add(values);
  }
  ranges(): Map<string, TensorRange> {
    const out = new Map<string, TensorRange>();
    for (const [k, h] of this.hists) {
      if (h.min === Infinity) continue;
      if (h.threshold === 0) {
        out.set(k, { min: 0, max: 0 });
        continue;
      }
      const r = this.rangeOf(h);
      // never wider than what was seen
      out.set(k, { min: Math.max(r.min, h.min), max: Math.min(r.max, h.max) });
    }
    return out;
  }
  protected abstract rangeOf(h: BoundedHistogram): TensorRange;
}

/**
 * Cuts (100 - percentile) / 2 percent of the values off each end (default 99.999: one
 * value in 100,000 may saturate), from a histogram of `bins` bins (default 2048).
 */
export class PercentileCalibrator extends HistogramCalibrator {
  readonly method = 'percentile' as const;
  readonly percentile: number;
  constructor(opts: { percentile?: number; bins?: number } = {}) {
    super(opts.bins ?? 2048);
    this.percentile = opts.percentile ?? 99.999;
    if (!(this.percentile > 0 && this.percentile <= 100)) throw new LesionFuseError(`percentile must be in (0, 100], got ${this.percentile}`);
  }
  protected rangeOf(h: BoundedHistogram): TensorRange {
    const total = h.total();
    const cut = (total * (100 - this.percentile)) / 200;
    let acc = 0;
    let lo = 0;
    for (; lo < h.bins; lo++) {
      acc += h.counts[lo]!;
      if (acc > cut) break;
    }
    acc = 0;
    let hi = h.bins - 1;
    for (; hi >= 0; hi--) {
      acc += h.counts[hi]!;
      if (acc > cut) break;
    }
    return { min: h.edge(lo), max: h.edge(hi + 1) };
  }
}

/**
 * The threshold T that minimises the KL divergence between the clipped distribution
 * over [-T, T] and its `quantizedBins`-level quantization (TensorRT's entropy
 * calibration; onnxruntime's Entropy calibrator does the same), searched over every
 * symmetric bin boundary of a `bins`-bin histogram (defaults 2048 and 128).
 */
export class EntropyCalibrator extends HistogramCalibrator {
  readonly method = 'entropy' as const;
  readonly quantizedBins: number;
  constructor(opts: { bins?: number; quantizedBins?: number } = {}) {
    super(opts.bins ?? 2048);
    this.quantizedBins = opts.quantizedBins ?? 128;
    if (!(Number.isInteger(this.quantizedBins) && this.quantizedBins >= 2 && this.quantizedBins % 2 === 0 && this.quantizedBins <= this.bins)) {
      throw new LesionFuseError(`quantized bins must be an even number between 2 and ${this.bins}, got ${this.quantizedBins}`);
    }
  }
  protected rangeOf(h: BoundedHistogram): TensorRange {
    const t = klThreshold(h.counts, this.quantizedBins);
    const T = t * h.binWidth;
    return { min: -T, max: T };
  }
}

/**
 * For a symmetric histogram, the half-width (in bins) of the central window whose
 * `quantizedBins`-level quantization loses the least information (KL(P || Q)).
 * Exported for tests.
 */
export function klThreshold(counts: Float64Array, quantizedBins: number): number {
  const n = counts.length;
  const zero = n / 2;
  const half = quantizedBins / 2;
  let best = zero;
  let bestKl = Infinity;
  const prefix = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) prefix[i + 1] = prefix[i]! + counts[i]!;
  const total = prefix[n]!;
  if (total === 0) return zero;
  const p = new Float64Array(n);
  const q = new Float64Array(n);
  for (let i = half; i <= zero; i++) {
    const start = zero - i;
    const end = zero + i;
    const len = end - start;
    for (let k = 0; k < len; k++) p[k] = counts[start + k]!;
    p[0]! += prefix[start]!;
    p[len - 1]! += total - prefix[end]!;
    // Q: the window's counts merged into quantizedBins groups, spread back over each group's non-empty bins
    q.fill(0, 0, len);
    for (let g = 0; g < quantizedBins; g++) {
      const a = Math.floor((g * len) / quantizedBins);
      const b = Math.floor(((g + 1) * len) / quantizedBins);
      let sum = 0;
      let nonzero = 0;
      for (let k = a; k < b; k++) {
        const c = counts[start + k]!;
        sum += c;
        if (c > 0) nonzero++;
      }
      if (nonzero === 0) continue;
      const each = sum / nonzero;
      for (let k = a; k < b; k++) if (counts[start + k]! > 0) q[k] = each;
    }
    let ps = 0;
    let qs = 0;
    for (let k = 0; k < len; k++) {
      ps += p[k]!;
      qs += q[k]!;
    }
    if (qs === 0) continue;
    let kl = 0;
    for (let k = 0; k < len; k++) {
      const pk = p[k]! / ps;
      if (pk === 0) continue;
      // a bin Q says is empty but P is not (the outliers folded into the edge): smoothed, as TensorRT does
      const qk = q[k]! > 0 ? q[k]! / qs : 1e-12;
      kl += pk * Math.log(pk / qk);
    }
    if (kl < bestKl) {
      bestKl = kl;
      best = i;
    }
  }
  return best;
}

/** Options of a calibrator, by method. */
export interface CalibratorOptions {
  /** Percentile kept (percentile calibrator), default 99.999. */
  percentile?: number;
  /** Histogram bins (percentile, entropy), default 2048. */
  bins?: number;
  /** Quantized levels for the KL search (entropy), default 128. */
  quantizedBins?: number;
}

export function createCalibrator(method: CalibrationMethod, opts: CalibratorOptions = {}): Calibrator {
  switch (method) {
    case 'minmax':
      return new MinMaxCalibrator();
    case 'percentile':
      return new PercentileCalibrator(opts);
    case 'entropy':
      return new EntropyCalibrator(opts);
    default:
      throw new LesionFuseError(`unknown calibrator '${String(method)}'; choose one of ${CALIBRATION_METHODS.join(', ')}`);
  }
}

/**
 * A copy of `model` whose graph also outputs each tensor in `tensors` (graph inputs
 * excepted: their values are the feeds), so one run yields every tensor calibration needs.
 */
export function withTensorOutputs(model: Model, tensors: readonly string[]): Model {
  const m = cloneModel(model);
  const g = m.graph;
  const have = new Set([...g.outputs.map((o) => o.name), ...g.inputs.map((i) => i.name)]);
  const produced = new Set(g.nodes.flatMap((n) => n.outputs));
  for (const t of tensors) {
    if (have.has(t)) continue;
    if (!produced.has(t)) throw new LesionFuseError(`calibration: tensor '${t}' is produced by no node of the model`);
    g.outputs.push({ name: t, dataType: DataType.FLOAT, shape: null });
    have.add(t);
  }
  return m;
}

/**
 * A copy of `model` that also outputs the min and max of each tensor in `tensors` (ReduceMin and
 * ReduceMax over all axes, as scalars `<t>.min` / `<t>.max`), so a MinMax calibration copies two
 * numbers per tensor out of onnxruntime instead of the whole activation. Returns the output names.
 */
export function withRangeOutputs(model: Model, tensors: readonly string[]): { model: Model; outputs: Map<string, { min: string; max: string }> } {
  const m = cloneModel(model);
  const g = m.graph;
  const used = new Set<string>([...g.nodes.flatMap((n) => [n.name, ...n.inputs, ...n.outputs]), ...g.initializers.map((t) => t.name), ...g.inputs.map((i) => i.name)]);
  const fresh = (b: string) => {
    let s = b;
    for (let i = 1; used.has(s); i++) s = `${b}_${i}`;
    used.add(s);
    return s;
  };
  const produced = new Set([...g.nodes.flatMap((n) => n.outputs), ...g.inputs.map((i) => i.name)]);
  const outputs = new Map<string, { min: string; max: string }>();
  for (const t of tensors) {
    if (!produced.has(t)) throw new LesionFuseError(`calibration: tensor '${t}' is produced by no node of the model`);
    const min = fresh(`${t}.min`);
    const max = fresh(`${t}.max`);
    g.nodes.push(
      { name: fresh(`${t}.ReduceMin`), opType: 'ReduceMin', domain: '', inputs: [t], outputs: [min], attributes: { keepdims: { type: 'int', value: 0 } } },
      { name: fresh(`${t}.ReduceMax`), opType: 'ReduceMax', domain: '', inputs: [t], outputs: [max], attributes: { keepdims: { type: 'int', value: 0 } } },
    );
    g.outputs.push({ name: min, dataType: DataType.FLOAT, shape: [] }, { name: max, dataType: DataType.FLOAT, shape: [] });
    outputs.set(t, { min, max });
  }
  return { model: m, outputs };
}

/** A batch of model input (NCHW float32) and how many images it holds. */
export interface CalibrationBatch {
  data: Float32Array;
  n: number;
}

/** What a calibration run measured. */
export interface CalibrationRun {
  ranges: Map<string, TensorRange>;
  images: number;
  batches: number;
  seconds: number;
}

/**
 * Run the float model on `batches` with `tensors` exposed and feed every batch to
 * `calibrator`. `inputShape` is the model input's [C, H, W] (the batch size comes from
 * each batch). Uses onnxruntime-node on the CPU with `threads` intra-op threads.
 */
export async function collectRanges(
  model: Model,
  tensors: readonly string[],
  batches: AsyncIterable<CalibrationBatch> | Iterable<CalibrationBatch>,
  calibrator: Calibrator,
  opts: { inputShape: [number, number, number]; threads?: number; total?: number; progress?: boolean; optimization?: 'disabled' | 'all' } = { inputShape: [3, 0, 0] },
): Promise<CalibrationRun> {
  const t0 = performance.now();
  const inputName = model.graph.inputs.find((i) => !model.graph.initializers.some((t) => t.name === i.name))?.name;
  if (!inputName) throw new LesionFuseError('the model has no graph input to feed calibration images to');
  // MinMax needs two numbers per tensor: reduce inside onnxruntime; histograms need the values
  const reduced = calibrator.observeRange ? withRangeOutputs(model, tensors) : null;
  const augmented = reduced ? reduced.model : withTensorOutputs(model, tensors);
  // optimizations off by default, as the peer's calibrator runs: its ranges then match to the last bit
  // (measured: 40 of 40 activation scales of a student equal; with 'all', fused float kernels round
  // differently and 37 of 40 differ in the last bits) at no cost in speed (extra outputs block fusions)
  const session = await ort.InferenceSession.create(encodeModel(augmented), {
    intraOpNumThreads: opts.threads ?? 0,
    interOpNumThreads: 1,
    graphOptimizationLevel: opts.optimization ?? 'disabled',
  });
  const fetch = reduced ? [...reduced.outputs.values()].flatMap((o) => [o.min, o.max]) : tensors.filter((t) => t !== inputName);
  const progress = opts.total && opts.progress !== false ? new Progress('calibrating', opts.total) : null;
  let images = 0;
  let nb = 0;
  try {
    for await (const b of batches) {
      const [C, H, W] = opts.inputShape;
      const feed = new ort.Tensor('float32', b.data, [b.n, C, H, W]);
      const out = await session.run({ [inputName]: feed }, fetch);
      if (reduced) {
        for (const [t, o] of reduced.outputs) calibrator.observeRange!(t, (out[o.min]!.data as Float32Array)[0]!, (out[o.max]!.data as Float32Array)[0]!);
      } else {
        for (const t of fetch) calibrator.observe(t, out[t]!.data as Float32Array);
        if (tensors.includes(inputName)) calibrator.observe(inputName, b.data);
      }
      for (const v of Object.values(out)) v.dispose?.();
      images += b.n;
      nb++;
      progress?.tick(b.n);
    }
  } finally {
    await session.release();
  }
  if (images === 0) throw new LesionFuseError('calibration saw no images');
  return { ranges: calibrator.ranges(), images, batches: nb, seconds: (performance.now() - t0) / 1000 };
}


/** Every image file under `dir` (recursively, sorted), skipping names that look like masks. */
export async function listImageFiles(dir: string): Promise<string[]> {
  let st;
  try {
    st = await stat(dir);
  } catch {
    throw new LesionFuseError('calibration folder does not exist', { subject: dir });
  }
  if (!st.isDirectory()) throw new LesionFuseError('calibration source must be a folder (a dataset or images)', { subject: dir });
  const out: string[] = [];
  const walk = async (d: string) => {
    const entries = (await readdir(d, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if ((IMAGE_EXTENSIONS as readonly string[]).includes(extname(e.name).toLowerCase()) && !/(_segmentation|_mask|_lesion)\.[^.]+$/i.test(e.name) && (await isRegularFile(d, e))) out.push(p);
    }
  };
  await walk(dir);
  return out;
}

/**
 * `limit` items spread evenly over a list (every k-th), so a capped sample still covers
 * every source of a dataset listed source by source. Deterministic.
 */
export function spreadSample<T>(items: readonly T[], limit: number): T[] {
  if (items.length <= limit) return [...items];
  const out: T[] = [];
  for (let i = 0; i < limit; i++) out.push(items[Math.floor((i * items.length) / limit)]!);
  return out;
}

/** Group a list into consecutive chunks of `size`. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export function warnOnce(msg: string, seen: Set<string>): void {
  if (seen.has(msg)) return;
  seen.add(msg);
  log.warn(msg);
}
