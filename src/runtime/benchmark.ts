/**
 * Benchmarks per model x profile: latency (median, p90) at batch 1 after warm-up, throughput at batch N,
 * peak resident memory, model size, parameters and multiply-adds, with the machine and versions.
 *
 * Each model x profile is measured in a CHILD process: resident memory never shrinks within a process,
 * so a peak measured after another model ran would be meaningless. The child reports its own high-water
 * mark (`process.resourceUsage().maxRSS`) and its baseline before the session was created, so both the
 * peak and the delta the model costs are reported. Profiles that cannot run here are reported as
 * skipped with the reason.
 */
import { fork } from 'node:child_process';
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, totalmem, availableParallelism, platform, arch, release, loadavg } from 'node:os';
import { cpuKind } from '../util/cpu.js';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LesionFuseError, describeError } from '../util/errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { log } from '../util/log.js';
import { VERSION } from '../version.js';
import { readModel } from '../onnx/io.js';
import { inspectModel } from '../onnx/inspect.js';
import { readSegmentationMetadata } from '../onnx/metadata.js';
import { resolveModelPath } from '../models.js';
import { percentile } from './metrics.js';
import { loadProfile, profileAvailability, threadsFor, type Profile } from './profiles.js';
import { RuntimeSession, type OrtTensor } from './session.js';
import { float32ToFloat16 } from '../onnx/tensor.js';
import type { Dim } from '../onnx/ir.js';
import type * as ort from 'onnxruntime-node';


export interface BenchmarkOptions {
  /** Model paths or bundled aliases. */
  models: string[];
  /** Profile names or paths. */
  profiles: string[];
  /** Untimed runs before timing (default 5). */
  warmup?: number;
  /** Timed batch-1 runs (default 30). */
  runs?: number;
  /** Batch size of the throughput measurement (default 8; 0 skips it). */
  throughputBatch?: number;
  /** Timed runs at the throughput batch (default 10). */
  throughputRuns?: number;
  /** Input size for models with dynamic H/W (default: metadata, then the profile's). */
  inputSize?: { height: number; width: number };
  /**
   * Shapes and fill values for named inputs (`--input NAME=SHAPE[:fill]`), e.g. a recurrent `state` or a
   * dimension the graph leaves symbolic. Inputs not named here are fed at their declared shape (batch 1):
   * the image-like first input with pseudo-random values, every other input with zeros.
   */
  inputs?: Record<string, InputOverride>;
  /** Folder for bench.json and bench.md. */
  out?: string;
  /** Measure in a child process per model x profile (default true; false runs in this process, no memory figures). */
  isolate?: boolean;
}

export interface MachineInfo {
  cpuModel: string;
  logicalCores: number;
  availableParallelism: number;
  totalMemoryBytes: number;
  platform: string;
  node: string;
  onnxruntimeNode: string;
  onnxruntimeWeb: string | null;
  sdk: string;
  /** Kernel-relevant CPU flags (INT8 speed depends on VNNI, for one). */
  cpuFlags: string[];
  /** 1-, 5- and 15-minute load averages when the benchmark started and ended: a busy machine shows here. */
  loadAverage: { start: number[]; end: number[] | null };
}

export interface ModelInfo {
  path: string;
  fileSizeBytes: number;
  parameters: number | null;
  macsPerImage: number | null;
  /** H x W of the image input: the graph's static dims, else the metadata's (null when neither says). */
  inputSize: { height: number; width: number } | null;
  modelName: string | null;
  /** Every input the model takes (initializers excluded), as the graph declares it. */
  inputs: { name: string; type: string; shape: Dim[] | null }[];
}

/** A user's shape and/or fill value for one input (`--input NAME=SHAPE[:fill]`). */
export interface InputOverride {
  shape?: number[];
  fill?: number;
}

/** One input as benchmarked: its type, batch-1 shape and values. */
export interface FeedSpec {
  name: string;
  /** onnxruntime's type name, e.g. 'float32', 'int64', 'bool'. */
  type: string;
  dims: number[];
  /** 'synthetic': deterministic pseudo-random values in [-2, 2); a number: every element that value. */
  fill: 'synthetic' | number;
  /** The axes that are the (symbolic) batch, which the throughput run scales: 0, or an axis named like the first input's batch dim. */
  batchAxes: number[];
}

