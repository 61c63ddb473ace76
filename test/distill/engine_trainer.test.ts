/**
 * The Trainer on a small U-Net: two identical runs give bit-identical losses;
 * N steps straight == k steps + checkpoint + a fresh trainer loading it + N-k
 * steps (bit-identical, including the RNG that draws the batches); worker and
 * inline runs agree; graph optimization 'all' stays within float32 rounding of
 * 'disabled'; the loss goes down on a fixed batch; BN running stats move.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataType, type Model } from '../../src/onnx/ir.js';
import { buildTrainingModel, type TrainingModel } from '../../src/distill/autodiff/backward.js';
import { probeShapes } from '../../src/distill/autodiff/shapes.js';
import { Rng } from '../../src/distill/engine/rng.js';
import { Trainer, type TrainerOptions } from '../../src/distill/engine/trainer.js';
import type { HostTensor } from '../../src/distill/engine/core.js';
import { makeModel, tinyUNet } from './autodiff_util.js';

const [N, H, W] = [2, 8, 12];

/** The forward model in inference form (BN without training_mode), as a zoo student would be. */
function forwardModel(): Model {
  const net = tinyUNet(new Rng(8), N, H, W);
  for (const n of net.nodes) {
    if (n.opType === 'BatchNormalization') {
      n.outputs = [n.outputs[0]!];
      delete n.attributes['training_mode'];
    }
  }
  const m = makeModel(net.nodes, net.inits, ['loss', 'logits']);
  m.graph.inputs = net.inputs.map((i) => ({ name: i.name, dataType: DataType.FLOAT, shape: i.dims }));
  return m;
}

let cached: TrainingModel | undefined;
async function trainingModel(): Promise<TrainingModel> {
  if (!cached) {
    const fwd = forwardModel();
    cached = buildTrainingModel(fwd, { loss: 'loss', shapes: await probeShapes(fwd), outputs: ['logits'] });
  }
  return cached;
}

function batch(rng: Rng): Record<string, HostTensor> {
  const image = new Float32Array(N * 3 * H * W).map(() => rng.normal());
  const mask = new Float32Array(N * H * W).map(() => (rng.uniform() < 0.4 ? 1 : 0));
  return { image: { dims: [N, 3, H, W], data: image }, mask: { dims: [N, 1, H, W], data: mask } };
}

const opts: TrainerOptions = {
  optimizer: { lr: 0.01 },
  schedule: { kind: 'cosine', warmupSteps: 2, totalSteps: 8 },
  clipNorm: 0.5,
  seed: 123,
  threads: 2,
  config: { test: 'resume' },
};

/** Run `steps` steps drawing each batch from the trainer's own RNG. */
async function run(t: Trainer, steps: number): Promise<number[]> {
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) losses.push((await t.step(batch(t.rng))).loss);
  return losses;
}

test('two identical runs give bit-identical losses (worker thread, 2 intra-op threads)', async () => {
  const tm = await trainingModel();
  const a = await Trainer.create(tm, opts);
  const b = await Trainer.create(tm, opts);
  try {
    const la = await run(a, 4);
    const lb = await run(b, 4);
    assert.deepEqual(la, lb);
    assert.ok(la.every((l) => Number.isFinite(l) && l > 0));
  } finally {
    await a.dispose();
    await b.dispose();
  }
});

test('resume after a checkpoint continues exactly: 6 straight == 3 + save + load + 3', async () => {
  const tm = await trainingModel();
  const dir = mkdtempSync(join(tmpdir(), 'lf-resume-'));
  try {
    const straight = await Trainer.create(tm, opts);
    const all = await run(straight, 6);
    const wStraight = await straight.weights();
    await straight.dispose();

    const first = await Trainer.create(tm, opts);
    const head = await run(first, 3);
    await first.saveCheckpoint(join(dir, 'k3.ckpt'), { epoch: 0 });
    await first.dispose(); // as if killed: nothing but the file survives

    const second = await Trainer.create(tm, { ...opts, seed: 999 }); // the seed is overridden by the checkpoint's RNG state
    const extra = await second.loadCheckpoint(join(dir, 'k3.ckpt'));
    assert.deepEqual(extra, { epoch: 0 });
    assert.equal(second.stepCount, 3);
    const tail = await run(second, 3);
    const wResumed = await second.weights();
    await second.dispose();

    assert.deepEqual([...head, ...tail], all);
    for (const [k, v] of wStraight) assert.deepEqual(wResumed.get(k), v, `weight ${k}`);

    const other = await Trainer.create(tm, { ...opts, config: { test: 'other' } });
    await assert.rejects(other.loadCheckpoint(join(dir, 'k3.ckpt')), /k3\.ckpt: checkpoint was written with a different configuration/);
    await other.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('inline and worker runs agree; optimization level all stays within float32 rounding of disabled', async () => {
  const tm = await trainingModel();
  const w = await Trainer.create(tm, opts);
  const i = await Trainer.create(tm, { ...opts, worker: false });
  const d = await Trainer.create(tm, { ...opts, graphOptimizationLevel: 'disabled' });
  try {
    const lw = await run(w, 3);
    const li = await run(i, 3);
    const ld = await run(d, 3);
    assert.deepEqual(lw, li);
    lw.forEach((l, k) => assert.ok(Math.abs(l - ld[k]!) <= 1e-5 * Math.abs(ld[k]!), `step ${k}: ${l} vs ${ld[k]}`));
  } finally {
    await w.dispose();
    await i.dispose();
    await d.dispose();
  }
});

test('the loss goes down on a fixed batch, BN running statistics move, outputs come back', async () => {
  const tm = await trainingModel();
  const t = await Trainer.create(tm, { optimizer: { lr: 0.02 }, worker: false });
  try {
    const fixed = batch(new Rng(77));
    const first = await t.step(fixed);
    assert.deepEqual(first.outputs['logits']!.dims, [N, 1, H, W]);
    assert.ok(first.gradNorm > 0);
    let last = first.loss;
    for (let k = 0; k < 25; k++) last = (await t.step(fixed)).loss;
    assert.ok(last < 0.8 * first.loss, `loss ${first.loss} -> ${last}`);
    const w = await t.weights();
    const m = w.get('enc1.bn.m')!;
    assert.ok(m.some((v) => v !== 0), 'running mean updated from its zero init');
    const fwd = await t.applyTo(forwardModel());
    const init = fwd.graph.initializers.find((x) => x.name === 'enc1.w')!;
    assert.deepEqual(init.values, w.get('enc1.w'));
    await assert.rejects(t.step({ image: fixed['image']! }), /batch has no 'mask'/);
  } finally {
    await t.dispose();
  }
});
