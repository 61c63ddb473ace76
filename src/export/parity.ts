/**
 * Output parity between a model and its rewrite, measured the way the model will be used: both run in
 * onnxruntime-node on real images (prepared from the model's lesionfuse.* metadata), compared as
 * probabilities (sigmoid of logits) and as thresholded masks. A rewrite that changes what a user would see
 * is refused before it is written (docs/inputs.md, "Results that drift").
 */
import { existsSync, promises as fs } from 'node:fs';
import { extname, join } from 'node:path';
import * as ort from '../util/ort.js';
import { DataType, type Dim, type Model, type ValueInfo } from '../onnx/ir.js';
import { encodeModel } from '../onnx/io.js';
import { readSegmentationMetadata } from '../onnx/metadata.js';
import { float16ToFloat32, float32ToFloat16, tensorToFloat32, fromOrtTensor } from '../onnx/tensor.js';
import { IMAGE_EXTENSIONS, decodeImage, toModelInput, type DecodedImage } from '../runtime/image.js';
import { LesionFuseError, describeError } from '../util/errors.js';
import { packageRoot } from '../util/paths.js';
import { realInputNames } from './util.js';

export type ParityMode = 'max-abs' | 'dice-agreement';

export interface ParityOptions {
  /**
   * Real images to run: decoded images, image file paths, or folders of images. Default: the bundled
   * `samples/images`, else `test/fixtures/images`.
   */
  images?: DecodedImage[] | string[];
  /** Largest allowed max |p_before - p_after| over all pixels in 'max-abs' mode. Default 1e-4. */
  tolerance?: number;
  /** 'max-abs' (float32 rewrites, the default) or 'dice-agreement' (float16: masks must agree). */
  mode?: ParityMode;
  /** Smallest allowed per-image Dice between the two thresholded masks in 'dice-agreement' mode. Default 0.99. */
  minDiceAgreement?: number;
  /** Input H x W when neither model fixes it and no metadata names it. Default 192 x 256 (the teacher's size). */
  inputSize?: { height: number; width: number };
  /** At most this many images are used. Default 8. */
  maxImages?: number;
  /** onnxruntime graph optimisation level for both sessions. Default 'disabled' (the graphs as written are compared). */
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /** The output to compare. Default: the first graph output. */
  output?: string;
}

export interface ParityImageResult {
  image: string;
  maxAbsDiff: number;
  meanAbsDiff: number;
  /** Dice of the two thresholded masks (1 when both are empty). */
  diceAgreement: number;
}

export interface ParityReport {
  passed: boolean;
  mode: ParityMode;
  tolerance: number;
  minDiceAgreement: number;
  images: number;
  inputSize: { height: number; width: number };
  /** max |dp| over all images and pixels (NaN or Infinity when one model produced non-finite values the other did not). */
  maxAbsDiff: number;
  meanAbsDiff: number;
  /** The worst per-image mask Dice agreement. */
  worstDiceAgreement: number;
  perImage: ParityImageResult[];
  /** One line saying what was measured against what limit. */
  message: string;
}

const DEFAULT_SIZE = { height: 192, width: 256 };

/** The image files parity uses by default: the bundled samples, else the test fixtures. */
export function defaultParityImageDir(): string | null {
  const root = packageRoot();
  for (const d of [join(root, 'samples', 'images'), join(root, 'test', 'fixtures', 'images')]) if (existsSync(d)) return d;
  return null;
}

async function collectImages(spec: DecodedImage[] | string[] | undefined, max: number): Promise<DecodedImage[]> {
  if (spec && spec.length && typeof spec[0] !== 'string') return (spec as DecodedImage[]).slice(0, max);
  let paths: string[] = [];
  const sources = spec && spec.length ? (spec as string[]) : [defaultParityImageDir()].filter((d): d is string => d !== null);
  if (!sources.length) throw new LesionFuseError('no images for the parity check: give --images DIR (samples/ and test/fixtures/ are not installed)');
  for (const s of sources) {
    let st;
    try {
      st = await fs.stat(s);
    } catch {
      throw new LesionFuseError('no such file or folder', { subject: s });
    }
    if (st.isDirectory()) {
      const names = (await fs.readdir(s)).filter((f) => (IMAGE_EXTENSIONS as readonly string[]).includes(extname(f).toLowerCase())).sort();
      if (!names.length) throw new LesionFuseError('folder has no images for the parity check', { subject: s });
      paths.push(...names.map((f) => join(s, f)));
    } else paths.push(s);
  }
  paths = paths.slice(0, max);
  const out: DecodedImage[] = [];
  for (const p of paths) out.push({ ...(await decodeImage(p)), path: p });
  return out;
}