/** What the child process measures. */
export interface Measurement {
  latencyMs: { median: number; p90: number; mean: number; min: number; runs: number; p10?: number };
  /**
   * 'interleaved': with several models, batch-1 latency comes from one process per profile that runs the
   * models in turn (A B C, B C A, C A B, ...), so load drift hits every model alike; 'alone': this model only.
   */
  latencyMode?: 'interleaved' | 'alone';
  /** Interleaved runs only: this model's time over the first model's in the same round (median and 10-90% spread over rounds). */
  ratioToFirst?: { median: number; p10: number; p90: number } | null;
  throughput: { batch: number; imagesPerSecond: number; runs: number } | null;
  /** Why throughput is missing (e.g. a model with a fixed batch of 1). */
  throughputNote?: string;
  /** High-water RSS of the measuring process, bytes (null when not isolated). */
  peakRssBytes: number | null;
  /** Peak minus the process's RSS just before the session was created. */
  peakRssDeltaBytes: number | null;
  sessionCreateMs: number;
  threads: number;
  providerCheck: string | null;
  fellBackToCpu: boolean;
}

export type BenchResult =
  | ({ model: ModelInfo; profile: Profile; skipped: false; feeds: FeedSpec[] } & Measurement)
  | { model: ModelInfo; profile: Profile; skipped: true; reason: string };

export interface BenchReport {
  machine: MachineInfo;
  settings: { warmup: number; runs: number; throughputBatch: number; throughputRuns: number };
  results: BenchResult[];
  created_at: string;
  command?: string;
}

function packageVersion(name: string): string | null {
  try {
    const req = createRequire(import.meta.url);
    return (req(`${name}/package.json`) as { version: string }).version;
  } catch {
    return null;
  }
}

/** The machine and software versions, for every report. */
export function machineInfo(): MachineInfo {
  const c = cpus();
  return {
    cpuModel: c[0]?.model.trim() ?? 'unknown',
    logicalCores: c.length,
    availableParallelism: availableParallelism(),
    totalMemoryBytes: totalmem(),
    platform: `${platform()}-${arch()} ${release()}`,
    node: process.version,
    onnxruntimeNode: packageVersion('onnxruntime-node') ?? 'unknown',
    onnxruntimeWeb: packageVersion('onnxruntime-web'),
    sdk: VERSION,
    cpuFlags: cpuKind().flags,
    loadAverage: { start: loadavg().map((x) => Math.round(x * 100) / 100), end: null },
  };
}

/** File size, parameters, multiply-adds, declared inputs and image size of a model (any model: nothing is required of its outputs). */
export async function modelInfo(path: string): Promise<ModelInfo> {
  const m = await readModel(path);
  const size = statSync(path).size;
  const s = inspectModel(m, { fileSizeBytes: size });
  const meta = readSegmentationMetadata(m.metadata);
  const inputs = s.inputs.map((v) => ({ name: v.name, type: v.type, shape: v.shape ? [...v.shape] : null }));
  // The image size: the first input's static H x W where it is NCHW, else the metadata's.
  const first = inputs[0]?.shape;
  const h = first?.length === 4 ? first[2] : undefined;
  const w = first?.length === 4 ? first[3] : undefined;
  const inputSize = typeof h === 'number' && h > 0 && typeof w === 'number' && w > 0 ? { height: h, width: w } : meta.inputSize;
  return { path, fileSizeBytes: size, parameters: s.parameters, macsPerImage: s.macsPerImage, inputSize, modelName: meta.modelName, inputs };
}

const FEEDABLE = new Set(['float32', 'float16', 'float64', 'int64', 'int32', 'int16', 'int8', 'uint8', 'uint16', 'uint32', 'uint64', 'bool']);

/**
 * Parse `NAME=SHAPE[:fill]` (`state=2x1x128`, `state=2x1x128:0.5`, `sr=:16000` for the declared shape,
 * `sr=scalar:16000` for a 0-d tensor).
 */
