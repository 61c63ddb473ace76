import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from '../../src/util/ort.js';
import { GraphBuilder, type Attrs } from '../../src/onnx/builder.js';
import { DataType, type Dim } from '../../src/onnx/ir.js';
import { floatTensor, int64Tensor, tensorOf, dataTypeName, numel } from '../../src/onnx/tensor.js';
import { inferShapes } from '../../src/onnx/shape.js';
import { runModel, seeded } from './helpers.js';

type Build = (b: GraphBuilder) => string[];

/**
 * Build a graph, infer shapes, then run it in onnxruntime with every checked value
 * as an output (declared with our inferred type but no shape) and compare our
 * shapes with the shapes onnxruntime actually produced.
 */
async function checkAgainstOrt(opset: number, build: Build): Promise<Map<string, Dim[] | null>> {
  const b = new GraphBuilder('case');
  const values = build(b);
  const model = b.build({ opset });
  const inferred = inferShapes(model);
  model.graph.outputs = values.map((v) => ({ name: v, dataType: inferred.get(v)!.dataType, shape: null }));
  const feeds: Record<string, ort.Tensor> = {};
  model.graph.inputs.forEach((v, i) => {
    const dims = v.shape as number[];
    feeds[v.name] = new ort.Tensor('float32', seeded(numel(dims), 100 + i), dims);
  });
  const out = await runModel(model, feeds);
  const result = new Map<string, Dim[] | null>();
  for (const v of values) {
    const ours = inferred.get(v)!;
    assert.deepEqual(ours.shape, out[v]!.dims.map(Number), `shape of '${v}'`);
    assert.equal(dataTypeName(ours.dataType), out[v]!.type, `type of '${v}'`);
    result.set(v, ours.shape);
  }
  return result;
}

const c = (b: GraphBuilder, dims: number[], seed = 1) => b.constant(floatTensor(dims, seeded(numel(dims), seed)), 'w');
const i64 = (b: GraphBuilder, values: number[], dims = [values.length]) => b.constant(int64Tensor(dims, values), 'i');
const op = (b: GraphBuilder, type: string, inputs: string[], attrs: Attrs = {}) => b.op(type, inputs, attrs);

