import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from '../../src/util/ort.js';
import { appendLosses } from '../../src/distill/losses.js';
import { DataType, type Model } from '../../src/onnx/ir.js';
import { encodeModel } from '../../src/onnx/io.js';
import { mulberry32 } from '../../src/runtime/metrics.js';

const SHAPE = [2, 1, 5, 7];

/** A "student" that passes its input through: the loss then sees exactly the logits we choose. */
function passThrough(shape: number[]): Model {
  return {
    irVersion: 8,
    opsetImports: [{ domain: '', version: 17 }],
    producerName: 'test',
    producerVersion: '0',
    domain: '',
    modelVersion: 1,
    docString: '',
    metadata: {},
    graph: {
      name: 'identity',
      nodes: [{ name: 'id', opType: 'Identity', domain: '', inputs: ['x'], outputs: ['logits'], attributes: {} }],
      inputs: [{ name: 'x', dataType: DataType.FLOAT, shape }],
      outputs: [{ name: 'logits', dataType: DataType.FLOAT, shape }],
      initializers: [],
      valueInfo: [],
    },
  };
}

// Independent float64 references, written from the textbook definitions (not the graph's stable forms).
function logSigmoid(z: number): number {
  // log(1 / (1 + e^-z)), evaluated without overflow on either side.
  return z >= 0 ? -Math.log1p(Math.exp(-z)) : z - Math.log1p(Math.exp(z));
}
function refBce(z: Float32Array, y: Float32Array): number {
  let s = 0;
  for (let i = 0; i < z.length; i++) s += -(y[i]! * logSigmoid(z[i]!) + (1 - y[i]!) * logSigmoid(-z[i]!));
  return s / z.length;
}
function refDice(z: Float32Array, y: Float32Array, n: number, smooth = 1): number {
  const per = z.length / n;
  let sum = 0;
  for (let b = 0; b < n; b++) {
    let inter = 0;
    let sp = 0;
    let sy = 0;
    for (let i = b * per; i < (b + 1) * per; i++) {
      const p = 1 / (1 + Math.exp(-z[i]!));
      inter += p * y[i]!;
      sp += p;
      sy += y[i]!;
    }
    sum += (2 * inter + smooth) / (sp + sy + smooth);
  }
  return 1 - sum / n;
}
function refKd(z: Float32Array, t: Float32Array, T: number): number {
  let s = 0;
  for (let i = 0; i < z.length; i++) {
    const ps = 1 / (1 + Math.exp(-z[i]! / T));
    const pt = 1 / (1 + Math.exp(-t[i]! / T));
    s += pt * Math.log(pt / ps) + (1 - pt) * Math.log((1 - pt) / (1 - ps));
  }
  return (T * T * s) / z.length;
}

function randomInputs(seed: number, scale: number) {
  const r = mulberry32(seed);
  const n = SHAPE.reduce((a, b) => a * b, 1);
  const z = new Float32Array(n).map(() => (r() * 2 - 1) * scale);
  const t = new Float32Array(n).map(() => (r() * 2 - 1) * scale);
  const y = new Float32Array(n).map(() => (r() < 0.4 ? 1 : 0));
  return { z, t, y };
}

async function run(model: Model, feeds: Record<string, Float32Array>): Promise<Record<string, number>> {
  const session = await ort.InferenceSession.create(encodeModel(model));
  const f: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) f[k] = new ort.Tensor('float32', v, SHAPE);
  const out = await session.run(f);
  const res: Record<string, number> = {};
  for (const [k, v] of Object.entries(out)) if (v.dims.length === 0) res[k] = (v.data as Float32Array)[0]!;
  await session.release();
  return res;
}

