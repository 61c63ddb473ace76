/**
 * `distill(opts)`: train a zoo student on the masks and the teacher's soft labels with the SDK's own
 * training engine, keep the best student by validation Dice, and write it as a plain ONNX model with the
 * metadata every later stage reads.
 *
 * The loop, per epoch: a seeded shuffle of the training images, batches of fixed size (the last partial
 * batch is dropped: the training graph has static shapes), seeded augmentation of image + mask + soft
 * label together, one engine step per batch; then validation Dice of the inference graph (BatchNorm on
 * running statistics) on the val split AT THE MODEL RESOLUTION against the masks resized the same way as
 * for training (good enough to select a checkpoint; `evaluate` reports at the original resolution), the
 * best student written when it improves, and a checkpoint. `resume` continues from the checkpoint as if
 * the run had not stopped (augmentation and shuffles are derived from (seed, epoch, batch), not from a
 * running random state).
 */
import { existsSync, promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import * as ort from '../util/ort.js';
import { readModel, writeModel, encodeModel } from '../onnx/io.js';
import type { Model } from '../onnx/ir.js';
import { IMAGENET_MEAN, IMAGENET_STD, readSegmentationMetadata, segmentationMetadataProps } from '../onnx/metadata.js';
import { openDataset, assertPaired, type DatasetItem } from '../runtime/dataset.js';
import { dice, mulberry32 } from '../runtime/metrics.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { LesionFuseError } from '../util/errors.js';
import { sha256File } from '../util/hash.js';
import { log } from '../util/log.js';
import { Progress } from '../util/progress.js';
import { VERSION } from '../version.js';
import { DEFAULT_AUGMENT, NO_AUGMENT, loadInMemoryDataset, makeBatch, type AugmentOptions, type InMemoryDataset, type LoadedDataset } from './augment.js';
import { appendLosses, DEFAULT_LOSS_WEIGHTS, DEFAULT_TEMPERATURE, type LossWeights } from './losses.js';
import { computeSoftLabels } from './softlabels.js';
import { checkSegmentationIO } from '../runtime/segmenter.js';
import { buildStudent, inferenceStudent, parseStudentName, type StudentName } from './zoo/index.js';
import { createEngine, type EngineHandle } from './distill-engine.js';

export interface DistillOptions {
  /** Teacher ONNX file (its input size and normalisation are the student's). Required unless `kd` is false. */
  teacher?: string;
  /** Zoo student: 'unet-small' | 'mobile-unet' | 'ultralight'. */
  student: StudentName | string;
  /** Student width (zoo default when omitted) and depth (default 4). */
  width?: number;
  depth?: number;
  /** Dataset folder (any layout `openDataset` reads). Layouts without splits hold out 10% (seeded) for validation. */
  data: string;
  /** Output folder: student.onnx, checkpoint, history.json, distill.json, the soft-label cache. */
  out: string;
  /** Epochs (default 10). */
  epochs?: number;
  /** Batch size (default 8). */
  batch?: number;
  /** Peak learning rate of AdamW (default 2e-3; warm-up then cosine to 5% of it). */
  lr?: number;
  /** AdamW decoupled weight decay (default 1e-4; not on biases and BN). */
  weightDecay?: number;
  /** Loss weights (default bce 1, dice 1, kd 1). */
  lossWeights?: Partial<LossWeights>;
  /** KD temperature (default 2). */
  temperature?: number;
  /** Distil from the teacher (default true). false = the same student on the masks alone (the baseline). */
  kd?: boolean;
  /** Use only N training images (a seeded random subset; default all). */
  limit?: number;
  /** Use only N validation images (a seeded random subset; default all). */
  valLimit?: number;
  /**
   * Stop after this many optimizer steps in total, with a checkpoint (default: run all epochs). The
   * learning-rate schedule still spans all `epochs`, so `resume` later continues the same run.
   */
  maxSteps?: number;
  /** Seed of the initial weights, subsets, shuffles and augmentation (default 0). */
  seed?: number;
  /** Continue from `<out>/checkpoint.lfck` (default false: an existing checkpoint is an error). */
  resume?: boolean;
  /** onnxruntime intra-op threads for training and teacher runs (default 2). */
  threads?: number;
  /** Augmentation (default {@link DEFAULT_AUGMENT}); `false` disables it. */
  augment?: AugmentOptions | false;
  /** Soft-label cache folder (default `<out>/cache/softlabels`). */
  cacheDir?: string;
  /** Input size when there is no teacher (default 192 x 256). With a teacher, the teacher's size is used. */
  inputSize?: { height: number; width: number };
  /** Go on without unpaired files instead of stopping (default false). */
  skipUnpaired?: boolean;
  /** Progress bars (default true). */
  progress?: boolean;
}

export interface EpochRecord {
  epoch: number;
  steps: number;
  /** Mean training loss and terms over the epoch's steps. */
  loss: number;
  terms: Record<string, number>;
  valDice: number;
  lr: number;
  seconds: number;
}

export interface DistillResult {
  /** The best-by-val student (inference graph, metadata set). */
  studentPath: string;
  student: StudentName;
  width: number;
  depth: number;
  paramCount: number;
  macs: number;
  bestEpoch: number;
  bestValDice: number;
  /** Teacher's val Dice at the model resolution on the same images (null without KD). */
  teacherValDice: number | null;
  history: EpochRecord[];
  teacherSha256: string | null;
  steps: number;
  trainImages: number;
  valImages: number;
}

export const CHECKPOINT_FILE = 'checkpoint.lfck';

function seededSubset<T>(items: readonly T[], n: number | undefined, seed: number): T[] {
  if (n === undefined || n >= items.length) return [...items];
  const idx = items.map((_, i) => i);
  const r = mulberry32(seed);
  for (let i = idx.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx.slice(0, n).sort((a, b) => a - b).map((i) => items[i]!);
}

/** A seeded permutation of 0..n-1 for an epoch (depends only on seed and epoch, so resume matches). */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  const r = mulberry32((seed * 1000003 + epoch * 7919 + 17) >>> 0);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx;
}

function positiveInt(v: number | undefined, name: string, dflt: number): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < 1) throw new LesionFuseError(`must be a positive integer, got ${v}`, { subject: name });
  return x;
}

