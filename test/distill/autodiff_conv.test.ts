import { test } from 'node:test';
import assert from 'node:assert/strict';
import { A, gradCheck, makeModel, node, randTensor } from './autodiff_util.js';
import { Rng } from '../../src/distill/engine/rng.js';

/**
 * Bound: the worst |finite difference - analytic| over the sampled elements,
 * relative to the largest analytic gradient element of that tensor, is below
 * TOL. With eps = 1e-2 on piecewise-linear-in-each-argument graphs (Conv is
 * bilinear) the central difference is exact up to float32 rounding of Y, so
 * the observed error is ~1e-5; 1e-3 leaves margin while catching any wrong
 * index or missing term (those give errors of order 1).
 */
const TOL = 1e-3;

interface ConvCase {
  name: string;
  x: number[];
  w: number[];
  attrs: Record<string, ReturnType<typeof A.ints> | ReturnType<typeof A.int> | ReturnType<typeof A.str>>;
  bias?: boolean;
  op?: 'Conv' | 'ConvTranspose';
}

const cases: ConvCase[] = [
  { name: 'k3 s1 p1', x: [2, 3, 5, 6], w: [4, 3, 3, 3], attrs: { pads: A.ints([1, 1, 1, 1]) }, bias: true },
  { name: 'k3 s2 p1 odd H (output padding 0/1)', x: [2, 2, 7, 8], w: [3, 2, 3, 3], attrs: { strides: A.ints([2, 2]), pads: A.ints([1, 1, 1, 1]) }, bias: true },
  { name: 'k4 s3 asym pads', x: [1, 2, 9, 7], w: [2, 2, 4, 4], attrs: { strides: A.ints([3, 3]), pads: A.ints([0, 1, 2, 1]) } },
  { name: 'k3 dilation 2', x: [2, 2, 9, 8], w: [3, 2, 3, 3], attrs: { dilations: A.ints([2, 2]), pads: A.ints([2, 2, 2, 2]) } },
  { name: 'k3 s2 dilation 2', x: [1, 2, 11, 10], w: [2, 2, 3, 3], attrs: { strides: A.ints([2, 2]), dilations: A.ints([2, 2]), pads: A.ints([1, 1, 1, 1]) } },
  { name: 'groups 2', x: [2, 4, 6, 5], w: [6, 2, 3, 3], attrs: { group: A.int(2), pads: A.ints([1, 1, 1, 1]) }, bias: true },
  { name: 'depthwise s2', x: [2, 3, 7, 6], w: [3, 1, 3, 3], attrs: { group: A.int(3), strides: A.ints([2, 2]), pads: A.ints([1, 1, 1, 1]) } },
  { name: 'depthwise multiplier 2', x: [2, 2, 5, 5], w: [4, 1, 3, 3], attrs: { group: A.int(2), pads: A.ints([1, 1, 1, 1]) } },
  { name: 'auto_pad SAME_UPPER s2', x: [1, 2, 7, 6], w: [2, 2, 3, 3], attrs: { auto_pad: A.str('SAME_UPPER'), strides: A.ints([2, 2]) } },
  { name: 'ConvTranspose k2 s2', op: 'ConvTranspose', x: [2, 3, 4, 5], w: [3, 2, 2, 2], attrs: { strides: A.ints([2, 2]) }, bias: true },
  {
    name: 'ConvTranspose k3 s2 p1 output_padding 1',
    op: 'ConvTranspose',
    x: [1, 2, 4, 3],
    w: [2, 3, 3, 3],
    attrs: { strides: A.ints([2, 2]), pads: A.ints([1, 1, 1, 1]), output_padding: A.ints([1, 1]) },
  },
  { name: 'ConvTranspose groups 2 dilation 2', op: 'ConvTranspose', x: [2, 4, 3, 4], w: [4, 1, 3, 3], attrs: { group: A.int(2), dilations: A.ints([2, 2]) } },
];

for (const [c, form] of [
  ...cases.map((c) => [c, 'conv'] as const),
  // The defaults ('auto': MatMul dW for group-1 convs at these sizes, flipped-kernel Conv dX for stride 1).
  ...cases.map((c) => [c, 'auto'] as const),
  // The MatMul (explicit patches) form of the weight gradient, for the group-1 Convs.
  ...cases.filter((c) => (c.op ?? 'Conv') === 'Conv' && !c.attrs.group).map((c) => [c, 'matmul'] as const),
  ...cases.filter((c) => (c.op ?? 'Conv') === 'Conv' && !c.attrs.group).map((c) => [c, 'offsets'] as const),
  // dX always as ConvTranspose (the default uses a flipped-kernel Conv for stride-1 convs).
  ...cases.filter((c) => (c.op ?? 'Conv') === 'Conv' && !c.attrs.strides).map((c) => [c, 'convtranspose'] as const),
]) {
  test(`${c.op ?? 'Conv'} gradient vs finite differences: ${c.name}${form === 'auto' ? '' : ` (${form})`}`, async () => {
    const rng = new Rng(11);
    const inits = [randTensor(rng, 'X', c.x), randTensor(rng, 'W', c.w, 0.5)];
    const inputs = ['X', 'W'];
    if (c.bias) {
      const m = c.op === 'ConvTranspose' ? c.w[1]! * ((c.attrs.group?.value as number | undefined) ?? 1) : c.w[0]!;
      inits.push(randTensor(rng, 'B', [m]));
      inputs.push('B');
    }
    const model = makeModel([node(c.op ?? 'Conv', inputs, ['Y'], c.attrs)], inits, ['Y']);
    const res = await gradCheck(model, 'Y', inputs, {
      gradOptions: form === 'convtranspose' ? { convInputGrad: 'convtranspose', convWeightGrad: 'conv' } : { convWeightGrad: form },
    });
    if (process.env.LF_GRAD_DEBUG) console.log(c.name, res);
    for (const [p, w] of Object.entries(res.worst)) assert.ok(w < TOL, `${p}: relative error ${w.toExponential(2)} >= ${TOL}`);
  });
}
