import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataType, type Model } from '../../src/onnx/ir.js';
import { floatTensor, int64Tensor } from '../../src/onnx/tensor.js';
import { PASSES, rewrite, DEFAULT_PASSES } from '../../src/export/rewrite.js';
import { foldBatchNormIntoConv } from '../../src/export/batchnorm.js';
import { LesionFuseError } from '../../src/util/errors.js';
import { Net, countOps, f, outputDrift, randomTensor, runModel } from './helpers.js';

const X = (dims: number[], seed = 7) => ({ x: randomTensor(dims, seed) });

async function runPass(name: string, m: Model, options = {}) {
  return rewrite(m, [name], options);
}

test('remove-identity drops Identity and inference Dropout, keeps outputs, collapses into a graph output', async () => {
  const n = new Net();
  const x = n.input('x', [1, 3, 8, 8]);
  const i1 = n.op('Identity', [x]);
  const c = n.op('Conv', [i1, n.init('w', randomTensor([4, 3, 3, 3], 1)), n.init('b', randomTensor([4], 2))], { pads: [1, 1, 1, 1] });
  const [d] = n.opN('Dropout', [c], {}, 1);
  const r = n.op('Relu', [d!]);
  const out = n.op('Identity', [r], {}, 1, 'final');
  n.output(out);
  const m = n.build();
  const res = await runPass('remove-identity', m);
  assert.equal(countOps(res.model, 'Identity'), 0);
  assert.equal(countOps(res.model, 'Dropout'), 0);
  assert.equal(res.model.graph.outputs[0]!.name, out, 'the graph output keeps its name');
  assert.equal(await outputDrift(m, res.model, X([1, 3, 8, 8])), 0);
  assert.ok(res.changes.some((c) => c.kind === 'removed' && c.count === 2 && /Identity/.test(c.message)));
  // The input model is not modified.
  assert.equal(countOps(m, 'Identity'), 2);
});

test('remove-identity keeps an Identity from a graph input straight to an output, and a training-mode Dropout, saying so', async () => {
  const n = new Net(13);
  const x = n.input('x', [1, 2]);
  n.output(n.op('Identity', [x]));
  const d = n.op('Dropout', [x, n.init('ratio', floatTensor([], [0.5])), n.init('tm', { dataType: DataType.BOOL, dims: [], values: new Uint8Array([1]) })]);
  n.output(d);
  const res = await runPass('remove-identity', n.build());
  assert.equal(res.model.graph.nodes.length, 2);
  assert.equal(res.changes.filter((c) => c.kind === 'skipped').length, 2);
});

test('remove-dead removes a branch that reaches no output and its weights, keeps unused real inputs', async () => {
  const n = new Net();
  const x = n.input('x', [1, 3, 8, 8]);
  n.input('unused_input', [1]);
  const c = n.op('Conv', [x, n.init('w', randomTensor([4, 3, 1, 1], 1))]);
  n.op('Conv', [c, n.init('w_dead', randomTensor([2, 4, 3, 3], 2))], {}, 1, 'aux_head');
  n.init('orphan', randomTensor([10], 3));
  n.output(n.op('Sigmoid', [c]));
  const m = n.build();
  m.graph.valueInfo.push({ name: 'aux_head_out', dataType: DataType.FLOAT, shape: null });
  const res = await runPass('remove-dead', m);
  assert.deepEqual(res.model.graph.nodes.map((x) => x.opType), ['Conv', 'Sigmoid']);
  assert.deepEqual(res.model.graph.initializers.map((i) => i.name), ['w']);
  assert.equal(res.model.graph.valueInfo.length, 0);
  assert.ok(res.model.graph.inputs.some((i) => i.name === 'unused_input'));
  assert.ok(res.changes.some((c) => c.kind === 'skipped' && /unused_input/.test(c.message)));
  assert.equal(await outputDrift(m, res.model, { ...X([1, 3, 8, 8]), unused_input: floatTensor([1], [0]) }), 0);
});

