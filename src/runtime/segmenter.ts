/**
 * `Segmenter`: image file -> lesion mask at the original size, over onnxruntime.
 *
 * Preprocessing (input size, mean/std, channel order) and postprocessing (logits or probabilities,
 * threshold) come from the model's `lesionfuse.*` metadata (CONTRIBUTING.md) unless options override
 * them, so a model carries how it must be fed. The model's inputs and outputs are checked once, up front,
 * against what a segmentation model looks like (docs/inputs.md, "Models"): one NCHW float image input, one
 * segmentation map output; anything else is refused with the shapes found and the option that fixes it.
 */
import { DataType, defaultOpset, type Dim, type Model, type ValueInfo } from '../onnx/ir.js';
import { inferGraphShapes } from '../onnx/shape.js';
import { readModel } from '../onnx/io.js';
import { readSegmentationMetadata, type SegmentationMetadata } from '../onnx/metadata.js';
import { float16ToFloat32 } from '../onnx/tensor.js';
import { lesionPostprocess } from './postprocess.js';
import { resolveModelPath } from '../models.js';
import { LesionFuseError } from '../util/errors.js';
import {
  decodeImage,
  decodeResized,
  normaliseInto,
  resizeBilinearU8,
  resizeDecodedFast,
  resizeProbability,
  thresholdUpscaled,
  type DecodedImage,
  type ResizeMode,
} from './image.js';
import { loadProfile, type GraphOptimizationLevel, type Profile } from './profiles.js';
import { RuntimeSession, type ProviderCheck } from './session.js';

/** The profile a Segmenter uses when none is given: all cores of this machine, CPU. */
export const DEFAULT_PROFILE = 'cpu-all';

/**
 * The resize used when neither the options nor the model's `lesionfuse.resize` metadata choose one.
 * 'exact' (Pillow's BILINEAR, what the models were trained with): the libvips input path ('fast') did not reach
 * the mask agreement asked of it on the test split (reports/runtime/fast-path-agreement.md), so it is opt-in.
 */
export const DEFAULT_RESIZE: ResizeMode = 'exact';

/**
 * A mask post-processing step applied at the original resolution after thresholding (e.g. keep the
 * largest component, fill holes). `describe` is recorded with the outputs (segment.json).
 */
export interface MaskPostprocess {
  describe: string | Record<string, unknown>;
  apply(mask: Uint8Array, width: number, height: number): Uint8Array | Promise<Uint8Array>;
}

/** What can be segmented: a file path, the file's bytes, or an image decoded with `decodeImage`. */
export type SegmentInput = string | Uint8Array | DecodedImage;

/** An image prepared for the model (decoded at the model's input size), see {@link Segmenter.prepare}. */
export interface PreparedImage {
  /** Original size (after EXIF orientation): the mask's size. */
  width: number;
  height: number;
  /** The model-size RGB pixels (HWC). */
  pixels: Uint8Array;
  warnings: string[];
  path?: string;
}

export interface SegmenterOptions {
  /** Profile name, path or object (default {@link DEFAULT_PROFILE}). */
  profile?: string | Profile;
  /** Intra-op threads, overriding the profile's. */
  threads?: number;
  /** Graph optimization level, overriding the profile's. */
  graphOptimizationLevel?: GraphOptimizationLevel;
  /** Per-channel normalisation of 0-1 pixels (default: model metadata, else ImageNet). */
  mean?: [number, number, number];
  std?: [number, number, number];
  /** Default: model metadata, else RGB. */
  channelOrder?: 'RGB' | 'BGR';
  /** Probability threshold for the mask (default: model metadata, else 0.5). */
  threshold?: number;
  /** Whether the model outputs logits (sigmoid applied here) or probabilities (default: metadata, else logits). */
  outputKind?: 'logits' | 'probabilities';
  /** Model input size for models with dynamic H/W (default: metadata, then the profile's inputSize). */
  inputSize?: { height: number; width: number };
  /** Which output to use when the model has several (`--output NAME`). */
  output?: string;
  /** Decompression-bomb limit for images read by path (see image.ts, default 100 megapixels). */
  maxPixels?: number;
  /**
   * How images are resized to the model and the map back: 'fast' (libvips on decode and on the way
   * back) or 'exact' (Pillow-exact BILINEAR in, PyTorch-style bilinear map out, in JavaScript).
   * Default: the model's `lesionfuse.resize` metadata, else {@link DEFAULT_RESIZE}.
   */
  resize?: ResizeMode;
  /** Mask post-processing at the original resolution (none by default). */
  postprocess?: MaskPostprocess | 'lesion' | 'none';
}

