import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DataType, type Model } from '../../src/onnx/ir.js';
import { floatTensor, float16ToFloat32, float32ToFloat16 } from '../../src/onnx/tensor.js';
import { rewrite } from '../../src/export/rewrite.js';
import { checkParity } from '../../src/export/parity.js';
import { packageRoot } from '../../src/util/paths.js';
import { Net, countOps, maxAbsDiff, randomTensor, runModel } from './helpers.js';

const FIXTURES = join(packageRoot(), 'test', 'fixtures', 'images');

/** A small encoder-decoder with the ops students and the teacher use: Conv, BN-free ReLU, pooling, Resize, a reduction, Concat. */
function segNet(): Model {
  const n = new Net(17);
  const x = n.input('image', [1, 3, 32, 32]);
  const c1 = n.op('Relu', [n.op('Conv', [x, n.init('w1', randomTensor([8, 3, 3, 3], 1, 0.4)), n.init('b1', randomTensor([8], 2, 0.1))], { pads: [1, 1, 1, 1] })]);
  const p = n.op('MaxPool', [c1], { kernel_shape: [2, 2], strides: [2, 2] });
  const c2 = n.op('Relu', [n.op('Conv', [p, n.init('w2', randomTensor([8, 8, 3, 3], 3, 0.2))], { pads: [1, 1, 1, 1] })]);
  // Squeeze-excitation style channel attention through a ReduceMean (block-listed) and a Sigmoid.
  const m = n.op('ReduceMean', [c2], { axes: [2, 3], keepdims: 1 });
  const att = n.op('Sigmoid', [n.op('Conv', [m, n.init('wa', randomTensor([8, 8, 1, 1], 4, 0.5))])]);
  const c2a = n.op('Mul', [c2, att]);
  const up = n.op('Resize', [c2a, '', n.init('scales', floatTensor([4], [1, 1, 2, 2]))], { mode: 'linear' });
  const cat = n.op('Concat', [up, c1], { axis: 1 });
  const head = n.op('Conv', [cat, n.init('wh', randomTensor([1, 16, 1, 1], 5, 0.3)), n.init('bh', floatTensor([1], [0.05]))]);
  n.output(head, [1, 1, 32, 32]);
  return n.build({ 'lesionfuse.input_size': '32x32' });
}

test('to-float16 keeps float32 inputs/outputs, stores weights as float16, keeps block-listed ops and Resize scales in float32, and runs', async () => {
  const m = segNet();
  const r = await rewrite(m, ['to-float16']);
  const g = r.model.graph;
  assert.equal(r.precision, 'float16');
  assert.equal(g.inputs[0]!.dataType, DataType.FLOAT);
  assert.equal(g.outputs[0]!.dataType, DataType.FLOAT);
  const w1 = g.initializers.find((i) => i.name === 'w1')!;
  assert.equal(w1.dataType, DataType.FLOAT16);
  assert.equal(g.initializers.find((i) => i.name === 'scales')!.dataType, DataType.FLOAT, 'Resize scales stay float32');
  // The ReduceMean reads a float32 Cast of its float16 input and its output is cast back.
  const rm = g.nodes.find((x) => x.opType === 'ReduceMean')!;
  const producer = g.nodes.find((x) => x.outputs.includes(rm.inputs[0]!))!;
  assert.equal(producer.opType, 'Cast');
  assert.equal((producer.attributes['to'] as { value: number }).value, DataType.FLOAT);
  assert.ok(r.changes.some((c) => c.kind === 'skipped' && /1 ReduceMean/.test(c.message)));
  // Half the weight bytes.
  const bytes = (mm: Model) => mm.graph.initializers.reduce((s, i) => s + i.values.byteLength, 0);
  assert.ok(bytes(r.model) < 0.6 * bytes(m));
  // Same outputs up to float16 rounding, checked against float32 onnxruntime on a random input.
  const x = { image: randomTensor([1, 3, 32, 32], 9) };
  const a = Object.values(await runModel(m, x))[0]!;
  const b = Object.values(await runModel(r.model, x))[0]!;
  assert.deepEqual(b.dims, a.dims);
  const d = maxAbsDiff(a.values, b.values);
  assert.ok(d > 0 && d < 2e-2, `float16 drift ${d}`);
  // And on real images the masks agree (the float16 parity mode).
  const p = await checkParity(m, r.model, { images: [FIXTURES], mode: 'dice-agreement' });
  assert.equal(p.passed, true, p.message);
});

