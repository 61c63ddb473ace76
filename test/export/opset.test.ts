import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultOpset, type Model } from '../../src/onnx/ir.js';
import { floatTensor } from '../../src/onnx/tensor.js';
import { rewrite } from '../../src/export/rewrite.js';
import { Net, f, outputDrift, randomTensor } from './helpers.js';

const attrNames = (m: Model, op: string) => m.graph.nodes.filter((n) => n.opType === op).map((n) => Object.keys(n.attributes).sort().join(','));

test('update-opset 11 -> 18 moves Squeeze/Unsqueeze/ReduceSum/ReduceMean axes and Split sizes to inputs; outputs unchanged', async () => {
  const n = new Net(11);
  const x = n.input('x', [2, 6, 4]);
  const [a, b] = n.opN('Split', [x], { axis: 1, split: [2, 4] }, 2);
  const [c, d] = n.opN('Split', [x], { axis: 1 }, 2);
  const s = n.op('ReduceSum', [a!], { axes: [1], keepdims: 0 });
  const u = n.op('Unsqueeze', [s], { axes: [1] });
  const m = n.op('ReduceMean', [b!], { axes: [1], keepdims: 1 });
  const sq = n.op('Squeeze', [n.op('Unsqueeze', [m], { axes: [0] })], { axes: [0] });
  const sm = n.op('Softmax', [n.op('Concat', [u, sq, c!, d!], { axis: 1 })], { axis: -1 });
  n.output(sm);
  const before = n.build();
  const r = await rewrite(before, ['update-opset'], { opset: 18 });
  assert.equal(defaultOpset(r.model), 18);
  assert.ok(r.model.irVersion >= 8);
  for (const op of ['ReduceSum', 'ReduceMean', 'Squeeze', 'Unsqueeze']) {
    assert.ok(attrNames(r.model, op).every((k) => !k.split(',').includes('axes')), `${op} axes moved`);
  }
  const splits = r.model.graph.nodes.filter((q) => q.opType === 'Split');
  assert.equal(splits[0]!.inputs.length, 2, 'explicit sizes become input 1');
  assert.equal((splits[1]!.attributes['num_outputs'] as { value: number }).value, 2, 'equal split names num_outputs at 18');
  assert.equal(await outputDrift(before, r.model, { x: randomTensor([2, 6, 4], 3) }), 0);
});

test('update-opset 9 -> 13 converts Slice, Pad, Clip attributes and Dropout; 10 -> 11 Resize keeps its coordinates', async () => {
  const n = new Net(9);
  const x = n.input('x', [1, 2, 4, 4]);
  const sl = n.op('Slice', [x], { starts: [1], ends: [4], axes: [3] });
  const pd = n.op('Pad', [sl], { pads: [0, 0, 1, 0, 0, 0, 0, 1], value: f(0.25) });
  const cl = n.op('Clip', [pd], { min: f(-0.5), max: f(0.5) });
  n.output(n.op('Dropout', [cl], { ratio: f(0.3) }));
  const before = n.build();
  const r = await rewrite(before, ['update-opset'], { opset: 13 });
  assert.equal(defaultOpset(r.model), 13);
  assert.deepEqual(attrNames(r.model, 'Clip'), ['']);
  assert.equal(await outputDrift(before, r.model, { x: randomTensor([1, 2, 4, 4], 5) }), 0);

  for (const mode of ['nearest', 'linear']) {
    const k = new Net(10);
    const y = k.input('x', [1, 1, 3, 5]);
    k.output(k.op('Resize', [y, k.init('scales', floatTensor([4], [1, 1, 2.5, 1.6]))], { mode }));
    const b10 = k.build();
    const r11 = await rewrite(b10, ['update-opset'], { opset: 11 });
    const d = await outputDrift(b10, r11.model, { x: randomTensor([1, 1, 3, 5], 6) });
    assert.ok(d < 1e-6, `Resize ${mode} 10 -> 11 drift ${d}`);
  }
});

test('update-opset refuses, naming the node, where semantics change or the op is unknown; downgrades only across type-only changes', async () => {
  const n = new Net(11);
  const x = n.input('x', [2, 3, 4]);
  n.output(n.op('Softmax', [x], { axis: 1 }, 1, 'attn_softmax'));
  await assert.rejects(rewrite(n.build(), ['update-opset'], { opset: 13 }), /attn_softmax \(Softmax\).*axis 1 of a rank-3 input is not the last axis/);

  const u = new Net(9);
  const y = u.input('y', [1, 1, 2, 2]);
  u.output(u.op('Upsample', [y, u.init('sc', floatTensor([4], [1, 1, 2, 2]))], {}, 1, 'up1'));
  await assert.rejects(rewrite(u.build(), ['update-opset'], { opset: 11 }), /up1 \(Upsample\): Upsample was removed at opset 10/);

  const h = new Net(13);
  const z = h.input('z', [2, 3]);
  h.output(h.op('Hardmax', [z], {}, 1, 'hm'));
  await assert.rejects(rewrite(h.build(), ['update-opset'], { opset: 17 }), /hm \(Hardmax\): no opset history/);

  const dn = new Net(17);
  const w = dn.input('w', [1, 3, 4, 4]);
  const c = dn.op('Conv', [w, dn.init('k', randomTensor([2, 3, 1, 1], 1))]);
  const rm = dn.op('ReduceMean', [dn.op('Relu', [c])], { axes: [2, 3] });
  dn.output(rm);
  const down = dn.build();
  const ok = await rewrite(down, ['update-opset'], { opset: 13 });
  assert.equal(defaultOpset(ok.model), 13);
  assert.equal(await outputDrift(down, ok.model, { w: randomTensor([1, 3, 4, 4], 2) }), 0);
  const sq = new Net(13);
  const v = sq.input('v', [1, 3]);
  sq.output(sq.op('Squeeze', [v, sq.init('ax', { dataType: 7, dims: [1], values: BigInt64Array.from([0n]) })]));
  await assert.rejects(rewrite(sq.build(), ['update-opset'], { opset: 12 }), /downgrading across that is not supported/);
  await assert.rejects(rewrite(sq.build(), ['update-opset'], { opset: 99 }), /--opset must be an integer from 7 to 24/);
});
