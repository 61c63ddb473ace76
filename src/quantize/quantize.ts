/**
 * `quantize(model, opts)`: static INT8 (QDQ) with calibration on real images, an accuracy
 * gate measured as Dice on the validation split, and sensitivity-driven exclusion of the
 * layers that cost the most Dice. `quantizeFile` adds reading, the gate's refusal to write
 * and the record written next to the model (OUT.quant.json).
 *
 * @example
 *   const model = await readModel('student.onnx');
 *   const r = await quantize(model, { calib: '../shared/data' });  // train split calibrates, val gates
 *   console.log(r.dice, r.gate.verdict, r.floatNodes.filter((f) => f.reason.startsWith('sensitivity')));
 */
import * as ort from '../util/ort.js';
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { arch, cpus } from 'node:os';
import type { Graph, Model } from '../onnx/ir.js';
import { cloneModel } from '../onnx/graph.js';
import { encodeModel, readModel, writeModel } from '../onnx/io.js';
import { readSegmentationMetadata, type SegmentationMetadata } from '../onnx/metadata.js';
import { foldBatchNormIntoConv } from '../export/batchnorm.js';
import { openDataset } from '../runtime/dataset.js';
import { decodeImage, readMask, resizeMaskNearest, toModelInput } from '../runtime/image.js';
import { dice } from '../runtime/metrics.js';
import { imageFeatures } from '../runtime/subgroups.js';
import { nonInferiority, type NonInferiorityResult } from '../runtime/noninferiority.js';
import { LesionFuseError, describeError } from '../util/errors.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { log } from '../util/log.js';
import { Progress } from '../util/progress.js';
import { VERSION } from '../version.js';
import { planQuantization, insertQdq, type FloatNode, type PlannedNode, type QdqInsertionRecord, type QdqOptions, type QuantizationPlan, type TensorRange } from './qdq.js';
import { quantizeDynamicMatMuls } from './dynamic.js';
import {
  collectRanges, createCalibrator, listImageFiles, spreadSample, chunks, type CalibrationBatch, type CalibrationMethod, type CalibratorOptions,
} from './calibrate.js';

/** Options of {@link quantize}. Every field has a default; `calib` is the one you must give. */
export interface QuantizeOptions {
  /** Calibration images: a dataset folder (its train split is used, never test) or a plain folder of images. */
  calib: string;
  /** 'minmax' (default: the peer's default, and the most robust on small samples), 'percentile' or 'entropy'. */
  calibrator?: CalibrationMethod;
  calibratorOptions?: CalibratorOptions;
  /** Calibration images at most (default 64), spread evenly over the list. */
  calibLimit?: number;
  /** Images per calibration run when the model's batch dimension is free (default 4). */
  batch?: number;
  /** Dataset whose val split measures Dice for the gate and sensitivity (default: `calib` when it has a val split). */
  val?: string;
  /** Val images at most (default 32), spread over the split. */
  valLimit?: number;
  /**
   * Which split of `val` measures Dice (default 'val'). 'all' takes every image of a folder without
   * splits (an images/masks folder of your own); keep it apart from the calibration images.
   */
  valSplit?: 'train' | 'val' | 'test' | 'all';
  /** Largest Dice drop (float minus INT8, on val) accepted (default 0.01). */
  gate?: number;
  /** 'auto' (default): per-layer sensitivity only when the gate fails; 'always'; 'off'. */
  sensitivity?: 'auto' | 'always' | 'off';
  /**
   * Val images used by each per-layer probe (default 8, the first of the val sample): a probe per layer
   * times these images is the cost of sensitivity, so it is kept smaller than the gate's sample.
   */
  sensitivityImages?: number;
  /** Layers the automatic exclusion may keep in float at most (default 24). */
  maxAutoExcluded?: number;
  /**
   * Activation type. 'auto' (default): 'uint8' (U8S8) on x86, where onnxruntime runs INT8 Conv kernels
   * with uint8 activations and fuses an int8-activation Conv only when it can convert its neighbours
   * (measured: half the Convs of a small net stayed DQ + float Conv with int8); 'int8' (S8S8) elsewhere.
   */
  activations?: 'int8' | 'uint8' | 'auto';
  /** Weight type: 'int8' (default, per channel) or 'uint8' (per tensor: the accuracy trap, for comparison only). */
  weights?: 'int8' | 'uint8';
  /** Per-channel weight scales (default true). */
  perChannel?: boolean;
  /**
   * 7-bit weights. 'auto' (default) turns it on where onnxruntime's x86 INT8 kernels would saturate
   * full 8-bit weights (x86 CPUs without VNNI: u8s8 products summed in int16); off on ARM and VNNI CPUs.
   */
  reduceRange?: boolean | 'auto';
  /** Node names kept in float (unnamed nodes: `OpType#index`). */
  exclude?: readonly string[];
  /** 'vit-safe' (default) or 'all' (see QdqOptions.preset). */
  preset?: 'vit-safe' | 'all';
  /** MatMuls with a constant weight in dynamic INT8 instead of static QDQ (default false). */
  dynamicMatMuls?: boolean;
  /** Fold BatchNormalization into the preceding Conv before quantizing (default true). */
  foldBatchNorm?: boolean;
  /** Fixed input size when the model's H and W are symbolic and its metadata does not say. */
  inputSize?: { height: number; width: number };
  /** onnxruntime intra-op threads for calibration and evaluation (default 0 = all cores). */
  threads?: number;
  /** Show progress bars (default true). */
  progress?: boolean;
}

