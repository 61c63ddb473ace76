/**
 * Batch segmentation of files, folders and globs into masks (and, on request, probability maps and
 * downscaled overlays), pipelined: the next images are decoded while the model runs and the previous
 * masks are encoded and written in parallel, with bounded concurrency, the outputs and failures.csv kept
 * in input order. One bad file never stops the batch: it is listed in `failures.csv` (path, reason, written
 * as it happens) and the caller's exit status says something failed. The output folder gets a
 * `segment.json` saying which model (SHA-256), profile, threshold, resize, post-processing and SDK
 * version made which outputs from which inputs; a folder made by another model, or holding files not made
 * by `segment`, is refused unless `overwrite`, and so is a folder inside an input folder.
 */
import { promises as fs, type Dirent } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { LesionFuseError, describeError } from '../util/errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { sha256File } from '../util/hash.js';
import { Progress } from '../util/progress.js';
import { isRegularFile, walkFiles } from '../util/files.js';
import { VERSION } from '../version.js';
import { resolveModelPath } from '../models.js';
import { IMAGE_EXTENSIONS, maskPngBytes, writeOverlayJpeg, writeProbabilityPng, type ResizeMode } from './image.js';
import { Segmenter, type PreparedImage, type SegmenterOptions } from './segmenter.js';

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

/** Whether `p` is `dir` or inside it (both already resolved through realpath). */
function isInside(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}

/** realpath of `p`, or of its nearest existing ancestor joined with the rest (for folders not made yet). */
async function realpathLoose(p: string): Promise<string> {
  const abs = resolve(p);
  let cur = abs;
  const rest: string[] = [];
  for (;;) {
    try {
      return join(await fs.realpath(cur), ...rest.reverse());
    } catch {
      const parent = dirname(cur);
      if (parent === cur) return abs;
      rest.push(basename(cur));
      cur = parent;
    }
  }
}


/**
 * Image files under `dir` (sorted, hidden entries skipped), following links to files but not links to
 * folders (no cycles); files whose real path is inside `exclude` (the output folder) are left out.
 */
