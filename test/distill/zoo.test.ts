import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from '../../src/util/ort.js';
import { buildStudent, inferenceStudent, STUDENT_NAMES, STUDENT_OPSET } from '../../src/distill/zoo/index.js';
import { encodeModel } from '../../src/onnx/io.js';
import type { Model } from '../../src/onnx/ir.js';
import { mulberry32 } from '../../src/runtime/metrics.js';

function initializerElements(model: Model, names: string[]): number {
  const set = new Set(names);
  return model.graph.initializers.filter((i) => set.has(i.name)).reduce((s, i) => s + i.values.length, 0);
}

test('unet-small width 4 depth 2: parameters and multiply-adds equal a hand count', () => {
  const s = buildStudent('unet-small', { width: 4, depth: 2, inputSize: { height: 32, width: 32 }, seed: 1 });
  // conv3x3 weights (cin*cout*9) + BN scale/shift (2*cout) per unit; levels 4, 8, bottleneck 16.
  const enc0 = 3 * 4 * 9 + 8 + 4 * 4 * 9 + 8;
  const enc1 = 4 * 8 * 9 + 16 + 8 * 8 * 9 + 16;
  const bott = 8 * 16 * 9 + 32 + 16 * 16 * 9 + 32;
  const dec1 = (16 + 8) * 8 * 9 + 16 + 8 * 8 * 9 + 16;
  const dec0 = (8 + 4) * 4 * 9 + 8 + 4 * 4 * 9 + 8;
  const head = 4 + 1;
  assert.equal(s.paramCount, enc0 + enc1 + bott + dec1 + dec0 + head);
  assert.equal(initializerElements(s.model, s.params), s.paramCount);
  // Multiply-adds: conv weights x output pixels (32x32 at level 0, 16x16 at level 1, 8x8 at the bottleneck).
  const macs =
    (3 * 4 * 9 + 4 * 4 * 9) * 1024 + (4 * 8 * 9 + 8 * 8 * 9) * 256 + (8 * 16 * 9 + 16 * 16 * 9) * 64 +
    ((16 + 8) * 8 * 9 + 8 * 8 * 9) * 256 + ((8 + 4) * 4 * 9 + 4 * 4 * 9) * 1024 + 4 * 1024;
  assert.equal(s.macs, macs);
  // Running statistics: a mean and a var per BN channel, not counted as parameters.
  assert.equal(initializerElements(s.model, s.runningStats), 2 * (8 + 16 + 32 + 16 + 8) );
});

test('ultralight width 2 depth 1: hand count of the depthwise-separable blocks', () => {
  const s = buildStudent('ultralight', { width: 2, depth: 1, inputSize: { height: 16, width: 16 }, seed: 1 });
  const cbr = (cin: number, cout: number, k: number, g = 1): number => (cin / g) * cout * k * k + 2 * cout;
  const sep = (cin: number, cout: number): number => cbr(cin, cin, 3, cin) + cbr(cin, cout, 1);
  const expected = cbr(3, 2, 3) + sep(2, 2) + sep(2, 4) + sep(4, 4) + sep(4 + 2, 2) + sep(2, 2) + (2 + 1);
  assert.equal(s.paramCount, expected);
});

test('mobile-unet width 2 depth 1: hand count of the inverted residuals', () => {
  const s = buildStudent('mobile-unet', { width: 2, depth: 1, inputSize: { height: 16, width: 16 }, seed: 1 });
  const cbr = (cin: number, cout: number, k: number, g = 1): number => (cin / g) * cout * k * k + 2 * cout;
  const ir = (cin: number, cout: number): number => cbr(cin, 4 * cin, 1) + cbr(4 * cin, 4 * cin, 3, 4 * cin) + cbr(4 * cin, cout, 1);
  const sep = (cin: number, cout: number): number => cbr(cin, cin, 3, cin) + cbr(cin, cout, 1);
  const expected = cbr(3, 2, 3) + ir(2, 4) + ir(4, 4) + cbr(4 + 2, 2, 1) + sep(2, 2) + (2 + 1);
  assert.equal(s.paramCount, expected);
});

test('default sizes land in the ranges the issue asks for; width and depth change them predictably', () => {
  const size = { height: 192, width: 256 };
  const unet = buildStudent('unet-small', { inputSize: size });
  assert.ok(unet.paramCount >= 1e6 && unet.paramCount <= 2e6, `unet-small ${unet.paramCount}`);
  const ul = buildStudent('ultralight', { inputSize: size });
  assert.ok(ul.paramCount >= 50e3 && ul.paramCount <= 200e3, `ultralight ${ul.paramCount}`);
  for (const name of STUDENT_NAMES) {
    const a = buildStudent(name, { width: 8, inputSize: size });
    const b = buildStudent(name, { width: 16, inputSize: size });
    const ratio = b.paramCount / a.paramCount;
    // Quadratic terms dominate: doubling the width gives a bit under 4x.
    assert.ok(ratio > 3.5 && ratio < 4.01, `${name}: x${ratio}`);
    const mr = b.macs / a.macs;
    assert.ok(mr > 3 && mr < 4.01, `${name}: macs x${mr}`);
    const shallow = buildStudent(name, { width: 8, depth: 3, inputSize: size });
    assert.ok(shallow.paramCount < a.paramCount / 2, `${name}: depth 3 ${shallow.paramCount} vs depth 4 ${a.paramCount}`);
  }
});

