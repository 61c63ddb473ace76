/**
 * Datasets of image + mask pairs, found from a folder's layout so users can point evaluation, calibration
 * and training at what they already have:
 * - `lesionfuse-manifest`: `MANIFEST.csv` (id, source, split, image, mask) + `splits/{train,val,test}.txt`
 *   (the layout of `../shared/data`);
 * - `images-masks`: an `images/` + `masks/` pair of folders (at the root, or one per sub-folder, the
 *   sub-folder naming the source), matched by file stem; a mask may carry a `_mask`, `_segmentation` or
 *   `_lesion` suffix;
 * - `isic`: ISIC challenge folders, `ISIC_<id>.jpg` + `ISIC_<id>_segmentation.png`, in the same folder or in
 *   sibling folders;
 * - `ph2`: PH2's `IMD###/IMD###_Dermoscopic_Image/IMD###.bmp` + `IMD###/IMD###_lesion/IMD###_lesion.bmp`,
 *   or the flat `<ID>.jpg` + `<ID>_lesion.png` form.
 * An image without a mask (or a mask without an image) is listed in `problems`; evaluation and training
 * stop before the first step with that list unless told to skip ({@link assertPaired}).
 */
import { promises as fs, type Dirent } from 'node:fs';
import { basename, extname, join, resolve, relative, sep } from 'node:path';
import { LesionFuseError } from '../util/errors.js';
import { IMAGE_EXTENSIONS } from './image.js';
import { walkFiles } from '../util/files.js';

export type Split = 'train' | 'val' | 'test' | 'all';
export type DatasetLayout = 'lesionfuse-manifest' | 'isic' | 'ph2' | 'images-masks';

export interface DatasetItem {
  /** The image's id (file stem), unique within the dataset. */
  id: string;
  imagePath: string;
  maskPath: string;
  /** e.g. isic2018, ham10000, ph2 (manifest), the sub-folder name (images-masks), isic or ph2. */
  source: string;
  /** train/val/test when the layout says, else 'all'. */
  split: Split;
}

export interface DatasetProblem {
  path: string;
  reason: string;
  /** The split of the row, when the layout says (problems of other splits are dropped when a split is chosen). */
  split?: Split;
}

export interface Dataset {
  root: string;
  layout: DatasetLayout;
  items: DatasetItem[];
  /** Unpaired or duplicated files, missing files named by a manifest. */
  problems: DatasetProblem[];
}

export interface OpenDatasetOptions {
  /**
   * Which split to keep. Default: 'test' for layouts that have splits (the manifest layout, or any folder
   * with `splits/*.txt`), 'all' otherwise. Asking for a split a layout does not have is an error.
   */
  split?: Split;
  /** Keep only these sources (e.g. ['ph2']). */
  sources?: string[];
}

const SPLITS: readonly Split[] = ['train', 'val', 'test', 'all'];
const MASK_SUFFIXES = ['_segmentation', '_mask', '_lesion', '_Segmentation', '_Mask', '_seg'];

function isImageFile(name: string): boolean {
  return (IMAGE_EXTENSIONS as readonly string[]).includes(extname(name).toLowerCase());
}

/** Parse one CSV line with RFC 4180 quoting. */
export function parseCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (q) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') q = false;
      else cur += c;
    } else if (c === '"') q = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Files under `dir` (hidden entries skipped, sorted by name), at most `depth` folders deep (see walkFiles). */
export function walk(dir: string, depth: number): Promise<string[]> {
  return walkFiles(dir, depth);
}

/** Read `splits/<name>.txt` under root: a set of paths relative to root (forward slashes). */
async function readSplits(root: string): Promise<Map<string, Split> | null> {
  const dir = join(root, 'splits');
  if (!(await isDir(dir))) return null;
  const map = new Map<string, Split>();
  for (const s of ['train', 'val', 'test'] as const) {
    const p = join(dir, `${s}.txt`);
    if (!(await exists(p))) continue;
    for (const line of (await fs.readFile(p, 'utf8')).split(/\r?\n/)) {
      const t = line.trim();
      if (t) map.set(t.replace(/\\/g, '/'), s);
    }
  }
  return map;
}

function rel(root: string, p: string): string {
  return relative(root, p).split(sep).join('/');
}

/** Pair images and masks by id, recording the leftovers and duplicates as problems. */
function pair(
  images: { id: string; path: string; source: string }[],
  masks: { id: string; path: string }[],
  problems: DatasetProblem[],
): { id: string; imagePath: string; maskPath: string; source: string }[] {
  const maskById = new Map<string, string>();
  for (const m of masks) {
    if (maskById.has(m.id)) problems.push({ path: m.path, reason: `second mask for id ${m.id} (first: ${maskById.get(m.id)})` });
    else maskById.set(m.id, m.path);
  }
  const seen = new Map<string, string>();
  const out: { id: string; imagePath: string; maskPath: string; source: string }[] = [];
  for (const im of images) {
    if (seen.has(im.id)) {
      problems.push({ path: im.path, reason: `second image for id ${im.id} (first: ${seen.get(im.id)})` });
      continue;
    }
    seen.set(im.id, im.path);
    const m = maskById.get(im.id);
    if (!m) problems.push({ path: im.path, reason: 'image without mask' });
    else out.push({ id: im.id, imagePath: im.path, maskPath: m, source: im.source });
  }
  for (const [id, p] of maskById) if (!seen.has(id)) problems.push({ path: p, reason: 'mask without image' });
  return out;
}