/** One layer's Dice cost when it alone is quantized. */
export interface LayerSensitivity {
  node: string;
  opType: string;
  /** Dice(float) - Dice(only this layer INT8), on the val images. */
  diceDrop: number;
}

/** Everything a quantization did and measured: written as OUT.quant.json. */
export interface QuantizeResult {
  model: Model;
  quantizedNodes: PlannedNode[];
  floatNodes: FloatNode[];
  dynamicMatMuls: string[];
  calibration: { method: CalibrationMethod; source: string; images: number; batches: number; seconds: number; tensors: number };
  /** Dice at the model's input resolution on the val images, or null when no val masks were available. */
  dice: { float: number; quantized: number; drop: number; images: number; source: string; resolution: string } | null;
  gate: {
    maxDrop: number;
    passed: boolean | null;
    verdict: string;
    /** The non-inferiority decision on the paired per-image val Dice (null without val masks). */
    decision: { verdict: string; n: number; meanLoss: number; lossCi95: [number, number]; worstGroup: { dimension: string; group: string; n: number; lossCi95: [number, number] } | null; tooSmall: string[] } | null;
  };
  sensitivity: LayerSensitivity[] | null;
  autoExcluded: LayerSensitivity[];
  settings: {
    activations: 'int8' | 'uint8';
    activationsReason: string;
    weights: 'int8' | 'uint8';
    perChannel: boolean;
    reduceRange: boolean;
    reduceRangeReason: string;
    preset: 'vit-safe' | 'all';
    batchNormFolded: number;
    opset: number;
  };
  insertion: QdqInsertionRecord;
  seconds: number;
  versions: { lesionfuse: string; node: string; onnxruntime: string };
}

/** CPU features that decide whether full 8-bit weights are safe in onnxruntime's x86 INT8 kernels. */
export function cpuInt8Features(): { arch: string; model: string; flags: string[]; vnni: boolean } {
  let flags: string[] = [];
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const line = info.split('\n').find((l) => l.startsWith('flags') || l.startsWith('Features'));
    flags = line ? line.split(':')[1]!.trim().split(/\s+/) : [];
  } catch {
    /* not Linux: no flags */
  }
  const wanted = ['avx2', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx_vnni', 'amx_int8', 'asimddp', 'i8mm'];
  const have = flags.filter((f) => wanted.includes(f));
  return { arch: arch(), model: cpus()[0]?.model ?? 'unknown', flags: have, vnni: have.some((f) => f.includes('vnni') || f === 'amx_int8') };
}

export function decideReduceRange(opt: boolean | 'auto' | undefined): { value: boolean; reason: string } {
  if (opt === true) return { value: true, reason: 'asked for' };
  if (opt === false) return { value: false, reason: 'asked for' };
  const f = cpuInt8Features();
  if (f.arch !== 'x64' && f.arch !== 'ia32') return { value: false, reason: `auto: ${f.arch} CPU (no u8s8 int16 saturation)` };
  if (f.vnni) return { value: false, reason: `auto: this CPU has ${f.flags.filter((x) => x.includes('vnni') || x === 'amx_int8').join(', ')}` };
  return { value: true, reason: `auto: x86 CPU without VNNI (${f.flags.join(', ') || 'no AVX flags'}): onnxruntime's u8s8 kernels would saturate 8-bit weights` };
}

