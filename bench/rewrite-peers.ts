/**
 * Rewrites vs their peers, side by side in one run (docs/benchmarks.md, "The peers"): LesionFuse's default
 * rewrite, onnxruntime's own offline-optimised model (SessionOptions.optimizedModelFilePath at 'basic' and
 * 'extended'), and onnxsim where it is importable from teacher/.venv (not in teacher/requirements.txt, which
 * the tests need; add it with `teacher/.venv/bin/pip install onnxsim`). For each model and variant: node
 * count, file size, time to produce it, latency (median/p90 over --runs runs after --warmup, batch 1, 2
 * intra-op threads, interleaved across variants so machine noise hits all alike) with onnxruntime's
 * runtime optimisation off ('disabled': the graph as written) and on ('all': as deployed), and output
 * parity against the original on the bundled sample images.
 *
 *   npx tsc -p . && nice -n 5 node dist/bench/rewrite-peers.js [--model PATH]... [--no-student]
 *       [--teacher-arch] [--runs 30] [--warmup 5] [--threads 2] [--out reports/rewrite]
 *
 * Default models: models/teacher/teacher.onnx when present, and a mobile-unet student at 192x256 built with
 * buildStudent (inference graph with BatchNormalization). --teacher-arch also exports the fused teacher
 * architecture with untrained weights through teacher/export.py (fp16 storage, like the shipped teacher).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, promises as fs } from 'node:fs';
import os from 'node:os';
import { basename, join, resolve } from 'node:path';
import * as ort from '../src/util/ort.js';
import { buildStudent } from '../src/distill/zoo/index.js';
import { checkParity, defaultParityImageDir } from '../src/export/parity.js';
import { DEFAULT_PASSES, rewrite } from '../src/export/rewrite.js';
import type { Model } from '../src/onnx/ir.js';
import { readModel, writeModel } from '../src/onnx/io.js';
import { readSegmentationMetadata } from '../src/onnx/metadata.js';
import { decodeImage, toModelInput } from '../src/runtime/image.js';
import { writeFileAtomic, writeJsonAtomic } from '../src/util/atomic.js';
import { packageRoot } from '../src/util/paths.js';
import { VERSION } from '../src/version.js';

interface Args {
  models: string[];
  student: boolean;
  teacherArch: boolean;
  runs: number;
  warmup: number;
  threads: number;
  out: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { models: [], student: true, teacherArch: false, runs: 30, warmup: 5, threads: 2, out: join(packageRoot(), 'reports', 'rewrite') };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === '--model') a.models.push(resolve(v()));
    else if (k === '--no-student') a.student = false;
    else if (k === '--teacher-arch') a.teacherArch = true;
    else if (k === '--runs') a.runs = Number(v());
    else if (k === '--warmup') a.warmup = Number(v());
    else if (k === '--threads') a.threads = Number(v());
    else if (k === '--out') a.out = resolve(v());
    else throw new Error(`unknown option ${k}`);
  }
  return a;
}

const PY = join(packageRoot(), 'teacher', '.venv', 'bin', 'python');

interface Variant {
  name: string;
  tool: string;
  path: string | null;
  skipped?: string;
  makeMs?: number;
  nodes?: number;
  fileBytes?: number;
  ops?: Record<string, number>;
  latency?: Record<string, { medianMs: number; p90Ms: number; runs: number }>;
  parity?: { maxAbsDiffProb: number; worstMaskDice: number; images: number; message: string };
  notes?: string[];
}

function opHistogram(m: Model): Record<string, number> {
  const h: Record<string, number> = {};
  for (const n of m.graph.nodes) {
    const k = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}:${n.opType}` : n.opType;
    h[k] = (h[k] ?? 0) + 1;
  }
  return h;
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

async function makeVariants(model: string, work: string, args: Args): Promise<Variant[]> {
  const vs: Variant[] = [{ name: 'original', tool: 'as exported', path: model, makeMs: 0 }];
  // LesionFuse default rewrite (parity is measured below, like for every variant).
  {
    const t0 = performance.now();
    const m = await readModel(model);
    const r = await rewrite(m, DEFAULT_PASSES);
    const out = join(work, 'lesionfuse-default.onnx');
    await writeModel(r.model, out);
    const notes = r.changes.filter((c) => c.kind !== 'changed' || (c.count ?? 0) > 0).map((c) => `${c.pass}: ${c.message}`);
    vs.push({ name: 'lesionfuse', tool: `lesionfuse rewrite (${DEFAULT_PASSES.join(',')})`, path: out, makeMs: performance.now() - t0, notes });
  }
  // The same plus to-float16: half-size weights; on a CPU, onnxruntime runs most float16 ops through
  // inserted Casts, so this row shows what float16 costs or saves here (parity by mask agreement).
  {
    const t0 = performance.now();
    const m = await readModel(model);
    const r = await rewrite(m, [...DEFAULT_PASSES, 'to-float16']);
    const out = join(work, 'lesionfuse-fp16.onnx');
    await writeModel(r.model, out);
    vs.push({ name: 'lesionfuse-fp16', tool: 'lesionfuse rewrite (default passes + to-float16)', path: out, makeMs: performance.now() - t0 });
  }
  for (const level of ['basic', 'extended'] as const) {
    const out = join(work, `ort-${level}.onnx`);
    const t0 = performance.now();
    try {
      const s = await ort.InferenceSession.create(model, { graphOptimizationLevel: level, optimizedModelFilePath: out, intraOpNumThreads: args.threads });
      await s.release();
      vs.push({ name: `ort-${level}`, tool: `onnxruntime-node ${ort.env.versions.common} optimizedModelFilePath, level '${level}'`, path: out, makeMs: performance.now() - t0 });
    } catch (err) {
      vs.push({ name: `ort-${level}`, tool: 'onnxruntime offline optimisation', path: null, skipped: (err as Error).message.split('\n')[0] });
    }
  }
  {
    const out = join(work, 'onnxsim.onnx');
    if (!existsSync(PY)) {
      vs.push({ name: 'onnxsim', tool: 'onnxsim', path: null, skipped: `no Python at ${PY}` });
    } else {
      const t0 = performance.now();
      const r = spawnSync(PY, ['-m', 'onnxsim', model, out], { encoding: 'utf8', timeout: 600_000 });
      const ms = performance.now() - t0;
      if (r.status === 0 && existsSync(out)) vs.push({ name: 'onnxsim', tool: `onnxsim ${pyVersions().onnxsim ?? '?'} (defaults)`, path: out, makeMs: ms });
      else vs.push({ name: 'onnxsim', tool: 'onnxsim', path: null, skipped: `python -m onnxsim failed: ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-1)[0]}` });
    }
  }
  return vs;
}

let pyCache: Record<string, string> | null = null;
function pyVersions(): Record<string, string> {
  if (pyCache) return pyCache;
  pyCache = {};
  if (!existsSync(PY)) return pyCache;
  const code = 'import json\nout={}\nfor m in ["onnx","onnxruntime","onnxsim","torch"]:\n  try:\n    mod=__import__(m); out[m]=getattr(mod,"__version__","?")\n  except Exception as e: out[m]="not importable: "+str(e).splitlines()[0]\nprint(json.dumps(out))';
  const r = spawnSync(PY, ['-c', code], { encoding: 'utf8', timeout: 120_000 });
  try {
    pyCache = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}');
  } catch {
    pyCache = {};
  }
  return pyCache!;
}

async function benchLatency(vs: Variant[], input: ort.Tensor, inputName: string, level: 'disabled' | 'all', args: Args): Promise<void> {
  const live = vs.filter((v) => v.path);
  const sessions: ort.InferenceSession[] = [];
  for (const v of live) {
    sessions.push(await ort.InferenceSession.create(v.path!, { graphOptimizationLevel: level, intraOpNumThreads: args.threads, interOpNumThreads: 1, executionMode: 'sequential' }));
  }
  const times: number[][] = live.map(() => []);
  try {
    for (let w = 0; w < args.warmup; w++) for (const s of sessions) await s.run({ [inputName]: input });
    for (let r = 0; r < args.runs; r++) {
      for (let k = 0; k < sessions.length; k++) {
        const t0 = performance.now();
        await sessions[k]!.run({ [inputName]: input });
        times[k]!.push(performance.now() - t0);
      }
    }
  } finally {
    for (const s of sessions) await s.release();
  }
  live.forEach((v, k) => {
    v.latency ??= {};
    v.latency[level] = { medianMs: quantile(times[k]!, 0.5), p90Ms: quantile(times[k]!, 0.9), runs: args.runs };
  });
}

async function exportUntrainedTeacher(work: string): Promise<string> {
  const out = join(work, 'teacher-arch-untrained.onnx');
  const code = [
    'import sys, torch',
    `sys.path.insert(0, ${JSON.stringify(packageRoot())})`,
    'from pathlib import Path',
    'from teacher.models import build_model',
    'from teacher.export import export_model',
    'torch.manual_seed(0)',
    "m = build_model('fused', (192, 256))",
    `export_model(m, Path(${JSON.stringify(out)}), (192, 256), model_name='fused-teacher-untrained', fp16_storage=True)`,
  ].join('\n');
  const r = spawnSync(PY, ['-c', code], { encoding: 'utf8', timeout: 900_000 });
  if (r.status !== 0 || !existsSync(out)) throw new Error(`teacher-architecture export failed: ${(r.stderr || '').trim().split('\n').slice(-1)[0]}`);
  return out;
}

interface ModelEntry {
  name: string;
  path: string;
  description: string;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const work = mkdtempSync(join(os.tmpdir(), 'lf-rewrite-peers-'));
  const entries: ModelEntry[] = [];
  const teacher = join(packageRoot(), 'models', 'teacher', 'teacher.onnx');
  const notes: string[] = [];
  if (existsSync(teacher) && !args.models.length) entries.push({ name: 'teacher', path: teacher, description: 'bundled teacher (models/teacher/teacher.onnx)' });
  else if (!args.models.length) notes.push('models/teacher/teacher.onnx was not present when this ran: the trained teacher is not in this report.');
  for (const m of args.models) entries.push({ name: basename(m, '.onnx'), path: m, description: `given with --model ${m}` });
  if (args.teacherArch) {
    entries.push({ name: 'teacher-arch-untrained', path: await exportUntrainedTeacher(work), description: 'fused ResNet-34 + DeiT-S teacher architecture, untrained (seed 0) weights, exported by teacher/export.py with --fp16-storage (same graph as the shipped teacher, other weight values)' });
  }
  if (args.student) {
    const s = buildStudent('mobile-unet', { inputSize: { height: 192, width: 256 }, mode: 'infer', seed: 0 });
    const p = join(work, 'student-mobile-unet.onnx');
    await writeModel(s.model, p);
    entries.push({ name: 'student-mobile-unet', path: p, description: `mobile-unet student 192x256 from buildStudent (inference graph, untrained seed-0 weights, ${s.paramCount} parameters)` });
  }
  const imgDir = defaultParityImageDir();
  const results = [];
  for (const e of entries) {
    process.stderr.write(`[${e.name}] making variants...\n`);
    const dir = join(work, e.name);
    await fs.mkdir(dir, { recursive: true });
    const vs = await makeVariants(e.path, dir, args);
    const original = await readModel(e.path);
    const meta = readSegmentationMetadata(original.metadata);
    const x = original.graph.inputs[0]!;
    const h = typeof x.shape?.[2] === 'number' ? x.shape[2] : meta.inputSize?.height ?? 192;
    const w = typeof x.shape?.[3] === 'number' ? x.shape[3] : meta.inputSize?.width ?? 256;
    for (const v of vs) {
      if (!v.path) continue;
      const m = await readModel(v.path);
      v.nodes = m.graph.nodes.length;
      v.ops = opHistogram(m);
      v.fileBytes = (await fs.stat(v.path)).size;
      process.stderr.write(`[${e.name}] parity ${v.name}...\n`);
      const p = await checkParity(original, m, { images: imgDir ? [imgDir] : undefined });
      v.parity = { maxAbsDiffProb: p.maxAbsDiff, worstMaskDice: p.worstDiceAgreement, images: p.images, message: p.message };
    }
    const img = await decodeImage(join(imgDir!, (await fs.readdir(imgDir!)).sort()[0]!));
    const tensor = new ort.Tensor('float32', toModelInput([img], { mean: meta.mean, std: meta.std, channelOrder: meta.channelOrder, height: h, width: w }), [1, 3, h, w]);
    for (const level of ['disabled', 'all'] as const) {
      process.stderr.write(`[${e.name}] latency, onnxruntime optimisation '${level}'...\n`);
      await benchLatency(vs, tensor, x.name, level, args);
    }
    results.push({ ...e, inputSize: `${h}x${w}`, variants: vs.map((v) => ({ ...v, path: v.path ? (v.path === e.path ? e.path : basename(v.path)) : null })) });
  }
  const cpus = os.cpus();
  const report = {
    command: `nice -n 5 node dist/bench/rewrite-peers.js ${process.argv.slice(2).join(' ')}`.trim(),
    date: new Date().toISOString(),
    machine: { cpu: cpus[0]?.model ?? '?', logicalCores: cpus.length, totalMemGiB: +(os.totalmem() / 2 ** 30).toFixed(1), os: `${os.type()} ${os.release()}`, loadAverageAtEnd: os.loadavg() },
    versions: { node: process.version, onnxruntimeNode: ort.env.versions.common, lesionfuse: VERSION, python: pyVersions() },
    settings: { runs: args.runs, warmup: args.warmup, intraOpThreads: args.threads, batch: 1, parityImages: imgDir },
    notes,
    models: results,
  };
  await fs.mkdir(args.out, { recursive: true });
  await writeJsonAtomic(join(args.out, 'results.json'), report);
  await writeFileAtomic(join(args.out, 'README.md'), renderMarkdown(report));
  process.stderr.write(`wrote ${join(args.out, 'results.json')} and README.md\n`);
}

function renderMarkdown(r: { command: string; date: string; machine: Record<string, unknown>; versions: Record<string, unknown>; settings: Record<string, unknown>; notes: string[]; models: { name: string; description: string; inputSize: string; variants: Variant[] }[] }): string {
  const L: string[] = [];
  L.push('# Rewrites vs peers', '');
  L.push('Generated by `bench/rewrite-peers.ts`; every number below comes from this command:', '', '```', `npx tsc -p . && ${r.command}`, '```', '');
  L.push(`Run ${r.date} on ${JSON.stringify(r.machine)}.`, '', `Versions: ${JSON.stringify(r.versions)}.`, '', `Settings: ${JSON.stringify(r.settings)}.`, '');
  L.push('Latency: batch 1, median (p90) in ms, the variants interleaved run by run in one process; "ort off" = session with graphOptimizationLevel \'disabled\' (the graph as written), "ort all" = \'all\' (what a deployment gets). The machine is shared and noisy: compare ratios within a table, not absolute times across runs.', '');
  L.push('Parity: each variant against the original on the bundled sample images, as probabilities (sigmoid of logits): max |dp| and the worst per-image Dice between the thresholded masks.', '');
  for (const n of r.notes) L.push(`- ${n}`);
  if (r.notes.length) L.push('');
  for (const m of r.models) {
    L.push(`## ${m.name} (${m.inputSize})`, '', m.description, '');
    L.push('| variant | nodes | file MB | made in s | ort off ms | ort all ms | max abs dp | worst mask Dice |');
    L.push('|---|---:|---:|---:|---:|---:|---:|---:|');
    const base = m.variants[0]!;
    for (const v of m.variants) {
      if (v.skipped) {
        L.push(`| ${v.name} | skipped: ${v.skipped} | | | | | | |`);
        continue;
      }
      const lat = (lv: string) => {
        const x = v.latency?.[lv];
        const b = base.latency?.[lv];
        return x ? `${x.medianMs.toFixed(1)} (${x.p90Ms.toFixed(1)})${b && v !== base ? ` x${(x.medianMs / b.medianMs).toFixed(2)}` : ''}` : '-';
      };
      L.push(
        `| ${v.name} | ${v.nodes} | ${((v.fileBytes ?? 0) / 1e6).toFixed(2)} | ${((v.makeMs ?? 0) / 1000).toFixed(2)} | ${lat('disabled')} | ${lat('all')} | ${v.parity ? v.parity.maxAbsDiffProb.toExponential(2) : '-'} | ${v.parity ? v.parity.worstMaskDice.toFixed(4) : '-'} |`,
      );
    }
    L.push('', 'Tools: ' + m.variants.map((v) => `${v.name} = ${v.tool}`).join('; ') + '.', '');
    const lf = m.variants.find((v) => v.name === 'lesionfuse');
    if (lf?.notes?.length) {
      L.push('What the LesionFuse rewrite did:', '');
      for (const n of lf.notes) L.push(`- ${n}`);
      L.push('');
    }
    const ops = new Set<string>();
    for (const v of m.variants) for (const k of Object.keys(v.ops ?? {})) ops.add(k);
    L.push('<details><summary>op counts per variant</summary>', '', `| op | ${m.variants.map((v) => v.name).join(' | ')} |`, `|---|${m.variants.map(() => '---:').join('|')}|`);
    for (const op of [...ops].sort()) L.push(`| ${op} | ${m.variants.map((v) => v.ops?.[op] ?? 0).join(' | ')} |`);
    L.push('', '</details>', '');
  }
  return L.join('\n') + '\n';
}

main().catch((err) => {
  process.stderr.write(`rewrite-peers: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
