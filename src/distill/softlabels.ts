/**
 * The teacher's soft labels (its logits) for every training and validation image, computed ONCE through
 * the runtime and cached on disk as float16.
 *
 * Why cache: the fused teacher costs seconds per batch on a CPU; the student trains for many epochs over
 * the same images. Why float16: logits in the useful range (|z| < 20) keep ~3 significant digits, which
 * is far below what the KD loss can tell apart, at half the disk and memory of float32.
 *
 * Cache layout: `<cacheDir>/<teacher SHA-256>-<H>x<W>/<image SHA-256>.f16` (raw little-endian float16,
 * H x W values) plus `teacher.json` naming the teacher. A label is reused when its file exists with the
 * right length; changing the teacher file (its hash), the image (its hash) or the input size misses.
 * Each label is written atomically, so an interrupted run keeps what it finished.
 */
import { existsSync, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { Segmenter, checkSegmentationIO } from '../runtime/segmenter.js';
import { readModel } from '../onnx/io.js';
import { readSegmentationMetadata } from '../onnx/metadata.js';
import { float32ToFloat16 } from '../onnx/tensor.js';
import { sha256File } from '../util/hash.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { LesionFuseError } from '../util/errors.js';
import { Progress } from '../util/progress.js';
import { writeNormalisedImage } from './augment.js';

/** One image to label: a cache key (the image file's SHA-256) and its pixels at the teacher's input size. */
export interface SoftLabelSample {
  key: string;
  /** H x W x 3 RGB uint8, already resized to the teacher's input size. */
  rgb: Uint8Array;
}

export interface SoftLabelOptions {
  /** The teacher ONNX file (its metadata gives the normalisation; its SHA-256 keys the cache). */
  teacher: string;
  /** Root of the cache (e.g. `<out>/cache/softlabels` or a shared folder). */
  cacheDir: string;
  height: number;
  width: number;
  /** Images per teacher run (default 4). */
  batch?: number;
  /** onnxruntime intra-op threads (default 2). */
  threads?: number;
  /** Show a progress bar (default true). */
  progress?: boolean;
}

export interface SoftLabelResult {
  /** N x H x W float16 bit patterns, in the order of the samples. */
  logits: Uint16Array;
  teacherSha256: string;
  /** How many came from the cache and how many were computed. */
  hits: number;
  misses: number;
  /** The folder that holds this teacher's labels at this size. */
  folder: string;
}

/** The folder of the cache for a teacher hash and size. */
export function softLabelFolder(cacheDir: string, teacherSha256: string, height: number, width: number): string {
  return join(cacheDir, `${teacherSha256}-${height}x${width}`);
}

async function readCached(path: string, count: number): Promise<Uint16Array | null> {
  if (!existsSync(path)) return null;
  const buf = await fs.readFile(path);
  if (buf.length !== count * 2) return null;
  const out = new Uint16Array(count);
  for (let i = 0; i < count; i++) out[i] = buf[2 * i]! | (buf[2 * i + 1]! << 8);
  return out;
}

function toLittleEndianBytes(v: Uint16Array): Uint8Array {
  const out = new Uint8Array(v.length * 2);
  for (let i = 0; i < v.length; i++) {
    out[2 * i] = v[i]! & 0xff;
    out[2 * i + 1] = v[i]! >>> 8;
  }
  return out;
}

/**
 * The teacher's logits for every sample, from the cache where valid and through the teacher otherwise.
 * The teacher must take a fixed H x W equal to `height` x `width` (the student trains at the teacher's size).
 */
export async function computeSoftLabels(samples: readonly SoftLabelSample[], opts: SoftLabelOptions): Promise<SoftLabelResult> {
  const { height, width } = opts;
  const plane = height * width;
  for (const s of samples) {
    if (s.rgb.length !== plane * 3) throw new LesionFuseError(`soft labels: image ${s.key} is not ${height} x ${width} RGB`);
  }
  if (!existsSync(opts.teacher)) throw new LesionFuseError('teacher model not found', { subject: opts.teacher });
  const teacherSha256 = await sha256File(opts.teacher);
  const folder = softLabelFolder(opts.cacheDir, teacherSha256, height, width);
  const logits = new Uint16Array(samples.length * plane);
  const missing: number[] = [];
  for (let i = 0; i < samples.length; i++) {
    const hit = await readCached(join(folder, `${samples[i]!.key}.f16`), plane);
    if (hit) logits.set(hit, i * plane);
    else missing.push(i);
  }
  if (missing.length > 0) {
    // A teacher whose graph and metadata leave H x W open runs at the size asked for (distill --input-size).
    const ir = await readModel(opts.teacher, { loadExternalData: false });
    const open = !checkSegmentationIO(ir, opts.teacher).inputSize && !readSegmentationMetadata(ir.metadata).inputSize;
    const seg = await Segmenter.create(opts.teacher, { threads: opts.threads ?? 2, ...(open ? { inputSize: { height, width } } : {}) });
    try {
      const size = seg.inputSize;
      if (!size || size.height !== height || size.width !== width) {
        throw new LesionFuseError(
          `the teacher takes ${size ? `${size.height}x${size.width}` : 'an unknown size'} but soft labels were asked at ${height}x${width}; the student trains at the teacher's input size`,
          { subject: opts.teacher },
        );
      }
      const meta = seg.metadata;
      if (meta.channelOrder !== 'RGB') throw new LesionFuseError('soft labels need an RGB teacher (lesionfuse.channel_order)', { subject: opts.teacher });
      if (meta.output !== 'logits') throw new LesionFuseError('soft labels need a teacher that outputs logits (lesionfuse.output)', { subject: opts.teacher });
      await fs.mkdir(folder, { recursive: true });
      await writeJsonAtomic(join(folder, 'teacher.json'), { teacher: opts.teacher, sha256: teacherSha256, height, width, dtype: 'float16', layout: 'H x W, little-endian' });
      const bar = opts.progress === false ? null : new Progress('teacher soft labels', missing.length);
      const batch = Math.max(1, opts.batch ?? 4);
      for (let start = 0; start < missing.length; start += batch) {
        const idx = missing.slice(start, start + batch);
        const x = new Float32Array(idx.length * 3 * plane);
        idx.forEach((i, slot) => writeNormalisedImage(samples[i]!.rgb, height, width, meta.mean, meta.std, x, slot));
        const out = await seg.runTensor(x, idx.length);
        if (out.length !== idx.length * plane) {
          throw new LesionFuseError(`the teacher returned ${out.length} values for ${idx.length} images of ${height}x${width} (expected one logit map each)`, { subject: opts.teacher });
        }
        for (let k = 0; k < idx.length; k++) {
          const f16 = float32ToFloat16(out.subarray(k * plane, (k + 1) * plane));
          logits.set(f16, idx[k]! * plane);
          await writeFileAtomic(join(folder, `${samples[idx[k]!]!.key}.f16`), toLittleEndianBytes(f16));
        }
        bar?.tick(idx.length);
      }
    } finally {
      await seg.close();
    }
  }
  return { logits, teacherSha256, hits: samples.length - missing.length, misses: missing.length, folder };
}
