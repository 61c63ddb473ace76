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
import { log } from '../util/log.js';
import { VERSION } from '../version.js';
import { IMAGE_EXTENSIONS, decodeImage, readMask } from './image.js';
import { contrastBin, imageFeatures, readGroupsCsv, tertileCuts, type UserGroups } from './subgroups.js';
import { MIN_GROUP_N, subgroupMarkdown, subgroupTable, type GroupRow } from './subgroup-table.js';
import { assertPaired, openDataset, parseCsvLine, type Split } from './dataset.js';
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
  /** Image-derived features (subgroups.ts), from the image and its TRUTH mask; absent for `--pred` scoring. */
  features?: RowFeatures;
  /** Subgroup labels: dimension -> group (source, skin tone (ITA), lesion size, resolution, contrast, user columns). */
  groups?: Record<string, string>;
}

export interface RowFeatures {
  ita: number;
  ita_group: string;
  lesion_share_percent: number;
  contrast_de00: number;
  dark_corner_share: number;
  coloured_share: number;
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
  /** Per-group n, Dice and HD95 (and paired differences from `reference` when given); see subgroup-table.ts. */
  subgroups: GroupRow[];
  /** Groups with fewer images than this show no numbers. */
  subgroup_min_n: number;
  /** CIEDE2000 tertile cut points of lesion-skin contrast over these images. */
  contrast_cuts_de00: [number, number] | null;
  /** The earlier evaluation the paired differences are against, when given. */
  reference: string | null;
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
  /** User groups: a groups.csv path (id -> group columns) or its parsed form. */
  groups?: string | UserGroups;
  /** An earlier evaluation (metrics.json or per_image.csv) of a reference model on the same images: adds paired differences per group. */
  reference?: string;
  /** Fewest images a group needs to show numbers (default {@link MIN_GROUP_N}). */
  minGroupN?: number;
}