export function decideActivations(opt: 'int8' | 'uint8' | 'auto' | undefined): { value: 'int8' | 'uint8'; reason: string } {
  if (opt === 'int8' || opt === 'uint8') return { value: opt, reason: 'asked for' };
  const a = arch();
  if (a === 'x64' || a === 'ia32') return { value: 'uint8', reason: "auto: x86 CPU, onnxruntime's INT8 Conv kernels take uint8 activations (U8S8)" };
  return { value: 'int8', reason: `auto: ${a} CPU (S8S8 runs natively)` };
}

export interface ModelIO {
  inputName: string;
  outputName: string;
  height: number;
  width: number;
  batchFree: boolean;
  meta: SegmentationMetadata;
}

/** The model's image input, its size and whether its batch dimension is free. */
export function modelIO(model: Model, inputSize?: { height: number; width: number }): ModelIO {
  const g = model.graph;
  const inits = new Set(g.initializers.map((t) => t.name));
  const inputs = g.inputs.filter((i) => !inits.has(i.name));
  if (inputs.length !== 1) throw new LesionFuseError(`the model must have one image input; found ${inputs.length} (${inputs.map((i) => i.name).join(', ')})`);
  const inp = inputs[0]!;
  const shape = inp.shape;
  if (!shape || shape.length !== 4) throw new LesionFuseError(`input '${inp.name}' must be [N, 3, H, W]; found ${shape ? `[${shape.join(', ')}]` : 'an unknown shape'}`);
  if (g.outputs.length < 1) throw new LesionFuseError('the model has no output');
  const meta = readSegmentationMetadata(model.metadata);
  const h = inputSize?.height ?? meta.inputSize?.height ?? (typeof shape[2] === 'number' ? shape[2] : null);
  const w = inputSize?.width ?? meta.inputSize?.width ?? (typeof shape[3] === 'number' ? shape[3] : null);
  if (!h || !w) throw new LesionFuseError(`input '${inp.name}' has a symbolic size [${shape.join(', ')}] and no lesionfuse.input_size metadata; give the input size (--input-size HxW)`);
  return { inputName: inp.name, outputName: g.outputs[0]!.name, height: h, width: w, batchFree: typeof shape[0] !== 'number', meta };
}

/** Image paths for calibration: a dataset's train split (never test), or every image of a plain folder. */
export async function calibrationImages(source: string, limit: number): Promise<string[]> {
  let paths: string[] = [];
  try {
    paths = (await openDataset(source, { split: 'train' })).items.map((i) => i.imagePath);
  } catch (err) {
    const msg = describeError(err);
    if (/has no train\/val\/test split/.test(msg)) {
      paths = (await openDataset(source, { split: 'all' })).items.map((i) => i.imagePath);
      if (paths.length) log.warn(`${source} has no train split; calibrating on all of its images (never calibrate on a test set)`);
    } else if (!/no dataset layout found/.test(msg)) throw err;
  }
  // not a dataset (or one without pairs): a plain folder of images
  if (paths.length === 0) paths = await listImageFiles(source);
  if (paths.length === 0) throw new LesionFuseError('no calibration images found', { subject: source });
  return spreadSample(paths, limit);
}

/** Decode and preprocess images into model-input batches, skipping (and naming) unreadable files. */
export async function* imageBatches(paths: readonly string[], io: ModelIO, batch: number): AsyncGenerator<CalibrationBatch> {
  const spec = { mean: io.meta.mean, std: io.meta.std, channelOrder: io.meta.channelOrder, height: io.height, width: io.width };
  for (const group of chunks(paths, io.batchFree ? Math.max(1, batch) : 1)) {
    const imgs = [];
    for (const p of group) {
      try {
        imgs.push(await decodeImage(p));
      } catch (err) {
        log.warn(`skipping calibration image: ${describeError(err)}`);
      }
    }
    if (imgs.length) yield { data: toModelInput(imgs, spec), n: imgs.length };
  }
}