export interface SegmentResult {
  /** Original image size (after EXIF orientation). */
  width: number;
  height: number;
  /**
   * Lesion probability per pixel at the original size (width * height). With the fast path it is made
   * on first access (from the same 16-bit map the mask was thresholded from), so a caller that needs
   * only the mask never pays for it.
   */
  readonly probability: Float32Array;
  /** probability > threshold (then post-processed, if asked), 0/1, width * height. Fits `writeMaskPng`. */
  mask: Uint8Array;
  /** The probability map at the model's output resolution. */
  modelProbability: { width: number; height: number; data: Float32Array };
  /** How the image was resized ('fast' or 'exact'). */
  resize: ResizeMode;
  /** Decoding conversions and size warnings for this image. */
  warnings: string[];
  path?: string;
}

/** The resolved preprocessing and postprocessing of a Segmenter. */
export type ResolvedMetadata = Omit<SegmentationMetadata, 'inputSize' | 'resize'> & { inputSize: { height: number; width: number }; resize: ResizeMode };

function shapeText(shape: readonly Dim[] | null): string {
  return shape === null ? '[unknown rank]' : `[${shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
}

function describeValues(vs: readonly ValueInfo[]): string {
  return vs.map((v) => `'${v.name}' ${shapeText(v.shape)}`).join(', ');
}

interface ModelIO {
  input: ValueInfo;
  output: ValueInfo;
  /** Fixed batch size of the input (1 for models exported with batch 1), or null when dynamic. */
  fixedBatch: number | null;
  inputSize: { height: number; width: number } | null;
}

/** Check a model's inputs and outputs against what a segmentation model must look like. */
export function checkSegmentationIO(model: Model, subject: string, opts: { output?: string } = {}): ModelIO {
  const inits = new Set(model.graph.initializers.map((i) => i.name));
  const inputs = model.graph.inputs.filter((i) => !inits.has(i.name));
  if (inputs.length !== 1) {
    throw new LesionFuseError(
      `a segmentation model takes one image tensor, this one has ${inputs.length} inputs (${describeValues(inputs) || 'none'}); export it with a single [N, 3, H, W] input`,
      { subject },
    );
  }
  const input = inputs[0]!;
  if (input.dataType !== DataType.FLOAT) {
    throw new LesionFuseError(
      `input '${input.name}' has data type ${DataType[input.dataType] ?? input.dataType}; LesionFuse feeds float32 images (keep float32 inputs when converting to fp16/int8)`,
      { subject },
    );
  }
  const s = input.shape;
  if (!s || s.length !== 4) {
    throw new LesionFuseError(`input '${input.name}' has shape ${shapeText(s)}; expected an image tensor [N, 3, H, W]`, { subject });
  }
  if (typeof s[1] === 'number' && s[1] !== 3) {
    const hint = s[3] === 3 ? ' (it looks channels-last, NHWC: export it channels-first)' : '';
    throw new LesionFuseError(`input '${input.name}' has shape ${shapeText(s)}; expected 3 channels in [N, 3, H, W]${hint}`, { subject });
  }
  const fixedBatch = typeof s[0] === 'number' && s[0] > 0 ? s[0] : null;
  const h = s[2];
  const w = s[3];
  const inputSize = typeof h === 'number' && h > 0 && typeof w === 'number' && w > 0 ? { height: h, width: w } : null;

  const outs = model.graph.outputs;
  let output: ValueInfo | undefined;
  if (opts.output !== undefined) {
    output = outs.find((o) => o.name === opts.output);
    if (!output) throw new LesionFuseError(`no output named '${opts.output}'; outputs: ${describeValues(outs)}`, { subject: '--output' });
  } else if (outs.length !== 1) {
    throw new LesionFuseError(`model has ${outs.length} outputs (${describeValues(outs)}); choose the segmentation map with --output NAME (API: output)`, { subject });
  } else output = outs[0]!;
  const os = output.shape;
  const okRank = os === null || os.length === 3 || (os.length === 4 && (os[1] === 1 || typeof os[1] !== 'number'));
  if (!okRank) {
    throw new LesionFuseError(
      `output '${output.name}' has shape ${shapeText(os)}, not a segmentation map [N, 1, H, W] or [N, H, W]${outs.length > 1 ? `; other outputs: ${describeValues(outs.filter((o) => o !== output))} (--output NAME)` : ''}`,
      { subject },
    );
  }
  if (![DataType.FLOAT, DataType.FLOAT16].includes(output.dataType) && output.dataType !== DataType.UNDEFINED) {
    throw new LesionFuseError(`output '${output.name}' has data type ${DataType[output.dataType]}; expected float logits or probabilities`, { subject });
  }
  return { input, output, fixedBatch, inputSize };
}

/**
 * A segmentation output whose channel dimension is symbolic in the graph ([N, C, H, W]) but resolves to more
 * than one channel at the input size (a multi-class map) is refused here, once, instead of failing on every
 * image at run time. Where shape inference cannot say, the run-time check stays.
 */
function refuseMultiChannelOutput(ir: Model, io: ModelIO, size: { height: number; width: number }, subject: string): void {
  const os = io.output.shape;
  if (!os || os.length !== 4 || typeof os[1] === 'number') return;
  let channels: Dim | undefined;
  try {
    const inputs = ir.graph.inputs.map((v) => (v.name === io.input.name ? { ...v, shape: [1, 3, size.height, size.width] } : v));
    channels = inferGraphShapes({ ...ir.graph, inputs }, defaultOpset(ir) ?? 17, { useDeclared: false }).get(io.output.name)?.shape?.[1];
  } catch {
    return;
  }
  if (typeof channels === 'number' && channels > 1) {
    throw new LesionFuseError(
      `output '${io.output.name}' has ${channels} channels at ${size.height}x${size.width} (declared ${shapeText(os)}): a multi-class map, not one lesion map; export a single-channel [N, 1, H, W] output (or choose one with --output)`,
      { subject },
    );
  }
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** Segment skin-lesion images with an ONNX model (see the module comment). */
export class Segmenter {
  private constructor(
    private readonly rs: RuntimeSession,
    readonly metadata: ResolvedMetadata,
    readonly inputName: string,
    readonly outputName: string,
    readonly fixedBatch: number | null,
    readonly modelPath: string,
    private readonly maxPixels: number | undefined,
    readonly postprocess: MaskPostprocess | null,
  ) {}

  /**
   * Open a model (a path or `default:student`) under a profile. Reads the model's metadata, checks its
   * inputs and outputs, starts the session; refuses unavailable profiles (ProfileUnavailableError).
   */
  static async create(model: string, opts: SegmenterOptions = {}): Promise<Segmenter> {
    const path = resolveModelPath(model);
    const ir = await readModel(path, { loadExternalData: false });
    const meta = readSegmentationMetadata(ir.metadata);
    const io = checkSegmentationIO(ir, path, { output: opts.output });
    let profile = loadProfile(opts.profile ?? DEFAULT_PROFILE);
    if (opts.threads !== undefined) {
      if (!Number.isInteger(opts.threads) || opts.threads < 1) throw new LesionFuseError(`threads must be a positive integer, got ${opts.threads}`, { subject: '--threads' });
      profile = { ...profile, threads: opts.threads };
    }
    if (opts.graphOptimizationLevel) profile = { ...profile, graphOptimizationLevel: opts.graphOptimizationLevel };

    const fromModel = io.inputSize;
    const given = opts.inputSize ?? meta.inputSize ?? profile.inputSize ?? null;
    let inputSize: { height: number; width: number };
    if (fromModel) {
      if (opts.inputSize && (opts.inputSize.height !== fromModel.height || opts.inputSize.width !== fromModel.width)) {
        throw new LesionFuseError(
          `the model's input '${io.input.name}' is fixed at ${fromModel.height}x${fromModel.width}, but ${opts.inputSize.height}x${opts.inputSize.width} was asked for`,
          { subject: '--input-size' },
        );
      }
      inputSize = fromModel;
    } else if (given) {
      inputSize = given;
    } else {
      throw new LesionFuseError(
        `input '${io.input.name}' has dynamic height/width ${shapeText(io.input.shape)}; give the size with --input-size HxW (API: inputSize) or the model's lesionfuse.input_size metadata`,
        { subject: path },
      );
    }
    for (const [k, v] of [['height', inputSize.height], ['width', inputSize.width]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new LesionFuseError(`input ${k} must be a positive integer, got ${v}`, { subject: '--input-size' });
    }
    const threshold = opts.threshold ?? meta.threshold;
    if (!(threshold > 0 && threshold < 1)) throw new LesionFuseError(`threshold must be in (0, 1), got ${threshold}`, { subject: '--threshold' });
    const resolved: ResolvedMetadata = {
      ...meta,
      inputSize,
      mean: opts.mean ?? meta.mean,
      std: opts.std ?? meta.std,
      channelOrder: opts.channelOrder ?? meta.channelOrder,
      output: opts.outputKind ?? meta.output,
      threshold,
      resize: opts.resize ?? meta.resize ?? DEFAULT_RESIZE,
    };
    if (resolved.resize !== 'fast' && resolved.resize !== 'exact') throw new LesionFuseError(`resize must be fast or exact, got '${String(resolved.resize)}'`, { subject: '--resize' });
    if (resolved.std.some((x) => x === 0)) throw new LesionFuseError('std must not contain 0', { subject: '--std' });
    refuseMultiChannelOutput(ir, io, inputSize, path);
    const rs = await RuntimeSession.open(path, profile);
    // Post-processing: as asked, else as the model's metadata says it was validated (lesionfuse.postprocess), else none.
    const pp = opts.postprocess ?? meta.postprocess ?? 'none';
    const postprocess = pp === 'none' ? null : pp === 'lesion' ? lesionPostprocess() : pp;
    return new Segmenter(rs, resolved, io.input.name, io.output.name, io.fixedBatch, path, opts.maxPixels, postprocess);
  }

  /** The model input size (H x W) images are resized to. */
  get inputSize(): { height: number; width: number } {
    return this.metadata.inputSize;
  }

  get profile(): Profile {
    return this.rs.profile;
  }

  /** Where the nodes ran during the first run (see session.ts); null before the first run. */
  get providerCheck(): ProviderCheck | null {
    return this.rs.providerCheck;
  }

  /** The underlying session (for raw timing). */
  get session(): RuntimeSession {
    return this.rs;
  }

  /**
   * Run the model on a prepared NCHW batch of `n` images (see toModelInput) and return the chosen
   * output as float32, exactly as the model produces it (logits or probabilities), with its dims.
   * A model with a fixed batch size is run in chunks of that size.
   */
  async runTensorWithDims(x: Float32Array, n: number): Promise<{ data: Float32Array; dims: number[] }> {
    const { height: H, width: W } = this.inputSize;
    const per = 3 * H * W;
    if (x.length !== n * per) throw new LesionFuseError(`input tensor has ${x.length} values, not ${n} x 3 x ${H} x ${W}`);
    // A fixed-batch model runs in chunks of its batch, the last one padded with zeros.
    const chunk = this.fixedBatch ?? n;
    const parts: Float32Array[] = [];
    let dims: number[] = [];
    for (let start = 0; start < n; start += chunk) {
      const m = Math.min(chunk, n - start);
      let slice = x.subarray(start * per, (start + m) * per);
      if (m < chunk) {
        const padded = new Float32Array(chunk * per);
        padded.set(slice);
        slice = padded;
      }
      const feeds = { [this.inputName]: this.rs.floatTensor(slice, [chunk, 3, H, W]) };
      const out = await this.rs.run(feeds, [this.outputName]);
      const t = out[this.outputName]!;
      let data: Float32Array;
      if (t.type === 'float32') data = t.data as Float32Array;
      else if (t.type === 'float16') data = float16ToFloat32(t.data as Uint16Array);
      else throw new LesionFuseError(`output '${this.outputName}' came back as ${t.type}, expected float32`, { subject: this.modelPath });
      const d = [...t.dims];
      if (d[0] !== chunk) throw new LesionFuseError(`output '${this.outputName}' has batch ${d[0]} for an input batch of ${chunk}`, { subject: this.modelPath });
      const perOut = data.length / chunk;
      parts.push(data.subarray(0, m * perOut));
      dims = d;
    }
    const total = parts.reduce((s, p) => s + p.length, 0);
    const data = new Float32Array(total);
    let o = 0;
    for (const p of parts) {
      data.set(p, o);
      o += p.length;
    }
    dims[0] = n;
    return { data, dims };
  }

  /** {@link runTensorWithDims} without the dims. */
  async runTensor(x: Float32Array, n: number): Promise<Float32Array> {
    return (await this.runTensorWithDims(x, n)).data;
  }

  /** Segment one image: a path, the file's bytes, or a decoded image. */
  async segment(input: SegmentInput): Promise<SegmentResult> {
    return (await this.segmentBatch([input]))[0]!;
  }

  /**
   * Segment several images, `batchSize` (default: the profile's batch) at a time. A bad file throws
   * (callers that must go on, like `segmentFiles`, prepare each image themselves).
   */
  async segmentBatch(inputs: readonly SegmentInput[], opts: { batchSize?: number } = {}): Promise<SegmentResult[]> {
    const batchSize = opts.batchSize ?? this.profile.batch;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new LesionFuseError(`batch size must be a positive integer, got ${batchSize}`, { subject: '--batch' });
    const results: SegmentResult[] = [];
    for (let start = 0; start < inputs.length; start += batchSize) {
      const group = inputs.slice(start, start + batchSize);
      const prepared = await Promise.all(group.map((g) => this.prepare(g)));
      const maps = await this.infer(prepared);
      results.push(...(await Promise.all(prepared.map((p, k) => this.finish(p, maps[k]!)))));
    }
    return results;
  }

  /**
   * Step 1 of 3: decode an image to the model's input size (fast: libvips resize-on-decode; exact:
   * full decode, then Pillow-exact resize). Bad files throw a LesionFuseError naming them.
   */
  async prepare(input: SegmentInput, label?: string): Promise<PreparedImage> {
    const { height: H, width: W } = this.inputSize;
    const size = { width: W, height: H };
    let p: PreparedImage;
    if (typeof input === 'string' || input instanceof Uint8Array) {
      if (this.metadata.resize === 'fast') {
        const img = await decodeResized(input, size, { maxPixels: this.maxPixels, label });
        p = { width: img.width, height: img.height, pixels: img.data, warnings: [...img.warnings], path: img.path };
      } else {
        const img = await decodeImage(input, { maxPixels: this.maxPixels, label });
        p = { width: img.width, height: img.height, pixels: resizeBilinearU8(img.data, img.width, img.height, 3, W, H), warnings: [...img.warnings], path: img.path };
      }
    } else {
      if (input.data.length !== input.width * input.height * 3) {
        throw new LesionFuseError(`image has ${input.data.length} bytes, not ${input.width} x ${input.height} x 3`, { subject: input.path ?? 'image' });
      }
      const pixels = this.metadata.resize === 'fast' ? await resizeDecodedFast(input, size) : resizeBilinearU8(input.data, input.width, input.height, 3, W, H);
      p = { width: input.width, height: input.height, pixels, warnings: [...input.warnings], path: input.path };
    }
    if (p.width < W || p.height < H) {
      p.warnings.push(`image is ${p.width} x ${p.height}, smaller than the model input ${W} x ${H}: upscaled, so the mask is coarser than usual`);
    }
    return p;
  }

  /** Step 2 of 3: run the model on prepared images; one probability map per image at the output resolution. */
  async infer(prepared: readonly PreparedImage[]): Promise<{ width: number; height: number; data: Float32Array }[]> {
    const { height: H, width: W } = this.inputSize;
    const x = new Float32Array(prepared.length * 3 * H * W);
    prepared.forEach((p, n) => normaliseInto(p.pixels, { ...this.metadata, height: H, width: W }, x, n));
    const { data, dims } = await this.runTensorWithDims(x, prepared.length);
    const oh = dims.length === 4 ? dims[2]! : dims[1]!;
    const ow = dims.length === 4 ? dims[3]! : dims[2]!;
    const plane = oh * ow;
    if (data.length !== prepared.length * plane) {
      throw new LesionFuseError(`output '${this.outputName}' has shape [${dims.join(', ')}], not one map per image`, { subject: this.modelPath });
    }
    return prepared.map((_p, n) => {
      const map = new Float32Array(plane);
      const src = data.subarray(n * plane, (n + 1) * plane);
      if (this.metadata.output === 'logits') for (let i = 0; i < plane; i++) map[i] = sigmoid(src[i]!);
      else map.set(src);
      return { width: ow, height: oh, data: map };
    });
  }

  /**
   * Step 3 of 3: bring a map back to the image's size and threshold it (fast: one bilinear resample of
   * the map in libvips; exact: in JavaScript), then post-process the mask if asked.
   */
  async finish(p: PreparedImage, map: { width: number; height: number; data: Float32Array }): Promise<SegmentResult> {
    const t = this.metadata.threshold;
    const n = p.width * p.height;
    let mask: Uint8Array = new Uint8Array(n);
    let probability: Float32Array | null = null;
    // The mask straight from the model-resolution map (bit-identical to thresholding the full-size map);
    // the full-size probability is made only if someone reads it.
    mask = thresholdUpscaled(map.data, map.height, map.width, p.height, p.width, t);
    const getProbability = (): Float32Array => resizeProbability(map.data, map.height, map.width, p.height, p.width);
    if (this.postprocess) {
      mask = await this.postprocess.apply(mask, p.width, p.height);
      if (mask.length !== n) throw new LesionFuseError(`post-processing returned ${mask.length} values for a ${p.width} x ${p.height} mask`, { subject: p.path ?? 'image' });
    }
    const result = {
      width: p.width,
      height: p.height,
      mask,
      modelProbability: map,
      resize: this.metadata.resize,
      warnings: p.warnings,
      path: p.path,
    } as Omit<SegmentResult, 'probability'> & { probability: Float32Array };
    Object.defineProperty(result, 'probability', {
      enumerable: true,
      get: () => (probability ??= getProbability()),
    });
    return result;
  }

  async close(): Promise<void> {
    await this.rs.close();
  }
}