const CASES: [string, number, Build][] = [
  ['Conv: pads, strides', 17, (b) => [op(b, 'Conv', [b.input('x', DataType.FLOAT, [1, 3, 17, 15]), c(b, [8, 3, 3, 3])], { pads: [1, 1, 1, 1], strides: [2, 2] })]],
  ['Conv: groups, dilations, asymmetric pads', 17, (b) => [op(b, 'Conv', [b.input('x', DataType.FLOAT, [1, 4, 16, 16]), c(b, [4, 2, 3, 3])], { group: 2, dilations: [2, 2], pads: [0, 1, 2, 1] })]],
  ['Conv: auto_pad SAME_UPPER', 17, (b) => [op(b, 'Conv', [b.input('x', DataType.FLOAT, [1, 3, 15, 15]), c(b, [2, 3, 4, 4])], { auto_pad: 'SAME_UPPER', strides: [2, 2] })]],
  ['Conv: 1-D, VALID', 17, (b) => [op(b, 'Conv', [b.input('x', DataType.FLOAT, [1, 2, 9]), c(b, [3, 2, 3])], { auto_pad: 'VALID', strides: [2] })]],
  ['ConvTranspose: strides, pads, output_padding, groups', 17, (b) => [op(b, 'ConvTranspose', [b.input('x', DataType.FLOAT, [1, 4, 7, 5]), c(b, [4, 3, 3, 3])], { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 0], group: 2 })]],
  ['ConvTranspose: output_shape', 17, (b) => [op(b, 'ConvTranspose', [b.input('x', DataType.FLOAT, [1, 2, 7, 5]), c(b, [2, 3, 3, 3])], { strides: [2, 2], output_shape: [15, 11] })]],
  ['ConvTranspose: auto_pad SAME_UPPER', 17, (b) => [op(b, 'ConvTranspose', [b.input('x', DataType.FLOAT, [1, 2, 6, 5]), c(b, [2, 1, 4, 4])], { strides: [2, 2], auto_pad: 'SAME_UPPER' })]],
  ['ConvTranspose: 2x2 stride 2 (decoder upsampling)', 17, (b) => [op(b, 'ConvTranspose', [b.input('x', DataType.FLOAT, [1, 8, 6, 8]), c(b, [8, 4, 2, 2])], { strides: [2, 2] })]],
  ['Gemm: transB with bias', 17, (b) => [op(b, 'Gemm', [b.input('a', DataType.FLOAT, [3, 5]), c(b, [4, 5]), c(b, [4])], { transB: 1, alpha: 0.5, beta: 2 })]],
  ['Gemm: transA', 17, (b) => [op(b, 'Gemm', [b.input('a', DataType.FLOAT, [5, 3]), c(b, [5, 4])], { transA: 1 })]],
  [
    'MatMul: broadcast and 1-D operands',
    17,
    (b) => [
      op(b, 'MatMul', [b.input('a', DataType.FLOAT, [2, 1, 3, 4]), c(b, [5, 4, 6])]),
      op(b, 'MatMul', [b.input('v', DataType.FLOAT, [4]), c(b, [4, 6])]),
      op(b, 'MatMul', [c(b, [3, 4]), 'v']),
    ],
  ],
  ['BatchNormalization', 17, (b) => [op(b, 'BatchNormalization', [b.input('x', DataType.FLOAT, [2, 3, 4, 5]), c(b, [3]), c(b, [3]), c(b, [3]), b.constant(floatTensor([3], [1, 2, 3]))])]],
  [
    'unary ops, Clip, Cast, Dropout',
    17,
    (b) => {
      const x = b.input('x', DataType.FLOAT, [2, 3, 4]);
      const outs = ['Relu', 'Sigmoid', 'Erf', 'Tanh', 'Exp', 'Neg', 'Abs', 'Identity', 'Softmax'].map((t) => op(b, t, [x]));
      outs.push(op(b, 'LeakyRelu', [x], { alpha: 0.2 }));
      const a = op(b, 'Abs', [x]);
      outs.push(op(b, 'Sqrt', [a]), op(b, 'Log', [a]));
      outs.push(op(b, 'Clip', [x, b.constant(floatTensor([], [-0.5])), b.constant(floatTensor([], [0.5]))]));
      outs.push(op(b, 'Cast', [x], { to: DataType.INT32 }), op(b, 'Cast', [x], { to: DataType.FLOAT16 }));
      outs.push(...b.opN('Dropout', [x], 2));
      return outs;
    },
  ],
  ['Gelu (opset 20)', 20, (b) => [op(b, 'Gelu', [b.input('x', DataType.FLOAT, [2, 5])])]],
  [
    'broadcasting binary ops, comparisons, Where',
    17,
    (b) => {
      const x = b.input('x', DataType.FLOAT, [2, 1, 4]);
      const y = b.input('y', DataType.FLOAT, [3, 1]);
      const outs = ['Add', 'Sub', 'Mul', 'Div', 'Pow'].map((t) => op(b, t, [x, y]));
      const gt = op(b, 'Greater', [x, y]);
      outs.push(gt, op(b, 'Less', [y, x]), op(b, 'Equal', [x, x]));
      outs.push(op(b, 'Where', [gt, x, c(b, [1, 4])]));
      return outs;
    },
  ],
  [
    'Concat, Split (sizes, equal parts, opset 18 num_outputs)',
    18,
    (b) => {
      const x = b.input('x', DataType.FLOAT, [1, 5, 7]);
      const outs = [op(b, 'Concat', [x, x], { axis: 1 }), op(b, 'Concat', [x, c(b, [1, 5, 2])], { axis: -1 })];
      outs.push(...b.opN('Split', [x, i64(b, [2, 3])], 2, { axis: 1 }));
      outs.push(...b.opN('Split', [x], 3, { axis: 2, num_outputs: 3 }));
      return outs;
    },
  ],
  ['Split into equal parts (opset 17)', 17, (b) => b.opN('Split', [b.input('x', DataType.FLOAT, [1, 2, 6])], 3, { axis: 2 })],
  [
    'Slice: clamping, negative indices and steps',
    17,
    (b) => {
      const x = b.input('x', DataType.FLOAT, [4, 10, 6]);
      return [
        op(b, 'Slice', [x, i64(b, [1, -3]), i64(b, [100, -1]), i64(b, [0, 2])]),
        op(b, 'Slice', [x, i64(b, [-1]), i64(b, [-100]), i64(b, [1]), i64(b, [-2])]),
        op(b, 'Slice', [x, i64(b, [0, 0, 0]), i64(b, [9223372036854775807, 2, 6]), i64(b, [0, 1, 2]), i64(b, [3, 1, 4])]),
      ];
    },
  ],
  [
    'Reshape (0 and -1), Transpose, Flatten, Squeeze, Unsqueeze',
    17,
    (b) => {
      const x = b.input('x', DataType.FLOAT, [2, 3, 1, 4]);
      return [
        op(b, 'Reshape', [x, i64(b, [0, -1])]),
        op(b, 'Reshape', [x, i64(b, [-1, 2, 2])]),
        op(b, 'Transpose', [x], { perm: [0, 2, 3, 1] }),
        op(b, 'Transpose', [x]),
        op(b, 'Flatten', [x], { axis: 2 }),
        op(b, 'Flatten', [x], { axis: 0 }),
        op(b, 'Squeeze', [x, i64(b, [2])]),
        op(b, 'Squeeze', [x]),
        op(b, 'Unsqueeze', [x, i64(b, [0, -1])]),
      ];
    },
  ],
  [
    'Resize: scales and sizes',
    17,
    (b) => {
      const x = b.input('x', DataType.FLOAT, [1, 3, 5, 6]);
      return [
        op(b, 'Resize', [x, '', b.constant(floatTensor([4], [1, 1, 2, 2]))], { mode: 'linear' }),
        op(b, 'Resize', [x, '', b.constant(floatTensor([4], [1, 1, 1.5, 0.5]))], { mode: 'nearest' }),
        op(b, 'Resize', [x, '', '', i64(b, [1, 3, 7, 9])], { mode: 'nearest' }),
      ];
    },
  ],
  [
    'pooling: MaxPool with Indices and ceil_mode, AveragePool, GlobalAveragePool',
    17,
    (b) => {
      const x = b.input('x', DataType.FLOAT, [1, 2, 10, 11]);
      return [
        ...b.opN('MaxPool', [x], 2, { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 }),
        op(b, 'MaxPool', [x], { kernel_shape: [2, 2], strides: [2, 2], pads: [1, 0, 1, 0] }),
        op(b, 'AveragePool', [x], { kernel_shape: [3, 2], strides: [3, 2], ceil_mode: 1 }),
        op(b, 'AveragePool', [x], { kernel_shape: [3, 3], auto_pad: 'SAME_UPPER', strides: [2, 2] }),
        op(b, 'GlobalAveragePool', [x]),
      ];
    },
  ],
  [
    'Softmax, LayerNormalization with mean and inverse std',
    17,
    (b) => {
      const x = b.input('x', DataType.FLOAT, [2, 6, 8]);
      return [op(b, 'Softmax', [x], { axis: 1 }), ...b.opN('LayerNormalization', [x, c(b, [6, 8]), c(b, [6, 8])], 3, { axis: -2, epsilon: 1e-5 })];
    },
  ],
  [
    'reductions (opset 17: ReduceSum axes input, others attribute)',
    17,
    (b) => {
      const x = b.input('x', DataType.FLOAT, [2, 3, 4, 5]);
      return [
        op(b, 'ReduceMean', [x], { axes: [2, 3], keepdims: 1 }),
        op(b, 'ReduceMax', [x], { keepdims: 0 }),
        op(b, 'ReduceSum', [x, i64(b, [1, -1])], { keepdims: 0 }),
        op(b, 'ReduceSum', [x], { keepdims: 1 }),
      ];
    },
  ],
  ['reductions (opset 18: axes input)', 18, (b) => [op(b, 'ReduceMean', [b.input('x', DataType.FLOAT, [2, 3, 4]), i64(b, [-1])], { keepdims: 0 }), op(b, 'ReduceMax', ['x', i64(b, [0, 1])])]],
  [
    'QuantizeLinear / DequantizeLinear',
    17,
    (b) => {
      const x = b.input('x', DataType.FLOAT, [1, 3, 4]);
      const q8 = op(b, 'QuantizeLinear', [x, b.constant(floatTensor([], [0.02])), b.constant(tensorOf(DataType.INT8, [], [0]))]);
      const qu = op(b, 'QuantizeLinear', [x, b.constant(floatTensor([], [0.02]))]);
      return [q8, qu, op(b, 'DequantizeLinear', [q8, b.constant(floatTensor([], [0.02])), b.constant(tensorOf(DataType.INT8, [], [0]))])];
    },
  ],
  [
    'Shape, Gather, Constant, ConstantOfShape, Expand, Pad, ScatterElements',
    17,
    (b) => {
      const x = b.input('x', DataType.FLOAT, [1, 2, 3, 3]);
      const shape = op(b, 'Shape', [x]);
      const tail = b.op('Shape', [x], { start: -2 });
      const k = b.op('Constant', [], { value: int64Tensor([3], [2, 1, 4]) });
      const filled = op(b, 'ConstantOfShape', [k], { value: floatTensor([1], [0.5]) });
      return [
        shape,
        tail,
        op(b, 'Gather', [x, i64(b, [1, 0, 1, 1], [2, 2])], { axis: 1 }),
        op(b, 'Gather', [shape, i64(b, [0], [])]),
        k,
        filled,
        op(b, 'Expand', [b.input('y', DataType.FLOAT, [3, 1]), k]),
        op(b, 'Pad', [x, i64(b, [0, 0, 1, 2, 0, 0, 3, 0])], { mode: 'constant' }),
        op(b, 'ScatterElements', [x, b.constant(int64Tensor([1, 1, 1, 1], [0])), b.constant(floatTensor([1, 1, 1, 1], [9]))], { axis: 2 }),
      ];
    },
  ],
];