test('fold-constants evaluates shape arithmetic, Constant nodes and weight transposes with onnxruntime; skips random ops and oversized results', async () => {
  const n = new Net();
  const x = n.input('x', [2, 4, 3, 5]);
  // The exporter pattern: Reshape(x, Concat(Gather(Shape(x), 0), [-1])).
  const s = n.op('Shape', [x]);
  const b = n.op('Gather', [s, n.init('zero', int64Tensor([1], [0]))], { axis: 0 });
  const k = n.op('Constant', [], { value: int64Tensor([1], [-1]) });
  const shape = n.op('Concat', [b, k], { axis: 0 });
  const flat = n.op('Reshape', [x, shape]);
  const wt = n.op('Transpose', [n.init('w', randomTensor([7, 60], 4))], { perm: [1, 0] });
  const y = n.op('MatMul', [flat, wt]);
  const noise = n.op('RandomUniform', [], { shape: [2, 7], seed: f(1) });
  const noiseZero = n.op('Mul', [noise, n.init('zeroF', floatTensor([], [0]))]);
  const big = n.op('ConstantOfShape', [n.init('bigshape', int64Tensor([2], [2, 7]))], { value: floatTensor([1], [0.5]) });
  const y2 = n.op('Add', [n.op('Add', [y, noiseZero]), big]);
  n.output(y2);
  const m = n.build();
  const res = await runPass('fold-constants', m, { foldMaxBytes: 8 });
  const ops = res.model.graph.nodes.map((x) => x.opType);
  for (const gone of ['Shape', 'Gather', 'Constant', 'Concat', 'Transpose']) assert.ok(!ops.includes(gone), `${gone} folded (left: ${ops.join(',')})`);
  assert.ok(ops.includes('RandomUniform'), 'random op kept');
  assert.ok(ops.includes('ConstantOfShape'), 'ConstantOfShape output (56 bytes > 8 byte limit and > its 16-byte input) kept');
  assert.ok(res.changes.some((c) => c.kind === 'skipped' && /ConstantOfShape|exceeds/.test(c.message)));
  assert.ok(!res.model.graph.initializers.some((i) => i.name === 'w'), 'the untransposed weight is gone');
  assert.equal(await outputDrift(m, res.model, X([2, 4, 3, 5])), 0);
  // With the default limit the ConstantOfShape is folded too.
  const res2 = await runPass('fold-constants', m);
  assert.ok(!res2.model.graph.nodes.some((x) => x.opType === 'ConstantOfShape'));
  assert.equal(await outputDrift(m, res2.model, X([2, 4, 3, 5])), 0);
});

test('fold-constants keeps a Cast of float16-stored weights unless asked (storage compression)', async () => {
  const n = new Net();
  const x = n.input('x', [1, 4]);
  const w16 = n.init('w16', { dataType: DataType.FLOAT16, dims: [4, 4], values: new Uint16Array(16).fill(0x3c00) });
  n.output(n.op('MatMul', [x, n.op('Cast', [w16], { to: DataType.FLOAT })]));
  const m = n.build();
  const kept = await runPass('fold-constants', m);
  assert.equal(countOps(kept.model, 'Cast'), 1);
  const folded = await runPass('fold-constants', m, { foldStorageCasts: true });
  assert.equal(countOps(folded.model, 'Cast'), 0);
  assert.equal(await outputDrift(m, folded.model, X([1, 4])), 0);
});

/** Conv/ConvTranspose/Gemm + BatchNormalization graphs with non-trivial BN statistics. */
function bnParams(n: Net, prefix: string, c: number, seed: number): string[] {
  return [
    n.init(`${prefix}.gamma`, randomTensor([c], seed, 0.5, 1)),
    n.init(`${prefix}.beta`, randomTensor([c], seed + 1, 0.3)),
    n.init(`${prefix}.mean`, randomTensor([c], seed + 2, 0.5)),
    n.init(`${prefix}.var`, randomTensor([c], seed + 3, 0.4, 0.6)),
  ];
}

