import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from '../../src/util/ort.js';
import { inspectModel, formatModelSummary } from '../../src/onnx/inspect.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { DataType } from '../../src/onnx/ir.js';
import { floatTensor, tensorOf } from '../../src/onnx/tensor.js';
import { writeModel } from '../../src/onnx/io.js';
import { runModel, seeded, tempDir, FIXTURES } from './helpers.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'index.js');

/** A small QDQ model: int8 per-channel conv weights, a float16 weight behind a Cast, an activation QDQ pair, a MatMul head. */
function qdqModel() {
  const b = new GraphBuilder('qdq');
  const x = b.input('image', DataType.FLOAT, ['N', 3, 'H', 'W']);
  const qx = b.op('QuantizeLinear', [x, b.constant(floatTensor([], [0.05]), 'sx'), b.constant(tensorOf(DataType.UINT8, [], [128]), 'zx')]);
  const dx = b.op('DequantizeLinear', [qx, 'sx', 'zx']);
  const wq = b.initializer('conv.weight_q', tensorOf(DataType.INT8, [4, 3, 3, 3], Array.from({ length: 108 }, (_, i) => (i % 11) - 5)));
  const ws = b.initializer('conv.weight_scale', floatTensor([4], [0.01, 0.02, 0.03, 0.04]));
  const w = b.op('DequantizeLinear', [wq, ws, b.constant(tensorOf(DataType.INT8, [4], [0, 0, 0, 0]), 'wz')], { axis: 0 });
  const y = b.op('Conv', [dx, w], { pads: [1, 1, 1, 1], strides: [2, 2] });
  const w2 = b.op('Cast', [b.initializer('head.weight16', tensorOf(DataType.FLOAT16, [2, 4, 1, 1], [1, -1, 0.5, 0.25, 2, 0, 0, 1]))], { to: DataType.FLOAT });
  const z = b.op('ConvTranspose', [b.op('Relu', [y]), b.op('Transpose', [w2], { perm: [1, 0, 2, 3] })], { strides: [2, 2], kernel_shape: [1, 1], output_padding: [1, 1] });
  const t = b.op('Transpose', [z], { perm: [0, 2, 3, 1] });
  const m = b.op('MatMul', [t, b.initializer('proj', floatTensor([2, 5], seeded(10)))]);
  b.output(m, 'out', { dataType: DataType.FLOAT, shape: ['N', 'H', 'W', 5] });
  return b.build({ opset: 17, metadata: { 'lesionfuse.input_size': '16x12' } });
}

describe('inspectModel', () => {
  it('counts parameters once, recognises quantization, and computes multiply-adds by hand formulas', async () => {
    const model = qdqModel();
    // It is a real, runnable model at the metadata's size.
    const out = await runModel(model, { image: new ort.Tensor('float32', seeded(3 * 16 * 12), [1, 3, 16, 12]) });
    assert.deepEqual(out['out']!.dims, [1, 16, 12, 5]);
    const s = inspectModel(model, { fileSizeBytes: 1234 });
    // 108 int8 conv weights + 8 float16 head weights + 10 projection weights; scales and zero points excluded.
    assert.equal(s.parameters, 108 + 8 + 10);
    assert.deepEqual(s.parametersByType, { int8: 108, float16: 8, float32: 10 });
    assert.equal(s.quantization.qdqPairs, 1);
    assert.equal(s.quantization.int8Weights, 1);
    assert.equal(s.quantization.int8WeightParams, 108);
    assert.equal(s.quantization.quantized, true);
    // At batch 1 and 16x12 (the metadata's size, since the input is symbolic):
    // Conv: output [1,4,8,6] x (3*3*3) = 192*27; ConvTranspose: input [1,4,8,6] x (2*1*1) = 192*2;
    // MatMul: output [1,16,12,5] x K=2 = 960*2.
    assert.deepEqual(s.macsByOp, { Conv: 192 * 27, ConvTranspose: 192 * 2, MatMul: 960 * 2 });
    assert.equal(s.macsPerImage, 192 * 27 + 192 * 2 + 960 * 2);
    assert.deepEqual(s.macsInputShape, { image: [1, 3, 16, 12] });
    assert.equal(s.opHistogram['DequantizeLinear'], 2);
    assert.deepEqual(s.inputs, [{ name: 'image', type: 'float32', shape: ['N', 3, 'H', 'W'] }]);
    assert.equal(s.fileSizeBytes, 1234);
    const text = formatModelSummary(s);
    assert.match(text, /multiply-adds\s+7\.5 K per image at \[1, 3, 16, 12\]/);
    assert.match(text, /quantized\s+yes: 1 QDQ pairs, 1 int8 weights/);
  });

  it('says when multiply-adds cannot be computed', () => {
    const b = new GraphBuilder('dyn');
    const x = b.input('x', DataType.FLOAT, ['N', 3, 'H', 'W']);
    b.output(b.op('Conv', [x, b.constant(floatTensor([2, 3, 1, 1], seeded(6)))]), 'y');
    const s = inspectModel(b.build());
    assert.equal(s.macsPerImage, null);
    assert.equal(s.macsUnknownNodes.length, 1);
  });
});

/**
 * Weights where external exporters put them: a conv weight in a Constant node of the main graph, and an If
 * whose branches hold their own weights (an initializer in one, a Constant node in the other). 108 + 4 + 8 = 120.
 */
