import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MinMaxCalibrator, PercentileCalibrator, EntropyCalibrator, BoundedHistogram, klThreshold, createCalibrator, spreadSample, withTensorOutputs,
} from '../../src/quantize/calibrate.js';
import { LesionFuseError } from '../../src/util/errors.js';
import { rng, tinySegNet } from './nets.js';

test('min-max: running min and max over batches', () => {
  const c = new MinMaxCalibrator();
  c.observe('a', new Float32Array([1, 2, 3]));
  c.observe('a', new Float32Array([-4, 0.5]));
  c.observe('b', new Float32Array([7]));
  assert.deepEqual(Object.fromEntries(c.ranges()), { a: { min: -4, max: 3 }, b: { min: 7, max: 7 } });
});

test('bounded histogram: widening keeps the bin count and every count in the right bin', () => {
  const h = new BoundedHistogram(8);
  h.add(new Float32Array([0, 0]));
  h.add(new Float32Array([0.5, -0.25]));
  assert.equal(h.threshold, 0.5);
  h.add(new Float32Array([1.9]));
  assert.equal(h.threshold, 2);
  assert.equal(h.counts.length, 8);
  assert.equal(h.total(), 5);
  // bins of width 0.5 over [-2, 2]: -0.25 -> bin 3; 0, 0 -> bin 4; 0.5 was the top edge of the first
  // range (the last bin is closed on the right), so it merges down into bin 4 = [0, 0.5]; 1.9 -> bin 7
  assert.deepEqual([...h.counts], [0, 0, 0, 1, 3, 0, 0, 1]);
  assert.throws(() => new BoundedHistogram(10), LesionFuseError);
});

test('percentile: one outlier in a thousand is cut, the bulk is kept', () => {
  const c = new PercentileCalibrator({ percentile: 99.8, bins: 2048 });
  const v = new Float32Array(1000);
  for (let i = 0; i < 1000; i++) v[i] = i;
  c.observe('t', v);
  c.observe('t', new Float32Array([5000]));
  const r = c.ranges().get('t')!;
  assert.equal(r.min, 0, 'never below the observed min');
  assert.ok(r.max > 990 && r.max < 1010, `upper ${r.max}`);
  const full = new PercentileCalibrator({ percentile: 100 });
  full.observe('t', v);
  full.observe('t', new Float32Array([5000]));
  assert.equal(full.ranges().get('t')!.max, 5000);
});

test('entropy: KL threshold is exact for a distribution that fits the quantized bins', () => {
  const counts = new Float64Array(2048);
  for (let i = 1024 - 64; i < 1024 + 64; i++) counts[i] = 10;
  assert.equal(klThreshold(counts, 128), 64);
});

test('entropy: a Gaussian with rare far outliers gets a threshold between the bulk and the outliers', () => {
  const r = rng(3);
  const v = new Float32Array(200000);
  for (let i = 0; i < v.length; i += 2) {
    const u = Math.max(r(), 1e-12);
    const rad = Math.sqrt(-2 * Math.log(u));
    v[i] = rad * Math.cos(2 * Math.PI * r());
    v[i + 1] = rad * Math.sin(2 * Math.PI * r());
  }
  v[0] = 60;
  v[1] = -60;
  const c = new EntropyCalibrator();
  c.observe('t', v);
  const t = c.ranges().get('t')!;
  assert.ok(t.max > 2 && t.max < 30, `threshold ${t.max}`);
  assert.equal(t.min, -t.max);
  assert.equal(createCalibrator('minmax').method, 'minmax');
  assert.throws(() => createCalibrator('nope' as never), /choose one of minmax, percentile, entropy/);
});

test('spread sample covers the whole list deterministically; tensor outputs added to a copy', () => {
  assert.deepEqual(spreadSample([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 4), [0, 2, 5, 7]);
  const m = tinySegNet();
  const a = withTensorOutputs(m, ['enc1_out', 'image', 'head_out']);
  assert.deepEqual(a.graph.outputs.map((o) => o.name), ['head_out', 'enc1_out']);
  assert.equal(m.graph.outputs.length, 1, 'the original is untouched');
  assert.throws(() => withTensorOutputs(m, ['missing']), /missing/);
});

test('min-max reduced inside onnxruntime equals min/max over the copied-out values', async () => {
  const { collectRanges, withRangeOutputs } = await import('../../src/quantize/calibrate.js');
  const { planQuantization } = await import('../../src/quantize/qdq.js');
  const { randomImages } = await import('./nets.js');
  const m = tinySegNet(3, 'N');
  const plan = planQuantization(m);
  const batches = [{ data: randomImages(3, 1), n: 3 }, { data: randomImages(2, 2), n: 2 }];
  const opts = { inputShape: [3, 16, 16] as [number, number, number], threads: 1, progress: false };
  const reduced = await collectRanges(m, plan.calibrate, batches, new MinMaxCalibrator(), opts);
  const copied = await collectRanges(m, plan.calibrate, batches, new PercentileCalibrator({ percentile: 100 }), opts);
  assert.equal(reduced.images, 5);
  for (const t of plan.calibrate) assert.deepEqual(reduced.ranges.get(t), copied.ranges.get(t), t);
  const aug = withRangeOutputs(m, ['enc1_out']);
  assert.deepEqual(aug.model.graph.outputs.map((o) => o.name), ['head_out', 'enc1_out.min', 'enc1_out.max']);
});