test('fold-batchnorm is exact (< 1e-5) for grouped Conv without bias, grouped ConvTranspose with bias, and Gemm', async () => {
  const n = new Net();
  const x = n.input('x', [2, 4, 6, 6]);
  const c1 = n.op('Conv', [x, n.init('w1', randomTensor([6, 2, 3, 3], 11))], { group: 2, pads: [1, 1, 1, 1] });
  const b1 = n.op('BatchNormalization', [c1, ...bnParams(n, 'bn1', 6, 20)], { epsilon: f(1e-3) });
  const c2 = n.op('ConvTranspose', [b1, n.init('w2', randomTensor([6, 4, 2, 2], 12)), n.init('b2', randomTensor([8], 13))], { group: 2, strides: [2, 2] });
  const b2 = n.op('BatchNormalization', [c2, ...bnParams(n, 'bn2', 8, 30)]);
  const pooled = n.op('GlobalAveragePool', [b2]);
  const flat = n.op('Flatten', [pooled]);
  const g = n.op('Gemm', [flat, n.init('w3', randomTensor([5, 8], 14)), n.init('c3', randomTensor([5], 15))], { transB: 1, alpha: f(0.5), beta: f(2) });
  const b3 = n.op('BatchNormalization', [g, ...bnParams(n, 'bn3', 5, 40)]);
  const g2 = n.op('Gemm', [b3, n.init('w4', randomTensor([5, 3], 16))]);
  n.output(n.op('BatchNormalization', [g2, ...bnParams(n, 'bn4', 3, 50)]));
  const m = n.build();
  const r = foldBatchNormIntoConv(structuredClone(m));
  assert.equal(r.folded, 4);
  assert.equal(countOps(r.model, 'BatchNormalization'), 0);
  const drift = await outputDrift(m, r.model, X([2, 4, 6, 6], 3));
  assert.ok(drift < 1e-5, `max abs diff ${drift}`);
  assert.ok(!r.model.graph.initializers.some((i) => i.name.startsWith('bn1.')), 'BN parameters removed');
});

test('fold-batchnorm leaves a BN whose Conv output is read elsewhere, and one with non-constant parameters', async () => {
  const n = new Net();
  const x = n.input('x', [1, 2, 4, 4]);
  const scale = n.input('scale', [3]);
  const c = n.op('Conv', [x, n.init('w', randomTensor([3, 2, 1, 1], 1))]);
  const bn = n.op('BatchNormalization', [c, ...bnParams(n, 'bn', 3, 5)]);
  n.output(n.op('Add', [bn, c]));
  const c2 = n.op('Conv', [x, n.init('w2', randomTensor([3, 2, 1, 1], 2))]);
  const p = bnParams(n, 'bnb', 3, 9);
  n.output(n.op('BatchNormalization', [c2, scale, p[1]!, p[2]!, p[3]!]));
  const res = await runPass('fold-batchnorm', n.build());
  assert.equal(countOps(res.model, 'BatchNormalization'), 2);
  const skipped = res.changes.filter((c) => c.kind === 'skipped').map((c) => c.message);
  assert.equal(skipped.length, 2);
  assert.ok(skipped.some((s) => /read elsewhere/.test(s)) && skipped.some((s) => /not float constants/.test(s)));
});

test('fuse-bias-add folds per-channel Adds into Conv (with and without bias) and Gemm, and leaves a spatial Add', async () => {
  const n = new Net();
  const x = n.input('x', [1, 3, 5, 5]);
  const c1 = n.op('Conv', [x, n.init('w1', randomTensor([4, 3, 3, 3], 1))], { pads: [1, 1, 1, 1] });
  const a1 = n.op('Add', [c1, n.init('add1', randomTensor([1, 4, 1, 1], 2))]);
  const c2 = n.op('Conv', [a1, n.init('w2', randomTensor([4, 4, 1, 1], 3)), n.init('b2', randomTensor([4], 4))]);
  const a2 = n.op('Add', [n.init('add2', randomTensor([4, 1, 1], 5)), c2]);
  const c3 = n.op('Conv', [a2, n.init('w3', randomTensor([4, 4, 1, 1], 6))]);
  const a3 = n.op('Add', [c3, n.init('spatial', randomTensor([1, 1, 5, 5], 7))]);
  const flat = n.op('Flatten', [a3]);
  const g = n.op('Gemm', [flat, n.init('wg', randomTensor([100, 6], 8)), n.init('cg', randomTensor([6], 9))], { beta: f(0.5) });
  n.output(n.op('Add', [g, n.init('addg', randomTensor([6], 10))]));
  const m = n.build();
  const res = await runPass('fuse-bias-add', m);
  assert.equal(countOps(res.model, 'Add'), 1, 'only the spatial Add is left');
  assert.ok(res.changes.some((c) => c.kind === 'skipped' && /not per-channel/.test(c.message)));
  const drift = await outputDrift(m, res.model, X([1, 3, 5, 5]));
  assert.ok(drift < 1e-5, `drift ${drift}`);
});

