/**
 * Whole-network gradient: a small student-like U-Net (conv-BN-ReLU, MaxPool,
 * ConvTranspose and linear Resize up, Concat skip, BCE-with-logits) against
 * central finite differences of L = sum of the per-pixel BCE, on a random
 * sample of elements of every weight tensor. Bound: worst |fd - analytic| /
 * max|analytic| of that tensor < 1e-2, with eps = 3e-4. The step is a trade:
 * a BatchNorm shift moves every pixel of a channel, so larger steps cross ReLU
 * and MaxPool kinks (measured: 7e-2 at eps 1e-2, 3e-2 at 1e-3 for enc1.bn.b),
 * smaller ones drown in float32 rounding (6e-3 at 1e-4); at 3e-4 the worst
 * element is ~1.5e-3. A wrong rule gives errors of order 1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataType } from '../../src/onnx/ir.js';
import { encodeModel } from '../../src/onnx/io.js';
import { Rng } from '../../src/distill/engine/rng.js';
import { buildTrainingModel } from '../../src/distill/autodiff/backward.js';
import { probeShapes } from '../../src/distill/autodiff/shapes.js';
import { gradCheck, makeModel, randTensor, tinyUNet } from './autodiff_util.js';

test('whole U-Net gradient vs finite differences on sampled weights', async () => {
  const rng = new Rng(21);
  const net = tinyUNet(rng, 2, 8, 6);
  const image = randTensor(rng, 'image', [2, 3, 8, 6]);
  const mask = randTensor(rng, 'mask', [2, 1, 8, 6]);
  (mask.values as Float32Array).forEach((v, i, a) => (a[i] = v > 0 ? 1 : 0));
  const model = makeModel(net.nodes, [...net.inits, image, mask], ['bce_map']);
  const params = net.inits.filter((t) => !t.name.endsWith('.m') && !t.name.endsWith('.v') && t.name !== 'scales2' && t.name !== 'one').map((t) => t.name);
  const res = await gradCheck(model, 'bce_map', [...params, 'image'], { ones: true, eps: 3e-4, samples: 8, seed: 4 });
  if (process.env.LF_GRAD_DEBUG) console.log(res);
  for (const [p, w] of Object.entries(res.worst)) assert.ok(w < 1e-2, `${p}: relative error ${w.toExponential(2)}`);
  assert.equal(Object.keys(res.worst).length, params.length + 1);
  assert.ok(res.checked >= 80, `only ${res.checked} elements checked`);
});

test('default parameters, BatchNorm state and pruning of the training model', async () => {
  const rng = new Rng(2);
  const net = tinyUNet(rng, 2, 8, 6);
  const model = makeModel(net.nodes, net.inits, ['loss']);
  model.graph.inputs = net.inputs.map((i) => ({ name: i.name, dataType: DataType.FLOAT, shape: i.dims }));
  const shapes = await probeShapes(model);
  const tm = buildTrainingModel(model, { loss: 'loss', shapes, frozen: ['head.b'] });
  const names = tm.params.map((p) => p.name).sort();
  // Weights of Conv/ConvTranspose/BN are trained by default; constants (scales2, one) and frozen head.b are not.
  assert.deepEqual(names, ['dec.b', 'dec.w', 'enc1.bn.b', 'enc1.bn.g', 'enc1.w', 'enc2.bn.b', 'enc2.bn.g', 'enc2.w', 'head.w', 'proj.w', 'up.b', 'up.w']);
  assert.deepEqual(tm.state.map((s) => s.name).sort(), ['enc1.bn.m', 'enc1.bn.v', 'enc2.bn.m', 'enc2.bn.v']);
  assert.deepEqual(tm.bnStats.map((s) => s.param).sort(), ['enc1.bn.m', 'enc1.bn.v', 'enc2.bn.m', 'enc2.bn.v']);
  assert.deepEqual(tm.inputs.map((i) => i.name), ['image', 'mask']);
  const outs = tm.model.graph.outputs.map((o) => o.name);
  assert.ok(outs.includes('grad:enc1.w') && !outs.includes('grad:head.b'));
  // The image needs no gradient: no ConvTranspose computing d(image) from the first conv.
  const firstConvGrad = tm.model.graph.nodes.filter((n) => n.opType === 'ConvTranspose' && n.inputs[1] === 'enc1.w');
  assert.equal(firstConvGrad.length, 0);
});

test('an op without a rule is refused, naming the node and the supported ops', async () => {
  const rng = new Rng(2);
  const x = randTensor(rng, 'X', [2, 3]);
  const model = makeModel(
    [
      { name: 'my_erf', opType: 'Erf', domain: '', inputs: ['X'], outputs: ['Y'], attributes: {} },
      { name: 'sum', opType: 'ReduceSum', domain: '', inputs: ['Y'], outputs: ['L'], attributes: { keepdims: { type: 'int', value: 0 } } },
    ],
    [x],
    ['L'],
  );
  const shapes = await probeShapes(model);
  assert.throws(() => buildTrainingModel(model, { loss: 'L', params: ['X'], shapes }), /Erf \(node 'my_erf'\); supported: .*Conv.*Resize/);
  assert.throws(() => buildTrainingModel(model, { loss: 'nope', params: ['X'], shapes }), /loss 'nope'/);
  assert.throws(() => buildTrainingModel(model, { loss: 'Y', params: ['X'], shapes }), /must be a scalar/);
});

test('shapes from the ONNX core\'s inferShapes give the same training model as shapes probed in onnxruntime', async () => {
  const rng = new Rng(2);
  const net = tinyUNet(rng, 2, 8, 6);
  const model = makeModel(net.nodes, net.inits, ['loss']);
  model.graph.inputs = net.inputs.map((i) => ({ name: i.name, dataType: DataType.FLOAT, shape: i.dims }));
  const probed = buildTrainingModel(model, { loss: 'loss', shapes: await probeShapes(model) });
  const inferred = buildTrainingModel(model, { loss: 'loss' });
  assert.deepEqual(encodeModel(inferred.model), encodeModel(probed.model));
});