test('to-float16 honours a custom block list, converts Constant/Cast targets, and leaves other-domain ops untouched with a note', async () => {
  const n = new Net(17);
  const x = n.input('x', [1, 4, 8, 8]);
  const k = n.op('Constant', [], { value: floatTensor([1], [0.5]) });
  const y = n.op('Mul', [x, k]);
  const gl = n.op('Gelu', [y], {}, 1, 'ms_gelu');
  n.nodes[n.nodes.length - 1]!.domain = 'com.microsoft';
  const z = n.op('Add', [gl, n.init('b', randomTensor([4, 1, 1], 3))]);
  n.output(n.op('Sigmoid', [z]));
  const m = n.build();
  m.opsetImports.push({ domain: 'com.microsoft', version: 1 });
  const r = await rewrite(m, ['to-float16'], { float16BlockList: ['Sigmoid'] });
  assert.ok(r.changes.some((c) => c.kind === 'skipped' && /ms_gelu \(com\.microsoft:Gelu\)/.test(c.message)));
  assert.ok(r.changes.some((c) => c.kind === 'skipped' && /1 Sigmoid/.test(c.message)));
  const gelu = r.model.graph.nodes.find((q) => q.name === 'ms_gelu')!;
  assert.equal(gelu.domain, 'com.microsoft');
  const konst = r.model.graph.nodes.find((q) => q.opType === 'Constant')!;
  const kv = konst.attributes['value'] as { value: { dataType: number; values: Uint16Array } };
  assert.equal(kv.value.dataType, DataType.FLOAT16);
  assert.equal(float16ToFloat32(kv.value.values)[0], 0.5);
  const inp = { x: randomTensor([1, 4, 8, 8], 5) };
  const a = Object.values(await runModel(m, inp))[0]!;
  const b = Object.values(await runModel(r.model, inp))[0]!;
  assert.ok(maxAbsDiff(a.values, b.values) < 5e-3);
  assert.equal(countOps(r.model, 'Cast') >= 3, true);
});

test('to-float16 saturates weights beyond the float16 range and says how many', async () => {
  const n = new Net();
  const x = n.input('x', [1, 2]);
  n.output(n.op('Mul', [x, n.init('big', floatTensor([2], [1e6, 3]))]));
  const r = await rewrite(n.build(), ['to-float16']);
  assert.ok(r.changes.some((c) => /1 weight value\(s\) beyond float16's range/.test(c.message)));
});

test('the default passes leave an other-domain op untouched and say so, and the model still runs', async () => {
  const n = new Net(17);
  const x = n.input('x', [1, 4]);
  const g = n.op('Gelu', [n.init('w', randomTensor([4, 4], 2))], {}, 1, 'ms_gelu_on_weight');
  n.nodes[n.nodes.length - 1]!.domain = 'com.microsoft';
  n.output(n.op('MatMul', [n.op('Identity', [x]), g]));
  const m = n.build();
  m.opsetImports.push({ domain: 'com.microsoft', version: 1 });
  const r = await rewrite(m, ['remove-identity', 'fold-constants', 'fold-batchnorm', 'fuse-bias-add', 'remove-dead']);
  const gelu = r.model.graph.nodes.find((q) => q.name === 'ms_gelu_on_weight');
  assert.ok(gelu && gelu.domain === 'com.microsoft');
  assert.ok(r.changes.some((c) => c.pass === 'fold-constants' && c.kind === 'skipped' && /ms_gelu_on_weight.*outside the default ONNX domain/.test(c.message)));
  const inp = { x: randomTensor([1, 4], 5) };
  const a = Object.values(await runModel(m, inp))[0]!;
  const b = Object.values(await runModel(r.model, inp))[0]!;
  assert.equal(maxAbsDiff(a.values, b.values), 0);
});

test('to-float16 on float16-stored weights (Cast to float32 at load) drops the Casts and reads the stored weights', async () => {
  const n = new Net(17);
  const x = n.input('x', [1, 3, 8, 8]);
  const w = randomTensor([4, 3, 3, 3], 1, 0.5);
  const w16 = n.init('w16', { dataType: DataType.FLOAT16, dims: w.dims, values: float32ToFloat16(w.values as Float32Array) });
  const c = n.op('Conv', [x, n.op('Cast', [w16], { to: DataType.FLOAT })], { pads: [1, 1, 1, 1] });
  n.output(n.op('Relu', [c]));
  const m = n.build();
  const r = await rewrite(m, ['to-float16']);
  const conv = r.model.graph.nodes.find((q) => q.opType === 'Conv')!;
  assert.equal(conv.inputs[1], 'w16');
  assert.ok(r.changes.some((c) => /1 Cast\(s\) that became no-ops removed/.test(c.message)));
  const inp = { x: randomTensor([1, 3, 8, 8], 4) };
  const a = Object.values(await runModel(m, inp))[0]!;
  const b = Object.values(await runModel(r.model, inp))[0]!;
  assert.ok(maxAbsDiff(a.values, b.values) < 1e-2);
});