/** Conv / ConvTranspose / Gemm / MatMul nodes inside the subgraphs (If/Loop/Scan bodies) of `g`, recursively. */
function nestedWeightOps(g: Graph, depth = 0): number {
  let n = 0;
  for (const node of g.nodes) {
    if (depth > 0 && ['Conv', 'ConvTranspose', 'Gemm', 'MatMul'].includes(node.opType)) n++;
    for (const a of Object.values(node.attributes)) if (a.type === 'graph') n += nestedWeightOps(a.value, depth + 1);
  }
  return n;
}

/** Images and masks at the model's resolution, decoded once and reused for every evaluation. */
export interface MaskedImageSet {
  source: string;
  batches: { data: Float32Array; n: number; masks: Uint8Array[] }[];
  images: number;
  /** Per image (in batch order): subgroup labels (source, skin tone, lesion size) from the image and its mask at the original size. */
  groups?: Record<string, string>[];
}

async function loadValSet(source: string, io: ModelIO, limit: number, batch: number, split: 'train' | 'val' | 'test' | 'all'): Promise<MaskedImageSet | null> {
  return loadMaskedImages(source, split, io, limit, batch);
}

/**
 * Up to `limit` images of a dataset split (spread over it) with their masks resized (nearest) to the
 * model's input size; null (with a warning) when the split is missing or empty.
 */
export async function loadMaskedImages(source: string, split: 'train' | 'val' | 'test' | 'all', io: ModelIO, limit: number, batch: number): Promise<MaskedImageSet | null> {
  let items;
  try {
    items = (await openDataset(source, { split })).items;
  } catch (err) {
    const msg = describeError(err);
    if (/has no train\/val\/test split/.test(msg)) {
      log.warn(`${source} has no ${split} split to measure Dice on (no MANIFEST.csv or splits/*.txt); --val-split all measures it on all of its images (use a folder other than the calibration images)`);
    } else log.warn(`no ${split} split to measure Dice on (${msg})`);
    return null;
  }
  if (items.length === 0) {
    log.warn(`${source} has an empty ${split} split`);
    return null;
  }
  const chosen = spreadSample(items, limit);
  const spec = { mean: io.meta.mean, std: io.meta.std, channelOrder: io.meta.channelOrder, height: io.height, width: io.width };
  const out: MaskedImageSet = { source, batches: [], images: 0, groups: [] };
  for (const group of chunks(chosen, io.batchFree ? Math.max(1, batch) : 1)) {
    const imgs = [];
    const masks = [];
    for (const it of group) {
      try {
        const img = await decodeImage(it.imagePath);
        const m = await readMask(it.maskPath);
        const feat = imageFeatures(img, m.data);
        imgs.push(img);
        masks.push(resizeMaskNearest(m, io.width, io.height).data);
        out.groups!.push({ source: it.source, 'skin tone (ITA)': feat.itaGroup, 'lesion size': feat.size });
      } catch (err) {
        log.warn(`skipping ${split} image: ${describeError(err)}`);
      }
    }
    if (imgs.length) {
      out.batches.push({ data: toModelInput(imgs, spec), n: imgs.length, masks });
      out.images += imgs.length;
    }
  }
  return out.images ? out : null;
}

/** Mean Dice of `model` on a masked image set at the model's resolution (onnxruntime-node, CPU). */
export async function diceAtModelResolution(model: Model, io: ModelIO, val: MaskedImageSet, threads: number): Promise<number> {
  const per = await diceAtModelResolutionPerImage(model, io, val, threads);
  return per.reduce((a, b) => a + b, 0) / per.length;
}