export function parseInputOption(text: string, option = '--input'): [string, InputOverride] {
  const m = /^([^=]+)=([^:]*)(?::(.*))?$/.exec(text.trim());
  if (!m) throw new LesionFuseError(`expected NAME=SHAPE[:fill] such as state=2x1x128 or sr=:16000, got '${text}'`, { subject: option });
  const [, name, shapeText, fillText] = m;
  const o: InputOverride = {};
  if (shapeText === 'scalar') o.shape = [];
  else if (shapeText !== '') {
    const dims = shapeText!.split(/[xX,]/).map(Number);
    if (dims.some((d) => !Number.isInteger(d) || d < 1)) throw new LesionFuseError(`shape '${shapeText}' of input '${name}' must be positive integers joined by x (e.g. 2x1x128)`, { subject: option });
    o.shape = dims;
  }
  if (fillText !== undefined) {
    const f = Number(fillText);
    if (fillText.trim() === '' || !Number.isFinite(f)) throw new LesionFuseError(`fill value '${fillText}' of input '${name}' is not a number`, { subject: option });
    o.fill = f;
  }
  if (o.shape === undefined && o.fill === undefined) throw new LesionFuseError(`input '${name}': give a shape, a fill value or both (NAME=SHAPE[:fill])`, { subject: option });
  return [name!.trim(), o];
}

/**
 * The feeds a benchmark runs `model` on: every declared input at batch 1, static dimensions as declared,
 * a symbolic H x W of the image input from `inputSize`, anything else from `overrides`. A dimension that
 * nothing fixes is refused in one line that says which option gives it.
 */
export function resolveFeeds(model: ModelInfo, inputSize: { height: number; width: number } | null, overrides: Record<string, InputOverride> = {}): FeedSpec[] {
  const names = new Set(model.inputs.map((v) => v.name));
  for (const k of Object.keys(overrides)) {
    if (!names.has(k)) throw new LesionFuseError(`the model has no input '${k}' (inputs: ${model.inputs.map((v) => v.name).join(', ')})`, { subject: '--input' });
  }
  const batchName = typeof model.inputs[0]?.shape?.[0] === 'string' && model.inputs[0]!.shape![0] !== '' ? model.inputs[0]!.shape![0] : null;
  return model.inputs.map((v, idx) => {
    const o = overrides[v.name] ?? {};
    if (!FEEDABLE.has(v.type)) throw new LesionFuseError(`input '${v.name}' is ${v.type}; bench feeds numeric and bool inputs only`, { subject: model.path });
    const declared = v.shape;
    // A symbolic dim 0, or a dim named like the first input's batch dim (a state [2, N, 16]), is the batch.
    const isBatch = (d: Dim | undefined, k: number) => typeof d !== 'number' && (k === 0 ? (declared?.length ?? 0) > 1 : d !== null && d !== '' && d === batchName);
    let dims: number[];
    let batchAxes: number[] = [];
    if (o.shape) {
      if (declared && declared.length !== o.shape.length) {
        throw new LesionFuseError(`--input ${v.name} has rank ${o.shape.length}, the model declares rank ${declared.length} [${declared.map((d) => d ?? '?').join(', ')}]`, { subject: model.path });
      }
      dims = [...o.shape];
      batchAxes = declared ? declared.flatMap((d, k) => (isBatch(d, k) ? [k] : [])) : [];
    } else {
      if (!declared) throw new LesionFuseError(`input '${v.name}' has no declared shape; give --input ${v.name}=SHAPE`, { subject: model.path });
      const image = idx === 0 && declared.length === 4;
      dims = declared.map((d, k) => {
        if (typeof d === 'number' && d > 0) return d;
        if (isBatch(d, k)) {
          batchAxes.push(k);
          return 1;
        }
        if (image && (k === 2 || k === 3) && inputSize) return k === 2 ? inputSize.height : inputSize.width;
        if (image && (k === 2 || k === 3)) {
          throw new LesionFuseError(`input '${v.name}' has dynamic height/width and the model no lesionfuse.input_size; give --input-size HxW`, { subject: model.path });
        }
        throw new LesionFuseError(`input '${v.name}' dimension ${k} (${d === null ? 'unknown' : `'${d}'`}) is not fixed by the model; give --input ${v.name}=${declared.map((x, j) => (typeof x === 'number' && x > 0 ? x : isBatch(x, j) ? 1 : 'N')).join('x')} with N filled in`, { subject: model.path });
      });
    }
    const float = v.type.startsWith('float');
    const fill = o.fill ?? (idx === 0 && float ? 'synthetic' : 0);
    return { name: v.name, type: v.type, dims, fill, batchAxes };
  });
}