function maskId(stem: string): string | null {
  for (const s of MASK_SUFFIXES) if (stem.endsWith(s) && stem.length > s.length) return stem.slice(0, -s.length);
  return null;
}

async function openManifest(root: string, problems: DatasetProblem[]): Promise<DatasetItem[]> {
  const path = join(root, 'MANIFEST.csv');
  const lines = (await fs.readFile(path, 'utf8')).split(/\r?\n/).filter((l) => l.trim() !== '');
  const header = parseCsvLine(lines[0] ?? '');
  const col = (name: string): number => {
    const i = header.indexOf(name);
    if (i < 0) throw new LesionFuseError(`MANIFEST.csv has no '${name}' column (columns: ${header.join(', ')})`, { subject: path });
    return i;
  };
  const [ci, cs, cp, cim, cm] = [col('id'), col('source'), col('split'), col('image'), col('mask')];
  const splits = await readSplits(root);
  const items: DatasetItem[] = [];
  const ids = new Set<string>();
  for (let n = 1; n < lines.length; n++) {
    const f = parseCsvLine(lines[n]!);
    const id = f[ci] ?? '';
    const imageRel = f[cim] ?? '';
    const maskRel = f[cm] ?? '';
    if (!id || !imageRel || !maskRel) {
      problems.push({ path: `${path}:${n + 1}`, reason: 'row without id, image or mask' });
      continue;
    }
    if (ids.has(id)) {
      problems.push({ path: `${path}:${n + 1}`, reason: `duplicate id ${id}` });
      continue;
    }
    ids.add(id);
    const imagePath = join(root, imageRel);
    const maskPath = join(root, maskRel);
    const fromSplits = splits?.get(imageRel.replace(/\\/g, '/'));
    const declared = (f[cp] ?? '').trim();
    const split = (fromSplits ?? (SPLITS.includes(declared as Split) ? declared : 'all')) as Split;
    const [hasImage, hasMask] = await Promise.all([exists(imagePath), exists(maskPath)]);
    if (!hasImage && !hasMask) {
      problems.push({ path: imagePath, reason: 'listed in MANIFEST.csv but neither image nor mask exists', split });
      continue;
    }
    if (!hasMask) {
      problems.push({ path: imagePath, reason: `image without mask (${maskRel} is missing)`, split });
      continue;
    }
    if (!hasImage) {
      problems.push({ path: maskPath, reason: `mask without image (${imageRel} is missing)`, split });
      continue;
    }
    items.push({ id, imagePath, maskPath, source: f[cs] || 'unknown', split });
  }
  return items;
}

/** `images/` + `masks/` under `dir`, matched by stem. */
async function openImagesMasks(dir: string, source: string, root: string, splits: Map<string, Split> | null, problems: DatasetProblem[]): Promise<DatasetItem[]> {
  const images = (await walk(join(dir, 'images'), 2)).filter(isImageFile);
  const masks = (await walk(join(dir, 'masks'), 2)).filter(isImageFile);
  const imageList = images.map((p) => ({ id: basename(p, extname(p)), path: p, source }));
  const maskList = masks.map((p) => {
    const stem = basename(p, extname(p));
    return { id: imageList.some((i) => i.id === stem) ? stem : (maskId(stem) ?? stem), path: p };
  });
  return pair(imageList, maskList, problems).map((x) => ({ ...x, split: splits?.get(rel(root, x.imagePath)) ?? 'all' }));
}

const ISIC_IMAGE = /^(ISIC_\d+)$/;
const ISIC_MASK = /^(ISIC_\d+)_segmentation$/i;
const PH2_IMAGE = /^(IMD\d+)$/;
const PH2_MASK = /^(IMD\d+)_lesion$/i;

async function openByPattern(root: string, imageRe: RegExp, maskRe: RegExp, source: string, problems: DatasetProblem[], files: string[]): Promise<DatasetItem[]> {
  const images: { id: string; path: string; source: string }[] = [];
  const masks: { id: string; path: string }[] = [];
  for (const p of files.filter(isImageFile)) {
    const stem = basename(p, extname(p));
    const mi = imageRe.exec(stem);
    const mm = maskRe.exec(stem);
    if (mi) images.push({ id: mi[1]!, path: p, source });
    else if (mm) masks.push({ id: mm[1]!, path: p });
  }
  const splits = await readSplits(root);
  return pair(images, masks, problems).map((x) => ({ ...x, split: splits?.get(rel(root, x.imagePath)) ?? 'all' }));
}