/** Validation Dice (mean over images) of a student at the model resolution, threshold 0.5 on sigmoid. */
export async function validationDice(
  model: Model | Uint8Array,
  ds: InMemoryDataset,
  opts: { mean: readonly [number, number, number]; std: readonly [number, number, number]; threads?: number; batch?: number },
): Promise<number> {
  if (ds.ids.length === 0) return NaN;
  const session = await ort.InferenceSession.create(model instanceof Uint8Array ? model : encodeModel(model), {
    intraOpNumThreads: opts.threads ?? 2,
    interOpNumThreads: 1,
  });
  try {
    const plane = ds.height * ds.width;
    const bs = opts.batch ?? 8;
    let sum = 0;
    for (let s = 0; s < ds.ids.length; s += bs) {
      const idx = Array.from({ length: Math.min(bs, ds.ids.length - s) }, (_, k) => s + k);
      const b = makeBatch(ds, idx, { rand: () => 0, augment: NO_AUGMENT, mean: opts.mean, std: opts.std });
      const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', b.image, [idx.length, 3, ds.height, ds.width]) });
      const logits = out[session.outputNames[0]!]!.data as Float32Array;
      for (let k = 0; k < idx.length; k++) {
        const pred = new Uint8Array(plane);
        for (let i = 0; i < plane; i++) pred[i] = logits[k * plane + i]! > 0 ? 1 : 0;
        sum += dice(pred, ds.masks.subarray(idx[k]! * plane, (idx[k]! + 1) * plane));
      }
    }
    return sum / ds.ids.length;
  } finally {
    await session.release();
  }
}

/** Teacher's Dice at the model resolution from its cached logits (the ceiling the student is chasing). */
function softLabelDice(ds: InMemoryDataset): number {
  if (!ds.soft) return NaN;
  const plane = ds.height * ds.width;
  let sum = 0;
  for (let k = 0; k < ds.ids.length; k++) {
    const pred = new Uint8Array(plane);
    // float16 sign bit set = negative logit; 0x0000/0x8000 are zeros (sigmoid 0.5, not above the threshold).
    for (let i = 0; i < plane; i++) {
      const h = ds.soft[k * plane + i]!;
      pred[i] = (h & 0x8000) === 0 && (h & 0x7fff) !== 0 ? 1 : 0;
    }
    sum += dice(pred, ds.masks.subarray(k * plane, (k + 1) * plane));
  }
  return sum / ds.ids.length;
}