function segNet(h: number | string, w: number | string, batch: number | string = 1): Model {
  const n = new Net();
  const x = n.input('image', [batch, 3, h, w]);
  const c = n.op('Conv', [x, n.init('w', randomTensor([4, 3, 3, 3], 1)), n.init('b', randomTensor([4], 2))], { pads: [1, 1, 1, 1] });
  const r = n.op('Relu', [c]);
  n.output(n.op('Conv', [r, n.init('w2', randomTensor([1, 4, 1, 1], 3))]), [batch, 1, h, w]);
  return n.build();
}

test('set-batch makes the batch dynamic (runs at batch 3 like three batch-1 runs) or fixes it', async () => {
  const m = segNet(8, 8, 1);
  const dyn = await runPass('set-batch', m, { batch: 'dynamic' });
  assert.equal(dyn.model.graph.inputs[0]!.shape![0], 'N');
  assert.equal(dyn.model.graph.outputs[0]!.shape![0], 'N');
  const x3 = randomTensor([3, 3, 8, 8], 4);
  const all = (await runModel(dyn.model, { image: x3 }))[Object.keys(await runModel(dyn.model, { image: x3 }))[0]!]!;
  assert.deepEqual(all.dims, [3, 1, 8, 8]);
  for (let k = 0; k < 3; k++) {
    const one = await runModel(m, { image: floatTensor([1, 3, 8, 8], (x3.values as Float32Array).slice(k * 192, (k + 1) * 192)) });
    const v = Object.values(one)[0]!.values;
    assert.deepEqual(Array.from(all.values.slice(k * 64, (k + 1) * 64)), Array.from(v));
  }
  const fixed = await runPass('set-batch', m, { batch: 2 });
  assert.equal(fixed.model.graph.inputs[0]!.shape![0], 2);
  await assert.rejects(runPass('set-batch', m, { batch: 0 }), LesionFuseError);
});

test('fix-input-size fixes dynamic H/W, carries the sizes to the outputs, records metadata, refuses bad sizes', async () => {
  const m = segNet('H', 'W', 'N');
  const r = await runPass('fix-input-size', m, { inputSize: { height: 64, width: 96 } });
  assert.deepEqual(r.model.graph.inputs[0]!.shape, ['N', 3, 64, 96]);
  assert.deepEqual(r.model.graph.outputs[0]!.shape, ['N', 1, 64, 96]);
  assert.equal(r.model.metadata['lesionfuse.input_size'], '64x96');
  assert.equal(await outputDrift(m, r.model, { image: randomTensor([1, 3, 64, 96], 2) }), 0);
  // A size that is not a multiple of 32 (the PP-OCR classifier's 48 x 192) is fixed too, with a note.
  const odd = await runPass('fix-input-size', m, { inputSize: { height: 48, width: 192 } });
  assert.deepEqual(odd.model.graph.inputs[0]!.shape, ['N', 3, 48, 192]);
  assert.ok(odd.changes.some((c) => c.kind === 'skipped' && /not a multiple of 32/.test(c.message)));
  assert.equal(await outputDrift(m, odd.model, { image: randomTensor([1, 3, 48, 192], 3) }), 0);
  await assert.rejects(runPass('fix-input-size', m, { inputSize: { height: 0, width: 96 } }), /positive integers, got 0x96/);
  await assert.rejects(runPass('fix-input-size', segNet(32, 32), { inputSize: { height: 64, width: 64 } }), /already has a fixed height 32/);
});

