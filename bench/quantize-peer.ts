/**
 * LesionFuse's INT8 quantizer side by side with onnxruntime's Python `quantize_static` (QDQ,
 * per-channel, S8S8, MinMax) on the same float model and the SAME calibration tensors.
 *
 *   npx tsc -p . && nice -n 5 node dist/bench/quantize-peer.js \
 *     --model models/teacher/teacher.onnx=teacher --model models/student/student.onnx=student \
 *     [--data ../shared/data] [--calib-limit 32] [--test-limit 64] [--runs 30] [--out reports/quantize]
 *
 * For each model: the float model is rewritten once (remove-identity, fold-constants, remove-dead,
 * fold-batchnorm) and both quantizers get that model; calibration images
 * from the train split, preprocessed once and written as raw float32 for the peer; variants:
 * fp32, LesionFuse default, LesionFuse S8S8 (auto 7-bit), LesionFuse S8S8 8-bit (the peer's exact
 * settings), LesionFuse uint8 per-tensor weights (the trap), LesionFuse with dynamic MatMuls (when the
 * model has weight MatMuls), the peer. Measured: Dice on the test split at the model's input resolution
 * (masks resized nearest), latency at batch 1 on cpu-2t and cpu-1t (interleaved runs, median and p90),
 * file size, quantization time (calibration + insertion + write, from preprocessed tensors for both),
 * the kernels onnxruntime ran (profiler). Writes results.json and README.md into --out.
 */
import * as ort from '../src/util/ort.js';
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { cpus, totalmem } from 'node:os';
import { readModel, writeModel, encodeModel } from '../src/onnx/io.js';
import type { Model } from '../src/onnx/ir.js';
import { rewrite } from '../src/export/rewrite.js';
import { planQuantization, insertQdq, type QdqOptions } from '../src/quantize/qdq.js';
import { quantizeDynamicMatMuls } from '../src/quantize/dynamic.js';
import { collectRanges, createCalibrator, type CalibrationBatch } from '../src/quantize/calibrate.js';
import {
  modelIO, calibrationImages, imageBatches, loadMaskedImages, diceAtModelResolutionPerImage, decideActivations, decideReduceRange, cpuInt8Features,
} from '../src/quantize/quantize.js';
import { profileKernels } from '../src/quantize/kernels.js';
import { writeJsonAtomic, writeFileAtomic } from '../src/util/atomic.js';
import { VERSION } from '../src/version.js';
import { meanOf, pairedDifference } from '../src/runtime/metrics.js';

interface Args {
  models: { path: string; name: string }[];
  data: string;
  calibLimit: number;
  testLimit: number;
  runs: number;
  warmup: number;
  out: string;
  work: string;
  skipPeer: boolean;
  python: string;
  /** Extra calibrators for the default LesionFuse settings (variants lesionfuse-<method>). */
  calibrators: string[];
  /** Only these variants (fp32 is always measured); empty = all. */
  variants: string[];
}

function parseArgs(argv: string[]): Args {
  const a: Args = { models: [], data: '../shared/data', calibLimit: 32, testLimit: 64, runs: 30, warmup: 5, out: 'reports/quantize', work: 'tmp/quantize-bench', skipPeer: false, python: 'teacher/.venv/bin/python', calibrators: [], variants: [] };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = () => argv[++i]!;
    if (k === '--model') {
      const s = v();
      const eq = s.lastIndexOf('=');
      a.models.push(eq > 0 ? { path: s.slice(0, eq), name: s.slice(eq + 1) } : { path: s, name: basename(s).replace(/\.onnx$/, '') });
    } else if (k === '--data') a.data = v();
    else if (k === '--calib-limit') a.calibLimit = Number(v());
    else if (k === '--test-limit') a.testLimit = Number(v());
    else if (k === '--runs') a.runs = Number(v());
    else if (k === '--warmup') a.warmup = Number(v());
    else if (k === '--out') a.out = v();
    else if (k === '--work') a.work = v();
    else if (k === '--python') a.python = v();
    else if (k === '--skip-peer') a.skipPeer = true;
    else if (k === '--variants') a.variants = v().split(',').filter(Boolean);
    else if (k === '--calibrators') a.calibrators = v().split(',').filter((m) => m && m !== 'minmax');
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.models.length) throw new Error('give at least one --model PATH[=NAME]');
  return a;
}

function stats(ms: number[]): { median: number; p90: number; n: number } {
  const s = [...ms].sort((x, y) => x - y);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))]!;
  return { median: q(0.5), p90: q(0.9), n: s.length };
}

