/**
 * Evaluation at the ORIGINAL image resolution: per-image metrics (metrics.ts), their means with 95%
 * bootstrap intervals overall and per source, `metrics.json` + `per_image.csv`. Two entry points:
 * `evaluate` runs a model over a dataset; `evaluatePredictions` scores masks that already exist (from
 * any tool), matched by id like the ISIC challenge scorer.
 */
import { promises as fs } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { LesionFuseError, describeError } from '../util/errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { Progress } from '../util/progress.js';
import { VERSION } from '../version.js';
import { IMAGE_EXTENSIONS, readMask } from './image.js';
import { assertPaired, openDataset, type Split } from './dataset.js';
import { METRIC_NAMES, bootstrapCI, imageMetrics, meanOf, type ImageMetrics, type MetricName } from './metrics.js';
import { Segmenter, DEFAULT_PROFILE, type SegmenterOptions } from './segmenter.js';
import { failureReason, readSegmentRecord } from './segment.js';

/** Boundary F tolerance used by evaluation, in pixels at the original resolution. */
export const BOUNDARY_TOLERANCE_PX = 2;

export interface PerImageRow extends ImageMetrics {
  id: string;
  source: string;
  width: number;
  height: number;
  /** Decoding or mask warnings for this image, joined by ' | '. */
  warnings: string;
}

export interface Summary {
  n_images: number;
  /** Mean over images of each metric; NaN values (HD95 with one empty mask...) are left out. */
  mean: Record<MetricName, number>;
  /** 95% percentile-bootstrap interval of each mean (2000 resamples, seed 0). */
  ci95: Record<MetricName, [number, number]>;
  /** How many images each mean used (fewer than n_images where the metric was NaN). */
  n_valid: Record<MetricName, number>;
}

export interface EvalResult extends Summary {
  model: string | null;
  data: string;
  split: string;
  profile: string | null;
  threshold: number | null;
  boundary_tolerance_px: number;
  per_source: Record<string, Summary>;
  per_image: PerImageRow[];
  /** Images that could not be scored (bad file, mask size mismatch, missing prediction...). */
  failures: { path: string; reason: string }[];
  /** How many masks were thresholded from non-binary values (anti-aliased, JPEG). */
  n_masks_thresholded: number;
  /** `eval --pred` with `skipUnpaired`: how many masks on each side had no partner and were left out. */
  unpaired?: { truth_without_prediction: number; prediction_without_truth: number };
  sdk_version: string;
  created_at: string;
}

export interface EvaluateOptions {
  /** Model path or bundled alias (`default:student`). */
  model: string;
  /** Dataset folder (any layout openDataset reads). */
  data: string;
  /** Default: 'test' where the layout has splits, else 'all'. */
  split?: Split;
  sources?: string[];
  /** Profile name or path (default cpu-all). */
  profile?: string;
  /** Folder for metrics.json and per_image.csv (nothing written when absent). */
  out?: string;
  /** Evaluate only the first N items (in source, id order). */
  limit?: number;
  /** Go on without unpaired images/masks instead of stopping (`--skip-unpaired`). */
  skipUnpaired?: boolean;
  /** Resize masks whose size differs from their image (nearest) instead of failing them. */
  resizeMasks?: boolean;
  /** Options passed to the Segmenter (threshold, input size, output name...). */
  segmenter?: Omit<SegmenterOptions, 'profile'>;
  /** Called after each image. */
  onProgress?: (done: number, total: number, id: string) => void;
  /** Show the progress line on stderr (default true). */
  progress?: boolean;
}

/** Means, bootstrap intervals and counts of per-image rows. */
export function summarise(rows: readonly ImageMetrics[]): Summary {
  const mean = {} as Record<MetricName, number>;
  const ci95 = {} as Record<MetricName, [number, number]>;
  const nValid = {} as Record<MetricName, number>;
  for (const m of METRIC_NAMES) {
    const v = rows.map((r) => r[m]);
    const s = meanOf(v);
    mean[m] = s.mean;
    nValid[m] = s.n;
    ci95[m] = bootstrapCI(v, { iterations: 2000, seed: 0, alpha: 0.05 });
  }
  return { n_images: rows.length, mean, ci95, n_valid: nValid };
}

