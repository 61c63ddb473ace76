import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  addArtefacts,
  ARTEFACT_CODE,
  aspectCrop,
  ita,
  labToRgb,
  lesionShare,
  rgbToLab,
  shiftSkinTone,
  zoomOut,
  type ImageMaskPair,
} from '../../src/distill/robust.js';
import { mulberry32 } from '../../src/runtime/metrics.js';

/** A light-skin image with a dark disc lesion of radius r at (cx, cy); the mask is the disc. */
function disc(w: number, h: number, cx: number, cy: number, r: number): ImageMaskPair {
  const data = new Uint8Array(w * h * 3);
  const mask = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const inside = (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
      mask[i] = inside ? 1 : 0;
      const c = inside ? [90, 55, 40] : [225, 180, 160];
      data.set(c, i * 3);
    }
  }
  return { image: { width: w, height: h, data }, mask };
}

function centroid(mask: Uint8Array, w: number): { x: number; y: number; n: number } {
  let sx = 0;
  let sy = 0;
  let n = 0;
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    sx += i % w;
    sy += Math.floor(i / w);
    n++;
  }
  return { x: sx / n, y: sy / n, n };
}

test('zoomOut shrinks a disc to the asked share, at the expected place, and keeps image and mask aligned', () => {
  const src = disc(100, 100, 49.5, 49.5, 20); // area ~ pi * 400 = 1257 px, 12.6% of the image
  const out = zoomOut(src, { frameWidth: 200, frameHeight: 150, targetShare: 0.02, rand: mulberry32(3) });
  // hand-computed: k = sqrt(0.02 * 30000 / 1257) = 0.691 -> a 69 x 69 image, disc radius ~13.8 (area ~600)
  const lesionPx = src.mask.reduce((s, v) => s + v, 0);
  const k = Math.sqrt((0.02 * 200 * 150) / lesionPx);
  assert.ok(Math.abs(out.scale - k) < 1e-12);
  assert.equal(out.placed.width, Math.round(100 * k));
  assert.equal(out.image.width, 200);
  assert.equal(out.image.height, 150);
  assert.ok(Math.abs(out.share - 0.02) < 0.002, `share ${out.share}`);
  // the disc's centre lands where the scaled image's centre is placed (half-pixel centres)
  const c = centroid(out.mask, 200);
  const expX = out.placed.x + (out.placed.width - 1) / 2;
  const expY = out.placed.y + (out.placed.height - 1) / 2;
  assert.ok(Math.abs(c.x - expX) < 0.75 && Math.abs(c.y - expY) < 0.75, `centroid ${c.x},${c.y} vs ${expX},${expY}`);
  // all lesion pixels inside the placed rectangle (the disc does not reach the mirrored band)
  for (let i = 0; i < out.mask.length; i++) {
    if (!out.mask[i]) continue;
    const x = i % 200;
    const y = Math.floor(i / 200);
    assert.ok(x >= out.placed.x && x < out.placed.x + out.placed.width && y >= out.placed.y && y < out.placed.y + out.placed.height);
  }
  // alignment: the mask is dark exactly where the image is dark, except for a thin anti-aliased rim
  let mismatch = 0;
  for (let i = 0; i < out.mask.length; i++) {
    const dark = out.image.data[i * 3]! < (90 + 225) / 2;
    if (dark !== (out.mask[i] === 1)) mismatch++;
  }
  assert.ok(mismatch <= 2 * Math.PI * 14 * 0.5, `mismatched pixels ${mismatch}`);
  // the fill is skin mirrored from the border: no dark pixels outside the placed rectangle
  for (let y = 0; y < 150; y++) for (let x = 0; x < 200; x++) {
    const inRect = x >= out.placed.x && x < out.placed.x + out.placed.width && y >= out.placed.y && y < out.placed.y + out.placed.height;
    if (!inRect) assert.equal(out.image.data[(y * 200 + x) * 3], 225);
  }
});