async function splitItems(
  data: string,
  seed: number,
  skipUnpaired: boolean,
): Promise<{ train: DatasetItem[]; val: DatasetItem[]; description: string }> {
  const all = await openDataset(data, { split: 'all' });
  assertPaired(all, skipUnpaired);
  const hasSplits = all.items.some((i) => i.split !== 'all');
  let train: DatasetItem[];
  let val: DatasetItem[];
  if (hasSplits) {
    train = all.items.filter((i) => i.split === 'train');
    val = all.items.filter((i) => i.split === 'val');
  } else {
    const shuffled = seededSubset(all.items, all.items.length, seed);
    const order = epochOrder(shuffled.length, seed, -1).map((i) => shuffled[i]!);
    const nVal = Math.max(1, Math.round(order.length * 0.1));
    val = order.slice(0, nVal);
    train = order.slice(nVal);
  }
  if (train.length === 0) throw new LesionFuseError('no training images (train split empty)', { subject: data });
  if (val.length === 0) throw new LesionFuseError('no validation images (val split empty)', { subject: data });
  const sources = [...new Set(all.items.map((i) => i.source))].sort().join(', ');
  const description = hasSplits
    ? `${all.layout} dataset ${all.root} (sources ${sources}): train split for training, val split for selection`
    : `${all.layout} dataset ${all.root} (sources ${sources}): seeded 90/10 train/val hold-out`;
  return { train, val, description };
}