function csvCell(v: string | number): string {
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  return /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

/** per_image.csv text: id, source, width, height, the metrics, warnings. */
export function perImageCsv(rows: readonly PerImageRow[]): string {
  const cols = ['id', 'source', 'width', 'height', ...METRIC_NAMES, 'warnings'] as const;
  const lines = [cols.join(',')];
  for (const r of rows) lines.push(cols.map((c) => csvCell(r[c as keyof PerImageRow] as string | number)).join(','));
  return lines.join('\n') + '\n';
}

function finalise(
  base: Pick<EvalResult, 'model' | 'data' | 'split' | 'profile' | 'threshold'>,
  rows: PerImageRow[],
  failures: EvalResult['failures'],
  nThresholded: number,
): EvalResult {
  const perSource: Record<string, Summary> = {};
  for (const src of [...new Set(rows.map((r) => r.source))].sort()) perSource[src] = summarise(rows.filter((r) => r.source === src));
  return {
    ...base,
    ...summarise(rows),
    boundary_tolerance_px: BOUNDARY_TOLERANCE_PX,
    per_source: perSource,
    per_image: rows,
    failures,
    n_masks_thresholded: nThresholded,
    sdk_version: VERSION,
    created_at: new Date().toISOString(),
  };
}

/** JSON cannot hold NaN: write it as null (the n_valid counts say how many values each mean used). */
function jsonSafe(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)));
}

async function writeOutputs(out: string | undefined, result: EvalResult): Promise<void> {
  if (!out) return;
  await writeJsonAtomic(join(out, 'metrics.json'), jsonSafe(result));
  await writeFileAtomic(join(out, 'per_image.csv'), perImageCsv(result.per_image));
}

function isThresholdWarning(w: string): boolean {
  return /thresholded at/.test(w);
}

/**
 * Run a model over a dataset and score every image at its original resolution. Unpaired files stop the
 * run before the first image unless `skipUnpaired`; a bad image or mask is recorded in `failures` and the
 * rest goes on. Writes `metrics.json` and `per_image.csv` atomically into `out` when given.
 */
export async function evaluate(opts: EvaluateOptions): Promise<EvalResult> {
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 1)) {
    throw new LesionFuseError(`limit must be a positive integer, got ${opts.limit}`, { subject: '--limit' });
  }
  const ds = await openDataset(opts.data, { split: opts.split, sources: opts.sources });
  assertPaired(ds, opts.skipUnpaired);
  const items = opts.limit ? ds.items.slice(0, opts.limit) : ds.items;
  if (items.length === 0) throw new LesionFuseError(`no image + mask pairs to evaluate (layout ${ds.layout}, split ${opts.split ?? 'default'})`, { subject: opts.data });
  const profile = opts.profile ?? DEFAULT_PROFILE;
  const seg = await Segmenter.create(opts.model, { ...opts.segmenter, profile });
  const rows: PerImageRow[] = [];
  const failures: EvalResult['failures'] = [];
  let nThresholded = 0;
  const progress = opts.progress === false ? null : new Progress('eval', items.length);
  try {
    for (const [k, item] of items.entries()) {
      try {
        const r = await seg.segment(item.imagePath);
        const truth = await readMask(item.maskPath, { expectSize: { width: r.width, height: r.height }, resize: opts.resizeMasks });
        if (truth.warnings.some(isThresholdWarning)) nThresholded++;
        const m = imageMetrics(r.mask, truth.data, r.width, r.height, { boundaryTolerancePx: BOUNDARY_TOLERANCE_PX });
        rows.push({ id: item.id, source: item.source, width: r.width, height: r.height, ...m, warnings: [...r.warnings, ...truth.warnings].join(' | ') });
      } catch (e) {
        if (!(e instanceof LesionFuseError)) throw e;
        failures.push({ path: item.imagePath, reason: failureReason(e, item.imagePath) });
      }
      progress?.tick(1, item.id);
      opts.onProgress?.(k + 1, items.length, item.id);
    }
  } finally {
    await seg.close();
  }
  if (rows.length === 0 && failures.length > 0) {
    // Nothing to average: a table of NaN would hide that the model never ran. Say why the first one failed.
    throw new LesionFuseError(`none of the ${failures.length} image(s) could be evaluated; the first: ${failures[0]!.path}: ${failures[0]!.reason}`, { subject: seg.modelPath });
  }
  const result = finalise(
    { model: seg.modelPath, data: ds.root, split: opts.split ?? (ds.items.some((i) => i.split !== 'all') ? 'test' : 'all'), profile: seg.profile.name, threshold: seg.metadata.threshold },
    rows,
    failures,
    nThresholded,
  );
  await writeOutputs(opts.out, result);
  return result;
}

const PRED_SUFFIXES = ['_segmentation', '_Segmentation', '_mask', '_Mask', '_lesion', '_prediction', '_pred'];

/** The id of a mask file: its stem without a known mask suffix. */
export function maskFileId(path: string): string {
  const stem = basename(path, extname(path));
  for (const s of PRED_SUFFIXES) if (stem.endsWith(s) && stem.length > s.length) return stem.slice(0, -s.length);
  return stem;
}

function guessSource(id: string): string {
  if (/^IMD\d+/.test(id)) return 'ph2';
  if (/^ISIC_\d+/.test(id)) return 'isic';
  return 'unknown';
}

/** Other outputs a segmentation tool writes beside its masks (never read as masks). */
const NOT_MASK_SUFFIXES = ['_prob', '_probability', '_overlay', '_heatmap'];