/**
 * Open a folder of image + mask pairs, recognising its layout (see the module comment). Items are sorted
 * by source then id. Throws a LesionFuseError when the folder is missing or holds no recognisable layout,
 * or when a split is asked of a layout without splits.
 */
export async function openDataset(dir: string, opts: OpenDatasetOptions = {}): Promise<Dataset> {
  const root = resolve(dir);
  if (!(await exists(root))) throw new LesionFuseError('no such folder', { subject: dir });
  if (!(await isDir(root))) throw new LesionFuseError('is not a folder (a dataset is a folder of images and masks)', { subject: dir });
  if (opts.split !== undefined && !SPLITS.includes(opts.split)) {
    throw new LesionFuseError(`unknown split '${opts.split}'; use one of ${SPLITS.join(', ')}`, { subject: '--split' });
  }
  const problems: DatasetProblem[] = [];
  let layout: DatasetLayout;
  let items: DatasetItem[];
  if (await exists(join(root, 'MANIFEST.csv'))) {
    layout = 'lesionfuse-manifest';
    items = await openManifest(root, problems);
  } else if ((await isDir(join(root, 'images'))) && (await isDir(join(root, 'masks')))) {
    layout = 'images-masks';
    items = await openImagesMasks(root, basename(root), root, await readSplits(root), problems);
  } else {
    const subs = (await fs.readdir(root, { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.startsWith('.')).sort((a, b) => a.name.localeCompare(b.name));
    const pairs: string[] = [];
    for (const s of subs) if ((await isDir(join(root, s.name, 'images'))) && (await isDir(join(root, s.name, 'masks')))) pairs.push(s.name);
    if (pairs.length > 0) {
      layout = 'images-masks';
      const splits = await readSplits(root);
      items = [];
      for (const s of pairs) items.push(...(await openImagesMasks(join(root, s), s, root, splits, problems)));
    } else {
      const files = await walk(root, 4);
      const stems = files.filter(isImageFile).map((p) => basename(p, extname(p)));
      const isic = stems.filter((s) => ISIC_IMAGE.test(s) || ISIC_MASK.test(s)).length;
      const ph2 = stems.filter((s) => PH2_IMAGE.test(s) || PH2_MASK.test(s)).length;
      if (isic === 0 && ph2 === 0) {
        throw new LesionFuseError(
          'no dataset layout found: expected MANIFEST.csv, images/ + masks/ folders, ISIC files (ISIC_<id>.jpg + ISIC_<id>_segmentation.png) or PH2 files (IMD###.bmp + IMD###_lesion.bmp)',
          { subject: dir },
        );
      }
      if (isic >= ph2) {
        layout = 'isic';
        items = await openByPattern(root, ISIC_IMAGE, ISIC_MASK, 'isic', problems, files);
      } else {
        layout = 'ph2';
        items = await openByPattern(root, PH2_IMAGE, PH2_MASK, 'ph2', problems, files);
      }
    }
  }
  const hasSplits = items.some((i) => i.split !== 'all');
  const split = opts.split ?? (hasSplits ? 'test' : 'all');
  if (split !== 'all' && !hasSplits) {
    throw new LesionFuseError(`this ${layout} folder has no train/val/test split (no MANIFEST.csv or splits/*.txt); use --split all`, { subject: dir });
  }
  let kept = problems;
  if (split !== 'all') {
    items = items.filter((i) => i.split === split);
    kept = problems.filter((p) => p.split === undefined || p.split === split);
  }
  if (opts.sources && opts.sources.length > 0) {
    const known = new Set(items.map((i) => i.source));
    const unknown = opts.sources.filter((s) => !known.has(s));
    if (unknown.length > 0) {
      throw new LesionFuseError(`unknown source(s) ${unknown.join(', ')}; this dataset has ${[...known].sort().join(', ')}`, { subject: '--sources' });
    }
    items = items.filter((i) => opts.sources!.includes(i.source));
  }
  items.sort((a, b) => (a.source === b.source ? a.id.localeCompare(b.id) : a.source.localeCompare(b.source)));
  return { root, layout, items, problems: kept };
}

/**
 * Stop before any work when a dataset has unpaired files, listing them (the first 10 and a count) in one
 * line, unless `skipUnpaired` (`--skip-unpaired`) says to go on without them.
 */
export function assertPaired(ds: Dataset, skipUnpaired = false): void {
  if (ds.problems.length === 0 || skipUnpaired) return;
  const shown = ds.problems.slice(0, 10).map((p) => `${p.path} (${p.reason})`);
  const more = ds.problems.length > 10 ? `; and ${ds.problems.length - 10} more` : '';
  throw new LesionFuseError(
    `${ds.problems.length} unpaired or missing file(s): ${shown.join('; ')}${more}. Fix them or pass --skip-unpaired to leave them out`,
    { subject: ds.root },
  );
}