describe('shape inference matches onnxruntime’s actual output shapes', () => {
  for (const [name, opset, build] of CASES) {
    it(name, async () => {
      await checkAgainstOrt(opset, build);
    });
  }

  it('folds Shape -> Gather/Slice -> ReduceProd/Mul -> Concat -> Reshape/Resize sizes into static shapes', async () => {
    const shapes = await checkAgainstOrt(17, (b) => {
      const x = b.input('x', DataType.FLOAT, [2, 3, 4, 5]);
      const s = op(b, 'Shape', [x]);
      const nc = op(b, 'Gather', [s, i64(b, [0, 1])]);
      const hw = op(b, 'Slice', [s, i64(b, [2]), i64(b, [4])]);
      const prodHw = op(b, 'ReduceProd', [hw], { keepdims: 1 });
      const target = op(b, 'Concat', [nc, prodHw], { axis: 0 });
      const flat = op(b, 'Reshape', [x, target]);
      const up = op(b, 'Resize', [x, '', '', op(b, 'Concat', [nc, op(b, 'Mul', [op(b, 'Slice', [s, i64(b, [-2]), i64(b, [100])]), i64(b, [2])])], { axis: 0 })], { mode: 'nearest' });
      return [flat, up];
    });
    const values = [...shapes.values()];
    // Static, not just equal to onnxruntime's: the shape arithmetic was folded.
    assert.deepEqual(values[0], [2, 3, 20]);
    assert.deepEqual(values[1], [2, 3, 8, 10]);
  });

  it('folds shape arithmetic through a symbolic batch dim, as torch exports it (Expand via Where(Equal(shape, -1)))', async () => {
    const b = new GraphBuilder('sym-fold');
    const x = b.input('x', DataType.FLOAT, ['N', 4, 3, 5]);
    const s = op(b, 'Shape', [x]);
    const batch = op(b, 'Unsqueeze', [op(b, 'Gather', [s, i64(b, [0], [])]), i64(b, [0])]);
    const flat = op(b, 'Reshape', [x, op(b, 'Concat', [batch, i64(b, [4, -1])], { axis: 0 })]);
    const target = op(b, 'Concat', [batch, i64(b, [-1, -1])], { axis: 0 });
    const fixed = op(b, 'Where', [op(b, 'Equal', [target, i64(b, [-1])]), op(b, 'ConstantOfShape', [i64(b, [3])], { value: int64Tensor([1], [1]) }), target]);
    const cls = op(b, 'Expand', [b.constant(floatTensor([1, 1, 7], seeded(7))), fixed]);
    const model = b.build({ opset: 17 });
    const inferred = inferShapes(model);
    assert.deepEqual(inferred.get(flat)!.shape, ['N', 4, 15]);
    assert.deepEqual(inferred.get(cls)!.shape, ['N', 1, 7]);
    model.graph.outputs = [flat, cls].map((v) => ({ name: v, dataType: DataType.FLOAT, shape: null }));
    const out = await runModel(model, { x: new ort.Tensor('float32', seeded(2 * 60), [2, 4, 3, 5]) });
    assert.deepEqual(out[flat]!.dims, [2, 4, 15]);
    assert.deepEqual(out[cls]!.dims, [2, 1, 7]);
  });

  it('keeps symbolic dims and never throws on unknown ops', () => {
    const b = new GraphBuilder('sym');
    const x = b.input('x', DataType.FLOAT, ['N', 3, 8, 8]);
    const y = op(b, 'Conv', [x, c(b, [4, 3, 1, 1])]);
    const z = b.op('MysteryOp', [y], {}, { domain: 'com.example' });
    const r = op(b, 'Relu', [z]);
    const m = b.build({ opset: 17, extraOpsets: [{ domain: 'com.example', version: 1 }] });
    const s = inferShapes(m);
    assert.deepEqual(s.get(y)!.shape, ['N', 4, 8, 8]);
    assert.equal(s.get(z)!.shape, null);
    assert.equal(s.get(r)!.shape, null);
  });
});
