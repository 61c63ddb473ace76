/**
 * Training-engine benchmark: LesionFuse (ONNX backward graph in onnxruntime-node + AdamW in TS) against
 * PyTorch eager (autograd + torch.optim.AdamW) on the same student, the same initial weights, the same
 * batches and the same number of threads. Not a test: it writes reports/engine/results.json + README.md.
 *
 * Usage (after `npx tsc -p .`):
 *   nice -n 5 node dist/bench/train-engine.js [--batch 8] [--height 192] [--width 256] [--steps 20] [--warmup 3]
 *     [--threads 2] [--student unet-small] [--variant-steps 5] [--skip-torch] [--spin] [--out reports/engine]
 *
 * Both peers wait passively by default (onnxruntime allow_spinning=0, OMP_WAIT_POLICY=PASSIVE for PyTorch):
 * on a machine shared with other work, spinning threads steal the cores the others need and both peers get
 * several times slower (see reports/engine/README.md). `--spin` keeps both libraries' defaults.
 *
 * What runs:
 *  1. the zoo student (src/distill/zoo) in training form + the distillation losses (BCE + Dice, no KD),
 *     written to a work folder with 2 fixed batches of real images/masks from ../shared/data (train split);
 *  2. LesionFuse: warm-up, then `steps` timed steps (graph optimization 'all', `threads` intra-op threads,
 *     worker thread), constant learning rate; the losses of every step are kept for the curve;
 *  3. variants for before/after numbers (fewer steps): optimization levels disabled/basic, 1 thread;
 *  4. an onnxruntime profile of a few steps, aggregated per op type and forward vs backward;
 *  5. bench/torch_train_step.py on the same folder (teacher/.venv), then the ratio and the curve comparison.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { buildStudent, parseStudentName } from '../src/distill/zoo/index.js';
import { appendLosses } from '../src/distill/losses.js';
import { writeModel } from '../src/onnx/io.js';
import { buildTrainingModel, TRAINING_OPSET, type TrainingModel } from '../src/distill/autodiff/backward.js';
import { probeShapes } from '../src/distill/autodiff/shapes.js';
import { Trainer, type TrainerOptions } from '../src/distill/engine/trainer.js';
import type { HostTensor } from '../src/distill/engine/core.js';
import { openDataset } from '../src/runtime/dataset.js';
import { decodeImage, readMask, resizeBilinearU8, resizeMaskNearest } from '../src/runtime/image.js';
import { writeJsonAtomic, writeFileAtomic } from '../src/util/atomic.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}
const B = Number(arg('batch', '8'));
const H = Number(arg('height', '192'));
const W = Number(arg('width', '256'));
const STEPS = Number(arg('steps', '20'));
const WARMUP = Number(arg('warmup', '3'));
const THREADS = Number(arg('threads', '2'));
const VARIANT_STEPS = Number(arg('variant-steps', '5'));
const STUDENT = parseStudentName(arg('student', 'unet-small'));
const OUT = resolve(arg('out', 'reports/engine'));
const WORK = resolve(arg('work', '/tmp/lf-engine-bench'));
const SKIP_TORCH = process.argv.includes('--skip-torch');
const SPIN = process.argv.includes('--spin');
const CURVE = Number(arg('curve', '20'));
const OPTIMIZER = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Two fixed batches of real training pairs, normalised as the students expect. */
async function loadBatches(): Promise<Record<string, HostTensor>[]> {
  const ds = await openDataset('/work/shared/data', { split: 'train' });
  const out: Record<string, HostTensor>[] = [];
  for (let k = 0; k < 2; k++) {
    const image = new Float32Array(B * 3 * H * W);
    const mask = new Float32Array(B * H * W);
    for (let i = 0; i < B; i++) {
      const item = ds.items[(k * B + i) * 37 % ds.items.length]!;
      const img = await decodeImage(item.imagePath);
      const rgb = resizeBilinearU8(img.data, img.width, img.height, 3, W, H);
      for (let c = 0; c < 3; c++) for (let p = 0; p < H * W; p++) image[(i * 3 + c) * H * W + p] = (rgb[p * 3 + c]! / 255 - MEAN[c]!) / STD[c]!;
      const m = resizeMaskNearest(await readMask(item.maskPath), W, H);
      for (let p = 0; p < H * W; p++) mask[i * H * W + p] = m.data[p]!;
    }
    out.push({ image: { dims: [B, 3, H, W], data: image }, mask: { dims: [B, 1, H, W], data: mask } });
  }
  return out;
}

interface RunResult {
  label: string;
  threads: number;
  level: NonNullable<TrainerOptions['graphOptimizationLevel']>;
  losses: number[];
  stepMs: number[];
  runMs: number[];
  optimMs: number[];
  medianStepMs: number;
  medianRunMs: number;
  medianOptimMs: number;
  /** 1-minute load average before and after (the machine is shared). */
  loadBefore: number;
  loadAfter: number;
}

