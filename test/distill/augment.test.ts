import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyAugment, drawAugment, makeBatch, NO_AUGMENT, type AugmentDraw, type InMemoryDataset } from '../../src/distill/augment.js';
import { float32ToFloat16 } from '../../src/onnx/tensor.js';
import { mulberry32 } from '../../src/runtime/metrics.js';

/**
 * A sample whose three arrays encode the same thing in different ways, so alignment can be checked after
 * any transform: the image's red channel is 255 on the lesion, green encodes the row, blue the column; the
 * soft label is +4 on the lesion and -4 elsewhere; the mask is an off-centre, asymmetric blob.
 */
function sample(h: number, w: number): { image: Uint8Array; mask: Uint8Array; soft: Float32Array } {
  const image = new Uint8Array(h * w * 3);
  const mask = new Uint8Array(h * w);
  const soft = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const inside = (y - h * 0.3) ** 2 / (h * 0.2) ** 2 + (x - w * 0.65) ** 2 / (w * 0.25) ** 2 < 1 || (y > h * 0.7 && x < w * 0.2);
      mask[i] = inside ? 1 : 0;
      soft[i] = inside ? 4 : -4;
      image[i * 3] = inside ? 255 : 0;
      image[i * 3 + 1] = y;
      image[i * 3 + 2] = x;
    }
  }
  return { image, mask, soft };
}

const plain: AugmentDraw = { hflip: false, vflip: false, quarterTurns: 0, scale: 1, brightness: 1, contrast: 1, saturation: 1 };

test('flips and rotations are exact permutations and keep image, mask and soft label aligned', () => {
  const h = 12;
  const w = 12;
  const s = sample(h, w);
  for (const hflip of [false, true]) {
    for (const vflip of [false, true]) {
      for (let q = 0; q < 4; q++) {
        const d = { ...plain, hflip, vflip, quarterTurns: q };
        const a = applyAugment(s.image, s.mask, s.soft, h, w, d);
        for (let i = 0; i < h * w; i++) {
          // The (row, col) stored in green/blue says where this pixel came from: check against the source.
          const sy = a.image[i * 3 + 1]!;
          const sx = a.image[i * 3 + 2]!;
          const src = sy * w + sx;
          assert.equal(a.mask[i], s.mask[src]);
          assert.equal(a.soft![i], s.soft[src]);
          assert.equal(a.image[i * 3], s.image[src * 3]);
        }
        // The permutation is a bijection (every source pixel used exactly once).
        const seen = new Set<number>();
        for (let i = 0; i < h * w; i++) seen.add(a.image[i * 3 + 1]! * w + a.image[i * 3 + 2]!);
        assert.equal(seen.size, h * w);
      }
    }
  }
});

test('the transforms are the ones named: hflip mirrors columns, a quarter turn is clockwise', () => {
  const h = 4;
  const w = 4;
  const s = sample(h, w);
  const hf = applyAugment(s.image, s.mask, s.soft, h, w, { ...plain, hflip: true });
  // Output (0, 0) came from source (0, w-1).
  assert.deepEqual([hf.image[1], hf.image[2]], [0, w - 1]);
  const rot = applyAugment(s.image, s.mask, s.soft, h, w, { ...plain, quarterTurns: 1 });
  // Clockwise: output (0, 0) came from source (h-1, 0); output (0, w-1) from source (0, 0).
  assert.deepEqual([rot.image[1], rot.image[2]], [h - 1, 0]);
  assert.deepEqual([rot.image[(w - 1) * 3 + 1], rot.image[(w - 1) * 3 + 2]], [0, 0]);
});

test('non-square samples never get quarter turns (the shape would change)', () => {
  const rand = mulberry32(3);
  for (let i = 0; i < 200; i++) {
    const d = drawAugment(rand, 8, 12, {});
    assert.ok(d.quarterTurns === 0 || d.quarterTurns === 2, `got ${d.quarterTurns}`);
  }
  const sq = new Set<number>();
  for (let i = 0; i < 200; i++) sq.add(drawAugment(rand, 8, 8, {}).quarterTurns);
  assert.deepEqual([...sq].sort(), [0, 1, 2, 3]);
});