test('zoomOut fills with skin only, even when the lesion touches the border (no copies of the lesion)', () => {
  const src = disc(60, 60, 0, 30, 15); // half a disc on the left edge
  const out = zoomOut(src, { frameWidth: 160, frameHeight: 120, targetShare: 0.03, band: 0.5, rand: mulberry32(1) });
  const { x: px, y: py, width: pw, height: ph } = out.placed;
  for (let y = 0; y < 120; y++) for (let x = 0; x < 160; x++) {
    const i = y * 160 + x;
    const inRect = x >= px && x < px + pw && y >= py && y < py + ph;
    if (!inRect) {
      assert.equal(out.mask[i], 0, 'lesion label in the fill');
      assert.equal(out.image.data[i * 3], 225, 'lesion colour in the fill');
    }
    if (out.mask[i]) assert.ok(out.image.data[i * 3]! < 200, 'a lesion pixel is skin-coloured');
  }
  assert.ok(Math.abs(out.share - 0.03) < 0.004, `share ${out.share}`);
  // an all-lesion image still gets a skin fill
  const full = disc(20, 20, 10, 10, 100);
  const f = zoomOut(full, { frameWidth: 80, frameHeight: 60, targetShare: 0.05, rand: mulberry32(2) });
  assert.ok(Math.abs(f.share - 0.05) < 0.01);
  assert.equal(f.mask[0], 0);
});

test('zoomOut is deterministic for a seed and moves the lesion with another', () => {
  const src = disc(80, 60, 30, 25, 12);
  const a = zoomOut(src, { targetShare: 0.05, frameWidth: 160, frameHeight: 120, rand: mulberry32(7) });
  const b = zoomOut(src, { targetShare: 0.05, frameWidth: 160, frameHeight: 120, rand: mulberry32(7) });
  const c = zoomOut(src, { targetShare: 0.05, frameWidth: 160, frameHeight: 120, rand: mulberry32(8) });
  assert.deepEqual(a.image.data, b.image.data);
  assert.deepEqual(a.mask, b.mask);
  assert.notDeepEqual(a.placed, c.placed);
});

test('aspectCrop keeps the aspect ratio: a disc stays round in a 4:3 output from a square image', () => {
  const src = disc(120, 120, 60, 60, 12);
  for (let seed = 0; seed < 5; seed++) {
    const out = aspectCrop(src, { outWidth: 80, outHeight: 60, minArea: 0.9, rand: mulberry32(seed) });
    assert.ok(Math.abs(out.crop.width / out.crop.height - 4 / 3) < 0.03);
    let x0 = 1e9, x1 = -1, y0 = 1e9, y1 = -1;
    for (let i = 0; i < out.mask.length; i++) {
      if (!out.mask[i]) continue;
      const x = i % 80;
      const y = Math.floor(i / 80);
      x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
    }
    const ratio = (x1 - x0 + 1) / (y1 - y0 + 1);
    assert.ok(Math.abs(ratio - 1) < 0.15, `disc aspect ${ratio}`);
  }
});

test('artefacts never touch the lesion and never change the mask; they are deterministic for a seed', () => {
  let seen = { sticker: 0, ruler: 0, vignette: 0, hair: 0 };
  for (let seed = 0; seed < 40; seed++) {
    const src = disc(160, 120, 40 + seed * 2, 60, 18);
    const a = addArtefacts(src, { rand: mulberry32(seed), sticker: 0.8, ruler: 0.6, vignette: 0.6, hair: 0.5 });
    const b = addArtefacts(src, { rand: mulberry32(seed), sticker: 0.8, ruler: 0.6, vignette: 0.6, hair: 0.5 });
    assert.deepEqual(a.image.data, b.image.data);
    assert.deepEqual(a.mask, src.mask);
    for (let i = 0; i < src.mask.length; i++) {
      const code = a.artefactMap[i]!;
      if (code === ARTEFACT_CODE.sticker || code === ARTEFACT_CODE.ruler || code === ARTEFACT_CODE.vignette) {
        assert.equal(src.mask[i], 0, `artefact ${code} on a lesion pixel (seed ${seed})`);
      }
    }
    for (const r of a.artefacts) {
      seen[r.kind]++;
      assert.ok(r.pixels > 0);
      if (r.kind === 'sticker') {
        // the sticker's centre has (nearly) the sticker's colour
        const cx = r.box.x + (r.box.width - 1) / 2;
        const cy = r.box.y + (r.box.height - 1) / 2;
        const i = cy * 160 + cx;
        assert.equal(a.artefactMap[i], ARTEFACT_CODE.sticker);
        const d = Math.abs(a.image.data[i * 3]! - r.colour![0]) + Math.abs(a.image.data[i * 3 + 1]! - r.colour![1]);
        assert.ok(d < 60, `sticker colour off by ${d}`);
      }
    }
  }
  for (const k of Object.keys(seen) as (keyof typeof seen)[]) assert.ok(seen[k] > 0, `no ${k} drawn in 40 seeds`);
});