async function runEngine(tm: TrainingModel, batches: Record<string, HostTensor>[], label: string, o: Partial<TrainerOptions>, warmup: number, steps: number): Promise<RunResult> {
  const loadBefore = loadavg()[0]!;
  const trainer = await Trainer.create(tm, { optimizer: OPTIMIZER, threads: THREADS, graphOptimizationLevel: 'all', allowSpinning: SPIN, ...o });
  const losses: number[] = [];
  const stepMs: number[] = [];
  const runMs: number[] = [];
  const optimMs: number[] = [];
  try {
    for (let s = 0; s < warmup + steps; s++) {
      const t0 = performance.now();
      const r = await trainer.step(batches[s % batches.length]!);
      stepMs.push(performance.now() - t0);
      runMs.push(r.runMs);
      optimMs.push(r.optimMs);
      losses.push(r.loss);
      process.stderr.write(`${label} step ${s}: loss ${r.loss.toFixed(6)} ${stepMs[s]!.toFixed(0)} ms (run ${r.runMs.toFixed(0)})\n`);
    }
    if (o.profilePrefix) await trainer.endProfiling();
  } finally {
    await trainer.dispose();
  }
  const timed = (xs: number[]) => xs.slice(warmup);
  return {
    label,
    threads: o.threads ?? THREADS,
    level: o.graphOptimizationLevel ?? 'all',
    losses,
    stepMs,
    runMs,
    optimMs,
    medianStepMs: median(timed(stepMs)),
    medianRunMs: median(timed(runMs)),
    medianOptimMs: median(timed(optimMs)),
    loadBefore,
    loadAfter: loadavg()[0]!,
  };
}

/** Aggregate an onnxruntime profile: kernel time per op type, forward vs backward (node names under grad/). */
function summariseProfile(path: string, steps: number) {
  const events = JSON.parse(readFileSync(path, 'utf8')) as { cat: string; name: string; dur: number; args?: { op_name?: string } }[];
  const byOp = new Map<string, { ms: number; fwdMs: number; bwdMs: number; count: number }>();
  let total = 0;
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const op = e.args?.op_name ?? '?';
    const ms = e.dur / 1000 / steps;
    const bwd = e.name.startsWith('grad/');
    const r = byOp.get(op) ?? { ms: 0, fwdMs: 0, bwdMs: 0, count: 0 };
    r.ms += ms;
    if (bwd) r.bwdMs += ms;
    else r.fwdMs += ms;
    r.count++;
    byOp.set(op, r);
    total += ms;
  }
  const rows = [...byOp].map(([op, r]) => ({ op, msPerStep: +r.ms.toFixed(1), forwardMs: +r.fwdMs.toFixed(1), backwardMs: +r.bwdMs.toFixed(1), share: +(r.ms / total).toFixed(3) }));
  rows.sort((a, b) => b.msPerStep - a.msPerStep);
  return { kernelMsPerStep: +total.toFixed(1), byOpType: rows };
}