/** Dice of each image of `val` (in its order) at the model's input resolution: for paired comparisons. */
export async function diceAtModelResolutionPerImage(model: Model, io: ModelIO, val: MaskedImageSet, threads: number): Promise<number[]> {
  const session = await ort.InferenceSession.create(encodeModel(model), { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  const plane = io.height * io.width;
  const t = io.meta.threshold;
  const logitCut = Math.log(t / (1 - t));
  const per: number[] = [];
  try {
    for (const b of val.batches) {
      const out = await session.run({ [io.inputName]: new ort.Tensor('float32', b.data, [b.n, 3, io.height, io.width]) }, [io.outputName]);
      const y = out[io.outputName]!.data as Float32Array;
      if (y.length !== b.n * plane) throw new LesionFuseError(`output '${io.outputName}' has ${y.length / b.n} values per image, not ${io.height} x ${io.width}: not a segmentation map at the input size`);
      for (let i = 0; i < b.n; i++) {
        const pred = new Uint8Array(plane);
        const cut = io.meta.output === 'logits' ? logitCut : t;
        for (let p = 0; p < plane; p++) pred[p] = y[i * plane + p]! > cut ? 1 : 0;
        per.push(dice(pred, b.masks[i]!));
      }
    }
  } finally {
    await session.release();
  }
  return per;
}

function summariseGate(d: NonInferiorityResult): NonNullable<QuantizeResult['gate']['decision']> {
  const w = d.worstGroup;
  return { verdict: d.verdict, n: d.overall.n, meanLoss: d.overall.meanLoss, lossCi95: d.overall.ci95, worstGroup: w ? { dimension: w.dimension, group: w.group, n: w.n, lossCi95: w.ci95 } : null, tooSmall: d.tooSmall };
}

/** Build the INT8 model for a plan (static QDQ, then dynamic MatMuls when asked). */
function build(model: Model, plan: QuantizationPlan, ranges: Map<string, TensorRange>, qdq: QdqOptions, dynamic: boolean): { model: Model; record: QdqInsertionRecord; dynamic: string[]; dynFloat: FloatNode[] } {
  const s = insertQdq(model, plan, ranges, qdq);
  if (!dynamic) return { model: s.model, record: s.record, dynamic: [], dynFloat: [] };
  const d = quantizeDynamicMatMuls(s.model, { exclude: qdq.exclude, reduceRange: qdq.reduceRange });
  return { model: d.model, record: s.record, dynamic: d.quantized, dynFloat: d.float };
}

/**
 * Quantize `model` to static INT8 in QDQ form (see the module comment and QuantizeOptions).
 * Never writes anything; the gate's verdict is in the result (`quantizeFile` enforces it).
 */
export async function quantize(input: Model, opts: QuantizeOptions): Promise<QuantizeResult> {
  const t0 = performance.now();
  if (!opts.calib) throw new LesionFuseError('calibration images are required (--calib DIR)');
  const gate = opts.gate ?? 0.01;
  if (!(gate >= 0 && gate < 1)) throw new LesionFuseError(`--gate must be a Dice drop in [0, 1), got ${gate}`);
  const threads = opts.threads ?? 0;
  const batch = opts.batch ?? 4;
  const rr = decideReduceRange(opts.reduceRange);
  const act = decideActivations(opts.activations);
  const model = cloneModel(input);
  let folded = 0;
  if (opts.foldBatchNorm !== false) folded = foldBatchNormIntoConv(model).folded;
  const io = modelIO(model, opts.inputSize);
  const qdq: QdqOptions = {
    activationType: act.value,
    weightType: opts.weights ?? 'int8',
    perChannel: opts.perChannel ?? true,
    reduceRange: rr.value,
    exclude: opts.exclude ?? [],
    preset: opts.preset ?? 'vit-safe',
    dynamicMatMuls: opts.dynamicMatMuls ?? false,
  };
  const plan = planQuantization(model, qdq);
  if (plan.quantized.length === 0) {
    const nested = nestedWeightOps(model.graph);
    if (nested > 0) {
      throw new LesionFuseError(`nothing to quantize in the main graph: its ${nested} Conv/ConvTranspose/Gemm/MatMul node(s) are inside If/Loop/Scan branches, which quantize leaves in float`);
    }
    throw new LesionFuseError('nothing to quantize: the model has no Conv, ConvTranspose, Gemm or MatMul that can take INT8');
  }

  // calibration
  const method = opts.calibrator ?? 'minmax';
  const calibrator = createCalibrator(method, opts.calibratorOptions);
  const paths = await calibrationImages(opts.calib, opts.calibLimit ?? 64);
  const cal = await collectRanges(model, plan.calibrate, imageBatches(paths, io, batch), calibrator, {
    inputShape: [3, io.height, io.width],
    threads,
    total: paths.length,
    progress: opts.progress,
  });
  const missing = plan.calibrate.filter((t) => !cal.ranges.has(t));
  if (missing.length) throw new LesionFuseError(`calibration produced no values for ${missing.length} tensor(s), e.g. '${missing[0]}'`);
  // A plan that quantizes fewer nodes (one layer alone, or the full plan less the sensitive layers) can need
  // ranges the full plan shares from a neighbour (a Conv's output when its Relu is not quantized with it):
  // those are calibrated on demand, on the same images, with a fresh calibrator of the same method.
  const ensureRanges: EnsureRanges = async (tensors) => {
    const need = [...new Set(tensors)].filter((t) => !cal.ranges.has(t));
    if (need.length === 0) return;
    const more = await collectRanges(model, need, imageBatches(paths, io, batch), createCalibrator(method, opts.calibratorOptions), {
      inputShape: [3, io.height, io.width],
      threads,
      total: paths.length,
      progress: false,
    });
    for (const [k, v] of more.ranges) cal.ranges.set(k, v);
    const still = need.filter((t) => !cal.ranges.has(t));
    if (still.length) throw new LesionFuseError(`calibration produced no values for ${still.length} tensor(s), e.g. '${still[0]}'`);
  };

  // the full model and its Dice
  let current = build(model, plan, cal.ranges, qdq, qdq.dynamicMatMuls ?? false);
  let currentPlan = plan;
  const valSource = opts.val ?? opts.calib;
  const valSplit = opts.valSplit ?? 'val';
  const val = await loadValSet(valSource, io, opts.valLimit ?? 32, batch, valSplit);
  let diceFloat = NaN;
  let diceQ = NaN;
  let sensitivity: LayerSensitivity[] | null = null;
  const autoExcluded: LayerSensitivity[] = [];
  const sensMode = opts.sensitivity ?? 'auto';
  let perFloat: number[] = [];
  let perQ: number[] = [];
  const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
  if (val) {
    perFloat = await diceAtModelResolutionPerImage(model, io, val, threads);
    perQ = await diceAtModelResolutionPerImage(current.model, io, val, threads);
    diceFloat = mean(perFloat);
    diceQ = mean(perQ);
    log.info(`val Dice (${val.images} images at ${io.height}x${io.width}): float ${diceFloat.toFixed(4)}, INT8 ${diceQ.toFixed(4)}`);
    if (sensMode === 'always' || (sensMode === 'auto' && diceFloat - diceQ > gate)) {
      const probeSet = subset(val, opts.sensitivityImages ?? 8);
      const probeFloat = probeSet === val ? diceFloat : await diceAtModelResolution(model, io, probeSet, threads);
      sensitivity = await layerSensitivity(model, plan, cal.ranges, ensureRanges, qdq, io, probeSet, probeFloat, threads, opts.progress !== false);
      if (diceFloat - diceQ > gate) {
        const r = await excludeUntilWithinGate(model, sensitivity, cal.ranges, ensureRanges, qdq, io, val, diceFloat, gate, opts.maxAutoExcluded ?? 24, threads);
        if (r) {
          current = r.built;
          currentPlan = r.plan;
          perQ = await diceAtModelResolutionPerImage(current.model, io, val, threads);
          diceQ = mean(perQ);
          autoExcluded.push(...r.excluded);
        }
      }
    }
  } else if (sensMode === 'always') {
    throw new LesionFuseError('sensitivity analysis needs a val split with masks (--val DIR)');
  }
  const drop = diceFloat - diceQ;
  // The gate is a non-inferiority decision on the paired per-image Dice (runtime/noninferiority.ts): the
  // upper bound of the 95% interval of the loss within the gate, overall and in the worst subgroup with
  // enough images. With fewer val images than a decision needs it falls back to the mean drop, and says so.
  const decision = val ? nonInferiority({ candidate: perQ, reference: perFloat, groups: val.groups, margin: gate }) : null;
  const thin = decision?.verdict === 'too-few-images';
  const passed = val ? (thin ? drop <= gate : decision!.accepted) : null;
  const kept = autoExcluded.length ? (passed ? ` after keeping ${autoExcluded.length} sensitive layer(s) in float` : ` even with ${autoExcluded.length} layer(s) kept in float`) : '';
  const verdict = val
    ? thin
      ? `${passed ? 'passed' : 'failed'}: Dice drop ${drop.toFixed(4)} ${passed ? '<=' : '>'} ${gate}${kept} (a mean over only ${decision!.overall.n} val image(s), too few for the interval rule, which needs ${decision!.minGroupN})`
      : `${passed ? 'passed' : 'failed'}${kept}: ${decision!.reason}`
    : 'not evaluated: no val split with masks';
  const sensReason = new Map(autoExcluded.map((l) => [l.node, l]));
  const floatNodes = currentPlan.float.map((f) => {
    const s = sensReason.get(f.key);
    return s ? { ...f, reason: `sensitivity: alone it costs ${s.diceDrop.toFixed(4)} Dice on val; kept in float to meet the gate` } : f;
  });
  const dynSet = new Set(current.dynamic);
  return {
    model: current.model,
    quantizedNodes: currentPlan.quantized,
    floatNodes: floatNodes.map((f) => (dynSet.has(f.key) ? { ...f, reason: 'dynamic INT8 (DynamicQuantizeLinear + MatMulInteger)' } : f)),
    dynamicMatMuls: current.dynamic,
    calibration: { method, source: opts.calib, images: cal.images, batches: cal.batches, seconds: cal.seconds, tensors: plan.calibrate.length },
    dice: val ? { float: diceFloat, quantized: diceQ, drop, images: val.images, source: `${valSource} (${valSplit === 'all' ? 'all images' : `${valSplit} split`})`, resolution: `${io.height}x${io.width} (model input)` } : null,
    gate: { maxDrop: gate, passed, verdict, decision: decision ? summariseGate(decision) : null },
    sensitivity,
    autoExcluded,
    settings: {
      activations: qdq.activationType!,
      activationsReason: act.reason,
      weights: qdq.weightType!,
      perChannel: qdq.perChannel!,
      reduceRange: rr.value,
      reduceRangeReason: rr.reason,
      preset: qdq.preset!,
      batchNormFolded: folded,
      opset: model.opsetImports.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 0,
    },
    insertion: current.record,
    seconds: (performance.now() - t0) / 1000,
    versions: { lesionfuse: VERSION, node: process.version, onnxruntime: ort.env.versions?.common ?? 'unknown' },
  };
}

/** The first `n` images of a set (whole batches), for cheaper probes. */
function subset(set: MaskedImageSet, n: number): MaskedImageSet {
  if (set.images <= n) return set;
  const batches: MaskedImageSet['batches'] = [];
  let count = 0;
  for (const b of set.batches) {
    if (count >= n) break;
    batches.push(b);
    count += b.n;
  }
  return { source: set.source, batches, images: count };
}

/** Layers whose Dice cost is measured one by one: the ones that do INT8 work or set a range. */
function probeLayers(plan: QuantizationPlan): PlannedNode[] {
  return plan.quantized.filter((p) => p.kind === 'weight' || p.kind === 'activations' || p.kind === 'own');
}

/** Calibrates the tensors of `tensors` that have no range yet (into the shared range map). */
type EnsureRanges = (tensors: readonly string[]) => Promise<void>;

async function layerSensitivity(
  model: Model,
  plan: QuantizationPlan,
  ranges: Map<string, TensorRange>,
  ensureRanges: EnsureRanges,
  qdq: QdqOptions,
  io: ModelIO,
  val: MaskedImageSet,
  diceFloat: number,
  threads: number,
  progress: boolean,
): Promise<LayerSensitivity[]> {
  const layers = probeLayers(plan);
  const bar = progress ? new Progress('sensitivity', layers.length) : null;
  const out: LayerSensitivity[] = [];
  const plans = layers.map((l) => planQuantization(model, { ...qdq, only: new Set([l.key]) }));
  await ensureRanges(plans.flatMap((p) => p.calibrate)); // one extra calibration pass at most
  for (const [i, l] of layers.entries()) {
    const p = plans[i]!;
    const m = insertQdq(model, p, ranges, qdq).model;
    const d = await diceAtModelResolution(m, io, val, threads);
    out.push({ node: l.key, opType: l.opType, diceDrop: diceFloat - d });
    bar?.tick(1, l.key);
  }
  return out.sort((a, b) => b.diceDrop - a.diceDrop);
}

/**
 * Keep the k most sensitive layers in float for the smallest k (doubling, then bisecting)
 * whose model meets the gate; null when even `maxK` layers do not.
 */
async function excludeUntilWithinGate(
  model: Model,
  sens: LayerSensitivity[],
  ranges: Map<string, TensorRange>,
  ensureRanges: EnsureRanges,
  qdq: QdqOptions,
  io: ModelIO,
  val: MaskedImageSet,
  diceFloat: number,
  gate: number,
  maxK: number,
  threads: number,
): Promise<{ built: ReturnType<typeof build>; plan: QuantizationPlan; dice: number; excluded: LayerSensitivity[] } | null> {
  const cache = new Map<number, { built: ReturnType<typeof build>; plan: QuantizationPlan; dice: number }>();
  const tryK = async (k: number) => {
    const have = cache.get(k);
    if (have) return have;
    const exclude = [...(qdq.exclude ?? []), ...sens.slice(0, k).map((s) => s.node)];
    const o = { ...qdq, exclude };
    const plan = planQuantization(model, o);
    await ensureRanges(plan.calibrate);
    const built = build(model, plan, ranges, o, o.dynamicMatMuls ?? false);
    const dice = await diceAtModelResolution(built.model, io, val, threads);
    log.info(`  ${k} most sensitive layer(s) in float: val Dice ${dice.toFixed(4)} (drop ${(diceFloat - dice).toFixed(4)})`);
    const r = { built, plan, dice };
    cache.set(k, r);
    return r;
  };
  const limit = Math.min(maxK, sens.length);
  let lo = 0;
  let hi = -1;
  for (let k = 1; k <= limit; k = k * 2 > limit && k < limit ? limit : k * 2) {
    if (diceFloat - (await tryK(k)).dice <= gate) {
      hi = k;
      break;
    }
    lo = k;
    if (k === limit) break;
  }
  if (hi < 0) return null;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (diceFloat - (await tryK(mid)).dice <= gate) hi = mid;
    else lo = mid;
  }
  const r = cache.get(hi)!;
  return { ...r, excluded: sens.slice(0, hi) };
}

/** What `quantizeFile` writes next to the model: the result without the model itself. */
export function quantizationRecord(r: QuantizeResult, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { model: _m, ...rest } = r;
  void _m;
  return { ...extra, ...rest, cpu: cpuInt8Features() };
}

/**
 * Read `inputPath`, quantize it, and write `outputPath` and `outputPath + '.quant.json'`
 * atomically. Refuses (LesionFuseError with the measured drop) to write a model that
 * fails the gate, unless `force`.
 */
export async function quantizeFile(inputPath: string, outputPath: string, opts: QuantizeOptions & { force?: boolean }): Promise<QuantizeResult> {
  try {
    const s = await stat(inputPath);
    if (s.isDirectory()) throw new LesionFuseError('is a folder, not an ONNX model', { subject: inputPath });
  } catch (err) {
    if (err instanceof LesionFuseError) throw err;
    throw new LesionFuseError('no such file', { subject: inputPath });
  }
  const model = await readModel(inputPath);
  const r = await quantize(model, opts);
  if (r.gate.passed === false && !opts.force) {
    throw new LesionFuseError(
      `INT8 model not written: val Dice drop ${r.dice!.drop.toFixed(4)} (float ${r.dice!.float.toFixed(4)} -> INT8 ${r.dice!.quantized.toFixed(4)}) ${r.dice!.drop > r.gate.maxDrop ? `exceeds the gate ${r.gate.maxDrop}` : `is within the gate ${r.gate.maxDrop} on average, but ${r.gate.verdict.replace(/^failed: /, '')}`}; exclude layers (--exclude), raise --gate, or --force to write it anyway`,
      { subject: outputPath },
    );
  }
  if (r.gate.passed === false) log.warn(`--force: writing a model that fails the gate (${r.gate.verdict})`);
  await writeModel(r.model, outputPath);
  await writeJsonAtomic(`${outputPath}.quant.json`, quantizationRecord(r, { input: inputPath, output: outputPath, forced: Boolean(opts.force && r.gate.passed === false) }));
  return r;
}