test('set-metadata writes lesionfuse keys and refuses values the contract rejects', async () => {
  const m = segNet(8, 8);
  const r = await runPass('set-metadata', m, { metadata: { 'lesionfuse.threshold': '0.4', 'lesionfuse.model_name': 'tiny' } });
  assert.equal(r.model.metadata['lesionfuse.threshold'], '0.4');
  await assert.rejects(runPass('set-metadata', m, { metadata: { 'lesionfuse.threshold': '2' } }), LesionFuseError);
  await assert.rejects(runPass('set-metadata', m, { metadata: { 'lesionfuse.colour': 'x' } }), /unknown metadata key/);
});

test('rewrite runs the default passes in order, refuses unknown pass names, and lists every pass', async () => {
  const n = new Net();
  const x = n.input('x', [1, 3, 8, 8]);
  const c = n.op('Conv', [n.op('Identity', [x]), n.init('w', randomTensor([4, 3, 3, 3], 1))], { pads: [1, 1, 1, 1] });
  const bn = n.op('BatchNormalization', [c, ...bnParams(n, 'bn', 4, 3)]);
  const a = n.op('Add', [bn, n.op('Constant', [], { value: randomTensor([4, 1, 1], 9) })]);
  n.output(n.op('Sigmoid', [a]));
  const m = n.build();
  const r = await rewrite(m, DEFAULT_PASSES);
  assert.deepEqual(r.model.graph.nodes.map((x) => x.opType), ['Conv', 'Sigmoid']);
  assert.deepEqual(r.passes.map((p) => p.name), [...DEFAULT_PASSES]);
  const drift = await outputDrift(m, r.model, X([1, 3, 8, 8]));
  assert.ok(drift < 1e-6, `drift ${drift}`);
  await assert.rejects(rewrite(m, ['no-such-pass']), /unknown pass 'no-such-pass'; available: remove-identity/);
  for (const p of Object.values(PASSES)) assert.ok(p.description.length > 10);
});

test('fold-constants folds the static dims of a dynamic-batch shape (Gather/Slice of Shape) and keeps the batch dim dynamic', async () => {
  const n = new Net(13);
  const x = n.input('x', ['N', 4, 6, 8]);
  const s = n.op('Shape', [x]);
  const c = n.op('Gather', [s, n.init('one', { dataType: DataType.INT64, dims: [], values: BigInt64Array.from([1n]) })], { axis: 0 });
  const hw = n.op('Slice', [s, n.init('st', int64Tensor([1], [2])), n.init('en', int64Tensor([1], [4]))]);
  const hwProd = n.op('ReduceProd', [hw], { keepdims: 1 });
  const b = n.op('Gather', [s, n.init('zero', int64Tensor([1], [0]))], { axis: 0 });
  const tgt = n.op('Concat', [b, n.op('Unsqueeze', [c, n.init('ax0', int64Tensor([1], [0]))]), hwProd], { axis: 0 });
  n.output(n.op('Reshape', [x, tgt]));
  const m = n.build();
  const r = await runPass('fold-constants', m);
  const ops = r.model.graph.nodes.map((q) => q.opType).sort();
  assert.deepEqual(ops, ['Concat', 'Gather', 'Reshape', 'Shape'], ops.join(','));
  for (const batch of [1, 3]) assert.equal(await outputDrift(m, r.model, X([batch, 4, 6, 8], batch)), 0);
});

test('merge-duplicates merges repeated shape chains and identical constants, never random ops, and keeps outputs', async () => {
  const n = new Net(13);
  const x = n.input('x', ['N', 4, 6]);
  const zeroA = n.init('zeroA', int64Tensor([1], [0]));
  const zeroB = n.init('zeroB', int64Tensor([1], [0]));
  const g1 = n.op('Gather', [n.op('Shape', [x]), zeroA], { axis: 0 });
  const g2 = n.op('Gather', [n.op('Shape', [x]), zeroB], { axis: 0 });
  const t1 = n.op('Concat', [g1, n.init('rest1', int64Tensor([1], [24]))], { axis: 0 });
  const t2 = n.op('Concat', [g2, n.init('rest2', int64Tensor([1], [24]))], { axis: 0 });
  const a = n.op('Reshape', [x, t1]);
  const b = n.op('Reshape', [n.op('Relu', [x]), t2]);
  const r1 = n.op('RandomUniformLike', [a], { seed: f(1) });
  const r2 = n.op('RandomUniformLike', [a], { seed: f(1) });
  const zero = n.op('Mul', [n.op('Add', [r1, r2]), n.init('z', floatTensor([], [0]))]);
  n.output(n.op('Add', [n.op('Add', [a, b]), zero]));
  const m = n.build();
  const r = await runPass('merge-duplicates', m);
  const ops = r.model.graph.nodes.map((q) => q.opType);
  assert.equal(ops.filter((o) => o === 'Shape').length, 1);
  assert.equal(ops.filter((o) => o === 'Gather').length, 1);
  assert.equal(ops.filter((o) => o === 'Concat').length, 1);
  assert.equal(ops.filter((o) => o === 'RandomUniformLike').length, 2, 'random ops are never merged');
  assert.equal(r.model.graph.initializers.length, 3, 'zeroB and rest2 merged into zeroA and rest1');
  for (const batch of [1, 2]) assert.equal(await outputDrift(m, r.model, X([batch, 4, 6], batch)), 0);
});