function close(actual: number, expected: number, what: string, rel = 1e-5): void {
  assert.ok(Math.abs(actual - expected) <= rel * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs reference ${expected}`);
}

test('each loss term and the weighted total match a float64 reference on random inputs', async () => {
  for (const [seed, scale, T] of [
    [1, 3, 2],
    [2, 8, 1],
    [3, 0.5, 4],
  ] as const) {
    const { z, t, y } = randomInputs(seed, scale);
    const w = { bce: 0.7, dice: 1.3, kd: 2.1 };
    const g = appendLosses(passThrough(SHAPE), { weights: w, temperature: T });
    assert.deepEqual(g.components, { bce: 'loss_bce', dice: 'loss_dice', kd: 'loss_kd' });
    const out = await run(g.model, { x: z, mask: y, teacher_logits: t });
    const bce = refBce(z, y);
    const dice = refDice(z, y, SHAPE[0]!);
    const kd = refKd(z, t, T);
    close(out.loss_bce!, bce, 'bce');
    close(out.loss_dice!, dice, 'dice');
    close(out.loss_kd!, kd, 'kd', 1e-4);
    close(out.loss!, w.bce * bce + w.dice * dice + w.kd * kd, 'total', 1e-4);
  }
});

test('KD is zero when the student equals the teacher; mask-only graphs have no teacher input', async () => {
  const { z, y } = randomInputs(4, 5);
  const g = appendLosses(passThrough(SHAPE), { temperature: 3 });
  const out = await run(g.model, { x: z, mask: y, teacher_logits: z });
  assert.ok(Math.abs(out.loss_kd!) < 1e-5, `kd ${out.loss_kd}`);
  const noKd = appendLosses(passThrough(SHAPE), { kd: false });
  assert.equal(noKd.inputs.teacher, undefined);
  assert.ok(!noKd.model.graph.inputs.some((i) => i.name === 'teacher_logits'));
  const out2 = await run(noKd.model, { x: z, mask: y });
  close(out2.loss!, refBce(z, y) + refDice(z, y, SHAPE[0]!), 'bce + dice');
});

test('BCE stays finite and right for extreme logits (the stable form)', async () => {
  const n = SHAPE.reduce((a, b) => a * b, 1);
  const z = new Float32Array(n).map((_, i) => (i % 2 ? 60 : -60));
  const y = new Float32Array(n).map((_, i) => (i % 4 < 2 ? 1 : 0));
  const g = appendLosses(passThrough(SHAPE), { kd: false });
  const out = await run(g.model, { x: z, mask: y });
  // Half the pixels are confidently right (loss ~ e^-60 ~ 0), half confidently wrong (loss ~ 60).
  close(out.loss_bce!, 30, 'bce', 1e-4);
});

test('the forward model is not modified, and bad options are refused', () => {
  const f = passThrough(SHAPE);
  const before = JSON.stringify(f);
  appendLosses(f);
  assert.equal(JSON.stringify(f), before);
  assert.throws(() => appendLosses(f, { temperature: 0 }), /temperature/);
  assert.throws(() => appendLosses(f, { weights: { kd: -1 } }), /loss weight kd/);
});

test('feature distillation: adapter + MSE added to the total, matching a reference', async () => {
  // Student "feature" = the input itself (1 channel), teacher feature has 3 channels.
  const { z, t, y } = randomInputs(5, 2);
  const fd = appendLosses(passThrough(SHAPE), {
    kd: false,
    feature: { studentFeature: 'logits', studentChannels: 1, teacherChannels: 3, height: 5, width: 7, weight: 0.5 },
  });
  assert.deepEqual(fd.adapterParams, ['feature_adapter.weight', 'feature_adapter.bias']);
  const wInit = fd.model.graph.initializers.find((i) => i.name === 'feature_adapter.weight')!;
  const wv = wInit.values as Float32Array;
  const r = mulberry32(9);
  const tf = new Float32Array(2 * 3 * 35).map(() => r() * 2 - 1);
  const session = await ort.InferenceSession.create(encodeModel(fd.model));
  const out = await session.run({
    x: new ort.Tensor('float32', z, SHAPE),
    mask: new ort.Tensor('float32', y, SHAPE),
    teacher_feature: new ort.Tensor('float32', tf, [2, 3, 5, 7]),
  });
  let se = 0;
  for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) for (let i = 0; i < 35; i++) {
    const d = wv[c]! * z[b * 35 + i]! - tf[(b * 3 + c) * 35 + i]!;
    se += d * d;
  }
  const mse = se / (2 * 3 * 35);
  close((out.loss_feature!.data as Float32Array)[0]!, mse, 'feature mse');
  close((out.loss!.data as Float32Array)[0]!, refBce(z, y) + refDice(z, y, 2) + 0.5 * mse, 'total with feature term');
  void t;
});