interface Variant {
  name: string;
  path: string;
  description: string;
  quantizeSeconds?: number;
  calibrationSeconds?: number;
}

async function benchModel(a: Args, spec: { path: string; name: string }) {
  const work = resolve(a.work, spec.name);
  mkdirSync(work, { recursive: true });
  const original = await readModel(spec.path);
  // the rewrite stage first, as the pipeline runs it: without it the peer cannot see weights that an
  // exporter routed through Identity (or stored as float16 behind a Cast) and leaves those layers float
  const rw = await rewrite(original, ['remove-identity', 'fold-constants', 'remove-dead', 'fold-batchnorm']);
  const fp32 = rw.model;
  const folded = rw.changes.filter((c) => c.pass === 'fold-batchnorm' && (c.kind === 'fused' || c.kind === 'folded')).reduce((n, c) => n + (c.count ?? c.nodes?.length ?? 1), 0);
  const fp32Path = join(work, 'fp32.onnx');
  await writeModel(fp32, fp32Path);
  const io = modelIO(fp32);
  console.error(`[${spec.name}] input ${io.height}x${io.width}, BatchNorm folded: ${folded}`);

  // calibration tensors, once, for both quantizers
  const paths = await calibrationImages(a.data, a.calibLimit);
  const batches: CalibrationBatch[] = [];
  for await (const b of imageBatches(paths, io, 1)) batches.push(b);
  const calibDir = join(work, 'calib');
  mkdirSync(calibDir, { recursive: true });
  const meta = { batches: batches.map((b, i) => ({ file: `${String(i).padStart(4, '0')}.f32`, shape: [b.n, 3, io.height, io.width] })), images: paths };
  batches.forEach((b, i) => writeFileSync(join(calibDir, meta.batches[i]!.file), Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength)));
  writeFileSync(join(calibDir, 'meta.json'), JSON.stringify(meta));

  const variants: Variant[] = [{ name: 'fp32', path: fp32Path, description: 'float32 (BatchNorm folded)' }];
  const act = decideActivations('auto');
  const rr = decideReduceRange('auto');
  const base: QdqOptions = { perChannel: true, preset: 'vit-safe' };
  const hasWeightMatMul = planQuantization(fp32, base).quantized.some((p) => p.opType === 'MatMul' && p.kind === 'weight');
  const configs: { name: string; description: string; qdq: QdqOptions; dynamic?: boolean; ownCalibration?: boolean }[] = [
    { name: 'lesionfuse', description: `LesionFuse default: ${act.value} activations (${act.reason}), int8 per-channel weights, 7-bit ${rr.value} (${rr.reason})`, qdq: { ...base, activationType: act.value, reduceRange: rr.value } },
    { name: 'lesionfuse-s8s8', description: `LesionFuse S8S8, 7-bit ${rr.value}`, qdq: { ...base, activationType: 'int8', reduceRange: rr.value } },
    { name: 'lesionfuse-s8s8-8bit', description: "LesionFuse S8S8 with full 8-bit weights (the peer's settings)", qdq: { ...base, activationType: 'int8', reduceRange: false } },
    { name: 'lesionfuse-s8s8-8bit-all', description: "LesionFuse S8S8, 8-bit weights, preset 'all' (no ViT-safe float islands: the peer's settings and op coverage as far as LesionFuse quantizes the op)", qdq: { ...base, preset: 'all', activationType: 'int8', reduceRange: false }, ownCalibration: true },
    { name: 'lesionfuse-u8-per-tensor', description: 'the trap: uint8 activations, uint8 per-tensor weights (no per-channel scales)', qdq: { ...base, activationType: 'uint8', weightType: 'uint8', perChannel: false, reduceRange: false } },
  ];
  if (hasWeightMatMul) configs.push({ name: 'lesionfuse-dynamic-matmul', description: 'LesionFuse default + weight MatMuls in dynamic INT8', qdq: { ...configs[0]!.qdq, dynamicMatMuls: true }, dynamic: true });
  const wanted = (name: string) => a.variants.length === 0 || a.variants.includes(name);

  // LesionFuse: one timed calibration (the default plan needs the most tensors), then each variant's insertion
  const t0 = performance.now();
  const plan0 = planQuantization(fp32, configs[0]!.qdq);
  const cal = await collectRanges(fp32, plan0.calibrate, batches, createCalibrator('minmax'), { inputShape: [3, io.height, io.width], threads: 2, progress: false });
  const calSeconds = (performance.now() - t0) / 1000;
  for (const c of configs) {
    if (!wanted(c.name)) continue;
    const t1 = performance.now();
    const plan = planQuantization(fp32, c.qdq);
    // a plan with more tensors than the default's is calibrated again (untimed: the timed claim is the default's)
    const ranges = c.ownCalibration
      ? (await collectRanges(fp32, plan.calibrate, batches, createCalibrator('minmax'), { inputShape: [3, io.height, io.width], threads: 2, progress: false })).ranges
      : cal.ranges;
    let m: Model = insertQdq(fp32, plan, ranges, c.qdq).model;
    if (c.dynamic) m = quantizeDynamicMatMuls(m, { reduceRange: c.qdq.reduceRange }).model;
    const p = join(work, `${c.name}.onnx`);
    await writeModel(m, p);
    const insertSeconds = (performance.now() - t1) / 1000;
    variants.push({ name: c.name, path: p, description: c.description, calibrationSeconds: c.ownCalibration ? undefined : calSeconds, quantizeSeconds: c.ownCalibration ? undefined : calSeconds + insertSeconds });
    console.error(`[${spec.name}] ${c.name}: ${plan.quantized.length} nodes INT8, ${(calSeconds + insertSeconds).toFixed(1)} s`);
  }

  // other calibrators, default settings otherwise
  for (const method of a.calibrators) {
    const t1 = performance.now();
    const plan = planQuantization(fp32, configs[0]!.qdq);
    const c = await collectRanges(fp32, plan.calibrate, batches, createCalibrator(method as 'percentile' | 'entropy'), { inputShape: [3, io.height, io.width], threads: 2, progress: false });
    const m = insertQdq(fp32, plan, c.ranges, configs[0]!.qdq).model;
    const p = join(work, `lesionfuse-${method}.onnx`);
    await writeModel(m, p);
    variants.push({ name: `lesionfuse-${method}`, path: p, description: `LesionFuse default settings with the ${method} calibrator`, calibrationSeconds: c.seconds, quantizeSeconds: (performance.now() - t1) / 1000 });
    console.error(`[${spec.name}] lesionfuse-${method}: ${((performance.now() - t1) / 1000).toFixed(1)} s`);
  }

  // the peer
  let peer: { seconds: number; onnxruntime: string } | null = null;
  if (!a.skipPeer && wanted('onnxruntime-peer')) {
    const p = join(work, 'onnxruntime-peer.onnx');
    const out = execFileSync(a.python, ['bench/peer_quantize.py', 'static', fp32Path, p, calibDir, '--calibrator', 'minmax'], { encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'pipe'] });
    const line = out.trim().split('\n').filter((l) => l.startsWith('{')).pop()!;
    peer = JSON.parse(line);
    variants.push({ name: 'onnxruntime-peer', path: p, description: `onnxruntime ${peer!.onnxruntime} quantize_static: QDQ, per_channel, S8S8, MinMax, reduce_range False`, quantizeSeconds: peer!.seconds });
    console.error(`[${spec.name}] peer: ${peer!.seconds.toFixed(1)} s`);
  }

  // Dice on the test split at the model's resolution
  const test = await loadMaskedImages(a.data, 'test', io, a.testLimit, 4);
  const dice: Record<string, number> = {};
  const perImage: Record<string, number[]> = {};
  if (test) {
    for (const v of variants) {
      perImage[v.name] = await diceAtModelResolutionPerImage(await readModel(v.path), io, test, 2);
      dice[v.name] = meanOf(perImage[v.name]!).mean;
      console.error(`[${spec.name}] test Dice ${v.name}: ${dice[v.name]!.toFixed(4)}`);
    }
  }
  // Paired differences on the same images (a mean over 24 images moves by more than the gaps being judged)
  const paired = (a: string, b: string) => {
    if (!perImage[a] || !perImage[b]) return null;
    return pairedDifference(perImage[a]!, perImage[b]!, { seed: 0 });
  };

  // same settings, same calibration tensors: how far apart are LesionFuse's and the peer's INT8 models?
  const x = batches[0]!.data.slice(0, 3 * io.height * io.width);
  const peerParity: { variant: string; maxAbsLogitDiff: number; maskAgreement: number; note: string }[] = [];
  const outOf = async (p: string) => {
    const s = await ort.InferenceSession.create(p, { graphOptimizationLevel: 'disabled', intraOpNumThreads: 2 });
    const y = (await s.run({ [io.inputName]: new ort.Tensor('float32', x, [1, 3, io.height, io.width]) }))[io.outputName]!.data as Float32Array;
    await s.release();
    return y;
  };
  const yPeer = peer ? await outOf(join(work, 'onnxruntime-peer.onnx')) : null;
  for (const name of ['lesionfuse-s8s8-8bit', 'lesionfuse-s8s8-8bit-all']) {
    if (!yPeer || !variants.some((v) => v.name === name)) continue;
    const ya = await outOf(join(work, `${name}.onnx`));
    let d = 0;
    let agree = 0;
    for (let i = 0; i < ya.length; i++) {
      d = Math.max(d, Math.abs(ya[i]! - yPeer[i]!));
      if (ya[i]! > 0 === yPeer[i]! > 0) agree++;
    }
    peerParity.push({ variant: name, maxAbsLogitDiff: d, maskAgreement: agree / ya.length, note: `${name} vs onnxruntime-peer, one calibration image, graph optimizations off (ONNX semantics)` });
    console.error(`[${spec.name}] ${name} vs the peer: max |logit diff| ${d}, mask agreement ${(agree / ya.length).toFixed(6)}`);
  }

  // latency, interleaved, per profile
  const latency: Record<string, Record<string, ReturnType<typeof stats>>> = {};
  for (const [profile, threads] of [['cpu-2t', 2], ['cpu-1t', 1]] as const) {
    const sessions = [];
    for (const v of variants) sessions.push(await ort.InferenceSession.create(v.path, { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential' }));
    const feed = { [io.inputName]: new ort.Tensor('float32', x, [1, 3, io.height, io.width]) };
    for (const s of sessions) for (let i = 0; i < a.warmup; i++) await s.run(feed);
    const times: number[][] = variants.map(() => []);
    for (let r = 0; r < a.runs; r++) {
      for (let i = 0; i < sessions.length; i++) {
        const t = performance.now();
        await sessions[i]!.run(feed);
        times[i]!.push(performance.now() - t);
      }
    }
    for (const s of sessions) await s.release();
    latency[profile] = Object.fromEntries(variants.map((v, i) => [v.name, stats(times[i]!)]));
    console.error(`[${spec.name}] ${profile}: ${variants.map((v, i) => `${v.name} ${stats(times[i]!).median.toFixed(1)} ms`).join(', ')}`);
  }

  // kernels
  const kernels: Record<string, { op: string; calls: number; ms: number }[]> = {};
  for (const v of variants) {
    const pf = await profileKernels(v.path, { [io.inputName]: new ort.Tensor('float32', x, [1, 3, io.height, io.width]) }, { runs: 1, threads: 1 });
    kernels[v.name] = pf.ops.map((o) => ({ op: o.op, calls: o.calls, ms: o.microseconds / 1000 }));
  }

  const rows = variants.map((v) => ({
    variant: v.name,
    description: v.description,
    testDice: dice[v.name] ?? null,
    diceDropVsFp32: dice[v.name] !== undefined && dice['fp32'] !== undefined ? dice['fp32']! - dice[v.name]! : null,
    latencyMs: { 'cpu-2t': latency['cpu-2t']![v.name]!, 'cpu-1t': latency['cpu-1t']![v.name]! },
    latencyRatioVsFp32: { 'cpu-2t': latency['cpu-2t']![v.name]!.median / latency['cpu-2t']!['fp32']!.median, 'cpu-1t': latency['cpu-1t']![v.name]!.median / latency['cpu-1t']!['fp32']!.median },
    fileBytes: statSync(v.path).size,
    quantizeSeconds: v.quantizeSeconds ?? null,
    calibrationSeconds: v.calibrationSeconds ?? null,
    kernels: kernels[v.name]!.slice(0, 8),
    diceVsFp32: v.name === 'fp32' ? null : paired(v.name, 'fp32'),
    diceVsPeer: v.name === 'onnxruntime-peer' ? null : paired(v.name, 'onnxruntime-peer'),
  }));
  return { model: spec.name, source: spec.path, input: `${io.height}x${io.width}`, batchNormFolded: folded, calibrationImages: paths.length, testImages: test?.images ?? 0, peerParity, rows };
}

function markdown(res: Awaited<ReturnType<typeof benchModel>>[], header: string): string {
  const out: string[] = [header];
  for (const r of res) {
    out.push(`\n## ${r.model} (${r.source}, input ${r.input}; ${r.calibrationImages} calibration images from train; Dice on ${r.testImages} test images at the model's input resolution)\n`);
    out.push('| variant | test Dice | drop vs fp32 | cpu-2t median ms (p90) | x fp32 | cpu-1t median ms (p90) | x fp32 | file MB | quantize s |');
    out.push('|---|---|---|---|---|---|---|---|---|');
    for (const row of r.rows) {
      const l2 = row.latencyMs['cpu-2t'];
      const l1 = row.latencyMs['cpu-1t'];
      out.push(`| ${row.variant} | ${row.testDice?.toFixed(4) ?? 'n/a'} | ${row.diceDropVsFp32?.toFixed(4) ?? 'n/a'} | ${l2.median.toFixed(1)} (${l2.p90.toFixed(1)}) | ${row.latencyRatioVsFp32['cpu-2t'].toFixed(2)} | ${l1.median.toFixed(1)} (${l1.p90.toFixed(1)}) | ${row.latencyRatioVsFp32['cpu-1t'].toFixed(2)} | ${(row.fileBytes / 1e6).toFixed(2)} | ${row.quantizeSeconds?.toFixed(1) ?? ''} |`);
    }
    const ci = (p: { mean: number; ci95: [number, number]; better: number; worse: number } | null) =>
      p ? `${p.mean >= 0 ? '+' : ''}${p.mean.toFixed(4)} [${p.ci95[0].toFixed(4)}, ${p.ci95[1].toFixed(4)}] (${p.better} better, ${p.worse} worse)` : '-';
    if (r.rows.some((row) => row.diceVsFp32 || row.diceVsPeer)) {
      out.push(`\nPaired Dice differences on the same ${r.testImages} test images (variant minus reference; 95% bootstrap interval of the mean difference; images better / worse):\n`);
      out.push('| variant | vs fp32 | vs onnxruntime-peer |');
      out.push('|---|---|---|');
      for (const row of r.rows) if (row.variant !== 'fp32') out.push(`| ${row.variant} | ${ci(row.diceVsFp32)} | ${ci(row.diceVsPeer)} |`);
    }
    for (const pp of r.peerParity) out.push(`\nAgainst the peer's model (${pp.variant}): max |logit difference| ${pp.maxAbsLogitDiff.toExponential(2)}, mask agreement ${(100 * pp.maskAgreement).toFixed(4)}% (${pp.note}).`);
    out.push('\nKernels onnxruntime ran (1 thread, one run; top 8 by time):\n');
    for (const row of r.rows) out.push(`- ${row.variant}: ${row.kernels.map((k) => `${k.op} x${k.calls} ${k.ms.toFixed(1)} ms`).join(', ')}`);
    out.push('\nVariants:\n');
    for (const row of r.rows) out.push(`- ${row.variant}: ${row.description}`);
  }
  return out.join('\n') + '\n';
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  mkdirSync(a.out, { recursive: true });
  const cpu = cpuInt8Features();
  let pyVersions = '';
  try {
    pyVersions = execFileSync(a.python, ['-c', 'import onnxruntime, onnx, numpy; print(onnxruntime.__version__, onnx.__version__, numpy.__version__)'], { encoding: 'utf8' }).trim();
  } catch {
    pyVersions = 'python peer not available';
  }
  const machine = { cpu: cpu.model, cores: cpus().length, memoryGiB: +(totalmem() / 2 ** 30).toFixed(1), arch: cpu.arch, int8Flags: cpu.flags, vnni: cpu.vnni };
  const versions = { lesionfuse: VERSION, node: process.version, onnxruntimeNode: ort.env.versions?.common ?? 'unknown', peer: `onnxruntime/onnx/numpy ${pyVersions}` };
  const command = `nice -n 5 node dist/bench/quantize-peer.js ${process.argv.slice(2).join(' ')}`;
  const results = [];
  for (const m of a.models) {
    if (!existsSync(m.path)) {
      console.error(`skipping ${m.name}: ${m.path} does not exist`);
      continue;
    }
    results.push(await benchModel(a, m));
  }
  const when = new Date().toISOString();
  await writeJsonAtomic(join(a.out, 'results.json'), { when, command, machine, versions, settings: { calibLimit: a.calibLimit, testLimit: a.testLimit, runs: a.runs, warmup: a.warmup }, results });
  const header = [
    '# INT8 quantization: LesionFuse vs onnxruntime\'s quantize_static',
    '',
    `Generated ${when} by \`${command}\` (after \`npx tsc -p .\`).`,
    '',
    `Machine: ${machine.cpu}, ${machine.cores} cores (shared with other jobs: ratios within one run are what count), ${machine.memoryGiB} GiB; INT8-relevant CPU flags: ${machine.int8Flags.join(', ') || 'none'}; VNNI: ${machine.vnni ? 'yes' : 'no'}.`,
    `Versions: LesionFuse ${versions.lesionfuse}, Node ${versions.node}, onnxruntime-node ${versions.onnxruntimeNode}, peer ${versions.peer}.`,
  ].join('\n');
  await writeFileAtomic(join(a.out, 'results.md'), markdown(results, header));
  console.error(`wrote ${join(a.out, 'results.json')} and results.md`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
