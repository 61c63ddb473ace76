/**
 * Every non-conv gradient rule against central finite differences (see
 * autodiff_util.ts for the loss and the method). Bound: worst |fd - analytic|
 * relative to the largest analytic element < TOL. Smooth ops use eps = 1e-2
 * (truncation error ~eps^2 times the third derivative, < 1e-4 here);
 * piecewise-linear ops (Relu, MaxPool, Clip, Abs, Max/Min, Where) use
 * eps = 1e-3 with random inputs, exact on each linear piece. A wrong index,
 * sign or missing term gives errors of order 1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Initializer, Node } from '../../src/onnx/ir.js';
import { A, f32Init, gradCheck, i64Init, makeModel, node, randTensor } from './autodiff_util.js';
import { Rng } from '../../src/distill/engine/rng.js';

const TOL = 2e-3;

interface Case {
  name: string;
  nodes: Node[];
  inits: (rng: Rng) => Initializer[];
  params: string[];
  eps?: number;
  tol?: number;
}

const pos = (t: Initializer): Initializer => {
  const v = t.values as Float32Array;
  for (let i = 0; i < v.length; i++) v[i] = Math.abs(v[i]!) + 0.5;
  return t;
};

const cases: Case[] = [
  { name: 'Relu', nodes: [node('Relu', ['X'], ['Y'])], inits: (r) => [randTensor(r, 'X', [2, 3, 4, 5])], params: ['X'], eps: 1e-3 },
  { name: 'LeakyRelu', nodes: [node('LeakyRelu', ['X'], ['Y'], { alpha: A.float(0.1) })], inits: (r) => [randTensor(r, 'X', [3, 7])], params: ['X'], eps: 1e-3 },
  { name: 'Sigmoid', nodes: [node('Sigmoid', ['X'], ['Y'])], inits: (r) => [randTensor(r, 'X', [3, 7])], params: ['X'] },
  { name: 'Tanh', nodes: [node('Tanh', ['X'], ['Y'])], inits: (r) => [randTensor(r, 'X', [3, 7])], params: ['X'] },
  { name: 'Exp', nodes: [node('Exp', ['X'], ['Y'])], inits: (r) => [randTensor(r, 'X', [3, 7], 0.5)], params: ['X'] },
  { name: 'Log', nodes: [node('Log', ['X'], ['Y'])], inits: (r) => [pos(randTensor(r, 'X', [3, 7]))], params: ['X'] },
  { name: 'Sqrt', nodes: [node('Sqrt', ['X'], ['Y'])], inits: (r) => [pos(randTensor(r, 'X', [3, 7]))], params: ['X'] },
  { name: 'Neg', nodes: [node('Neg', ['X'], ['Y'])], inits: (r) => [randTensor(r, 'X', [5])], params: ['X'] },
  { name: 'Abs', nodes: [node('Abs', ['X'], ['Y'])], inits: (r) => [randTensor(r, 'X', [3, 7])], params: ['X'], eps: 1e-3 },
  { name: 'Softplus', nodes: [node('Softplus', ['X'], ['Y'])], inits: (r) => [randTensor(r, 'X', [3, 7], 2)], params: ['X'] },
  { name: 'Softmax axis 1', nodes: [node('Softmax', ['X'], ['Y'], { axis: A.int(1) })], inits: (r) => [randTensor(r, 'X', [2, 5, 3])], params: ['X'] },
  {
    name: 'Pow constant exponent 2.5',
    nodes: [node('Pow', ['X', 'P'], ['Y'])],
    inits: (r) => [pos(randTensor(r, 'X', [3, 4])), f32Init('P', [2.5], [])],
    params: ['X'],
  },
  {
    name: 'Clip min/max',
    nodes: [node('Clip', ['X', 'lo', 'hi'], ['Y'])],
    inits: (r) => [randTensor(r, 'X', [4, 6]), f32Init('lo', [-0.5], []), f32Init('hi', [0.7], [])],
    params: ['X'],
    eps: 1e-3,
  },
  { name: 'Add broadcast [2,3,4,5]+[3,1,1]', nodes: [node('Add', ['X', 'B'], ['Y'])], inits: (r) => [randTensor(r, 'X', [2, 3, 4, 5]), randTensor(r, 'B', [3, 1, 1])], params: ['X', 'B'] },
  { name: 'Sub broadcast [4,1]-[2,1,5]', nodes: [node('Sub', ['X', 'B'], ['Y'])], inits: (r) => [randTensor(r, 'X', [4, 1]), randTensor(r, 'B', [2, 1, 5])], params: ['X', 'B'] },
  { name: 'Mul broadcast [2,3,4]*[4]', nodes: [node('Mul', ['X', 'B'], ['Y'])], inits: (r) => [randTensor(r, 'X', [2, 3, 4]), randTensor(r, 'B', [4])], params: ['X', 'B'] },
  { name: 'Div broadcast [2,3,4]/[2,1,4]', nodes: [node('Div', ['X', 'B'], ['Y'])], inits: (r) => [randTensor(r, 'X', [2, 3, 4]), pos(randTensor(r, 'B', [2, 1, 4]))], params: ['X', 'B'] },
  { name: 'Max of two', nodes: [node('Max', ['X', 'B'], ['Y'])], inits: (r) => [randTensor(r, 'X', [3, 5]), randTensor(r, 'B', [3, 5])], params: ['X', 'B'], eps: 1e-3 },
  { name: 'Min broadcast', nodes: [node('Min', ['X', 'B'], ['Y'])], inits: (r) => [randTensor(r, 'X', [3, 5]), randTensor(r, 'B', [5])], params: ['X', 'B'], eps: 1e-3 },
  {
    name: 'Where',
    nodes: [node('Greater', ['X', 'B'], ['c']), node('Where', ['c', 'X', 'B'], ['Y'])],
    inits: (r) => [randTensor(r, 'X', [3, 5]), randTensor(r, 'B', [3, 5])],
    params: ['X', 'B'],
    eps: 1e-3,
  },
  {
    name: 'Concat axis 1 (fan-out of X into two inputs)',
    nodes: [node('Concat', ['X', 'B', 'X'], ['Y'], { axis: A.int(1) })],
    inits: (r) => [randTensor(r, 'X', [2, 3, 4]), randTensor(r, 'B', [2, 2, 4])],
    params: ['X', 'B'],
  },
  {
    name: 'Split with an unused output',
    nodes: [node('Split', ['X', 'sizes'], ['s0', 's1', 's2'], { axis: A.int(2) }), node('Mul', ['s0', 's2'], ['Y'])],
    inits: (r) => [randTensor(r, 'X', [2, 3, 6]), i64Init('sizes', [2, 2, 2])],
    params: ['X'],
  },
  {
    name: 'Slice unit steps, negative end',
    nodes: [node('Slice', ['X', 'st', 'en', 'ax'], ['Y'])],
    inits: (r) => [randTensor(r, 'X', [3, 6, 5]), i64Init('st', [1, 0]), i64Init('en', [-1, 3]), i64Init('ax', [1, 2])],
    params: ['X'],
  },
  {
    name: 'Slice step 2 and negative step',
    nodes: [node('Slice', ['X', 'st', 'en', 'ax', 'sp'], ['Y'])],
    inits: (r) => [randTensor(r, 'X', [3, 7, 5]), i64Init('st', [1, 4]), i64Init('en', [7, 0]), i64Init('ax', [1, 2]), i64Init('sp', [2, -2])],
    params: ['X'],
  },
  {
    name: 'Pad constant',
    nodes: [node('Pad', ['X', 'pads'], ['Y'])],
    inits: (r) => [randTensor(r, 'X', [2, 3, 4]), i64Init('pads', [0, 1, 2, 0, 2, 1])],
    params: ['X'],
  },
  {
    name: 'Reshape + Transpose',
    nodes: [node('Reshape', ['X', 'shp'], ['r']), node('Transpose', ['r'], ['Y'], { perm: A.ints([2, 0, 1]) })],
    inits: (r) => [randTensor(r, 'X', [2, 3, 4]), i64Init('shp', [4, 3, 2])],
    params: ['X'],
  },
  {
    name: 'Flatten, Unsqueeze, Squeeze',
    nodes: [node('Flatten', ['X'], ['f'], { axis: A.int(1) }), node('Unsqueeze', ['f', 'ax'], ['u']), node('Squeeze', ['u', 'ax'], ['Y'])],
    inits: (r) => [randTensor(r, 'X', [2, 3, 4]), i64Init('ax', [0])],
    params: ['X'],
  },
  { name: 'MatMul 2-D', nodes: [node('MatMul', ['X', 'B'], ['Y'])], inits: (r) => [randTensor(r, 'X', [3, 4]), randTensor(r, 'B', [4, 5])], params: ['X', 'B'] },
  {
    name: 'MatMul batched broadcast [2,3,4]x[4,5]',
    nodes: [node('MatMul', ['X', 'B'], ['Y'])],
    inits: (r) => [randTensor(r, 'X', [2, 3, 4]), randTensor(r, 'B', [4, 5])],
    params: ['X', 'B'],
  },
  { name: 'MatMul 1-D x 2-D', nodes: [node('MatMul', ['X', 'B'], ['Y'])], inits: (r) => [randTensor(r, 'X', [4]), randTensor(r, 'B', [4, 3])], params: ['X', 'B'] },
  {
    name: 'Gemm transB alpha beta bias [5]',
    nodes: [node('Gemm', ['X', 'B', 'C'], ['Y'], { transB: A.int(1), alpha: A.float(0.7), beta: A.float(1.3) })],
    inits: (r) => [randTensor(r, 'X', [3, 4]), randTensor(r, 'B', [5, 4]), randTensor(r, 'C', [5])],
    params: ['X', 'B', 'C'],
  },
  {
    name: 'Gemm transA',
    nodes: [node('Gemm', ['X', 'B'], ['Y'], { transA: A.int(1) })],
    inits: (r) => [randTensor(r, 'X', [4, 3]), randTensor(r, 'B', [4, 5])],
    params: ['X', 'B'],
  },
  {
    name: 'ReduceSum axes [1,2] keepdims 0',
    nodes: [node('ReduceSum', ['X', 'ax'], ['Y'], { keepdims: A.int(0) })],
    inits: (r) => [randTensor(r, 'X', [2, 3, 4]), i64Init('ax', [1, 2])],
    params: ['X'],
  },
  { name: 'ReduceMean all axes', nodes: [node('ReduceMean', ['X'], ['Y'])], inits: (r) => [randTensor(r, 'X', [2, 3, 4])], params: ['X'] },
  {
    name: 'ReduceMean axes attr keepdims 0',
    nodes: [node('ReduceMean', ['X'], ['Y'], { axes: A.ints([0, -1]), keepdims: A.int(0) })],
    inits: (r) => [randTensor(r, 'X', [2, 3, 4])],
    params: ['X'],
  },
  {
    name: 'MaxPool k2 s2',
    nodes: [node('MaxPool', ['X'], ['Y'], { kernel_shape: A.ints([2, 2]), strides: A.ints([2, 2]) })],
    inits: (r) => [randTensor(r, 'X', [2, 3, 6, 4])],
    params: ['X'],
    eps: 1e-3,
  },
  {
    name: 'MaxPool k3 s2 p1 overlapping, odd sizes',
    nodes: [node('MaxPool', ['X'], ['Y'], { kernel_shape: A.ints([3, 3]), strides: A.ints([2, 2]), pads: A.ints([1, 1, 1, 1]) })],
    inits: (r) => [randTensor(r, 'X', [2, 2, 7, 5])],
    params: ['X'],
    eps: 1e-3,
  },
  {
    name: 'MaxPool k3 s1 ceil_mode',
    nodes: [node('MaxPool', ['X'], ['Y'], { kernel_shape: A.ints([3, 2]), strides: A.ints([2, 2]), ceil_mode: A.int(1) })],
    inits: (r) => [randTensor(r, 'X', [1, 2, 6, 5])],
    params: ['X'],
    eps: 1e-3,
  },
  {
    name: 'AveragePool k2 s2',
    nodes: [node('AveragePool', ['X'], ['Y'], { kernel_shape: A.ints([2, 2]), strides: A.ints([2, 2]) })],
    inits: (r) => [randTensor(r, 'X', [2, 3, 6, 5])],
    params: ['X'],
  },
  {
    name: 'AveragePool k3 s2 p1 exclude pad',
    nodes: [node('AveragePool', ['X'], ['Y'], { kernel_shape: A.ints([3, 3]), strides: A.ints([2, 2]), pads: A.ints([1, 1, 1, 1]) })],
    inits: (r) => [randTensor(r, 'X', [1, 2, 7, 6])],
    params: ['X'],
  },
  {
    name: 'AveragePool k3 s2 p1 include pad',
    nodes: [
      node('AveragePool', ['X'], ['Y'], { kernel_shape: A.ints([3, 3]), strides: A.ints([2, 2]), pads: A.ints([1, 0, 1, 1]), count_include_pad: A.int(1) }),
    ],
    inits: (r) => [randTensor(r, 'X', [1, 2, 7, 6])],
    params: ['X'],
  },
  {
    name: 'AveragePool ceil_mode exclude pad',
    nodes: [node('AveragePool', ['X'], ['Y'], { kernel_shape: A.ints([2, 2]), strides: A.ints([2, 2]), ceil_mode: A.int(1) })],
    inits: (r) => [randTensor(r, 'X', [1, 2, 5, 7])],
    params: ['X'],
  },
  { name: 'GlobalAveragePool', nodes: [node('GlobalAveragePool', ['X'], ['Y'])], inits: (r) => [randTensor(r, 'X', [2, 3, 5, 4])], params: ['X'] },
  {
    // The forward is declared in training mode so that the finite differences see batch statistics too.
    name: 'BatchNormalization training mode (X, scale, bias)',
    nodes: [node('BatchNormalization', ['X', 'g', 'b', 'm', 'v'], ['Y', 'rm', 'rv'], { epsilon: A.float(1e-3), momentum: A.float(0.9), training_mode: A.int(1) })],
    inits: (r) => [
      randTensor(r, 'X', [3, 2, 4, 5], 2),
      randTensor(r, 'g', [2]),
      randTensor(r, 'b', [2]),
      f32Init('m', [0.1, -0.2]),
      f32Init('v', [1.5, 0.7]),
    ],
    params: ['X', 'g', 'b'],
  },
  {
    name: 'Identity, Cast to float, Dropout (inference)',
    nodes: [node('Identity', ['X'], ['a']), node('Cast', ['a'], ['c'], { to: A.int(1) }), node('Dropout', ['c'], ['Y'])],
    inits: (r) => [randTensor(r, 'X', [3, 4])],
    params: ['X'],
  },
];

for (const c of cases) {
  test(`gradient vs finite differences: ${c.name}`, async () => {
    const rng = new Rng(3);
    const model = makeModel(c.nodes, c.inits(rng), ['Y']);
    const res = await gradCheck(model, 'Y', c.params, { eps: c.eps ?? 1e-2 });
    if (process.env.LF_GRAD_DEBUG) console.log(c.name, res.worst);
    for (const [p, w] of Object.entries(res.worst)) assert.ok(w < (c.tol ?? TOL), `${p}: relative error ${w.toExponential(2)} >= ${c.tol ?? TOL}`);
  });
}
