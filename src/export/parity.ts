/**
 * Output parity between a model and its rewrite: both graphs run in onnxruntime-node on the same real
 * images (prepared from the model's lesionfuse.* metadata) and their RAW outputs are compared, every output
 * by name, whatever the metadata says they mean. The metadata is how the runtime reads an output, not the
 * output: a rewrite that only changes it (set-metadata) leaves the graphs' outputs identical, and the report
 * says which keys changed. Thresholded masks (the Dice agreement) use ONE reading, the original model's, for
 * both sides. Extra inputs (a recurrent state, a sample rate) are fed zeros at their declared shape; a model
 * without an image input is fed deterministic pseudo-random values. A rewrite that changes what a user would
 * see is refused before it is written (docs/inputs.md, "Results that drift").
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
  /**
   * Largest allowed difference of raw outputs in 'max-abs' mode, measured as |y_before - y_after| /
   * max(1, |y_before|): absolute for values within [-1, 1] (probabilities), relative for larger ones
   * (logits, features), so float32 rounding of large values is not called drift. Default 1e-4.
   */
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
  /** The output to compare. Default: every graph output (the mask agreement uses the first). */
  output?: string;
}

/** A metadata key whose value the rewrite changed (undefined: absent on that side). */
export interface MetadataChange {
  key: string;
  before?: string;
  after?: string;
}