test('the same seed gives the same weights, another seed different ones; bad sizes are refused', () => {
  const a = buildStudent('ultralight', { inputSize: { height: 32, width: 32 }, seed: 3 });
  const b = buildStudent('ultralight', { inputSize: { height: 32, width: 32 }, seed: 3 });
  const c = buildStudent('ultralight', { inputSize: { height: 32, width: 32 }, seed: 4 });
  assert.deepEqual(a.model.graph.initializers[0]!.values, b.model.graph.initializers[0]!.values);
  assert.notDeepEqual(a.model.graph.initializers[0]!.values, c.model.graph.initializers[0]!.values);
  assert.throws(() => buildStudent('ultralight', { inputSize: { height: 40, width: 32 } }), /multiples of 16/);
  assert.throws(() => buildStudent('nope' as 'ultralight', { inputSize: { height: 32, width: 32 } }), /available: unet-small, mobile-unet, ultralight/);
});

test('every student runs in onnxruntime (train and inference graphs) with the documented shapes', async () => {
  const H = 32;
  const W = 64;
  const r = mulberry32(2);
  const x = new Float32Array(2 * 3 * H * W).map(() => r() * 2 - 1);
  for (const name of STUDENT_NAMES) {
    for (const mode of ['train', 'infer'] as const) {
      const s = buildStudent(name, { width: 4, depth: 3, inputSize: { height: H, width: W }, mode, seed: 1 });
      assert.equal(s.model.opsetImports.find((o) => o.domain === '')!.version, STUDENT_OPSET);
      const session = await ort.InferenceSession.create(encodeModel(s.model));
      assert.deepEqual(session.inputNames, ['image']);
      assert.deepEqual(session.outputNames, ['logits']);
      const out = await session.run({ image: new ort.Tensor('float32', x, [2, 3, H, W]) });
      assert.deepEqual(out.logits!.dims, [2, 1, H, W]);
      const v = out.logits!.data as Float32Array;
      assert.ok(v.every(Number.isFinite));
      // Not a constant map: the network really depends on its input.
      assert.ok(Math.max(...v) - Math.min(...v) > 1e-3, `${name} ${mode} output is constant`);
      await session.release();
    }
  }
});

test('inferenceStudent puts trained values into the inference graph under the same names', async () => {
  const size = { height: 16, width: 16 };
  const train = buildStudent('ultralight', { width: 2, depth: 2, inputSize: size, seed: 5 });
  const values = new Map<string, Float32Array>();
  for (const i of train.model.graph.initializers) values.set(i.name, Float32Array.from(i.values as Float32Array, (v) => v * 0.5));
  // Running stats that make BN an affine map we can predict: mean 0, var 1 - 1e-5 => x / 1.
  const inf = inferenceStudent('ultralight', { width: 2, depth: 2, inputSize: size, seed: 5 }, values);
  const w0 = inf.model.graph.initializers.find((i) => i.name === train.params[0])!;
  assert.deepEqual(Array.from(w0.values as Float32Array), Array.from(values.get(train.params[0]!)!));
  assert.ok(inf.model.graph.nodes.filter((n) => n.opType === 'BatchNormalization').every((n) => !('training_mode' in n.attributes)));
  assert.throws(() => inferenceStudent('ultralight', { width: 2, depth: 2, inputSize: size }, new Map([['nope', new Float32Array(1)]])), /no weight named 'nope'/);
});

test('multiply-adds agree with the ONNX core inspector (an independent count from inferred shapes)', async () => {
  const { inspectModel } = await import('../../src/onnx/inspect.js');
  for (const name of STUDENT_NAMES) {
    const s = buildStudent(name, { width: 4, depth: 3, inputSize: { height: 32, width: 48 }, mode: 'infer', batch: 1 });
    const summary = inspectModel(s.model);
    assert.equal(summary.macsPerImage, s.macs, `${name} multiply-adds`);
  }
});

test('the students use the training engine opset', async () => {
  const { TRAINING_OPSET } = await import('../../src/distill/autodiff/backward.js');
  assert.equal(STUDENT_OPSET, TRAINING_OPSET);
});
