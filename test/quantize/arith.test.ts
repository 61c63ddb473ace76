import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  roundHalfToEven, quantRange, computeScaleZeroPoint, activationParams, quantizeValue, quantizeArray,
  dequantizeValue, perChannelWeightScales, quantizeWeightsPerChannel, quantizeWeightsPerTensor, quantizeBias,
  adjustWeightScalesForBias,
} from '../../src/quantize/arith.js';

test('round half to even, both signs', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, 2.4999, 2.5001, -3.5].map(roundHalfToEven), [0, 2, 2, 4, 0, -2, -2, 2, 3, -4]);
});

test('ranges as the peer picks them: symmetric int8 is (-127, 127), reduce_range wins, symmetric uint8 stays (0, 255)', () => {
  assert.deepEqual(quantRange('int8', { symmetric: true }), { qmin: -127, qmax: 127 });
  assert.deepEqual(quantRange('int8'), { qmin: -128, qmax: 127 });
  assert.deepEqual(quantRange('int8', { symmetric: true, reduceRange: true }), { qmin: -64, qmax: 64 });
  assert.deepEqual(quantRange('uint8', { reduceRange: true }), { qmin: 0, qmax: 127 });
  assert.deepEqual(quantRange('uint8', { symmetric: true }), { qmin: 0, qmax: 255 });
});

test('asymmetric activation scale and zero point, hand-computed', () => {
  // [-1, 3]: s = 4/255; -rmin/s = 63.75 -> z = 64 (uint8) and round(-128 + 63.75) = -64 (int8)
  const u = activationParams(-1, 3, 'uint8');
  assert.equal(u.scale, Math.fround(4 / 255));
  assert.equal(u.zeroPoint, 64);
  const s = activationParams(-1, 3, 'int8');
  assert.equal(s.scale, Math.fround(4 / 255));
  assert.equal(s.zeroPoint, -64);
  // range widened to include 0: [2, 5] -> [0, 5]
  assert.deepEqual(activationParams(2, 5, 'uint8'), { scale: Math.fround(5 / 255), zeroPoint: 0 });
  assert.deepEqual(activationParams(2, 5, 'int8'), { scale: Math.fround(5 / 255), zeroPoint: -128 });
  // all-negative [-5, -2] -> [-5, 0]: z = qmax
  assert.equal(activationParams(-5, -2, 'uint8').zeroPoint, 255);
  assert.equal(activationParams(-5, -2, 'int8').zeroPoint, 127);
});

test('degenerate range gives scale 1, zero point 0', () => {
  assert.deepEqual(activationParams(0, 0, 'uint8'), { scale: 1, zeroPoint: 0 });
  assert.deepEqual(activationParams(0, 0, 'int8'), { scale: 1, zeroPoint: 0 });
  assert.deepEqual(computeScaleZeroPoint(0, 1e-40, quantRange('int8', { symmetric: true }), { symmetric: true }), { scale: 1, zeroPoint: 0 });
});

test('symmetric uint8 zero point is 128 (round(127.5) to even), the doc trap', () => {
  const p = computeScaleZeroPoint(-1, 1, quantRange('uint8', { symmetric: true }), { symmetric: true });
  assert.equal(p.zeroPoint, 128);
  assert.equal(p.scale, Math.fround(2 / 255));
});

test('minimum real range widens rmax before the scale', () => {
  const p = computeScaleZeroPoint(0, 0.001, quantRange('uint8'), { minRealRange: 0.51 });
  assert.equal(p.scale, Math.fround(Math.fround(0.51) / 255));
});

test('quantize: ties to even and saturation at both ends', () => {
  const one = { scale: 1, zeroPoint: 0 };
  assert.deepEqual([2.5, 3.5, -0.5, 300, 254.5, 255.5, -7].map((v) => quantizeValue(v, one, 'uint8')), [2, 4, 0, 255, 254, 255, 0]);
  assert.deepEqual([-128.5, -129, 127.5, 126.5, -2.5].map((v) => quantizeValue(v, one, 'int8')), [-128, -128, 127, 126, -2]);
  // with a zero point: z = 10, s = 0.5: 1.25 / 0.5 = 2.5 -> 2 -> 12
  assert.equal(quantizeValue(1.25, { scale: 0.5, zeroPoint: 10 }, 'uint8'), 12);
  assert.equal(quantizeValue(1.75, { scale: 0.5, zeroPoint: 10 }, 'uint8'), 14);
  const arr = quantizeArray(new Float32Array([-1, 0, 3, 100]), activationParams(-1, 3, 'int8'), 'int8');
  assert.ok(arr instanceof Int8Array);
  assert.deepEqual([...arr], [-128, -64, 127, 127]);
  assert.equal(dequantizeValue(-64, activationParams(-1, 3, 'int8')), 0);
});