test('scale jitter keeps mask and soft label aligned (disagreement only on the boundary)', () => {
  const h = 40;
  const w = 56;
  const s = sample(h, w);
  for (const scale of [0.9, 1.13]) {
    const a = applyAugment(s.image, s.mask, s.soft, h, w, { ...plain, scale, hflip: true });
    let disagree = 0;
    let lesion = 0;
    for (let i = 0; i < h * w; i++) {
      const fromSoft = a.soft![i]! > 0 ? 1 : 0;
      const fromRed = a.image[i * 3]! > 127 ? 1 : 0;
      if (fromSoft !== a.mask[i] || fromRed !== a.mask[i]) disagree++;
      lesion += a.mask[i]!;
    }
    assert.ok(lesion > 50, 'the blob is still there');
    // Nearest vs bilinear-then-threshold can only differ within one pixel of the edge.
    assert.ok(disagree <= 0.05 * h * w, `scale ${scale}: ${disagree} pixels disagree`);
    // And the zoom really changed the lesion's area by about scale^2.
    const before = s.mask.reduce((p, v) => p + v, 0);
    const expected = before * scale * scale;
    assert.ok(Math.abs(lesion - expected) < 0.2 * expected, `area ${lesion} vs ${expected}`);
  }
});

test('colour jitter changes the image only; mask and soft label are untouched', () => {
  const h = 10;
  const w = 10;
  const s = sample(h, w);
  const a = applyAugment(s.image, s.mask, s.soft, h, w, { ...plain, brightness: 1.1, contrast: 0.9, saturation: 1.2 });
  assert.deepEqual(a.mask, s.mask);
  assert.deepEqual(Array.from(a.soft!), Array.from(s.soft));
  let changed = 0;
  for (let i = 0; i < s.image.length; i++) if (a.image[i] !== s.image[i]) changed++;
  assert.ok(changed > s.image.length / 4);
  // Brightness alone scales the pixel values (within rounding).
  const b = applyAugment(s.image, s.mask, s.soft, h, w, { ...plain, brightness: 0.5 });
  for (let i = 0; i < s.image.length; i++) assert.ok(Math.abs(b.image[i]! - s.image[i]! * 0.5) <= 0.5 + 1e-9);
});

test('makeBatch: seeded, NCHW, normalised, float16 soft labels decoded; NO_AUGMENT is the identity', () => {
  const h = 6;
  const w = 8;
  const n = h * w;
  const a = sample(h, w);
  const b = sample(h, w);
  const ds: InMemoryDataset = {
    height: h,
    width: w,
    ids: ['a', 'b'],
    images: new Uint8Array([...a.image, ...b.image]),
    masks: new Uint8Array([...a.mask, ...b.mask]),
    soft: float32ToFloat16(new Float32Array([...a.soft, ...b.soft.map((v) => v / 2)])),
  };
  const mean: [number, number, number] = [0.5, 0.4, 0.3];
  const std: [number, number, number] = [0.2, 0.25, 0.3];
  const batch = makeBatch(ds, [1, 0], { rand: mulberry32(1), augment: NO_AUGMENT, mean, std });
  assert.equal(batch.n, 2);
  // slot 0 = sample 1: soft labels halved.
  for (let i = 0; i < n; i++) {
    assert.equal(batch.teacher![i], b.soft[i]! / 2);
    assert.equal(batch.mask[n + i], a.mask[i]);
    for (let c = 0; c < 3; c++) {
      const expected = (b.image[i * 3 + c]! / 255 - mean[c]!) / std[c]!;
      assert.ok(Math.abs(batch.image[c * n + i]! - expected) < 1e-5);
    }
  }
  const r1 = makeBatch(ds, [0, 1], { rand: mulberry32(7), augment: {}, mean, std });
  const r2 = makeBatch(ds, [0, 1], { rand: mulberry32(7), augment: {}, mean, std });
  assert.deepEqual(r1.image, r2.image);
  assert.deepEqual(r1.teacher, r2.teacher);
});