test('simplify-reshape turns run-time targets that pass the batch through into constants with 0; leaves targets whose dims differ', async () => {
  const n = new Net(13);
  const x = n.input('x', ['N', 4, 6]);
  const y = n.op('Relu', [x]);
  const k0 = n.init('k0', { dataType: DataType.INT64, dims: [], values: BigInt64Array.from([0n]) });
  const k1 = n.init('k1', { dataType: DataType.INT64, dims: [], values: BigInt64Array.from([1n]) });
  const batchOfY = n.op('Unsqueeze', [n.op('Gather', [n.op('Shape', [y]), k0], { axis: 0 }), n.init('ax', int64Tensor([1], [0]))]);
  const a = n.op('Reshape', [x, n.op('Concat', [batchOfY, n.init('c24', int64Tensor([1], [24]))], { axis: 0 })]);
  // A target whose run-time element is dim 1 (4) placed at position 0 (N): must stay.
  const four = n.op('Unsqueeze', [n.op('Gather', [n.op('Shape', [y]), k1], { axis: 0 }), n.init('ax2', int64Tensor([1], [0]))]);
  const b = n.op('Reshape', [y, n.op('Concat', [four, n.init('m1', int64Tensor([1], [-1]))], { axis: 0 })]);
  n.output(a);
  n.output(b);
  const m = n.build();
  const r = await rewrite(m, ['simplify-reshape', 'remove-dead']);
  const reshapes = r.model.graph.nodes.filter((q) => q.opType === 'Reshape');
  const t = r.model.graph.initializers.find((i) => i.name === reshapes[0]!.inputs[1]);
  assert.deepEqual(Array.from(t!.values as BigInt64Array, Number), [0, 24]);
  assert.ok(!r.model.graph.initializers.some((i) => i.name === reshapes[1]!.inputs[1]), 'the second target is still computed');
  assert.equal(r.model.graph.nodes.filter((q) => q.opType === 'Shape').length, 1);
  for (const batch of [1, 3]) assert.equal(await outputDrift(m, r.model, X([batch, 4, 6], batch)), 0);
});

test('fold-batchnorm matches a hand-computed fold: w=2, b=1, gamma=3, beta=0.5, mean=1, var=3, eps=1 -> w=3, b=0.5', async () => {
  const n = new Net();
  const x = n.input('x', [1, 1, 2, 2]);
  const c = n.op('Conv', [x, n.init('w', floatTensor([1, 1, 1, 1], [2])), n.init('b', floatTensor([1], [1]))]);
  n.output(n.op('BatchNormalization', [c, n.init('g', floatTensor([1], [3])), n.init('be', floatTensor([1], [0.5])), n.init('mu', floatTensor([1], [1])), n.init('v', floatTensor([1], [3]))], { epsilon: f(1) }));
  const r = foldBatchNormIntoConv(n.build());
  const conv = r.model.graph.nodes[0]!;
  const val = (name: string) => Array.from(r.model.graph.initializers.find((i) => i.name === name)!.values as Float32Array);
  assert.deepEqual(val(conv.inputs[1]!), [3]);
  assert.deepEqual(val(conv.inputs[2]!), [0.5]);
});