async function walkImages(dir: string, exclude: string | null, depth = 16): Promise<string[]> {
  const skip = exclude ? async (p: string) => isInside(await realpathLoose(p), exclude) : undefined;
  return (await walkFiles(dir, depth, skip)).filter((p) => isImageName(basename(p)));
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
        if (await isRegularFile(dir, e)) out.push(p);
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
export async function expandInputs(inputs: readonly string[], opts: { exclude?: string } = {}): Promise<{ files: string[]; failures: Failure[] }> {
  const exclude = opts.exclude ? await realpathLoose(opts.exclude) : null;
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
      const found = await walkImages(input, exclude);
      if (found.length === 0) failures.push({ path: input, reason: `folder holds no images (${IMAGE_EXTENSIONS.join(', ')})` });
      found.forEach(add);
    } else if (st) {
      add(input);
    } else if (hasGlob(input)) {
      const all = await expandGlob(input);
      const found: string[] = [];
      for (const f of all) if (!(exclude && isInside(await realpathLoose(f), exclude))) found.push(f);
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

/** What `segment` can write per image. */
export const OUTPUT_KINDS = ['mask', 'prob', 'overlay'] as const;
export type OutputKind = (typeof OUTPUT_KINDS)[number];

/** Parse `--outputs mask,prob,overlay` (any non-empty subset, in any order). */
export function parseOutputs(spec: string | readonly string[]): OutputKind[] {
  const parts = (typeof spec === 'string' ? spec.split(',') : [...spec]).map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (parts.length === 0) throw new LesionFuseError(`name at least one output (${OUTPUT_KINDS.join(', ')})`, { subject: '--outputs' });
  for (const p of parts) {
    if (!(OUTPUT_KINDS as readonly string[]).includes(p)) throw new LesionFuseError(`unknown output '${p}'; choose from ${OUTPUT_KINDS.join(', ')}`, { subject: '--outputs' });
  }
  return OUTPUT_KINDS.filter((k) => parts.includes(k));
}

/** The record `segment` keeps in its output folder. */
export const SEGMENT_JSON = 'segment.json';
export const SEGMENT_FORMAT = 'lesionfuse-segment/1';

export interface SegmentRecordItem {
  /** The input as found (absolute path). */
  input: string;
  /** Output file names, relative to the folder. */
  mask?: string;
  prob?: string;
  overlay?: string;
  width: number;
  height: number;
}

export interface SegmentRecord {
  format: typeof SEGMENT_FORMAT;
  /** false while a run is going on (or when it was interrupted). */
  complete: boolean;
  sdk_version: string;
  created_at: string;
  model: { path: string; sha256: string; name: string | null };
  profile: string;
  threshold: number;
  resize: ResizeMode;
  input_size: { height: number; width: number };
  /** The post-processing applied to the masks (null: none). */
  postprocess: string | Record<string, unknown> | null;
  outputs: OutputKind[];
  items: SegmentRecordItem[];
  /** How many inputs failed in the last run (listed in failures.csv). */
  failures: number;
}

/** Read `segment.json` of a folder: the record, or null when there is none or it is not one. */
export async function readSegmentRecord(dir: string): Promise<SegmentRecord | null> {
  let text: string;
  try {
    text = await fs.readFile(join(dir, SEGMENT_JSON), 'utf8');
  } catch {
    return null;
  }
  try {
    const r = JSON.parse(text) as SegmentRecord;
    if (r && r.format === SEGMENT_FORMAT && typeof r.model?.sha256 === 'string' && Array.isArray(r.items)) return r;
  } catch {
    /* not ours */
  }
  return null;
}

/** The settings that change what a mask is; two runs may share a folder only when they agree on all. */
function settingsOf(r: Pick<SegmentRecord, 'model' | 'threshold' | 'resize' | 'input_size' | 'postprocess'>): Record<string, string> {
  return {
    model: r.model.sha256,
    threshold: String(r.threshold),
    resize: r.resize,
    input_size: `${r.input_size.height}x${r.input_size.width}`,
    postprocess: JSON.stringify(r.postprocess ?? null),
  };
}

function fsReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return 'permission denied (read-only?)';
  if (code === 'ENOTDIR') return 'a parent is not a folder';
  if (code === 'ENOSPC') return 'no space left on the device';
  if (code === 'EISDIR') return 'a folder is in the way';
  return describeError(e);
}

/**
 * Check an output folder before any work: it must not be inside an input folder, and if it exists it
 * must be a folder that is empty or was made by `segment` (unless `overwrite`). Returns its record.
 */
async function inspectOutputFolder(out: string, inputs: readonly string[], overwrite: boolean): Promise<SegmentRecord | null> {
  const realOut = await realpathLoose(out);
  for (const input of inputs) {
    let st;
    try {
      st = await fs.stat(input);
    } catch {
      continue;
    }
    if (!st.isDirectory()) continue;
    const realIn = await fs.realpath(input);
    if (isInside(realOut, realIn)) {
      throw new LesionFuseError(`the output folder is inside the input folder ${input}: the next run would read its own outputs; choose a folder outside it`, { subject: '--out' });
    }
  }
  let st;
  try {
    st = await fs.stat(out);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    throw new LesionFuseError(`cannot use as the output folder: ${fsReason(e)}`, { subject: out });
  }
  if (!st.isDirectory()) throw new LesionFuseError('exists and is not a folder; choose a folder for the outputs', { subject: out });
  const names = (await fs.readdir(out)).filter((n) => !/^\..*\.tmp$/.test(n));
  if (names.length === 0) return null;
  const record = await readSegmentRecord(out);
  if (!record && !overwrite) {
    throw new LesionFuseError(`holds files not made by \`lesionfuse segment\` (no ${SEGMENT_JSON}); choose a new or empty folder, or pass --overwrite to write into it anyway`, { subject: out });
  }
  return record;
}

export interface SegmentFilesOptions extends SegmenterOptions {
  model: string;
  inputs: string[];
  out: string;
  /** Images per model run (default: the profile's batch). */
  batchSize?: number;
  /** What to write per image (default mask only): `mask`, `prob` (probability PNG), `overlay` (downscaled JPEG). */
  outputs?: readonly OutputKind[] | string;
  /** Write into a folder made by another model or with other settings, or holding other files (default false). */
  overwrite?: boolean;
  /** Show progress on stderr (default true; `--quiet` turns it off). */
  progress?: boolean;
  /** Images whose outputs are encoded and written at the same time (default 2). */
  writeConcurrency?: number;
  /** Images decoded ahead of the model (default: 2 batches, at least 4). */
  prefetch?: number;
}

export interface SegmentedFile {
  input: string;
  mask?: string;
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
  /** Where segment.json was written, and what it says. */
  recordPath: string;
  record: SegmentRecord;
}

/**
 * Segment files, folders and globs into `out`: per image `<stem>_mask.png` (0/255 at the original size)
 * and, when asked, `<stem>_prob.png` and `<stem>_overlay.jpg`; `failures.csv`; `segment.json`. The output
 * folder is checked (and made) before the model is opened; model and option errors throw before any image
 * is read; image errors are collected into `failures` (and failures.csv, as they happen) while the rest
 * goes on. Memory is bounded by `prefetch` model-size images plus `writeConcurrency` images' outputs,
 * whatever the number of inputs.
 */
export async function segmentFiles(opts: SegmentFilesOptions): Promise<SegmentFilesResult> {
  const outputs = parseOutputs(opts.outputs ?? ['mask']);
  const out = resolve(opts.out);
  const overwrite = opts.overwrite === true;
  const writeConcurrency = opts.writeConcurrency ?? 2;
  if (!Number.isInteger(writeConcurrency) || writeConcurrency < 1) throw new LesionFuseError(`writeConcurrency must be a positive integer, got ${writeConcurrency}`);

  // 1. The output folder, before the model is opened.
  const modelPath = resolveModelPath(opts.model);
  const previous = await inspectOutputFolder(out, opts.inputs, overwrite);
  let sha: string;
  try {
    sha = await sha256File(modelPath);
  } catch (e) {
    throw new LesionFuseError(`cannot read the model: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : fsReason(e)}`, { subject: modelPath });
  }
  if (previous && previous.model.sha256 !== sha && !overwrite) {
    throw new LesionFuseError(
      `was made by another model (${previous.model.path}, sha256 ${previous.model.sha256.slice(0, 12)}...); choose another folder, or pass --overwrite to write into it anyway`,
      { subject: out },
    );
  }
  try {
    await fs.mkdir(out, { recursive: true });
  } catch (e) {
    throw new LesionFuseError(`cannot create the output folder: ${fsReason(e)}`, { subject: out });
  }
  const csvPath = join(out, 'failures.csv');
  const indexed: { index: number; failure: Failure }[] = [];
  const csvText = (): string => failuresCsv(indexed.sort((a, b) => a.index - b.index).map((f) => f.failure));
  try {
    await writeFileAtomic(csvPath, csvText());
  } catch (e) {
    throw new LesionFuseError(`cannot write in the output folder: ${fsReason(e)}`, { subject: csvPath });
  }

  // 2. The inputs (never the output folder's own files) and the model.
  const { files, failures: inputFailures } = await expandInputs(opts.inputs, { exclude: out });
  inputFailures.forEach((f, k) => indexed.push({ index: -inputFailures.length + k, failure: f }));
  const seg = await Segmenter.create(opts.model, opts);
  const writes = new Set<Promise<void>>();
  try {
    const batchSize = opts.batchSize ?? seg.profile.batch;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new LesionFuseError(`batch size must be a positive integer, got ${batchSize}`, { subject: '--batch' });
    const prefetch = opts.prefetch ?? Math.max(4, 2 * batchSize);
    const record: SegmentRecord = {
      format: SEGMENT_FORMAT,
      complete: false,
      sdk_version: VERSION,
      created_at: new Date().toISOString(),
      model: { path: modelPath, sha256: sha, name: seg.metadata.modelName },
      profile: seg.profile.name,
      threshold: seg.metadata.threshold,
      resize: seg.metadata.resize,
      input_size: { ...seg.inputSize },
      postprocess: seg.postprocess ? seg.postprocess.describe : null,
      outputs,
      items: [],
      failures: 0,
    };
    const same = previous !== null && JSON.stringify(settingsOf(previous)) === JSON.stringify(settingsOf(record));
    if (previous && !same && !overwrite) {
      const a = settingsOf(previous);
      const b = settingsOf(record);
      const diff = Object.keys(a).filter((k) => a[k] !== b[k]).map((k) => `${k} ${a[k]} -> ${b[k]}`).join(', ');
      throw new LesionFuseError(`was made with other settings (${diff}); choose another folder, or pass --overwrite to write into it anyway`, { subject: out });
    }
    // Items of an earlier run with the same settings stay listed (and their names taken) unless re-made now.
    const inputsNow = new Set(files);
    const kept = same ? previous!.items.filter((it) => !inputsNow.has(it.input)) : [];
    const used = new Set<string>();
    for (const it of kept) for (const f of [it.mask, it.prob, it.overlay]) if (f) used.add(f.replace(/_(mask|prob|overlay)\.(png|jpg)$/, '').toLowerCase());
    record.items = [...kept];
    const recordPath = join(out, SEGMENT_JSON);
    await writeJsonAtomic(recordPath, record);

    // 3. The pipeline: decode ahead, run in batches, finish + encode + write behind, in order.
    let csvChain: Promise<void> = Promise.resolve();
    let csvError: unknown = null;
    const fail = (index: number, path: string, reason: string): void => {
      indexed.push({ index, failure: { path, reason } });
      const text = csvText();
      csvChain = csvChain.then(() => writeFileAtomic(csvPath, text)).catch((e) => void (csvError ??= e));
    };
    // the input failures found while expanding
    if (inputFailures.length) {
      const text = csvText();
      csvChain = csvChain.then(() => writeFileAtomic(csvPath, text)).catch((e) => void (csvError ??= e));
    }

    const N = files.length;
    const progress = opts.progress === false ? null : new Progress('segment', N);
    const started = Date.now();
    let done = 0;
    const tick = (): void => {
      done++;
      const s = (Date.now() - started) / 1000;
      progress?.tick(1, s > 0 ? `${(done / s).toFixed(1)} images/s` : '');
    };
    type Slot = { ok: true; p: PreparedImage } | { ok: false; reason: string };
    const decoding: (Promise<Slot> | undefined)[] = new Array(N);
    let launched = 0;
    const launch = (upTo: number): void => {
      for (; launched < Math.min(N, upTo); launched++) {
        const f = files[launched]!;
        decoding[launched] = seg.prepare(f).then(
          (p): Slot => ({ ok: true, p }),
          (e): Slot => {
            if (!(e instanceof LesionFuseError)) throw e;
            return { ok: false, reason: failureReason(e, f) };
          },
        );
      }
    };
    const results: (SegmentedFile | undefined)[] = new Array(N);
    const items: (SegmentRecordItem | undefined)[] = new Array(N);
    let writeError: unknown = null;

    const writeOne = async (index: number, p: PreparedImage, map: { width: number; height: number; data: Float32Array }, stem: string): Promise<void> => {
      const input = files[index]!;
      const written: string[] = [];
      try {
        const r = await seg.finish(p, map);
        const item: SegmentedFile = { input, width: r.width, height: r.height, lesionFraction: r.mask.reduce((s, v) => s + (v ? 1 : 0), 0) / r.mask.length, warnings: r.warnings };
        const rec: SegmentRecordItem = { input, width: r.width, height: r.height };
        if (outputs.includes('mask')) {
          const path = join(out, `${stem}_mask.png`);
          const bytes = await maskPngBytes(r);
          written.push(path);
          await writeFileAtomic(path, bytes);
          item.mask = path;
          rec.mask = basename(path);
        }
        if (outputs.includes('prob')) {
          const path = join(out, `${stem}_prob.png`);
          written.push(path);
          await writeProbabilityPng(path, r.probability, r.width, r.height);
          item.probability = path;
          rec.prob = basename(path);
        }
        if (outputs.includes('overlay')) {
          const path = join(out, `${stem}_overlay.jpg`);
          written.push(path);
          await writeOverlayJpeg(path, input, r, { maxPixels: opts.maxPixels });
          item.overlay = path;
          rec.overlay = basename(path);
        }
        results[index] = item;
        items[index] = rec;
      } catch (e) {
        // a failed image leaves none of its outputs behind
        await Promise.all(written.map((w) => fs.rm(w, { force: true }).catch(() => undefined)));
        if (e instanceof LesionFuseError || (e as NodeJS.ErrnoException).code) {
          fail(index, input, `could not write outputs: ${e instanceof LesionFuseError ? failureReason(e, input) : fsReason(e)}`);
        } else writeError ??= e;
      }
      tick();
    };

    launch(prefetch);
    let i = 0;
    while (i < N) {
      const group: { index: number; p: PreparedImage }[] = [];
      while (group.length < batchSize && i < N) {
        launch(i + prefetch);
        const slot = await decoding[i]!;
        decoding[i] = undefined;
        if (slot.ok) group.push({ index: i, p: slot.p });
        else {
          fail(i, files[i]!, slot.reason);
          tick();
        }
        i++;
      }
      if (group.length === 0) continue;
      launch(i + prefetch);
      let maps;
      try {
        maps = await seg.infer(group.map((g) => g.p));
      } catch (e) {
        if (!(e instanceof LesionFuseError)) throw e;
        for (const g of group) {
          fail(g.index, files[g.index]!, failureReason(e, files[g.index]!));
          tick();
        }
        continue;
      }
      for (const [k, g] of group.entries()) {
        const stem = safeOutputStem(files[g.index]!, used); // assigned in input order
        const w: Promise<void> = writeOne(g.index, g.p, maps[k]!, stem).finally(() => writes.delete(w));
        writes.add(w);
        while (writes.size >= writeConcurrency) await Promise.race(writes);
      }
      if (writeError) throw writeError;
    }
    await Promise.all(writes);
    if (writeError) throw writeError;
    await csvChain;
    if (csvError) throw new LesionFuseError(`could not write failures.csv: ${fsReason(csvError)}`, { subject: csvPath });

    record.items = [...kept, ...items.filter((x): x is SegmentRecordItem => x !== undefined)];
    record.failures = indexed.length;
    record.complete = true;
    try {
      await writeJsonAtomic(recordPath, record);
    } catch (e) {
      throw new LesionFuseError(`could not write ${SEGMENT_JSON}: ${fsReason(e)}`, { subject: recordPath });
    }
    return {
      segmented: results.filter((x): x is SegmentedFile => x !== undefined),
      failures: indexed.sort((a, b) => a.index - b.index).map((f) => f.failure),
      failuresCsv: csvPath,
      recordPath,
      record,
    };
  } finally {
    await Promise.allSettled(writes);
    await seg.close();
  }
}

/** Parse `HxW` (e.g. 192x256) for --input-size. */
export function parseSize(text: string, option = '--input-size'): { height: number; width: number } {
  const m = /^(\d+)[xX](\d+)$/.exec(text.trim());
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new LesionFuseError(`expected HxW such as 192x256, got '${text}'`, { subject: option });
  return { height: Number(m[1]), width: Number(m[2]) };
}