function imageInput(m: Model, label: string): ValueInfo {
  const real = realInputNames(m.graph);
  const inputs = m.graph.inputs.filter((i) => real.has(i.name));
  if (inputs.length !== 1) {
    throw new LesionFuseError(`${label} model has ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ')}); parity needs one NCHW image input`);
  }
  const x = inputs[0]!;
  if (x.shape && x.shape.length !== 4) throw new LesionFuseError(`${label} model input ${x.name} has rank ${x.shape.length}; parity needs NCHW (rank 4)`);
  if (x.dataType !== DataType.FLOAT && x.dataType !== DataType.FLOAT16) {
    throw new LesionFuseError(`${label} model input ${x.name} is ${DataType[x.dataType]}; parity feeds float32/float16 images`);
  }
  return x;
}

const fixed = (d: Dim | undefined): number | null => (typeof d === 'number' && d > 0 ? d : null);

function pickSize(before: Model, after: Model, opts: ParityOptions): { height: number; width: number } {
  const sizes = [after, before].map((m) => {
    const s = imageInput(m, m === after ? 'rewritten' : 'original').shape;
    const h = fixed(s?.[2]);
    const w = fixed(s?.[3]);
    return h && w ? { height: h, width: w } : null;
  });
  if (sizes[0] && sizes[1] && (sizes[0].height !== sizes[1].height || sizes[0].width !== sizes[1].width)) {
    throw new LesionFuseError(
      `the two models take different fixed input sizes (${sizes[1].height}x${sizes[1].width} vs ${sizes[0].height}x${sizes[0].width}); parity compares them on the same input`,
    );
  }
  if (sizes[0] ?? sizes[1]) return (sizes[0] ?? sizes[1])!;
  for (const m of [after, before]) {
    const md = readSegmentationMetadata(m.metadata);
    if (md.inputSize) return md.inputSize;
  }
  return opts.inputSize ?? DEFAULT_SIZE;
}

/** Run a model on N prepared images, respecting a fixed batch size; returns per-image probability maps. */
async function runProbabilities(m: Model, x: Float32Array, n: number, size: { height: number; width: number }, opts: ParityOptions): Promise<{ probs: Float32Array[]; shape: number[] }> {
  const input = imageInput(m, 'model');
  const meta = readSegmentationMetadata(m.metadata);
  const batch = fixed(input.shape?.[0]);
  const plane = 3 * size.height * size.width;
  const session = await ort.InferenceSession.create(encodeModel(m), { graphOptimizationLevel: opts.graphOptimizationLevel ?? 'disabled', intraOpNumThreads: 2 });
  try {
    const outName = opts.output ?? session.outputNames[0]!;
    if (!session.outputNames.includes(outName)) throw new LesionFuseError(`model has no output '${outName}' (outputs: ${session.outputNames.join(', ')})`);
    const probs: Float32Array[] = [];
    let shape: number[] = [];
    const step = batch ?? n;
    for (let start = 0; start < n; start += step) {
      const b = batch ?? Math.min(step, n - start);
      const chunk = new Float32Array(b * plane);
      for (let k = 0; k < b; k++) {
        const src = Math.min(start + k, n - 1); // a fixed batch larger than what is left repeats the last image
        chunk.set(x.subarray(src * plane, (src + 1) * plane), k * plane);
      }
      const dims = [b, 3, size.height, size.width];
      const feed =
        input.dataType === DataType.FLOAT16
          ? new ort.Tensor('float16', float32ToFloat16(chunk) as never, dims)
          : new ort.Tensor('float32', chunk, dims);
      const r = await session.run({ [input.name]: feed });
      const out = fromOrtTensor(r[outName]!);
      const vals = out.dataType === DataType.FLOAT16 ? float16ToFloat32(out.values as Uint16Array) : tensorToFloat32(out);
      shape = out.dims.slice(1);
      const per = vals.length / out.dims[0]!;
      for (let k = 0; k < b && start + k < n; k++) {
        const p = vals.slice(k * per, (k + 1) * per);
        if (meta.output === 'logits') for (let i = 0; i < p.length; i++) p[i] = 1 / (1 + Math.exp(-p[i]!));
        probs.push(p);
      }
    }
    return { probs, shape };
  } finally {
    await session.release();
  }
}