async function maskFiles(dir: string, what: string): Promise<Map<string, string>> {
  let names: string[];
  try {
    const st = await fs.stat(dir);
    if (!st.isDirectory()) throw new LesionFuseError(`${what} must be a folder of masks`, { subject: dir });
    names = (await fs.readdir(dir)).sort();
  } catch (e) {
    if (e instanceof LesionFuseError) throw e;
    throw new LesionFuseError(`cannot read ${what} folder: ${describeError(e)}`, { subject: dir });
  }
  const map = new Map<string, string>();
  // A `segment` output folder says which files are its masks and which input (id) each came from.
  const record = what === 'prediction' ? await readSegmentRecord(dir) : null;
  if (record) {
    for (const item of record.items) {
      if (!item.mask) continue;
      const id = maskFileId(item.input);
      if (map.has(id)) throw new LesionFuseError(`two ${what} masks for id ${id}: ${basename(map.get(id)!)} and ${item.mask} (segment.json)`, { subject: dir });
      map.set(id, join(dir, basename(item.mask)));
    }
    return map;
  }
  const candidates = names.filter((n) => !n.startsWith('.') && (IMAGE_EXTENSIONS as readonly string[]).includes(extname(n).toLowerCase()));
  const masks = candidates.filter((n) => !NOT_MASK_SUFFIXES.some((s) => basename(n, extname(n)).endsWith(s)));
  for (const n of masks) {
    const id = maskFileId(n);
    if (map.has(id)) throw new LesionFuseError(`two ${what} masks for id ${id}: ${basename(map.get(id)!)} and ${n}`, { subject: dir });
    map.set(id, join(dir, n));
  }
  return map;
}

export interface EvaluatePredictionsOptions {
  /** Folder of predicted masks: `<id>_segmentation.png`, `<id>_mask.png` or `<id>.png` (any image type). */
  pred: string;
  /** Folder of truth masks, named the same ways. */
  truth: string;
  out?: string;
  resizeMasks?: boolean;
  /** Score the ids present on both sides and count (not fail) the rest (`--skip-unpaired`). */
  skipUnpaired?: boolean;
}

/**
 * Score masks that already exist, matched by id (file stem without `_segmentation`/`_mask`/`_lesion`).
 * The prediction folder may be a `segment` output folder: its segment.json says which files are masks
 * and which input each came from; elsewhere `_prob`/`_overlay` files are never read as masks. A truth mask
 * without a prediction is a failure (as in the challenge scorer, it cannot be skipped silently), and so
 * is a prediction without truth, unless `skipUnpaired`: then only the ids on both sides are scored and
 * the unpaired ones are counted in `unpaired`.
 */
export async function evaluatePredictions(opts: EvaluatePredictionsOptions): Promise<EvalResult> {
  const pred = await maskFiles(resolve(opts.pred), 'prediction');
  const truth = await maskFiles(resolve(opts.truth), 'truth');
  if (truth.size === 0) throw new LesionFuseError('no mask files found (PNG, JPEG, BMP, TIFF, WebP, GIF)', { subject: opts.truth });
  const rows: PerImageRow[] = [];
  const failures: EvalResult['failures'] = [];
  let nThresholded = 0;
  for (const [id, tPath] of [...truth].sort((a, b) => a[0].localeCompare(b[0]))) {
    const pPath = pred.get(id);
    if (!pPath) {
      if (!opts.skipUnpaired) failures.push({ path: tPath, reason: `no prediction for id ${id} in ${opts.pred}` });
      continue;
    }
    try {
      const t = await readMask(tPath);
      const p = await readMask(pPath, { expectSize: { width: t.width, height: t.height }, resize: opts.resizeMasks });
      if (t.warnings.some(isThresholdWarning)) nThresholded++;
      const m = imageMetrics(p.data, t.data, t.width, t.height, { boundaryTolerancePx: BOUNDARY_TOLERANCE_PX });
      rows.push({ id, source: guessSource(id), width: t.width, height: t.height, ...m, warnings: [...p.warnings, ...t.warnings].join(' | ') });
    } catch (e) {
      if (!(e instanceof LesionFuseError)) throw e;
      failures.push({ path: pPath, reason: failureReason(e, pPath) });
    }
  }
  if (!opts.skipUnpaired) for (const [id, p] of pred) if (!truth.has(id)) failures.push({ path: p, reason: `no truth mask for id ${id}` });
  const paired = [...truth.keys()].filter((id) => pred.has(id)).length;
  if (opts.skipUnpaired && paired === 0) throw new LesionFuseError(`no prediction shares an id with a truth mask in ${opts.truth}`, { subject: opts.pred });
  const result = finalise({ model: null, data: resolve(opts.truth), split: 'all', profile: null, threshold: null }, rows, failures, nThresholded);
  if (opts.skipUnpaired) result.unpaired = { truth_without_prediction: truth.size - paired, prediction_without_truth: pred.size - paired };
  await writeOutputs(opts.out, result);
  return result;
}