test('CIELAB conversion matches reference values and round-trips', () => {
  const near = (a: number[], b: number[], tol: number): void => a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) < tol, `${a} vs ${b}`));
  near(rgbToLab(255, 255, 255), [100, 0, 0], 0.01);
  near(rgbToLab(255, 0, 0), [53.2408, 80.0925, 67.2032], 0.01); // sRGB red, D65 (standard tables)
  near(rgbToLab(0, 0, 255), [32.297, 79.1875, -107.8602], 0.01);
  const rand = mulberry32(5);
  for (let k = 0; k < 500; k++) {
    const c = [Math.floor(rand() * 256), Math.floor(rand() * 256), Math.floor(rand() * 256)] as const;
    assert.deepEqual(labToRgb(...rgbToLab(...c)), [...c]);
  }
  assert.ok(Math.abs(ita(60, 10) - 45) < 1e-9);
});

test('shiftSkinTone reaches the target ITA on the skin and keeps the lesion darker than the skin', () => {
  const src = disc(60, 40, 30, 20, 8);
  for (const target of [20, 0, -30]) {
    const out = shiftSkinTone(src, { targetIta: target });
    const skin = rgbToLab(out.image.data[0]!, out.image.data[1]!, out.image.data[2]!);
    const i = 20 * 60 + 30;
    const lesion = rgbToLab(out.image.data[i * 3]!, out.image.data[i * 3 + 1]!, out.image.data[i * 3 + 2]!);
    assert.ok(Math.abs(ita(skin[0], skin[2]) - target) < 2, `ITA ${ita(skin[0], skin[2])} vs ${target}`);
    assert.ok(out.itaBefore > 40, 'the source skin is very light');
    assert.ok(lesion[0] < skin[0] - 5, 'lesion no longer darker than skin');
  }
});

test('lesionShare counts the lesion fraction', () => {
  assert.equal(lesionShare(new Uint8Array([0, 1, 1, 0])), 0.5);
});

test('distillation: robustSample keeps image, mask and soft label aligned and is seeded; makeBatch uses it only when asked', async () => {
  const { robustSample, makeBatch, NO_AUGMENT } = await import('../../src/distill/augment.js');
  const W = 64;
  const H = 48;
  const src = disc(W, H, 30, 24, 12);
  const soft = new Float32Array(W * H).map((_, i) => (src.mask[i] ? 5 : -7));
  const a = robustSample(src.image.data, src.mask, soft, H, W, { zoomOut: 1, artefacts: 1, skinTone: 0, share: [0.05, 0.05] }, mulberry32(4));
  const b = robustSample(src.image.data, src.mask, soft, H, W, { zoomOut: 1, artefacts: 1, skinTone: 0, share: [0.05, 0.05] }, mulberry32(4));
  assert.deepEqual(a.image, b.image);
  assert.deepEqual(a.soft, b.soft);
  assert.ok(Math.abs(lesionShare(a.mask) - 0.05) < 0.01);
  // the soft label follows the mask: positive on (nearly) every lesion pixel, the skin logit outside
  let agree = 0;
  for (let i = 0; i < a.mask.length; i++) if ((a.soft![i]! > 0) === (a.mask[i] === 1)) agree++;
  assert.ok(agree / a.mask.length > 0.97, `agreement ${agree / a.mask.length}`);
  assert.equal(a.soft![0] === -7 || a.mask[0] === 0, true);
  // makeBatch: no robust option -> identical to before (no extra draws); with it -> different, and seeded
  const ds = { height: H, width: W, ids: ['x'], images: src.image.data, masks: src.mask, soft: null };
  const base = { mean: [0, 0, 0] as const, std: [1, 1, 1] as const };
  const plain1 = makeBatch(ds, [0], { ...base, rand: mulberry32(1), augment: NO_AUGMENT });
  const plain2 = makeBatch(ds, [0], { ...base, rand: mulberry32(1), augment: { ...NO_AUGMENT } });
  const r1 = makeBatch(ds, [0], { ...base, rand: mulberry32(1), augment: { ...NO_AUGMENT, robust: { zoomOut: 1, share: [0.03, 0.03] } } });
  const r2 = makeBatch(ds, [0], { ...base, rand: mulberry32(1), augment: { ...NO_AUGMENT, robust: { zoomOut: 1, share: [0.03, 0.03] } } });
  assert.deepEqual(plain1.image, plain2.image);
  assert.deepEqual(r1.image, r2.image);
  assert.notDeepEqual(r1.mask, plain1.mask);
});