export interface MeasureRequest {
  model: string;
  profile: Profile;
  /** What to feed each input at batch 1 (from {@link resolveFeeds}). */
  feeds: FeedSpec[];
  warmup: number;
  runs: number;
  throughputBatch: number;
  throughputRuns: number;
}

function rssNow(): number {
  return process.memoryUsage.rss();
}

/** Deterministic pseudo-image input (values in the normalised range), so runs do the same work. */
function syntheticValues(count: number): Float32Array {
  const x = new Float32Array(count);
  let s = 12345;
  for (let i = 0; i < x.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    x[i] = (s / 4294967296) * 4 - 2;
  }
  return x;
}

/** The onnxruntime tensors for `specs` at batch `batch` (only inputs whose dim 0 is the batch scale); null when no input has a batch dimension and batch > 1. */
function makeFeeds(rs: RuntimeSession, specs: FeedSpec[], batch: number): Record<string, OrtTensor> | null {
  if (batch > 1 && !specs.some((f) => f.batchAxes.length > 0)) return null;
  const feeds: Record<string, OrtTensor> = {};
  for (const f of specs) {
    const dims = f.dims.map((d, k) => (f.batchAxes.includes(k) ? batch : d));
    const n = dims.reduce((a, b) => a * b, 1);
    const vals = f.fill === 'synthetic' ? syntheticValues(n) : new Float32Array(n).fill(f.fill);
    let data: ort.Tensor.DataType;
    switch (f.type) {
      case 'float32': data = vals; break;
      case 'float16': data = float32ToFloat16(vals); break;
      case 'float64': data = Float64Array.from(vals); break;
      case 'int64': data = BigInt64Array.from(vals, (x) => BigInt(Math.trunc(x))); break;
      case 'uint64': data = BigUint64Array.from(vals, (x) => BigInt(Math.max(0, Math.trunc(x)))); break;
      case 'int32': data = Int32Array.from(vals, Math.trunc); break;
      case 'int16': data = Int16Array.from(vals, Math.trunc); break;
      case 'int8': data = Int8Array.from(vals, Math.trunc); break;
      case 'uint32': data = Uint32Array.from(vals, Math.trunc); break;
      case 'uint16': data = Uint16Array.from(vals, Math.trunc); break;
      case 'uint8': data = Uint8Array.from(vals, Math.trunc); break;
      case 'bool': data = Uint8Array.from(vals, (x) => (x !== 0 ? 1 : 0)); break;
      default: throw new LesionFuseError(`input '${f.name}' is ${f.type}; bench feeds numeric and bool inputs only`);
    }
    feeds[f.name] = rs.tensor(f.type as ort.Tensor.Type, data, dims);
  }
  return feeds;
}

/**
 * Measure one model under one profile in this process: raw session runs on a pre-made tensor (the
 * pre/post-processing cost is measured separately by bench/wrapper-overhead.ts).
 */