export interface ParityImageResult {
  image: string;
  /** Largest raw-output difference (see ParityOptions.tolerance for how it is scaled), over every compared output. */
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
  /** The largest raw-output difference over all images, outputs and elements (Infinity when one model produced non-finite values the other did not). */
  maxAbsDiff: number;
  /** The graph outputs compared. */
  outputs: string[];
  /** Metadata the rewrite changed: how the runtime reads the model, not what the graph computes. */
  metadataChanges: MetadataChange[];
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

interface InputPlan {
  /** The NCHW float input fed with images, or null when the model has none (fed pseudo-random values). */
  image: ValueInfo | null;
  /** Every real input, in graph order. */
  inputs: ValueInfo[];
}

function planInputs(m: Model, label: string): InputPlan {
  const real = realInputNames(m.graph);
  const inputs = m.graph.inputs.filter((i) => real.has(i.name));
  if (!inputs.length) throw new LesionFuseError(`${label} model has no inputs`);
  const isFloat = (v: ValueInfo) => v.dataType === DataType.FLOAT || v.dataType === DataType.FLOAT16;
  const image = inputs.find((v) => isFloat(v) && v.shape?.length === 4) ?? null;
  if (!image && !inputs.some(isFloat)) throw new LesionFuseError(`${label} model has no float input (inputs: ${inputs.map((i) => `${i.name} ${DataType[i.dataType]}`).join(', ')}); parity feeds float32/float16 data`);
  return { image, inputs };
}

const fixed = (d: Dim | undefined): number | null => (typeof d === 'number' && d > 0 ? d : null);

function pickSize(before: Model, after: Model, opts: ParityOptions): { height: number; width: number } {
  const sizes = [after, before].map((m) => {
    const s = planInputs(m, m === after ? 'rewritten' : 'original').image?.shape;
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

/**
 * The dims of an input at batch `b`: static dims as declared; a symbolic first dim, or any dim named like
 * the main input's batch dim (a state [2, N, 16] beside an image [N, 3, H, W]), = b; anything else is refused.
 */
function inputDims(v: ValueInfo, b: number, batchName: Dim | undefined): number[] {
  if (!v.shape) throw new LesionFuseError(`input '${v.name}' has no declared shape; parity cannot make a value for it`);
  return v.shape.map((d, k) => {
    const f = fixed(d);
    if (f !== null) return f;
    if (k === 0 || (typeof d === 'string' && d !== '' && d === batchName)) return b;
    throw new LesionFuseError(`input '${v.name}' dimension ${k} (${d === null ? 'unknown' : `'${d}'`}) is not fixed by the model; parity cannot make a value for it (fix it with --passes set-batch / fix-input-size, or compare with --force)`);
  });
}

function zerosTensor(v: ValueInfo, dims: number[]): ort.Tensor {
  const n = dims.reduce((a, c) => a * c, 1);
  switch (v.dataType) {
    case DataType.FLOAT: return new ort.Tensor('float32', new Float32Array(n), dims);
    case DataType.FLOAT16: return new ort.Tensor('float16', new Uint16Array(n) as never, dims);
    case DataType.DOUBLE: return new ort.Tensor('float64', new Float64Array(n), dims);
    case DataType.INT64: return new ort.Tensor('int64', new BigInt64Array(n), dims);
    case DataType.INT32: return new ort.Tensor('int32', new Int32Array(n), dims);
    case DataType.INT8: return new ort.Tensor('int8', new Int8Array(n), dims);
    case DataType.UINT8: return new ort.Tensor('uint8', new Uint8Array(n), dims);
    case DataType.BOOL: return new ort.Tensor('bool', new Uint8Array(n), dims);
    default: throw new LesionFuseError(`input '${v.name}' is ${DataType[v.dataType]}; parity cannot make a value for it`);
  }
}

/** Deterministic pseudo-random values in [-2, 2), for models without an image input. */
function syntheticValues(count: number, seed: number): Float32Array {
  const x = new Float32Array(count);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < x.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    x[i] = (s / 4294967296) * 4 - 2;
  }
  return x;
}

type Samples = { kind: 'images'; x: Float32Array; n: number; size: { height: number; width: number } } | { kind: 'synthetic'; n: number };

/** Run a model on N samples, respecting a fixed batch size; returns per-sample raw values of each output. */
async function runRaw(m: Model, samples: Samples, outNames: string[] | null, opts: ParityOptions): Promise<{ outputs: string[]; values: Map<string, Float32Array[]>; shapes: Map<string, number[]> }> {
  const plan = planInputs(m, 'model');
  const main = plan.image ?? plan.inputs.find((v) => v.dataType === DataType.FLOAT || v.dataType === DataType.FLOAT16)!;
  const batch = fixed(main.shape?.[0]);
  const n = samples.n;
  const session = await ort.InferenceSession.create(encodeModel(m), { graphOptimizationLevel: opts.graphOptimizationLevel ?? 'disabled', intraOpNumThreads: 2 });
  try {
    const names = outNames ?? (opts.output ? [opts.output] : [...session.outputNames]);
    for (const o of names) if (!session.outputNames.includes(o)) throw new LesionFuseError(`model has no output '${o}' (outputs: ${session.outputNames.join(', ')})`);
    const values = new Map<string, Float32Array[]>(names.map((o) => [o, []]));
    const shapes = new Map<string, number[]>();
    const step = batch ?? n;
    for (let start = 0; start < n; start += step) {
      const b = batch ?? Math.min(step, n - start);
      let chunk: Float32Array;
      let dims: number[];
      if (samples.kind === 'images') {
        const plane = 3 * samples.size.height * samples.size.width;
        chunk = new Float32Array(b * plane);
        for (let k = 0; k < b; k++) {
          const src = Math.min(start + k, n - 1); // a fixed batch larger than what is left repeats the last image
          chunk.set(samples.x.subarray(src * plane, (src + 1) * plane), k * plane);
        }
        dims = [b, 3, samples.size.height, samples.size.width];
      } else {
        dims = inputDims(main, b, main.shape?.[0]);
        const per = dims.slice(1).reduce((a, c) => a * c, 1);
        chunk = new Float32Array(b * per);
        for (let k = 0; k < b; k++) chunk.set(syntheticValues(per, Math.min(start + k, n - 1) + 1), k * per);
      }
      const feeds: Record<string, ort.Tensor> = {
        [main.name]: main.dataType === DataType.FLOAT16 ? new ort.Tensor('float16', float32ToFloat16(chunk) as never, dims) : new ort.Tensor('float32', chunk, dims),
      };
      for (const v of plan.inputs) if (v !== main) feeds[v.name] = zerosTensor(v, inputDims(v, b, main.shape?.[0]));
      const r = await session.run(feeds, names);
      for (const o of names) {
        const out = fromOrtTensor(r[o]!);
        const vals = out.dataType === DataType.FLOAT16 ? float16ToFloat32(out.values as Uint16Array) : tensorToFloat32(out);
        const lead = out.dims.length > 0 && out.dims[0] === b && b > 1 ? b : out.dims.length > 0 && out.dims[0] === b ? 1 : 0;
        // An output whose first dim is the batch is split per sample; anything else (a state, a scalar) is
        // the same for the whole chunk and kept once per sample.
        shapes.set(o, lead ? out.dims.slice(1) : out.dims);
        const per = lead ? vals.length / b : vals.length;
        for (let k = 0; k < b && start + k < n; k++) values.get(o)!.push(lead ? vals.slice(k * per, (k + 1) * per) : vals.slice());
      }
    }
    return { outputs: names, values, shapes };
  } finally {
    await session.release();
  }
}

/** Keys whose values differ between the two models' metadata. */
function metadataDiff(before: Record<string, string>, after: Record<string, string>): MetadataChange[] {
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  const out: MetadataChange[] = [];
  for (const k of keys) {
    if (before[k] === after[k]) continue;
    const c: MetadataChange = { key: k };
    if (k in before) c.before = before[k];
    if (k in after) c.after = after[k];
    out.push(c);
  }
  return out;
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
 * Run `before` and `after` on the same real images and compare their raw outputs (see the module comment).
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
  const metadataChanges = metadataDiff(before.metadata, after.metadata);
  const withImages = planInputs(before, 'original').image !== null;
  const size = pickSize(before, after, opts);
  // The ORIGINAL model's reading of its input and output, applied to both sides: the same pixels go in,
  // and one threshold (in raw-output units) makes both masks.
  const meta = readSegmentationMetadata(before.metadata);
  const rawThreshold = meta.output === 'logits' ? Math.log(meta.threshold / (1 - meta.threshold)) : meta.threshold;
  let samples: Samples;
  let labels: string[];
  if (withImages) {
    const images = await collectImages(opts.images, opts.maxImages ?? 8);
    samples = { kind: 'images', x: toModelInput(images, { mean: meta.mean, std: meta.std, channelOrder: meta.channelOrder, ...size }), n: images.length, size };
    labels = images.map((im, k) => im.path ?? `image ${k}`);
  } else {
    const n = Math.min(opts.maxImages ?? 8, 4);
    samples = { kind: 'synthetic', n };
    labels = Array.from({ length: n }, (_, k) => `pseudo-random input ${k + 1}`);
  }
  const what = withImages ? `${samples.n} image(s) at ${size.height}x${size.width}` : `${samples.n} pseudo-random input(s) (the model has no image input)`;
  let a: Awaited<ReturnType<typeof runRaw>>;
  let b: Awaited<ReturnType<typeof runRaw>>;
  try {
    a = await runRaw(before, samples, null, opts);
  } catch (err) {
    if (err instanceof LesionFuseError) throw err;
    throw new LesionFuseError(`the original model does not run in onnxruntime: ${describeError(err)}`);
  }
  const fail = (message: string) => failed(mode, tolerance, minDice, samples.n, size, a.outputs, metadataChanges, message);
  try {
    b = await runRaw(after, samples, a.outputs, opts);
  } catch (err) {
    return fail(`the rewritten model does not run in onnxruntime: ${describeError(err)}`);
  }
  for (const o of a.outputs) {
    if (a.shapes.get(o)!.join('x') !== b.shapes.get(o)!.join('x')) {
      return fail(`output '${o}' shape changed: [${a.shapes.get(o)!.join(',')}] -> [${b.shapes.get(o)!.join(',')}] per sample`);
    }
  }
  const perImage: ParityImageResult[] = [];
  let maxAbs = 0;
  let sumAbs = 0;
  let count = 0;
  for (let k = 0; k < samples.n; k++) {
    let m = 0;
    let s = 0;
    let len = 0;
    for (const o of a.outputs) {
      const p = a.values.get(o)![k]!;
      const q = b.values.get(o)![k]!;
      for (let i = 0; i < p.length; i++) {
        const pi = p[i]!;
        const qi = q[i]!;
        let d = pi === qi ? 0 : Math.abs(pi - qi) / Math.max(1, Math.abs(pi));
        if (Number.isNaN(d)) d = Number.isNaN(pi) && Number.isNaN(qi) ? 0 : Infinity;
        if (d > m) m = d;
        s += d;
      }
      len += p.length;
    }
    maxAbs = Math.max(maxAbs, m);
    sumAbs += s;
    count += len;
    const first = a.outputs[0]!;
    perImage.push({ image: labels[k]!, maxAbsDiff: m, meanAbsDiff: s / Math.max(len, 1), diceAgreement: diceOfMasks(a.values.get(first)![k]!, b.values.get(first)![k]!, rawThreshold) });
  }
  const worst = Math.min(...perImage.map((r) => r.diceAgreement));
  const mean = sumAbs / Math.max(count, 1);
  const passed = mode === 'max-abs' ? maxAbs <= tolerance : worst >= minDice && Number.isFinite(maxAbs);
  const outs = a.outputs.length === 1 ? `output '${a.outputs[0]}'` : `${a.outputs.length} outputs`;
  let message =
    mode === 'max-abs'
      ? `raw ${outs}: max |dy| = ${maxAbs.toExponential(3)} on ${what} (tolerance ${tolerance}, relative above 1); worst mask Dice agreement ${worst.toFixed(5)}`
      : `worst mask Dice agreement = ${worst.toFixed(5)} on ${what} (minimum ${minDice}); raw ${outs}: max |dy| = ${maxAbs.toExponential(3)}`;
  if (metadataChanges.length) message += `; ${describeMetadataChanges(metadataChanges, maxAbs === 0)}`;
  return { passed, mode, tolerance, minDiceAgreement: minDice, images: samples.n, inputSize: size, maxAbsDiff: maxAbs, meanAbsDiff: mean, outputs: a.outputs, metadataChanges, worstDiceAgreement: worst, perImage, message };
}

/** One clause saying what a metadata change is: how the output is read, not a change of the output. */
export function describeMetadataChanges(changes: MetadataChange[], outputsIdentical: boolean): string {
  const list = changes.map((c) => `${c.key} ${c.before ?? '(unset)'} -> ${c.after ?? '(unset)'}`).join(', ');
  return `metadata changed (${list}): this changes how LesionFuse reads the model${outputsIdentical ? ', not its outputs, which are identical' : ''}`;
}

function failed(mode: ParityMode, tolerance: number, minDice: number, n: number, size: { height: number; width: number }, outputs: string[], metadataChanges: MetadataChange[], message: string): ParityReport {
  return { passed: false, mode, tolerance, minDiceAgreement: minDice, images: n, inputSize: size, maxAbsDiff: Infinity, meanAbsDiff: Infinity, outputs, metadataChanges, worstDiceAgreement: 0, perImage: [], message };
}
