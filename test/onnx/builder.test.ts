import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from '../../src/util/ort.js';
import { GraphBuilder, toAttribute, floatAttr, floatsAttr, intsAttr, makeModel, makeGraph, makeNode, makeValueInfo } from '../../src/onnx/builder.js';
import { DataType } from '../../src/onnx/ir.js';
import { floatTensor, int64Tensor } from '../../src/onnx/tensor.js';
import { encodeModel, decodeModel } from '../../src/onnx/io.js';
import { checkModel } from '../../src/onnx/check.js';
import { runModel, seeded } from './helpers.js';

describe('attribute values', () => {
  it('plain JS values get the ONNX type a reader expects', () => {
    assert.deepEqual(toAttribute('axis', 1), { type: 'int', value: 1 });
    assert.deepEqual(toAttribute('foo', 0.5), { type: 'float', value: 0.5 });
    assert.deepEqual(toAttribute('pads', [1, 1, 0, 0]), { type: 'ints', value: [1, 1, 0, 0] });
    assert.deepEqual(toAttribute('foo', [1, 2.5]), { type: 'floats', value: [1, 2.5] });
    assert.deepEqual(toAttribute('mode', 'linear'), { type: 'string', value: 'linear' });
    assert.deepEqual(toAttribute('names', ['a', 'b']), { type: 'strings', value: ['a', 'b'] });
    assert.equal(toAttribute('value', floatTensor([1], [2])).type, 'tensor');
    // ONNX float attributes stay float even when the value looks like an integer.
    for (const name of ['epsilon', 'alpha', 'beta', 'momentum', 'gamma', 'lambd', 'ratio', 'bias']) assert.equal(toAttribute(name, 1).type, 'float', name);
    assert.deepEqual(floatAttr(1), { type: 'float', value: 1 });
    assert.deepEqual(floatsAttr([1, 2]), { type: 'floats', value: [1, 2] });
    assert.deepEqual(intsAttr([]), { type: 'ints', value: [] });
    assert.throws(() => toAttribute('axes', []), /ambiguous/);
  });

  it('onnxruntime accepts integer-looking float attributes (alpha: 1, epsilon: 1)', async () => {
    const b = new GraphBuilder('floats');
    const x = b.input('x', DataType.FLOAT, [1, 2, 1, 1]);
    const lr = b.op('LeakyRelu', [x], { alpha: 1 });
    const bn = b.op('BatchNormalization', [lr, b.constant(floatTensor([2], [1, 1])), b.constant(floatTensor([2], [0, 0])), b.constant(floatTensor([2], [0, 0])), b.constant(floatTensor([2], [0, 0]))], { epsilon: 1 });
    b.output(bn, 'y');
    const out = await runModel(b.build(), { x: new ort.Tensor('float32', new Float32Array([-3, 4]), [1, 2, 1, 1]) });
    // LeakyRelu with alpha 1 is the identity; BN with var 0, eps 1 divides by sqrt(1).
    assert.deepEqual(Array.from(out['y']!.data as Float32Array), [-3, 4]);
  });
});