/** Per-image Dice and HD95 of an earlier evaluation (metrics.json or per_image.csv), by image id. */
export async function readReferenceScores(path: string): Promise<Map<string, { dice: number; hd95: number }>> {
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (e) {
    throw new LesionFuseError(`cannot read the reference evaluation: ${describeError(e)}`, { subject: path });
  }
  const out = new Map<string, { dice: number; hd95: number }>();
  const num = (v: unknown): number => (v === null || v === undefined || v === '' || v === 'NaN' ? NaN : Number(v));
  if (path.endsWith('.json')) {
    let j: { per_image?: { id: string; dice: unknown; hd95: unknown }[] };
    try {
      j = JSON.parse(text);
    } catch (e) {
      throw new LesionFuseError(`not JSON: ${describeError(e)}`, { subject: path });
    }
    if (!Array.isArray(j.per_image)) throw new LesionFuseError('no per_image list: give the metrics.json that lesionfuse eval wrote', { subject: path });
    for (const r of j.per_image) out.set(r.id, { dice: num(r.dice), hd95: num(r.hd95) });
  } else {
    const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
    const head = parseCsvLine(lines[0] ?? '');
    const [ci, cd, ch] = ['id', 'dice', 'hd95'].map((c) => head.indexOf(c));
    if (ci! < 0 || cd! < 0 || ch! < 0) throw new LesionFuseError('needs id, dice and hd95 columns: give the per_image.csv that lesionfuse eval wrote', { subject: path });
    for (const l of lines.slice(1)) {
      const c = parseCsvLine(l);
      out.set(c[ci!]!, { dice: num(c[cd!]), hd95: num(c[ch!]) });
    }
  }
  if (out.size === 0) throw new LesionFuseError('the reference evaluation has no images', { subject: path });
  return out;
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

const FEATURE_COLUMNS = ['ita', 'ita_group', 'lesion_share_percent', 'contrast_de00', 'dark_corner_share', 'coloured_share'] as const;

/** per_image.csv text: id, source, width, height, the metrics, the image features and group labels (when computed), warnings. */
export function perImageCsv(rows: readonly PerImageRow[]): string {
  const cols = ['id', 'source', 'width', 'height', ...METRIC_NAMES] as const;
  const withFeatures = rows.some((r) => r.features);
  const groupCols = [...new Set(rows.flatMap((r) => Object.keys(r.groups ?? {})))].filter((g) => g !== 'source');
  const head: string[] = [...cols, ...(withFeatures ? FEATURE_COLUMNS : []), ...groupCols.map((g) => `group:${g}`), 'warnings'];
  const lines = [head.map(csvCell).join(',')];
  for (const r of rows) {
    const cells: (string | number)[] = cols.map((c) => r[c as keyof PerImageRow] as string | number);
    if (withFeatures) cells.push(...FEATURE_COLUMNS.map((c) => r.features?.[c] ?? ''));
    cells.push(...groupCols.map((g) => r.groups?.[g] ?? ''), r.warnings);
    lines.push(cells.map(csvCell).join(','));
  }
  return lines.join('\n') + '\n';
}

/**
 * Contrast groups (tertiles over these rows) and the subgroup table. Rows without features get only
 * their source (and user groups) as groups.
 */
function groupRows(rows: PerImageRow[], opts: { reference?: Map<string, { dice: number; hd95: number }>; minN: number }): { table: GroupRow[]; cuts: [number, number] | null } {
  const withF = rows.filter((r) => r.features);
  const cuts = withF.length ? tertileCuts(withF.map((r) => r.features!.contrast_de00)) : null;
  for (const r of rows) {
    r.groups = { source: r.source, ...(r.groups ?? {}) };
    if (r.features && cuts) r.groups['contrast'] = contrastBin(r.features.contrast_de00, cuts);
  }
  const table = subgroupTable(
    rows.map((r) => ({ id: r.id, dice: r.dice, hd95: r.hd95, groups: r.groups! })),
    { reference: opts.reference, minN: opts.minN },
  );
  return { table, cuts: cuts && Number.isFinite(cuts[0]) ? cuts : null };
}

function finalise(
  base: Pick<EvalResult, 'model' | 'data' | 'split' | 'profile' | 'threshold'>,
  rows: PerImageRow[],
  failures: EvalResult['failures'],
  nThresholded: number,
  sub: { reference?: Map<string, { dice: number; hd95: number }>; referencePath?: string; minN?: number } = {},
): EvalResult {
  const perSource: Record<string, Summary> = {};
  for (const src of [...new Set(rows.map((r) => r.source))].sort()) perSource[src] = summarise(rows.filter((r) => r.source === src));
  const minN = sub.minN ?? MIN_GROUP_N;
  const { table, cuts } = groupRows(rows, { reference: sub.reference, minN });
  return {
    ...base,
    ...summarise(rows),
    boundary_tolerance_px: BOUNDARY_TOLERANCE_PX,
    per_source: perSource,
    per_image: rows,
    failures,
    n_masks_thresholded: nThresholded,
    subgroups: table,
    subgroup_min_n: minN,
    contrast_cuts_de00: cuts,
    reference: sub.referencePath ? resolve(sub.referencePath) : null,
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
  await writeFileAtomic(join(out, 'subgroups.md'), subgroupsReport(result));
}

/** subgroups.md: the subgroup tables with what they were computed from. */
export function subgroupsReport(r: EvalResult): string {
  const lines = [
    `# Subgroups: ${r.model ?? 'predictions'} on ${r.data} (${r.split}, ${r.n_images} images)`,
    '',
    `Groups with fewer than ${r.subgroup_min_n} images show no numbers. Intervals: 95% percentile bootstrap (2000 resamples, seed 0).`,
    'Skin tone, lesion size and contrast come from each image and its truth mask (runtime/subgroups.ts), so they are the same for every model.',
  ];
  if (r.contrast_cuts_de00) lines.push(`Contrast: CIEDE2000 between the median lesion and median skin colour, split at its tertiles over these images (${r.contrast_cuts_de00.map((c) => c.toFixed(1)).join(', ')}).`);
  if (r.reference) lines.push(`Paired differences: this model minus the reference evaluation ${r.reference} on the same images (HD95: negative is better).`);
  lines.push('', subgroupMarkdown(r.subgroups, { minN: r.subgroup_min_n, referenceName: 'reference' }));
  return lines.join('\n') + '\n';
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
  const userGroups = typeof opts.groups === 'string' ? await readGroupsCsv(opts.groups) : opts.groups;
  const reference = opts.reference ? await readReferenceScores(opts.reference) : undefined;
  const seg = await Segmenter.create(opts.model, { ...opts.segmenter, profile });
  const rows: PerImageRow[] = [];
  const failures: EvalResult['failures'] = [];
  let nThresholded = 0;
  const progress = opts.progress === false ? null : new Progress('eval', items.length);
  try {
    for (const [k, item] of items.entries()) {
      try {
        const image = await decodeImage(item.imagePath, { maxPixels: opts.segmenter?.maxPixels });
        const r = await seg.segment(image);
        const truth = await readMask(item.maskPath, { expectSize: { width: r.width, height: r.height }, resize: opts.resizeMasks });
        if (truth.warnings.some(isThresholdWarning)) nThresholded++;
        const m = imageMetrics(r.mask, truth.data, r.width, r.height, { boundaryTolerancePx: BOUNDARY_TOLERANCE_PX });
        const f = imageFeatures(image, truth.data);
        const features: RowFeatures = {
          ita: f.ita, ita_group: f.itaGroup, lesion_share_percent: f.lesionSharePercent, contrast_de00: f.contrast,
          dark_corner_share: f.darkCornerShare, coloured_share: f.colouredShare,
        };
        const groups: Record<string, string> = { 'skin tone (ITA)': f.itaGroup, 'lesion size': f.size, resolution: f.resolution, ...(userGroups?.byId.get(item.id) ?? {}) };
        rows.push({ id: item.id, source: item.source, width: r.width, height: r.height, ...m, warnings: [...r.warnings, ...truth.warnings].join(' | '), features, groups });
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
    { reference, referencePath: opts.reference, minN: opts.minGroupN },
  );
  if (userGroups) {
    const missing = rows.filter((r) => !userGroups.byId.has(r.id)).length;
    if (missing) log.warn(`${missing} of ${rows.length} evaluated image(s) are not in the groups file; they are left out of its columns`);
  }
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
