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
import { cpus, totalmem, availableParallelism, platform, arch, release } from 'node:os';
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
import { RuntimeSession } from './session.js';
import { checkSegmentationIO } from './segmenter.js';

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
}

export interface ModelInfo {
  path: string;
  fileSizeBytes: number;
  parameters: number | null;
  macsPerImage: number | null;
  inputSize: { height: number; width: number } | null;
  modelName: string | null;
}

/** What the child process measures. */
export interface Measurement {
  latencyMs: { median: number; p90: number; mean: number; min: number; runs: number };
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
  | ({ model: ModelInfo; profile: Profile; skipped: false } & Measurement)
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
  };
}

/** File size, parameters, multiply-adds and input size of a model. */
export async function modelInfo(path: string): Promise<ModelInfo> {
  const m = await readModel(path);
  const size = statSync(path).size;
  const s = inspectModel(m, { fileSizeBytes: size });
  const meta = readSegmentationMetadata(m.metadata);
  let inputSize = meta.inputSize;
  try {
    inputSize = checkSegmentationIO(m, path).inputSize ?? inputSize;
  } catch {
    // not a segmentation model: benchmark it anyway on its declared input
  }
  return { path, fileSizeBytes: size, parameters: s.parameters, macsPerImage: s.macsPerImage, inputSize, modelName: meta.modelName };
}

export interface MeasureRequest {
  model: string;
  profile: Profile;
  inputSize: { height: number; width: number };
  warmup: number;
  runs: number;
  throughputBatch: number;
  throughputRuns: number;
}

function rssNow(): number {
  return process.memoryUsage.rss();
}

/** Deterministic pseudo-image input (values in the normalised range), so runs do the same work. */
function syntheticInput(n: number, h: number, w: number): Float32Array {
  const x = new Float32Array(n * 3 * h * w);
  let s = 12345;
  for (let i = 0; i < x.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    x[i] = (s / 4294967296) * 4 - 2;
  }
  return x;
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
    const inputName = rs.inputNames[0]!;
    const { height: H, width: W } = req.inputSize;
    const x1 = rs.floatTensor(syntheticInput(1, H, W), [1, 3, H, W]);
    for (let i = 0; i < Math.max(1, req.warmup); i++) await rs.run({ [inputName]: x1 });
    const times: number[] = [];
    for (let i = 0; i < req.runs; i++) {
      const s = process.hrtime.bigint();
      await rs.run({ [inputName]: x1 });
      times.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
    let throughput: Measurement['throughput'] = null;
    let throughputNote: string | undefined;
    const B = req.throughputBatch;
    if (B > 0) {
      const xb = rs.floatTensor(syntheticInput(B, H, W), [B, 3, H, W]);
      try {
        await rs.run({ [inputName]: xb });
        const s = process.hrtime.bigint();
        for (let i = 0; i < req.throughputRuns; i++) await rs.run({ [inputName]: xb });
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
  const results: BenchResult[] = [];
  for (const model of models) {
    for (const profile of profiles) {
      const avail = await profileAvailability(profile);
      if (!avail.available) {
        log.info(`bench: ${profile.name} skipped: ${avail.reason}`);
        results.push({ model, profile, skipped: true, reason: avail.reason });
        continue;
      }
      const inputSize = opts.inputSize ?? model.inputSize ?? profile.inputSize;
      if (!inputSize) {
        throw new LesionFuseError('the model has dynamic height/width and no lesionfuse.input_size; give --input-size HxW', { subject: model.path });
      }
      const req: MeasureRequest = { model: model.path, profile, inputSize, warmup, runs, throughputBatch, throughputRuns };
      log.info(`bench: ${model.path} on ${profile.name} (${runs} runs after ${warmup} warm-up, batch ${throughputBatch} throughput)`);
      const m = opts.isolate === false ? await measure(req, false) : await measureInChild(req);
      results.push({ model, profile, skipped: false, ...m });
    }
  }
  const report: BenchReport = {
    machine: machineInfo(),
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
    `Settings: ${r.settings.warmup} warm-up runs, latency over ${r.settings.runs} runs at batch 1, throughput over ${r.settings.throughputRuns} runs at batch ${r.settings.throughputBatch}; synthetic input at the model's input size; each model x profile in its own process.`,
    ...(r.command ? ['', `Command: \`${r.command}\``] : []),
    '',
    '| model | profile | threads | latency median (ms) | p90 (ms) | throughput (img/s) | peak RSS (MiB) | RSS delta (MiB) | size (MiB) | params | MACs/image | where nodes ran |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const x of r.results) {
    const name = x.model.modelName ?? x.model.path.split('/').pop();
    if (x.skipped) {
      lines.push(`| ${name} | ${x.profile.name} | - | skipped | | | | | ${mb(x.model.fileSizeBytes)} | ${big(x.model.parameters)} | ${big(x.model.macsPerImage)} | ${x.reason.replace(/\|/g, '/')} |`);
      continue;
    }
    const tp = x.throughput ? `${x.throughput.imagesPerSecond.toFixed(1)} @ ${x.throughput.batch}` : (x.throughputNote ?? '-');
    lines.push(
      `| ${name} | ${x.profile.name} | ${x.threads} | ${x.latencyMs.median.toFixed(2)} | ${x.latencyMs.p90.toFixed(2)} | ${tp} | ${mb(x.peakRssBytes)} | ${mb(x.peakRssDeltaBytes)} | ${mb(x.model.fileSizeBytes)} | ${big(x.model.parameters)} | ${big(x.model.macsPerImage)} | ${x.providerCheck ?? '-'} |`,
    );
  }
  lines.push('', 'Absolute times on a shared machine are hints; compare ratios measured in the same run.', '');
  return lines.join('\n');
}
