/**
 * The pipeline's bindings to the other stages (distill, rewrite, quantize, evaluate, benchmark, segment).
 * The one place that knows their option names, so that the runner stays about order, caching and failure.
 * A stage that throws is reported by the runner as a failed step with the reason; nothing is faked.
 */
import { promises as fs, existsSync } from 'node:fs';
import { join } from 'node:path';
import { LesionFuseError } from '../util/errors.js';
import { readModel } from '../onnx/io.js';
import { inspectModel } from '../onnx/inspect.js';
import { distill } from '../distill/distill.js';
import { rewriteFile } from '../export/file.js';
import { evaluate } from '../runtime/evaluate.js';
import { benchmark } from '../runtime/benchmark.js';
import { quantizeFile } from '../quantize/quantize.js';
import { openDataset, type Split } from '../runtime/dataset.js';
import { Segmenter } from '../runtime/segmenter.js';
import { decodeImage, writeOverlayPng } from '../runtime/image.js';
import type { AccuracySummary, SpeedSummary } from '../report/types.js';
import type { DistilledStudentConfig, PipelineConfig } from './config.js';

/** Size, parameters and multiply-adds of a model file (for the report). */
export async function modelFacts(path: string): Promise<{ fileSizeBytes: number; parameters: number | null; multiplyAdds: number | null }> {
  const size = (await fs.stat(path)).size;
  try {
    const s = inspectModel(await readModel(path), { fileSizeBytes: size });
    return { fileSizeBytes: size, parameters: s.parameters, multiplyAdds: s.macsPerImage };
  } catch {
    return { fileSizeBytes: size, parameters: null, multiplyAdds: null };
  }
}

/** Distil one zoo student into `<dir>/...`; returns the student's path and a summary. */
export async function distillStage(cfg: PipelineConfig, s: DistilledStudentConfig, dir: string): Promise<{ files: string[]; result: { studentPath: string; summary: string } }> {
  const size = cfg.inputSize ? cfg.inputSize.split('x').map(Number) : null;
  // A re-run (changed settings or inputs) starts afresh: the engine refuses to overwrite a previous
  // checkpoint. The soft-label cache is kept: it is keyed by the teacher's and images' hashes.
  for (const e of await fs.readdir(dir)) if (e !== 'cache') await fs.rm(join(dir, e), { recursive: true, force: true });
  const r = await distill({
    teacher: s.kd ? cfg.teacherPath ?? undefined : undefined,
    student: s.name,
    width: s.width,
    depth: s.depth,
    data: cfg.trainData?.path ?? cfg.dataset.path,
    out: dir,
    epochs: s.epochs,
    batch: s.batch,
    lr: s.lr,
    temperature: s.temperature,
    kd: s.kd,
    limit: s.limit,
    valLimit: s.valLimit,
    maxSteps: s.maxSteps,
    seed: s.seed,
    inputSize: size ? { height: size[0]!, width: size[1]! } : undefined,
  });
  if (!existsSync(r.studentPath)) {
    throw new LesionFuseError(`distillation ended after ${r.steps} steps without writing a student (no epoch completed within the budget? raise maxSteps or lower batch)`, { subject: s.name });
  }
  const files = [r.studentPath];
  const summary = `distil ${r.student} (width ${r.width}, depth ${r.depth}, ${r.paramCount} parameters) ${s.kd ? 'from the teacher' : 'on the masks alone (no KD)'}: ` +
    `${r.steps} steps on ${r.trainImages} training images, best val Dice ${r.bestValDice.toFixed(4)} (epoch ${r.bestEpoch}, at the model resolution)`;
  return { files, result: { studentPath: r.studentPath, summary } };
}

/** Rewrite `input` with the config's passes into `<dir>/model.onnx`, parity-checked on the bundled samples. */
export async function rewriteStage(cfg: PipelineConfig, input: string, dir: string): Promise<{ files: string[]; result: { modelPath: string; summary: string } }> {
  const passes = cfg.rewrite?.passes ?? [];
  const out = join(dir, 'model.onnx');
  const parity = { ...(cfg.rewrite?.tolerance !== undefined ? { tolerance: cfg.rewrite.tolerance } : {}), ...(cfg.rewrite?.parityImages !== undefined ? { maxImages: cfg.rewrite.parityImages } : {}) };
  const r = await rewriteFile(input, out, passes, { parity });
  const summary = `rewrite: ${passes.join(', ')} (nodes ${r.nodesBefore} -> ${r.nodesAfter}; parity ${r.parity ? (r.parity.passed ? 'passed' : 'FAILED (forced)') : 'not checked'}${r.parity ? `: ${r.parity.message}` : ''})`;
  return { files: [out], result: { modelPath: out, summary } };
}