describe('GraphBuilder', () => {
  it('builds a tiny segmentation net that onnxruntime runs to the hand-computed numbers', async () => {
    const H = 5;
    const W = 6;
    const wv = seeded(2 * 3 * 3 * 3, 5);
    const b = new GraphBuilder('tiny-seg');
    const x = b.input('image', DataType.FLOAT, [1, 3, H, W]);
    const w = b.initializer('conv1.weight', floatTensor([2, 3, 3, 3], wv));
    const y = b.op('Conv', [x, w], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] });
    const [s1, s2] = b.opN('Split', [y, b.constant(int64Tensor([2], [1, 1]))], 2, { axis: 1 });
    b.output(b.op('Sigmoid', [b.op('Sub', [s1!, s2!])]), 'probs');
    const model = b.build({ opset: 17, metadata: { 'lesionfuse.input_size': `${H}x${W}` } });
    assert.equal(model.irVersion, 8);
    assert.equal(model.producerName, 'lesionfuse');
    assert.deepEqual(model.graph.outputs[0], { name: 'probs', dataType: DataType.FLOAT, shape: [1, 1, H, W] });
    assert.deepEqual(checkModel(model), []);
    const xv = seeded(3 * H * W, 9);
    const out = await runModel(model, { image: new ort.Tensor('float32', xv, [1, 3, H, W]) });
    // Direct convolution in plain loops.
    const conv = (m: number, i: number, j: number) => {
      let s = 0;
      for (let c = 0; c < 3; c++)
        for (let ki = 0; ki < 3; ki++)
          for (let kj = 0; kj < 3; kj++) {
            const ii = i + ki - 1;
            const jj = j + kj - 1;
            if (ii < 0 || jj < 0 || ii >= H || jj >= W) continue;
            s += xv[(c * H + ii) * W + jj]! * wv[((m * 3 + c) * 3 + ki) * 3 + kj]!;
          }
      return s;
    };
    const got = out['probs']!.data as Float32Array;
    for (let i = 0; i < H; i++)
      for (let j = 0; j < W; j++) {
        const expected = 1 / (1 + Math.exp(-(conv(0, i, j) - conv(1, i, j))));
        assert.ok(Math.abs(got[i * W + j]! - expected) < 1e-5, `(${i},${j}) ${got[i * W + j]} vs ${expected}`);
      }
  });

  it('GraphBuilder.from extends an existing model in place without name clashes', async () => {
    const b0 = new GraphBuilder('base');
    const x = b0.input('x', DataType.FLOAT, [3]);
    b0.output(b0.op('Relu', [x], {}, { output: 'relu_out' }), undefined);
    const model = decodeModel(encodeModel(b0.build()));
    const b = GraphBuilder.from(model);
    const doubled = b.op('Add', ['relu_out', 'relu_out'], {}, {});
    b.output(b.op('Relu', [doubled]), 'twice');
    const same = b.build({ metadata: { 'lesionfuse.model_name': 'ext' } });
    assert.equal(same, model);
    const names = model.graph.nodes.flatMap((n) => [n.name, ...n.outputs]);
    assert.equal(new Set(names).size, names.length);
    assert.equal(model.metadata['lesionfuse.model_name'], 'ext');
    const out = await runModel(model, { x: new ort.Tensor('float32', new Float32Array([-1, 2, 3]), [3]) });
    assert.deepEqual(Array.from(out['twice']!.data as Float32Array), [0, 4, 6]);
    assert.deepEqual(Array.from(out['relu_out']!.data as Float32Array), [0, 2, 3]);
  });

  it('plain helpers make the same kind of model', async () => {
    const g = makeGraph('plain', [makeNode('Neg', ['x'], ['y'])], [makeValueInfo('x', DataType.FLOAT, [2])], [makeValueInfo('y', DataType.FLOAT, [2])]);
    const m = makeModel(g, { opset: 13 });
    assert.equal(m.irVersion, 7);
    const out = await runModel(m, { x: new ort.Tensor('float32', new Float32Array([1, -2]), [2]) });
    assert.deepEqual(Array.from(out['y']!.data as Float32Array), [-1, 2]);
  });

  it('refuses a name that is already taken', () => {
    const b = new GraphBuilder('dup');
    b.input('x', DataType.FLOAT, [1]);
    assert.throws(() => b.initializer('x', floatTensor([1], [0])), /already used/);
  });
});

describe('GraphBuilder.output renaming', () => {
  it('keeps a renamed value usable under the name op() returned for it', () => {
    const b = new GraphBuilder('renamed');
    const x = b.input('x', DataType.FLOAT, [1, 2]);
    const y = b.op('Relu', [x]);
    b.output(y, 'features', { dataType: DataType.FLOAT, shape: [1, 2] });
    const z = b.op('Neg', [y]);
    b.output(z, 'neg_out', { dataType: DataType.FLOAT, shape: [1, 2] });
    const m = b.build({ opset: 17 });
    const neg = m.graph.nodes.find((n) => n.opType === 'Neg')!;
    assert.deepEqual(neg.inputs, ['features']);
    assert.deepEqual(checkModel(m).filter((issue) => issue.severity === 'error'), []);
  });
});