function diceOfMasks(a: Float32Array, b: Float32Array, t: number): number {
  let inter = 0;
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]! > t ? 1 : 0;
    const y = b[i]! > t ? 1 : 0;
    inter += x & y;
    sa += x;
    sb += y;
  }
  return sa + sb === 0 ? 1 : (2 * inter) / (sa + sb);
}

/**
 * Run `before` and `after` on the same real images and compare their probability maps.
 *
 * @example
 *   const report = await checkParity(original, rewritten, { images: ['samples/images'] });
 *   if (!report.passed) throw new Error(report.message);
 */
export async function checkParity(before: Model, after: Model, opts: ParityOptions = {}): Promise<ParityReport> {
  const mode = opts.mode ?? 'max-abs';
  const tolerance = opts.tolerance ?? 1e-4;
  const minDice = opts.minDiceAgreement ?? 0.99;
  if (!(tolerance >= 0)) throw new LesionFuseError(`--tolerance must be a non-negative number, got ${tolerance}`);
  const images = await collectImages(opts.images, opts.maxImages ?? 8);
  const size = pickSize(before, after, opts);
  const meta = readSegmentationMetadata({ ...before.metadata, ...after.metadata });
  const x = toModelInput(images, { mean: meta.mean, std: meta.std, channelOrder: meta.channelOrder, ...size });
  let a: Awaited<ReturnType<typeof runProbabilities>>;
  let b: Awaited<ReturnType<typeof runProbabilities>>;
  try {
    a = await runProbabilities(before, x, images.length, size, opts);
  } catch (err) {
    if (err instanceof LesionFuseError) throw err;
    throw new LesionFuseError(`the original model does not run in onnxruntime: ${describeError(err)}`);
  }
  try {
    b = await runProbabilities(after, x, images.length, size, opts);
  } catch (err) {
    const report = failed(mode, tolerance, minDice, images.length, size, `the rewritten model does not run in onnxruntime: ${describeError(err)}`);
    return report;
  }
  if (a.shape.join('x') !== b.shape.join('x')) {
    return failed(mode, tolerance, minDice, images.length, size, `output shape changed: [${a.shape.join(',')}] -> [${b.shape.join(',')}] per image`);
  }
  const perImage: ParityImageResult[] = [];
  let maxAbs = 0;
  let sumAbs = 0;
  let count = 0;
  for (let k = 0; k < images.length; k++) {
    const p = a.probs[k]!;
    const q = b.probs[k]!;
    let m = 0;
    let s = 0;
    for (let i = 0; i < p.length; i++) {
      const pi = p[i]!;
      const qi = q[i]!;
      let d = Math.abs(pi - qi);
      if (Number.isNaN(d)) d = Number.isNaN(pi) && Number.isNaN(qi) ? 0 : Infinity;
      if (d > m) m = d;
      s += d;
    }
    maxAbs = Math.max(maxAbs, m);
    sumAbs += s;
    count += p.length;
    perImage.push({ image: images[k]!.path ?? `image ${k}`, maxAbsDiff: m, meanAbsDiff: s / p.length, diceAgreement: diceOfMasks(p, q, meta.threshold) });
  }
  const worst = Math.min(...perImage.map((r) => r.diceAgreement));
  const mean = sumAbs / Math.max(count, 1);
  const passed = mode === 'max-abs' ? maxAbs <= tolerance : worst >= minDice && Number.isFinite(maxAbs);
  const message =
    mode === 'max-abs'
      ? `max |dp| = ${maxAbs.toExponential(3)} on ${images.length} image(s) at ${size.height}x${size.width} (tolerance ${tolerance}); worst mask Dice agreement ${worst.toFixed(5)}`
      : `worst mask Dice agreement = ${worst.toFixed(5)} on ${images.length} image(s) at ${size.height}x${size.width} (minimum ${minDice}); max |dp| = ${maxAbs.toExponential(3)}`;
  return { passed, mode, tolerance, minDiceAgreement: minDice, images: images.length, inputSize: size, maxAbsDiff: maxAbs, meanAbsDiff: mean, worstDiceAgreement: worst, perImage, message };
}

function failed(mode: ParityMode, tolerance: number, minDice: number, n: number, size: { height: number; width: number }, message: string): ParityReport {
  return { passed: false, mode, tolerance, minDiceAgreement: minDice, images: n, inputSize: size, maxAbsDiff: Infinity, meanAbsDiff: Infinity, worstDiceAgreement: 0, perImage: [], message };
}
