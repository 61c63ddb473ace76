import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from '../../src/util/ort.js';
import {
  numel,
  float32ToFloat16,
  float16ToFloat32,
  float32ToBfloat16,
  bfloat16ToFloat32,
  tensorToFloat32,
  floatTensor,
  int64Tensor,
  tensorOf,
  toOrtTensor,
  fromOrtTensor,
  dataTypeName,
  bytesPerElement,
} from '../../src/onnx/tensor.js';
import { DataType } from '../../src/onnx/ir.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { runModel, seeded } from './helpers.js';

describe('float16', () => {
  it('rounds hand-computed cases to nearest even, with inf, NaN and subnormals right', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff], // largest float16
      [65519.99, 0x7bff], // below the midpoint to infinity
      [65520, 0x7c00], // the midpoint rounds to even = infinity
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // exactly half of it: ties to even (zero)
      [1.5 * 2 ** -25, 0x0001],
      [3 * 2 ** -25, 0x0002], // 1.5 subnormal steps: ties to even (2)
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -14 - 2 ** -25, 0x0400], // rounds up across the subnormal/normal boundary
      [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10: even = 1
      [1 + 3 * 2 ** -11, 0x3c02], // tie between 1+2^-10 and 1+2^-9: even = 1+2^-9
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
      [0.1, 0x2e66],
    ];
    const got = float32ToFloat16(cases.map(([x]) => x));
    cases.forEach(([x, bits], i) => assert.equal(got[i], bits, `${x} -> 0x${got[i]!.toString(16)} expected 0x${bits.toString(16)}`));
    const nan = float32ToFloat16([NaN])[0]!;
    assert.equal(nan & 0x7c00, 0x7c00);
    assert.notEqual(nan & 0x3ff, 0);
  });

  it('every float16 bit pattern survives float16 -> float32 -> float16', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const back = float32ToFloat16(float16ToFloat32(all));
    for (let i = 0; i < 65536; i++) {
      const isNaN = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      if (isNaN) assert.ok(Number.isNaN(float16ToFloat32(new Uint16Array([back[i]!]))[0]));
      else assert.equal(back[i], i, `pattern 0x${i.toString(16)}`);
    }
    assert.equal(float16ToFloat32(new Uint16Array([0x0001]))[0], 2 ** -24);
    assert.equal(float16ToFloat32(new Uint16Array([0x03ff]))[0], 1023 * 2 ** -24);
  });

  it('matches onnxruntime’s Cast(float -> float16) on random and edge values', async () => {
    const n = 4096;
    const x = seeded(n, 11).map((v, i) => v * 2 ** ((i % 40) - 26)); // magnitudes from subnormal to overflow
    const b = new GraphBuilder('cast16');
    const inp = b.input('x', DataType.FLOAT, [n]);
    b.output(b.op('Cast', [inp], { to: DataType.FLOAT16 }), 'y', { dataType: DataType.FLOAT16, shape: [n] });
    const out = await runModel(b.build(), { x: new ort.Tensor('float32', x, [n]) });
    const y = out['y']!.data as unknown as ArrayBufferView;
    const ortBits = new Uint16Array(y.buffer, y.byteOffset, n);
    const ours = float32ToFloat16(x);
    let diff = 0;
    for (let i = 0; i < n; i++) if (ours[i] !== ortBits[i]) diff++;
    assert.equal(diff, 0);
  });
});

describe('float16 -> float32 against onnxruntime', () => {
  it('every bit pattern decodes to what onnxruntime’s Cast(float16 -> float) gives', async () => {
    const n = 65536;
    const bits = new Uint16Array(n).map((_, i) => i);
    const b = new GraphBuilder('cast32');
    const inp = b.input('x', DataType.FLOAT16, [n]);
    b.output(b.op('Cast', [inp], { to: DataType.FLOAT }), 'y', { dataType: DataType.FLOAT, shape: [n] });
    const out = await runModel(b.build(), { x: new ort.Tensor('float16', bits, [n]) });
    const theirs = new Uint32Array((out['y']!.data as Float32Array).slice().buffer);
    const ours = new Uint32Array(float16ToFloat32(bits).buffer);
    let diff = 0;
    for (let i = 0; i < n; i++) {
      const nan = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      // NaN payloads may differ between implementations; NaN-ness may not.
      if (nan ? !Number.isNaN(new Float32Array(new Uint32Array([theirs[i]!]).buffer)[0]) : ours[i] !== theirs[i]) diff++;
    }
    assert.equal(diff, 0);
  });
});

describe('bfloat16', () => {
  it('rounds to nearest even and converts back exactly', () => {
    assert.deepEqual(Array.from(float32ToBfloat16([1, -2, 1 + 2 ** -8, 1 + 3 * 2 ** -8])), [0x3f80, 0xc000, 0x3f80, 0x3f82]);
    assert.deepEqual(Array.from(bfloat16ToFloat32(new Uint16Array([0x3f80, 0x4049]))), [1, 3.140625]);
  });
});

describe('tensors', () => {
  it('numel, names and sizes', () => {
    assert.equal(numel([]), 1);
    assert.equal(numel([2, 3, 0]), 0);
    assert.equal(numel([2, 3, 4]), 24);
    assert.equal(dataTypeName(DataType.FLOAT16), 'float16');
    assert.equal(bytesPerElement(DataType.INT64), 8);
    assert.equal(bytesPerElement(DataType.INT4), 0.5);
  });

  it('tensorToFloat32 reads every numeric type', () => {
    assert.deepEqual(Array.from(tensorToFloat32(tensorOf(DataType.FLOAT16, [2], [1.5, -2]))), [1.5, -2]);
    assert.deepEqual(Array.from(tensorToFloat32(int64Tensor([2], [-3, 9]))), [-3, 9]);
    assert.deepEqual(Array.from(tensorToFloat32(tensorOf(DataType.INT8, [2], [-128, 127]))), [-128, 127]);
    assert.deepEqual(Array.from(tensorToFloat32(tensorOf(DataType.UINT8, [1], [255]))), [255]);
    assert.deepEqual(Array.from(tensorToFloat32(tensorOf(DataType.DOUBLE, [1], [0.25]))), [0.25]);
    assert.throws(() => tensorToFloat32(tensorOf(DataType.FLOAT8E4M3FN, [1], new Uint8Array([1]))), /float8e4m3fn/);
  });

  it('constructors check dims against values', () => {
    assert.throws(() => floatTensor([2, 2], [1, 2, 3]), /need 4 values, got 3/);
    assert.throws(() => int64Tensor([1], [1.5]), /not an integer/);
    assert.equal(floatTensor([1], [2]).dataType, DataType.FLOAT);
  });

  it('converts to and from onnxruntime tensors without changing values', () => {
    const t = tensorOf(DataType.FLOAT16, [2], [0.5, 3]);
    const o = toOrtTensor(t);
    assert.equal(o.type, 'float16');
    const back = fromOrtTensor(o);
    assert.equal(back.dataType, DataType.FLOAT16);
    assert.deepEqual(Array.from(back.values as Uint16Array), Array.from(t.values as Uint16Array));
    const i = fromOrtTensor(toOrtTensor(int64Tensor([3], [1, -2, 3])));
    assert.deepEqual(Array.from(i.values as BigInt64Array), [1n, -2n, 3n]);
  });
});