/** Quantize `input` to static INT8 (QDQ) into `<dir>/model.onnx` (+ model.onnx.quant.json, the record). */
export async function quantizeStage(cfg: PipelineConfig, input: string, dir: string): Promise<{ files: string[]; result: { modelPath: string; summary: string } }> {
  const q = cfg.quantize!;
  const out = join(dir, 'model.onnx');
  const r = await quantizeFile(input, out, {
    calib: q.calibration.path,
    calibLimit: q.calibration.limit,
    calibrator: q.calibrator,
    activations: q.activations,
    perChannel: q.perChannel,
    // gate: null = no gate: the INT8 model is written whatever its drop (its record says 'forced' if it
    // failed the default gate) and no time goes to sensitivity; the report shows its Dice either way.
    ...(q.gate === null ? { force: true, sensitivity: q.sensitivity === 'always' ? 'always' : 'off' } : { gate: q.gate, sensitivity: q.sensitivity, force: q.force }),
    val: q.validation?.path,
    valLimit: q.validation?.limit,
    dynamicMatMuls: q.dynamicMatMul,
  });
  const dice = r.dice ? `; val Dice ${r.dice.float.toFixed(4)} -> ${r.dice.quantized.toFixed(4)} on ${r.dice.images} images` : '; no val masks, gate not checked';
  const summary = `quantize: INT8 QDQ (${r.settings.activations} activations, ${r.settings.perChannel ? 'per-channel' : 'per-tensor'} ${r.settings.weights} weights${r.settings.reduceRange ? ', 7-bit' : ''}), ` +
    `${q.calibrator} calibration on ${r.calibration.images} images of ${r.calibration.source}; ${r.quantizedNodes.length} nodes INT8, ${r.floatNodes.length} kept float${dice}; gate: ${q.gate === null ? 'disabled' : r.gate.verdict}`;
  return { files: ['model.onnx', 'model.onnx.quant.json'], result: { modelPath: out, summary } };
}

/** Evaluate a model on the config's dataset; writes metrics.json + per_image.csv into `dir`. */
export async function evaluateStage(cfg: PipelineConfig, model: string, profile: string, dir: string): Promise<{ files: string[]; result: AccuracySummary }> {
  const r = await evaluate({ model, data: cfg.dataset.path, split: cfg.dataset.split as Split | undefined, sources: cfg.dataset.sources, limit: cfg.dataset.limit, profile, out: dir });
  return { files: ['metrics.json', 'per_image.csv', 'subgroups.md'], result: accuracyFromEval(r, describeDataset(cfg, r.n_images, r.split)) };
}

/** What an evaluation scored, in words, for the report. */
export function describeDataset(cfg: PipelineConfig, n: number, split: string): string {
  return `${split} split of ${cfg.dataset.path}${cfg.dataset.sources ? ` (sources ${cfg.dataset.sources.join(', ')})` : ''}, ${n} image${n === 1 ? '' : 's'}${cfg.dataset.limit ? ` (first ${cfg.dataset.limit})` : ''}`;
}

/** The report's accuracy numbers, taken as they are from an evaluation result. */
export function accuracyFromEval(r: { n_images: number; mean: Record<string, number>; ci95: Record<string, [number, number]> }, dataset: string): AccuracySummary {
  const hd = r.mean.hd95;
  return {
    nImages: r.n_images,
    dice: r.mean.dice!,
    diceCi95: [r.ci95.dice![0], r.ci95.dice![1]],
    iou: r.mean.iou!,
    thresholdedJaccard: r.mean.thresholded_jaccard!,
    hd95: hd !== undefined && Number.isFinite(hd) ? hd : null,
    dataset,
  };
}

/** Overlays of the first `n` dataset images for one model, as PNGs in `dir`. */
export async function overlaysStage(cfg: PipelineConfig, model: string, profile: string, n: number, dir: string): Promise<{ files: string[]; result: { image: string; file: string }[] }> {
  const ds = await openDataset(cfg.dataset.path, { split: cfg.dataset.split as Split | undefined, sources: cfg.dataset.sources });
  const items = ds.items.slice(0, Math.min(n, cfg.dataset.limit ?? n));
  const seg = await Segmenter.create(model, { profile });
  const out: { image: string; file: string }[] = [];
  try {
    for (const it of items) {
      const img = await decodeImage(it.imagePath);
      const r = await seg.segment(img);
      const file = `${it.id.replace(/[^A-Za-z0-9._-]/g, '_')}.png`;
      await writeOverlayPng(join(dir, file), img, { width: r.width, height: r.height, data: r.mask });
      out.push({ image: it.id, file });
    }
  } finally {
    await seg.close();
  }
  return { files: out.map((o) => o.file), result: out };
}

/** Benchmark one model on one profile (in a child process, for peak memory); writes bench.json + bench.md into `dir`. */
export async function benchmarkStage(cfg: PipelineConfig, models: string[], profile: string, dir: string): Promise<{ files: string[]; result: SpeedSummary[] }> {
  const b = cfg.benchmark;
  const results = await benchmark({ models, profiles: [profile], warmup: b.warmup, runs: b.runs, throughputBatch: b.throughputBatch, throughputRuns: b.throughputRuns, out: dir });
  if (results.length !== models.length) throw new LesionFuseError(`the benchmark returned ${results.length} results for ${models.length} models`, { subject: profile });
  return {
    files: ['bench.json', 'bench.md'],
    result: results.map((r) => {
      if (r.skipped) throw new LesionFuseError(`profile skipped: ${r.reason}`, { subject: profile });
      return {
        latencyMedianMs: r.latencyMs.median,
        latencyP90Ms: r.latencyMs.p90,
        ...(r.latencyMs.p10 !== undefined ? { latencyP10Ms: r.latencyMs.p10 } : {}),
        latencyMode: r.latencyMode ?? 'alone',
        throughputImagesPerS: r.throughput?.imagesPerSecond ?? null,
        throughputBatch: r.throughput?.batch ?? b.throughputBatch,
        peakRssMb: r.peakRssBytes === null ? null : r.peakRssBytes / 2 ** 20,
        warmup: b.warmup,
        runs: r.latencyMs.runs,
      };
    }),
  };
}