/** Distil (or, with `kd: false`, train on masks alone) a zoo student. See the module comment. */
export async function distill(opts: DistillOptions): Promise<DistillResult> {
  const student = parseStudentName(opts.student);
  const kd = opts.kd ?? true;
  const seed = opts.seed ?? 0;
  const epochs = positiveInt(opts.epochs, '--epochs', 10);
  const batch = positiveInt(opts.batch, '--batch', 8);
  const threads = positiveInt(opts.threads, '--threads', 2);
  const lr = opts.lr ?? 2e-3;
  if (!(lr > 0 && lr < 1)) throw new LesionFuseError(`must be in (0, 1), got ${lr}`, { subject: '--lr' });
  const weightDecay = opts.weightDecay ?? 1e-4;
  const lossWeights = { ...DEFAULT_LOSS_WEIGHTS, ...opts.lossWeights };
  const temperature = opts.temperature ?? DEFAULT_TEMPERATURE;
  const augment = opts.augment === false ? NO_AUGMENT : { ...DEFAULT_AUGMENT, ...opts.augment };
  const out = resolve(opts.out);
  const progress = opts.progress ?? true;
  const ckptPath = join(out, CHECKPOINT_FILE);
  if (existsSync(ckptPath) && !opts.resume) {
    throw new LesionFuseError('a checkpoint from an earlier run is here: pass --resume to continue it, or use another --out', { subject: ckptPath });
  }
  if (opts.resume && !existsSync(ckptPath)) throw new LesionFuseError('--resume given but there is no checkpoint to resume', { subject: ckptPath });

  // Teacher: the input size and normalisation the student adopts.
  let teacherPath: string | null = null;
  let teacherSha256: string | null = null;
  let inputSize = opts.inputSize ?? { height: 192, width: 256 };
  let mean: [number, number, number] = IMAGENET_MEAN;
  let std: [number, number, number] = IMAGENET_STD;
  if (opts.teacher) {
    teacherPath = resolve(opts.teacher);
    if (!existsSync(teacherPath)) throw new LesionFuseError('teacher model not found', { subject: opts.teacher });
    const teacherModel = await readModel(teacherPath, { loadExternalData: false });
    const tm = readSegmentationMetadata(teacherModel.metadata);
    // The size the teacher takes: its graph's static H x W, else its metadata's, else --input-size.
    const fixedSize = checkSegmentationIO(teacherModel, opts.teacher).inputSize;
    const teacherSize = fixedSize ?? tm.inputSize ?? opts.inputSize ?? null;
    if (!teacherSize) {
      throw new LesionFuseError('the teacher\'s input height/width are symbolic and it has no lesionfuse.input_size; give --input-size HxW', { subject: opts.teacher });
    }
    if (fixedSize && opts.inputSize && (opts.inputSize.height !== fixedSize.height || opts.inputSize.width !== fixedSize.width)) {
      throw new LesionFuseError(`the teacher's input is fixed at ${fixedSize.height}x${fixedSize.width}, but --input-size ${opts.inputSize.height}x${opts.inputSize.width} was given`, { subject: opts.teacher });
    }
    if (tm.channelOrder !== 'RGB') throw new LesionFuseError('the teacher must take RGB input', { subject: opts.teacher });
    inputSize = teacherSize;
    mean = tm.mean;
    std = tm.std;
    teacherSha256 = await sha256File(teacherPath);
  } else if (kd) {
    throw new LesionFuseError('distillation needs --teacher (or pass --no-kd to train on the masks alone)', { subject: '--teacher' });
  }
  const { height, width } = inputSize;

  // Data: problems stop before the first step (openDataset's list).
  const split = await splitItems(opts.data, seed, opts.skipUnpaired ?? false);
  const trainItems = seededSubset(split.train, opts.limit, seed + 1);
  const valItems = seededSubset(split.val, opts.valLimit, seed + 2);
  if (trainItems.length < batch) {
    throw new LesionFuseError(`${trainItems.length} training image(s) is fewer than one batch of ${batch}`, { subject: '--batch' });
  }

  // Student and training graph (fails fast on a bad width/depth/size before any image is decoded).
  const studentOpts = { width: opts.width, depth: opts.depth, inputSize, seed };
  const s = buildStudent(student, { ...studentOpts, mode: 'train', batch });
  const lossGraph = appendLosses(s.model, { weights: lossWeights, temperature, kd });

  await fs.mkdir(out, { recursive: true });
  const train: LoadedDataset = await loadInMemoryDataset(trainItems, { height, width, label: 'loading train images', progress });
  const val: LoadedDataset = await loadInMemoryDataset(valItems, { height, width, label: 'loading val images', progress });
  for (const w of [...train.warnings, ...val.warnings].slice(0, 5)) log.warn(w);
  let teacherValDice: number | null = null;
  if (kd && teacherPath) {
    const cacheDir = opts.cacheDir ? resolve(opts.cacheDir) : join(out, 'cache', 'softlabels');
    const samples = (d: LoadedDataset) => d.imageSha256.map((key, i) => ({ key, rgb: d.images.subarray(i * height * width * 3, (i + 1) * height * width * 3) }));
    const tr = await computeSoftLabels(samples(train), { teacher: teacherPath, cacheDir, height, width, threads, progress });
    train.soft = tr.logits;
    const va = await computeSoftLabels(samples(val), { teacher: teacherPath, cacheDir, height, width, threads, progress });
    val.soft = va.logits;
    teacherValDice = softLabelDice(val);
    log.info(`soft labels: ${tr.hits + va.hits} from the cache, ${tr.misses + va.misses} computed (${tr.folder})`);
    log.info(`teacher val Dice at ${height}x${width}: ${teacherValDice.toFixed(4)}`);
  }

  const stepsPerEpoch = Math.floor(train.ids.length / batch);
  const scheduleSteps = epochs * stepsPerEpoch;
  const stopAt = Math.min(opts.maxSteps ?? Infinity, scheduleSteps);
  // What must match for a resume to continue the same run (not the stopping point, not the progress bar).
  const config = {
    student, width: s.width, depth: s.depth, kd, lossWeights: kd ? lossWeights : { bce: lossWeights.bce, dice: lossWeights.dice },
    temperature: kd ? temperature : null, lr, weightDecay, batch, epochs, seed, limit: opts.limit ?? null, valLimit: opts.valLimit ?? null,
    augment, inputSize, teacherSha256, trainImages: train.ids.length,
  };
  const engine: EngineHandle = await createEngine({
    lossModel: lossGraph.model,
    loss: lossGraph.loss,
    params: s.params,
    monitor: Object.values(lossGraph.components),
    batch,
    height,
    width,
    lr,
    weightDecay,
    totalSteps: scheduleSteps,
    warmupSteps: Math.min(100, Math.max(1, Math.round(scheduleSteps * 0.05))),
    seed,
    threads,
    config,
  });

  // Loop state, carried through checkpoints: the epoch in progress, its next batch and partial sums.
  interface LoopState {
    epoch: number;
    nextBatch: number;
    partial: { sums: Record<string, number>; nSteps: number; seconds: number };
    step: number;
    bestValDice: number;
    bestEpoch: number;
    history: EpochRecord[];
  }
  let st: LoopState = { epoch: 0, nextBatch: 0, partial: { sums: {}, nSteps: 0, seconds: 0 }, step: 0, bestValDice: -1, bestEpoch: -1, history: [] };
  if (opts.resume) {
    st = (await engine.load(ckptPath)) as LoopState;
    log.info(`resuming at epoch ${st.epoch + 1}, batch ${st.nextBatch + 1} (step ${st.step}; best val Dice ${st.bestValDice.toFixed(4)} at epoch ${st.bestEpoch})`);
  }

  const studentPath = join(out, 'student.onnx');
  const modelName = `${student}-w${s.width}-d${s.depth}${kd ? '-kd' : '-masks'}`;
  const writeStudent = async (values: Map<string, Float32Array>, valDice: number, epoch: number): Promise<void> => {
    const inf = inferenceStudent(student, studentOpts, values);
    inf.model.metadata = {
      ...segmentationMetadataProps({ inputSize, mean, std, channelOrder: 'RGB', output: 'logits', threshold: 0.5, modelName }),
      'lesionfuse.training_data': `${split.description}; ${train.ids.length} train / ${val.ids.length} val images`,
      'lesionfuse.teacher_sha256': teacherSha256 ?? 'none (trained on masks alone)',
      'lesionfuse.val_dice': valDice.toFixed(4),
      'lesionfuse.val_dice_note': `mean Dice on the val images at the model resolution ${height}x${width}, epoch ${epoch}`,
      'lesionfuse.recipe': JSON.stringify(config),
      'lesionfuse.sdk_version': VERSION,
    };
    inf.model.producerName = 'lesionfuse';
    inf.model.producerVersion = VERSION;
    await writeModel(inf.model, studentPath);
  };

  while (st.epoch < epochs && st.step < stopAt) {
    const epoch = st.epoch;
    const t0 = Date.now();
    const order = epochOrder(train.ids.length, seed, epoch);
    const bar = progress ? new Progress(`epoch ${epoch + 1}/${epochs}`, stepsPerEpoch - st.nextBatch) : null;
    const { sums } = st.partial;
    let bi = st.nextBatch;
    for (; bi < stepsPerEpoch && st.step < stopAt; bi++) {
      const idx = order.slice(bi * batch, (bi + 1) * batch);
      const rand = mulberry32((seed * 7368787 + epoch * 104729 + bi * 31 + 5) >>> 0);
      const b = makeBatch(train, idx, { rand, augment, mean, std });
      const r = await engine.step({ image: b.image, mask: b.mask, ...(kd ? { teacher_logits: b.teacher! } : {}) });
      if (!Number.isFinite(r.loss)) throw new LesionFuseError(`the loss became ${r.loss} at step ${st.step}; lower --lr`);
      st.step++;
      st.partial.nSteps++;
      sums.loss = (sums.loss ?? 0) + r.loss;
      for (const [k, v] of Object.entries(r.monitor)) sums[k] = (sums[k] ?? 0) + v;
      bar?.tick(1, `loss ${r.loss.toFixed(4)}`);
    }
    st.partial.seconds += (Date.now() - t0) / 1000;
    if (bi < stepsPerEpoch) {
      // Stopped inside an epoch (--max-steps): checkpoint where we are, so --resume finishes this epoch.
      st.nextBatch = bi;
      await engine.save(ckptPath, st);
      log.info(`stopped at step ${st.step} (--max-steps), inside epoch ${epoch + 1}; --resume continues from here`);
      break;
    }
    const tv = Date.now();
    const values = await engine.values();
    const valDice = await validationDice(inferenceStudent(student, studentOpts, values).model, val, { mean, std, threads });
    const n = Math.max(1, st.partial.nSteps);
    const terms: Record<string, number> = {};
    for (const [k, v] of Object.entries(sums)) if (k !== 'loss') terms[k] = v / n;
    const rec: EpochRecord = {
      epoch: epoch + 1,
      steps: st.step,
      loss: (sums.loss ?? NaN) / n,
      terms,
      valDice,
      lr: engine.currentLr(),
      seconds: st.partial.seconds + (Date.now() - tv) / 1000,
    };
    st.history.push(rec);
    log.info(`epoch ${rec.epoch}: loss ${rec.loss.toFixed(4)} val Dice ${valDice.toFixed(4)} (${rec.seconds.toFixed(0)} s)`);
    if (valDice > st.bestValDice) {
      st.bestValDice = valDice;
      st.bestEpoch = epoch + 1;
      await writeStudent(values, valDice, epoch + 1);
    }
    st.epoch = epoch + 1;
    st.nextBatch = 0;
    st.partial = { sums: {}, nSteps: 0, seconds: 0 };
    await engine.save(ckptPath, st);
    await writeJsonAtomic(join(out, 'history.json'), st.history);
  }
  await engine.close();

  const result: DistillResult = {
    studentPath,
    student,
    width: s.width,
    depth: s.depth,
    paramCount: s.paramCount,
    macs: s.macs,
    bestEpoch: st.bestEpoch,
    bestValDice: st.bestValDice,
    teacherValDice,
    history: st.history,
    teacherSha256,
    steps: st.step,
    trainImages: train.ids.length,
    valImages: val.ids.length,
  };
  await writeJsonAtomic(join(out, 'distill.json'), {
    ...result,
    options: { ...opts, teacher: teacherPath, data: resolve(opts.data), out },
    inputSize,
    sdkVersion: VERSION,
  });
  return result;
}