export async function measure(req: MeasureRequest, isolated: boolean): Promise<Measurement> {
  const baseline = rssNow();
  const t0 = performance.now();
  const rs = await RuntimeSession.open(req.model, req.profile);
  const sessionCreateMs = performance.now() - t0;
  try {
    const feeds1 = makeFeeds(rs, req.feeds, 1)!;
    for (let i = 0; i < Math.max(1, req.warmup); i++) await rs.run(feeds1);
    const times: number[] = [];
    for (let i = 0; i < req.runs; i++) {
      const s = process.hrtime.bigint();
      await rs.run(feeds1);
      times.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
    let throughput: Measurement['throughput'] = null;
    let throughputNote: string | undefined;
    const B = req.throughputBatch;
    const xb = B > 0 ? makeFeeds(rs, req.feeds, B) : null;
    if (B > 0 && !xb) throughputNote = `batch ${B} not measured: no input of the model has a batch dimension`;
    if (B > 0 && xb) {
      try {
        await rs.run(xb);
        const s = process.hrtime.bigint();
        for (let i = 0; i < req.throughputRuns; i++) await rs.run(xb);
        const sec = Number(process.hrtime.bigint() - s) / 1e9;
        throughput = { batch: B, imagesPerSecond: (B * req.throughputRuns) / sec, runs: req.throughputRuns };
      } catch (e) {
        throughputNote = `batch ${B} not accepted by the model (${describeError(e).slice(0, 160)})`;
      }
    }
    const peak = isolated ? process.resourceUsage().maxRSS * 1024 : null;
    return {
      latencyMs: {
        median: percentile(times, 50),
        p90: percentile(times, 90),
        mean: times.reduce((a, b) => a + b, 0) / times.length,
        min: Math.min(...times),
        runs: times.length,
      },
      throughput,
      ...(throughputNote ? { throughputNote } : {}),
      peakRssBytes: peak,
      peakRssDeltaBytes: peak === null ? null : peak - baseline,
      sessionCreateMs,
      threads: threadsFor(req.profile),
      providerCheck: rs.providerCheck?.summary ?? null,
      fellBackToCpu: rs.providerCheck?.fellBackToCpu ?? false,
    };
  } finally {
    await rs.close();
  }
}

/** Latency of several models measured in turn, in this process: what {@link interleavedLatency} returns per model. */
export interface InterleavedTimes {
  latencyMs: { median: number; p90: number; p10: number; mean: number; min: number; runs: number };
  ratioToFirst: { median: number; p10: number; p90: number } | null;
}

/**
 * Batch-1 latency of `models` under one profile, interleaved: every model gets a session in this process and
 * its warm-up, then each round runs every model once, the starting model rotating from round to round. A
 * load change during the benchmark then slows all models alike, and the per-round ratio to the first model
 * cancels it further. Returns one entry per model, in order.
 */
export async function interleavedLatency(models: { path: string; feeds: FeedSpec[] }[], profile: Profile, warmup: number, runs: number): Promise<InterleavedTimes[]> {
  const sessions: RuntimeSession[] = [];
  try {
    const feeds: Record<string, OrtTensor>[] = [];
    for (const m of models) {
      const rs = await RuntimeSession.open(m.path, profile, { verifyProvider: false });
      sessions.push(rs);
      feeds.push(makeFeeds(rs, m.feeds, 1)!);
    }
    for (let i = 0; i < Math.max(1, warmup); i++) for (let k = 0; k < sessions.length; k++) await sessions[k]!.run(feeds[k]!);
    const times: number[][] = models.map(() => []);
    for (let r = 0; r < runs; r++) {
      for (let j = 0; j < sessions.length; j++) {
        const k = (r + j) % sessions.length;
        const t = process.hrtime.bigint();
        await sessions[k]!.run(feeds[k]!);
        times[k]!.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
    }
    return times.map((ts, k) => {
      const ratios = k === 0 ? null : ts.map((t, r) => t / times[0]![r]!);
      return {
        latencyMs: { median: percentile(ts, 50), p90: percentile(ts, 90), p10: percentile(ts, 10), mean: ts.reduce((a, b) => a + b, 0) / ts.length, min: Math.min(...ts), runs: ts.length },
        ratioToFirst: ratios ? { median: percentile(ratios, 50), p10: percentile(ratios, 10), p90: percentile(ratios, 90) } : null,
      };
    });
  } finally {
    for (const s of sessions) await s.close();
  }
}

function measureInChild(req: MeasureRequest): Promise<Measurement> {
  const child = fork(fileURLToPath(new URL('./bench-child.js', import.meta.url)), [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve, reject) => {
    let done = false;
    child.on('message', (m: { ok: true; result: Measurement } | { ok: false; error: string }) => {
      done = true;
      if (m.ok) resolve(m.result);
      else reject(new LesionFuseError(m.error, { subject: req.model }));
    });
    child.on('exit', (code) => {
      if (!done) reject(new LesionFuseError(`benchmark process exited with code ${code}: ${stderr.trim().split('\n').slice(-1)[0] ?? ''}`, { subject: req.model }));
    });
    child.send(req);
  });
}

/**
 * Benchmark every model under every profile (see the module comment). Writes `bench.json` and
 * `bench.md` atomically into `out` when given.
 */
export async function benchmark(opts: BenchmarkOptions): Promise<BenchResult[]> {
  return (await benchmarkReport(opts)).results;
}

/** {@link benchmark} with the machine and settings, as written to bench.json. */
export async function benchmarkReport(opts: BenchmarkOptions & { command?: string }): Promise<BenchReport> {
  const warmup = opts.warmup ?? 5;
  const runs = opts.runs ?? 30;
  const throughputBatch = opts.throughputBatch ?? 8;
  const throughputRuns = opts.throughputRuns ?? 10;
  for (const [k, v, min] of [['--warmup', warmup, 0], ['--runs', runs, 1], ['--batch', throughputBatch, 0], ['throughputRuns', throughputRuns, 1]] as const) {
    if (!Number.isInteger(v) || v < min) throw new LesionFuseError(`must be an integer >= ${min}, got ${v}`, { subject: k });
  }
  if (opts.models.length === 0) throw new LesionFuseError('name at least one model', { subject: 'models' });
  if (opts.profiles.length === 0) throw new LesionFuseError('name at least one profile', { subject: '--profile' });
  // Refuse bad names before any work starts.
  const profiles = opts.profiles.map((p) => loadProfile(p));
  const models: ModelInfo[] = [];
  for (const m of opts.models) models.push(await modelInfo(resolveModelPath(m)));
  const feedsFor = (model: ModelInfo, profile: Profile) => resolveFeeds(model, opts.inputSize ?? model.inputSize ?? profile.inputSize ?? null, opts.inputs);
  // Refuse inputs that nothing sizes before any measurement starts.
  for (const model of models) for (const profile of profiles) feedsFor(model, profile);
  const startLoad = loadavg().map((x) => Math.round(x * 100) / 100);
  const results: BenchResult[] = [];
  for (const model of models) {
    for (const profile of profiles) {
      const avail = await profileAvailability(profile);
      if (!avail.available) {
        log.info(`bench: ${profile.name} skipped: ${avail.reason}`);
        results.push({ model, profile, skipped: true, reason: avail.reason });
        continue;
      }
      const feeds = feedsFor(model, profile);
      const req: MeasureRequest = { model: model.path, profile, feeds, warmup, runs, throughputBatch, throughputRuns };
      log.info(`bench: ${model.path} on ${profile.name} (${runs} runs after ${warmup} warm-up, batch ${throughputBatch} throughput)`);
      const m = opts.isolate === false ? await measure(req, false) : await measureInChild(req);
      results.push({ model, profile, skipped: false, feeds, ...m, latencyMode: 'alone' });
    }
  }
  // Several models: their batch-1 latencies (and ratios) come from one interleaved run per profile, so that a
  // ranking is never decided by load drift between one model's turn and the next. Memory and throughput stay
  // from each model's own process above.
  if (models.length > 1) {
    for (const profile of profiles) {
      const rows = results.filter((r): r is Extract<BenchResult, { skipped: false }> => !r.skipped && r.profile === profile);
      if (rows.length < 2) continue;
      log.info(`bench: ${rows.length} models on ${profile.name} interleaved (${runs} rounds after ${warmup} warm-up)`);
      const t = await interleavedLatency(rows.map((r) => ({ path: r.model.path, feeds: r.feeds })), profile, warmup, runs);
      rows.forEach((r, k) => {
        r.latencyMs = t[k]!.latencyMs;
        r.latencyMode = 'interleaved';
        r.ratioToFirst = t[k]!.ratioToFirst;
      });
    }
  }
  const machine = machineInfo();
  machine.loadAverage.start = startLoad;
  machine.loadAverage.end = loadavg().map((x) => Math.round(x * 100) / 100);
  const report: BenchReport = {
    machine,
    settings: { warmup, runs, throughputBatch, throughputRuns },
    results,
    created_at: new Date().toISOString(),
    ...(opts.command ? { command: opts.command } : {}),
  };
  if (opts.out) {
    await writeJsonAtomic(join(opts.out, 'bench.json'), report);
    await writeFileAtomic(join(opts.out, 'bench.md'), benchMarkdown(report));
  }
  return report;
}

const mb = (b: number | null): string => (b === null ? '-' : (b / 2 ** 20).toFixed(1));
const big = (n: number | null): string => (n === null ? '-' : n >= 1e9 ? `${(n / 1e9).toFixed(2)} G` : n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} K` : String(n));

/** The Markdown table of a benchmark report. */
export function benchMarkdown(r: BenchReport): string {
  const m = r.machine;
  const lines = [
    '# Benchmark',
    '',
    `Machine: ${m.cpuModel}, ${m.logicalCores} logical cores (${m.availableParallelism} available), ${mb(m.totalMemoryBytes)} MiB RAM, ${m.platform}.`,
    `Versions: Node.js ${m.node}, onnxruntime-node ${m.onnxruntimeNode}${m.onnxruntimeWeb ? `, onnxruntime-web ${m.onnxruntimeWeb}` : ''}, LesionFuse ${m.sdk}.`,
    `Settings: ${r.settings.warmup} warm-up runs, latency over ${r.settings.runs} runs at batch 1, throughput over ${r.settings.throughputRuns} runs at batch ${r.settings.throughputBatch}; synthetic input at the model's input size; ` +
      (r.results.some((x) => !x.skipped && x.latencyMode === 'interleaved')
        ? 'latency from one interleaved run per profile (the models in turn, the first rotating each round); throughput and memory from each model x profile in its own process.'
        : 'each model x profile in its own process.'),
    `CPU flags: ${m.cpuFlags?.join(' ') || 'unknown'}. Load average (1/5/15 min) at start ${m.loadAverage?.start.join(' / ') ?? '?'}, at end ${m.loadAverage?.end?.join(' / ') ?? '?'}.`,
    ...(r.command ? ['', `Command: \`${r.command}\``] : []),
    '',
    '| model | profile | threads | latency median (ms) | p10-p90 (ms) | x first model (p10-p90) | throughput (img/s) | peak RSS (MiB) | RSS delta (MiB) | size (MiB) | params | MACs/image | where nodes ran |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const x of r.results) {
    const name = x.model.modelName ?? x.model.path.split('/').pop();
    if (x.skipped) {
      lines.push(`| ${name} | ${x.profile.name} | - | skipped | | | | | | ${mb(x.model.fileSizeBytes)} | ${big(x.model.parameters)} | ${big(x.model.macsPerImage)} | ${x.reason.replace(/\|/g, '/')} |`);
      continue;
    }
    const tp = x.throughput ? `${x.throughput.imagesPerSecond.toFixed(1)} @ ${x.throughput.batch}` : (x.throughputNote ?? '-');
    lines.push(
      `| ${name} | ${x.profile.name} | ${x.threads} | ${x.latencyMs.median.toFixed(2)} | ${x.latencyMs.p10 !== undefined ? x.latencyMs.p10.toFixed(2) : '-'}-${x.latencyMs.p90.toFixed(2)} | ${x.ratioToFirst ? `${x.ratioToFirst.median.toFixed(3)} (${x.ratioToFirst.p10.toFixed(3)}-${x.ratioToFirst.p90.toFixed(3)})` : x.latencyMode === 'interleaved' ? '1 (reference)' : '-'} | ${tp} | ${mb(x.peakRssBytes)} | ${mb(x.peakRssDeltaBytes)} | ${mb(x.model.fileSizeBytes)} | ${big(x.model.parameters)} | ${big(x.model.macsPerImage)} | ${x.providerCheck ?? '-'} |`,
    );
  }
  const fed = new Map<string, string>();
  for (const x of r.results) {
    if (x.skipped || !x.feeds) continue;
    const name = x.model.modelName ?? x.model.path.split('/').pop()!;
    const text = x.feeds.map((f) => `${f.name} ${f.type} [${f.dims.join('x')}] ${f.fill === 'synthetic' ? 'pseudo-random' : `= ${f.fill}`}`).join('; ');
    if (!fed.has(name)) fed.set(name, text);
  }
  if (fed.size) lines.push('', 'Inputs fed (batch 1):', ...[...fed].map(([k, v]) => `- ${k}: ${v}`));
  lines.push('', 'Absolute times on a shared machine are hints; compare ratios measured in the same run.', '');
  return lines.join('\n');
}
