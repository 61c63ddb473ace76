/**
 * Batch segmentation of files, folders and globs into mask, probability and overlay PNGs. One bad file
 * never stops the batch: it is listed in `failures.csv` (path, reason) and the caller's exit status says
 * something failed.
 */
import { promises as fs, type Dirent } from 'node:fs';
import { basename, extname, isAbsolute, join, resolve, sep } from 'node:path';
import { LesionFuseError, describeError } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import { Progress } from '../util/progress.js';
import { IMAGE_EXTENSIONS, decodeImage, writeMaskPng, writeOverlayPng, writeProbabilityPng, type DecodedImage } from './image.js';
import { Segmenter, type SegmenterOptions } from './segmenter.js';
import { walk } from './dataset.js';

export interface Failure {
  path: string;
  reason: string;
}

/** The one-line reason for a failure of `path`, without repeating the path the error already names. */
export function failureReason(e: unknown, path: string): string {
  const m = describeError(e);
  return m.startsWith(`${path}: `) ? m.slice(path.length + 2) : m;
}

function isImageName(name: string): boolean {
  return (IMAGE_EXTENSIONS as readonly string[]).includes(extname(name).toLowerCase());
}

/** `*` (any run of characters except the separator), `?` (one character), everything else literal. */
export function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (const c of pattern) {
    if (c === '*') re += '[^/\\\\]*';
    else if (c === '?') re += '[^/\\\\]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const hasGlob = (s: string): boolean => /[*?]/.test(s);

async function walkImages(dir: string, depth = 16): Promise<string[]> {
  return (await walk(dir, depth)).filter((p) => isImageName(basename(p)));
}

/** Files matching a glob: path segments with * and ?, and `**` for any number of folders. */
async function expandGlob(pattern: string): Promise<string[]> {
  const abs = isAbsolute(pattern) ? pattern : resolve(pattern);
  const parts = abs.split(/[\\/]+/);
  const firstGlob = parts.findIndex(hasGlob);
  const base = parts.slice(0, firstGlob).join(sep) || sep;
  const rest = parts.slice(firstGlob);
  const out: string[] = [];
  const visit = async (dir: string, i: number): Promise<void> => {
    if (i === rest.length) return;
    const seg = rest[i]!;
    let entries: Dirent[];
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    entries.sort((a, b) => a.name.localeCompare(b.name));
    if (seg === '**') {
      await visit(dir, i + 1);
      for (const e of entries) if (e.isDirectory() && !e.name.startsWith('.')) await visit(join(dir, e.name), i);
      return;
    }
    const re = globToRegExp(seg);
    const last = i === rest.length - 1;
    for (const e of entries) {
      if (e.name.startsWith('.') && !seg.startsWith('.')) continue;
      if (!re.test(e.name)) continue;
      const p = join(dir, e.name);
      if (last) {
        if (e.isFile()) out.push(p);
      } else if (e.isDirectory()) await visit(p, i + 1);
    }
  };
  await visit(base, 0);
  return [...new Set(out)];
}

/**
 * Turn command-line inputs (files, folders, quoted globs) into image files. Folders are walked for image
 * extensions; files named directly are kept whatever their extension (decoding says what is wrong);
 * inputs that match nothing are failures, not errors.
 */
export async function expandInputs(inputs: readonly string[]): Promise<{ files: string[]; failures: Failure[] }> {
  const files: string[] = [];
  const failures: Failure[] = [];
  const seen = new Set<string>();
  const add = (p: string): void => {
    const r = resolve(p);
    if (!seen.has(r)) {
      seen.add(r);
      files.push(r);
    }
  };
  for (const input of inputs) {
    let st;
    try {
      st = await fs.stat(input);
    } catch {
      st = null;
    }
    if (st?.isDirectory()) {
      const found = await walkImages(input);
      if (found.length === 0) failures.push({ path: input, reason: `folder holds no images (${IMAGE_EXTENSIONS.join(', ')})` });
      found.forEach(add);
    } else if (st) {
      add(input);
    } else if (hasGlob(input)) {
      const found = await expandGlob(input);
      if (found.length === 0) failures.push({ path: input, reason: 'pattern matches no files' });
      found.forEach(add);
    } else {
      failures.push({ path: input, reason: 'no such file or folder' });
    }
  }
  return { files, failures };
}

/**
 * A safe output stem for an input file: its name without the last extension, Unicode-normalised (NFC),
 * with anything other than letters, digits, '.', '-' and '_' turned into '_', no leading dot, at most 100
 * characters; names already used (compared case-insensitively, for case-insensitive file systems) get
 * `_2`, `_3`...
 */
export function safeOutputStem(path: string, used: Set<string>): string {
  let stem = basename(path, extname(path)).normalize('NFC');
  stem = stem.replace(/[^\p{L}\p{N}._-]+/gu, '_').replace(/_+/g, '_').replace(/^[._]+/, '').replace(/_+$/, '');
  if (stem === '') stem = 'image';
  stem = [...stem].slice(0, 100).join('');
  let candidate = stem;
  for (let k = 2; used.has(candidate.toLowerCase()); k++) candidate = `${stem}_${k}`;
  used.add(candidate.toLowerCase());
  return candidate;
}

function csvCell(v: string): string {
  return /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

/** failures.csv text: path,reason. */
export function failuresCsv(failures: readonly Failure[]): string {
  return ['path,reason', ...failures.map((f) => `${csvCell(f.path)},${csvCell(f.reason)}`)].join('\n') + '\n';
}

export interface SegmentFilesOptions extends SegmenterOptions {
  model: string;
  inputs: string[];
  out: string;
  /** Images per model run (default: the profile's batch). */
  batchSize?: number;
  /** Write `<stem>_prob.png` (default true). */
  probability?: boolean;
  /** Write `<stem>_overlay.png` (default true). */
  overlay?: boolean;
  /** Show progress on stderr (default true). */
  progress?: boolean;
}

export interface SegmentedFile {
  input: string;
  mask: string;
  probability?: string;
  overlay?: string;
  width: number;
  height: number;
  lesionFraction: number;
  warnings: string[];
}

export interface SegmentFilesResult {
  segmented: SegmentedFile[];
  failures: Failure[];
  /** Where failures.csv was written (always written, header only when nothing failed). */
  failuresCsv: string;
}

/**
 * Segment files, folders and globs: per image `<stem>_mask.png` (0/255 at the original size),
 * `<stem>_prob.png` and `<stem>_overlay.png` in `out`. Model and option errors throw before any image is
 * read; image errors are collected into `failures` (and failures.csv) while the rest goes on.
 */
export async function segmentFiles(opts: SegmentFilesOptions): Promise<SegmentFilesResult> {
  const seg = await Segmenter.create(opts.model, opts);
  const { files, failures } = await expandInputs(opts.inputs);
  const out = resolve(opts.out);
  await fs.mkdir(out, { recursive: true });
  const used = new Set<string>();
  const segmented: SegmentedFile[] = [];
  const batchSize = opts.batchSize ?? seg.profile.batch;
  const progress = opts.progress === false ? null : new Progress('segment', files.length);
  try {
    for (let start = 0; start < files.length; start += batchSize) {
      const group = files.slice(start, start + batchSize);
      const decoded: DecodedImage[] = [];
      for (const f of group) {
        try {
          decoded.push(await decodeImage(f, { maxPixels: opts.maxPixels }));
        } catch (e) {
          if (!(e instanceof LesionFuseError)) throw e;
          failures.push({ path: f, reason: failureReason(e, f) });
          progress?.tick(1);
        }
      }
      if (decoded.length === 0) continue;
      let results;
      try {
        results = await seg.segmentBatch(decoded, { batchSize: decoded.length });
      } catch (e) {
        if (!(e instanceof LesionFuseError)) throw e;
        for (const d of decoded) failures.push({ path: d.path ?? '?', reason: failureReason(e, d.path ?? '') });
        progress?.tick(decoded.length);
        continue;
      }
      for (const [k, r] of results.entries()) {
        const img = decoded[k]!;
        const input = img.path!;
        try {
          const stem = safeOutputStem(input, used);
          const maskPath = join(out, `${stem}_mask.png`);
          await writeMaskPng(maskPath, { width: r.width, height: r.height, data: r.mask });
          const item: SegmentedFile = {
            input,
            mask: maskPath,
            width: r.width,
            height: r.height,
            lesionFraction: r.mask.reduce((s, v) => s + v, 0) / r.mask.length,
            warnings: r.warnings,
          };
          if (opts.probability !== false) {
            item.probability = join(out, `${stem}_prob.png`);
            await writeProbabilityPng(item.probability, r.probability, r.width, r.height);
          }
          if (opts.overlay !== false) {
            item.overlay = join(out, `${stem}_overlay.png`);
            await writeOverlayPng(item.overlay, img, { width: r.width, height: r.height, data: r.mask });
          }
          segmented.push(item);
        } catch (e) {
          failures.push({ path: input, reason: `could not write outputs: ${failureReason(e, input)}` });
        }
        progress?.tick(1);
      }
    }
  } finally {
    await seg.close();
  }
  const csvPath = join(out, 'failures.csv');
  await writeFileAtomic(csvPath, failuresCsv(failures));
  return { segmented, failures, failuresCsv: csvPath };
}

/** Parse `HxW` (e.g. 192x256) for --input-size. */
export function parseSize(text: string, option = '--input-size'): { height: number; width: number } {
  const m = /^(\d+)[xX](\d+)$/.exec(text.trim());
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new LesionFuseError(`expected HxW such as 192x256, got '${text}'`, { subject: option });
  return { height: Number(m[1]), width: Number(m[2]) };
}