test('per-channel symmetric int8 weights: a_c / 127 per output channel, ties to even', () => {
  // channel 0 has max |w| 63.5 -> scale exactly 0.5; channel 1 has max |w| 127 -> scale 1
  const w = new Float32Array([63.5, -1.25, 0.75, -0.25, /* ch1 */ -127, 2.5, 3.5, 0]);
  const q = quantizeWeightsPerChannel(w, [2, 4], 0);
  assert.deepEqual([...q.scales], [0.5, 1]);
  assert.deepEqual([...q.zeroPoints], [0, 0]);
  // 1.25/0.5 = 2.5 -> 2 ; 0.75/0.5 = 1.5 -> 2 ; -0.25/0.5 = -0.5 -> -0
  assert.deepEqual([...q.values], [127, -2, 2, 0, -127, 2, 4, 0]);
  // all-zero channel: degenerate -> scale 1
  assert.deepEqual([...perChannelWeightScales(new Float32Array([0, 0, 1, -2]), [2, 2], 0)], [1, Math.fround(2 / 127)]);
  // reduce_range: a / 64
  assert.deepEqual([...perChannelWeightScales(new Float32Array([64, -32]), [1, 2], 0, { reduceRange: true })], [1]);
});

test('per-channel along axis 1 (ConvTranspose weights [C_in, C_out, k, k])', () => {
  // dims [2, 3, 1, 1]: channel c along axis 1 = elements c and 3 + c
  const w = new Float32Array([1, -2, 0.5, -127, 4, 0.25]);
  const q = quantizeWeightsPerChannel(w, [2, 3, 1, 1], 1);
  assert.deepEqual([...q.scales], [1, Math.fround(4 / 127), Math.fround(0.5 / 127)]);
  assert.deepEqual([q.values[0], q.values[3]], [1, -127]);
  assert.deepEqual([q.values[1], q.values[4]], [quantizeValue(-2, { scale: Math.fround(4 / 127), zeroPoint: 0 }, 'int8'), 127]);
  assert.deepEqual([q.values[2], q.values[5]], [127, quantizeValue(0.25, { scale: Math.fround(0.5 / 127), zeroPoint: 0 }, 'int8')]);
  assert.equal(q.values[5], 64); // 0.25 / (0.5/127) = 63.5 in float32 -> 64 (even)
});

test('per-tensor uint8 weights are asymmetric over [min(w,0), max(w,0)]', () => {
  const r = quantizeWeightsPerTensor(new Float32Array([-1, 3]), 'uint8');
  assert.deepEqual(r.params, { scale: Math.fround(4 / 255), zeroPoint: 64 });
  assert.deepEqual([...r.values], [0, 255]);
});

test('int32 bias: s_b = s_in * s_w per channel, z = 0, ties to even, clipping counted', () => {
  const b = quantizeBias(new Float32Array([0.1875, 2.5]), 0.5, new Float32Array([0.25, 2]));
  assert.deepEqual([...b.scales], [0.125, 1]);
  assert.deepEqual([...b.values], [2, 2]); // 1.5 -> 2, 2.5 -> 2
  assert.equal(b.clipped, 0);
  const big = quantizeBias(new Float32Array([1e10, -1e10]), 1, new Float32Array([1]));
  assert.deepEqual([...big.values], [2147483647, -2147483648]);
  assert.equal(big.clipped, 2);
});

test('weight scale raised when the bias scale would overflow int32, as the peer does', () => {
  const scales = new Float32Array([1e-6, 0.5]);
  const changed = adjustWeightScalesForBias(new Float32Array([1e6, 1]), 1e-6, scales);
  assert.deepEqual(changed, [0]);
  const smallest = (1.0001 * 2e6) / 4294967294;
  assert.equal(scales[0], Math.fround(Math.fround(1e-6) * (smallest / (1e-6 * Math.fround(1e-6)))));
  assert.equal(scales[1], 0.5);
  const after = quantizeBias(new Float32Array([1e6, 1]), 1e-6, scales);
  assert.equal(after.clipped, 0);
});