async function main(): Promise<void> {
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  mkdirSync(OUT, { recursive: true });
  const student = buildStudent(STUDENT, { inputSize: { height: H, width: W }, batch: B, mode: 'train', seed: 0 });
  const lg = appendLosses(student.model, { kd: false });
  await writeModel(lg.model, join(WORK, 'loss_model.onnx'));
  const batches = await loadBatches();
  const batchMeta = batches.map((b, k) =>
    Object.fromEntries(
      Object.entries(b).map(([name, t]) => {
        const file = `batch${k}_${name}.f32`;
        writeFileSync(join(WORK, file), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
        return [name, { file, dims: t.dims }];
      }),
    ),
  );
  writeFileSync(
    join(WORK, 'spec.json'),
    JSON.stringify({ loss: lg.loss, params: student.params, threads: THREADS, warmup: WARMUP, steps: STEPS, curveSteps: CURVE, optimizer: OPTIMIZER, batches: batchMeta }, null, 1),
  );

  const tBuild0 = performance.now();
  const shapes = await probeShapes(lg.model);
  const tm = buildTrainingModel(lg.model, { loss: lg.loss, params: student.params, shapes });
  const buildMs = performance.now() - tBuild0;
  const nodesFwd = lg.model.graph.nodes.length;
  const nodesTrain = tm.model.graph.nodes.length;

  const runs: RunResult[] = [];
  const main = await runEngine(tm, batches, 'lesionfuse all', {}, WARMUP, Math.max(STEPS, CURVE - WARMUP));
  runs.push(main);

  let torch: { losses: number[]; stepMs: number[]; medianMs: number; torch: string; threads: number; mkldnn: boolean; loadBefore: number; loadAfter: number } | undefined;
  if (!SKIP_TORCH) {
    const out = join(WORK, 'torch.json');
    const loadBefore = loadavg()[0]!;
    // Same niceness as this process (inherited); passive OpenMP waits unless --spin.
    const env = SPIN ? process.env : { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' };
    const r = spawnSync(resolve('teacher/.venv/bin/python'), [resolve('bench/torch_train_step.py'), '--dir', WORK, '--out', out], { stdio: ['ignore', 'inherit', 'inherit'], env });
    if (r.status === 0) torch = { ...JSON.parse(readFileSync(out, 'utf8')), loadBefore, loadAfter: loadavg()[0]! };
    else process.stderr.write(`torch peer failed (status ${r.status})\n`);
  }

  const profPrefix = join(WORK, 'ort_profile');
  let profile: ReturnType<typeof summariseProfile> | undefined;
  if (VARIANT_STEPS > 0) {
    // Before/after of the backward formulations (defaults: flipped-kernel Conv for stride-1 dX, per-offset MatMul dW).
    const tmStacked = buildTrainingModel(lg.model, { loss: lg.loss, params: student.params, shapes, gradOptions: { convWeightGrad: 'matmul' } });
    runs.push(await runEngine(tmStacked, batches, 'lesionfuse all, dW as stacked patches + one MatMul', {}, 1, VARIANT_STEPS));
    const tmConvDw = buildTrainingModel(lg.model, { loss: lg.loss, params: student.params, shapes, gradOptions: { convWeightGrad: 'conv' } });
    runs.push(await runEngine(tmConvDw, batches, 'lesionfuse all, dW as transposed Conv', {}, 1, VARIANT_STEPS));
    const tmFirst = buildTrainingModel(lg.model, { loss: lg.loss, params: student.params, shapes, gradOptions: { convWeightGrad: 'conv', convInputGrad: 'convtranspose' } });
    runs.push(await runEngine(tmFirst, batches, 'lesionfuse all, dW as transposed Conv + dX as ConvTranspose (first version)', {}, 1, VARIANT_STEPS));
    runs.push(await runEngine(tm, batches, 'lesionfuse all (defaults again, for drift)', {}, 1, VARIANT_STEPS));
    for (const [label, o] of [
      [SPIN ? 'lesionfuse all, no spinning' : 'lesionfuse all, spinning (onnxruntime default)', { allowSpinning: !SPIN }],
      ['lesionfuse disabled', { graphOptimizationLevel: 'disabled' }],
      ['lesionfuse basic', { graphOptimizationLevel: 'basic' }],
      ['lesionfuse all 1 thread', { threads: 1 }],
      ['lesionfuse all inline (no worker)', { worker: false }],
    ] as [string, Partial<TrainerOptions>][]) {
      runs.push(await runEngine(tm, batches, label, o, 1, VARIANT_STEPS));
  }
  await runEngine(tm, batches, 'lesionfuse profile', { profilePrefix: profPrefix }, 0, 3);
  const profFile = readdirSync(WORK).find((f) => f.startsWith('ort_profile') && f.endsWith('.json'));
  profile = profFile ? summariseProfile(join(WORK, profFile), 3) : undefined;
  }

  const curve = torch
    ? main.losses.slice(0, CURVE).map((l, i) => ({ step: i, lesionfuse: l, torch: torch!.losses[i]!, relDiff: Math.abs(l - torch!.losses[i]!) / Math.abs(torch!.losses[i]!) }))
    : undefined;
  const ort = JSON.parse(readFileSync('node_modules/onnxruntime-node/package.json', 'utf8')).version as string;
  const results = {
    command: `nice -n 5 node dist/bench/train-engine.js ${process.argv.slice(2).join(' ')}`.trim(),
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model, logicalCpus: cpus().length, memGiB: +(totalmem() / 2 ** 30).toFixed(1), node: process.version, onnxruntimeNode: ort, torch: torch?.torch, torchMkldnn: torch?.mkldnn },
    setup: {
      student: STUDENT,
      params: student.paramCount,
      macsPerImage: student.macs,
      batch: [B, 3, H, W],
      loss: 'BCE + soft Dice (no KD)',
      optimizer: { kind: 'AdamW', ...OPTIMIZER, schedule: 'constant', clipping: 'none' },
      threads: THREADS,
      trainingOpset: TRAINING_OPSET,
      forwardNodes: nodesFwd,
      trainingNodes: nodesTrain,
      buildTrainingModelMs: +buildMs.toFixed(0),
    },
    lesionfuse: runs.map((r) => ({ ...r, losses: r.losses.map((x) => +x.toFixed(7)), stepMs: r.stepMs.map((x) => +x.toFixed(1)), runMs: undefined, optimMs: undefined })),
    torch: torch && { medianStepMs: +torch.medianMs.toFixed(1), stepMs: torch.stepMs.map((x) => +x.toFixed(1)), threads: torch.threads, loadBefore: torch.loadBefore, loadAfter: torch.loadAfter },
    waiting: SPIN ? 'spinning (library defaults)' : 'passive (onnxruntime allow_spinning=0, OMP_WAIT_POLICY=PASSIVE)',
    ratio: torch ? +(main.medianStepMs / torch.medianMs).toFixed(3) : undefined,
    curve,
    maxCurveRelDiff: curve ? Math.max(...curve.map((c) => c.relDiff)) : undefined,
    profile,
  };
  await writeJsonAtomic(join(OUT, 'results.json'), results);
  process.stderr.write(`median step: lesionfuse ${main.medianStepMs.toFixed(0)} ms, torch ${torch?.medianMs.toFixed(0) ?? '-'} ms, ratio ${results.ratio ?? '-'}\n`);
  void writeFileAtomic;
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