function constantAndIfModel() {
  const b = new GraphBuilder('weights-everywhere');
  const x = b.input('x', DataType.FLOAT, [1, 3, 6, 6]);
  const cond = b.input('cond', DataType.BOOL, []);
  const w = b.op('Constant', [], { value: floatTensor([4, 3, 3, 3], seeded(108, 7)) });
  const y = b.op('Conv', [x, w], { pads: [1, 1, 1, 1] });
  const then = new GraphBuilder('then');
  then.output(then.op('Mul', [y, then.initializer('then.scale', floatTensor([1, 4, 1, 1], [1, 2, 3, 4]))], {}, { output: 'then_mul' }), 'then_out', { dataType: DataType.FLOAT, shape: [1, 4, 6, 6] });
  const other = new GraphBuilder('else');
  const k = other.op('Constant', [], { value: floatTensor([2, 4, 1, 1], seeded(8, 3)) }, { output: 'else_k' });
  other.output(other.op('Conv', [y, k], {}, { output: 'else_conv' }), 'else_mid', { dataType: DataType.FLOAT, shape: [1, 2, 6, 6] });
  const thenG = then.build().graph;
  const elseG = other.build().graph;
  // Both branches must give the same rank; pad the else branch's 2 channels back to 4 with a Concat of itself.
  const eb = GraphBuilder.from(elseG);
  const cat = eb.op('Concat', ['else_mid', 'else_mid'], { axis: 1 }, { output: 'else_cat' });
  elseG.outputs = [];
  eb.output(cat, 'else_out', { dataType: DataType.FLOAT, shape: [1, 4, 6, 6] });
  const z = b.op('If', [cond], { then_branch: thenG, else_branch: elseG });
  b.output(z, 'out', { dataType: DataType.FLOAT, shape: [1, 4, 6, 6] });
  return b.build({ opset: 17 });
}

describe('inspectModel on weights outside the initializers', () => {
  it('counts weights in Constant nodes and inside If branches (a real, runnable model)', async () => {
    const model = constantAndIfModel();
    for (const c of [true, false]) {
      const out = await runModel(model, { x: new ort.Tensor('float32', seeded(108, 2), [1, 3, 6, 6]), cond: new ort.Tensor('bool', Uint8Array.from([c ? 1 : 0]), []) });
      assert.deepEqual(out['out']!.dims, [1, 4, 6, 6]);
    }
    const s = inspectModel(model);
    assert.equal(s.parameters, 108 + 4 + 8);
    assert.equal(s.parametersInConstantNodes, 108 + 8);
    assert.equal(s.parametersInSubgraphs, 4 + 8);
    assert.deepEqual(s.parametersByType, { float32: 120 });
    assert.match(formatModelSummary(s), /of which 116 in Constant nodes, 12 inside If\/Loop\/Scan subgraphs/);
  });

  it('gives the same count before and after fold-constants moves a Constant node into an initializer', async () => {
    const { rewrite } = await import('../../src/export/rewrite.js');
    const model = constantAndIfModel();
    const folded = (await rewrite(model, ['fold-constants'])).model;
    assert.ok(!folded.graph.nodes.some((n) => n.opType === 'Constant'), 'the main-graph Constant was folded');
    assert.equal(inspectModel(folded).parameters, inspectModel(model).parameters);
  });

  it('--input-size gives multiply-adds for a model with symbolic height/width', () => {
    const b = new GraphBuilder('dyn');
    const x = b.input('x', DataType.FLOAT, ['N', 3, 'H', 'W']);
    b.output(b.op('Conv', [x, b.constant(floatTensor([2, 3, 1, 1], seeded(6)))]), 'y');
    const s = inspectModel(b.build(), { inputSize: { height: 5, width: 7 } });
    // Conv 1x1: output [1,2,5,7] x (3*1*1).
    assert.equal(s.macsPerImage, 70 * 3);
    assert.deepEqual(s.macsInputShape, { x: [1, 3, 5, 7] });
  });
});

describe('lesionfuse inspect / models', () => {
  it('inspect --json prints the summary; the table names the ops', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, 'qdq model.onnx');
      await writeModel(qdqModel(), path);
      const r = spawnSync(process.execPath, [CLI, 'inspect', path, '--json'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      assert.equal(j.parameters, 126);
      assert.equal(j.macsPerImage, 192 * 27 + 192 * 2 + 960 * 2);
      assert.deepEqual(j.issues, []);
      const t = spawnSync(process.execPath, [CLI, 'inspect', join(FIXTURES, 'tiny_conv.onnx')], { encoding: 'utf8' });
      assert.equal(t.status, 0, t.stderr);
      assert.match(t.stdout, /lesionfuse\.test:AddOne\s+1/);
      assert.match(t.stdout, /ir version\s+10/);
    } finally {
      cleanup();
    }
  });

  it('inspect refuses a bad file in one line with exit status 2', () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, 'zero.onnx');
      writeFileSync(path, '');
      const r = spawnSync(process.execPath, [CLI, 'inspect', path], { encoding: 'utf8' });
      assert.equal(r.status, 2);
      assert.equal(r.stderr.trim().split('\n').length, 1);
      assert.match(r.stderr, new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: empty file`));
    } finally {
      cleanup();
    }
  });

  it('models --json lists the bundled models with alias, path, size and input size', () => {
    const r = spawnSync(process.execPath, [CLI, 'models', '--json'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as { alias: string; path: string; present: boolean; sizeBytes: number | null; inputSize: string | null }[];
    assert.deepEqual(rows.map((x) => x.alias).sort(), ['default:student', 'default:teacher']);
    for (const row of rows) {
      assert.ok('inputSize' in row && 'sizeBytes' in row && 'path' in row);
      if (!row.present) assert.equal(row.sizeBytes, null);
    }
  });
});
