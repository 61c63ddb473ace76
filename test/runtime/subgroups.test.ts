import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ciede2000, contrastBin, dilate, imageFeatures, ita, itaBin, labToRgb, readGroupsCsv, resolutionBin, rgbToLab, sizeBin, tertileCuts,
} from '../../src/runtime/subgroups.js';
import { tempDir } from './helpers.js';

const close = (a: number, b: number, tol: number, what = ''): void => assert.ok(Math.abs(a - b) <= tol, `${what} ${a} vs ${b} (tol ${tol})`);

test('sRGB -> CIELAB (D65) matches published values', () => {
  // sRGB red, white and black: L*a*b* (53.24, 80.09, 67.20), (100, 0, 0), (0, 0, 0).
  const red = rgbToLab(255, 0, 0);
  close(red[0], 53.24, 0.01, 'L');
  close(red[1], 80.09, 0.01, 'a');
  close(red[2], 67.20, 0.01, 'b');
  const white = rgbToLab(255, 255, 255);
  close(white[0], 100, 1e-3);
  close(white[1], 0, 1e-3);
  close(white[2], 0, 1e-3);
  assert.deepEqual(rgbToLab(0, 0, 0).map((v) => Math.round(v * 1e6) / 1e6), [0, 0, 0]);
  // labToRgb is the inverse up to 8-bit rounding.
  const back = rgbToLab(...labToRgb(65, 12, 22));
  close(back[0], 65, 0.3);
  close(back[1], 12, 0.8);
  close(back[2], 22, 0.8);
});

test('CIEDE2000 on Sharma, Wu and Dalal (2005) test pairs', () => {
  close(ciede2000([50, 2.6772, -79.7751], [50, 0, -82.7485]), 2.0425, 1e-4);
  close(ciede2000([50, 0, 0], [50, -1, 2]), 2.3669, 1e-4);
  close(ciede2000([50, 2.5, 0], [73, 25, -18]), 27.1492, 1e-4);
  close(ciede2000([60.2574, -34.0099, 36.2677], [60.4626, -34.1751, 39.4387]), 1.2644, 1e-4);
  close(ciede2000([50, 2.49, -0.001], [50, -2.49, 0.0009]), 7.1792, 1e-4);
  assert.equal(ciede2000([40, 10, 10], [40, 10, 10]), 0);
});

test('ITA and its bins, hand-computed', () => {
  close(ita(70, 20), 45, 1e-12); // atan2(20, 20)
  close(ita(80, 15), 63.4349, 1e-4); // atan2(30, 15)
  close(ita(45, 25), -11.3099, 1e-4); // atan2(-5, 25)
  assert.equal(itaBin(63.4), 'very light');
  assert.equal(itaBin(55), 'light');
  assert.equal(itaBin(45), 'light');
  assert.equal(itaBin(41), 'intermediate');
  assert.equal(itaBin(29.05), 'intermediate');
  assert.equal(itaBin(11.31), 'tan');
  assert.equal(itaBin(10), 'brown');
  assert.equal(itaBin(-11.3), 'brown');
  assert.equal(itaBin(-30), 'brown');
  assert.equal(itaBin(-53.1), 'dark');
  assert.equal(itaBin(NaN), 'unknown');
});

test('size and resolution bins at their edges', () => {
  assert.deepEqual([4.99, 5, 9.99, 10, 19.9, 20, 40, 40.1].map(sizeBin), ['<5%', '5-10%', '5-10%', '10-20%', '10-20%', '20-40%', '20-40%', '>40%']);
  assert.equal(resolutionBin(600, 450), '<500 px');
  assert.equal(resolutionBin(512, 512), '500-999 px');
  assert.equal(resolutionBin(4000, 3000), '>=2000 px');
});

test('dilate grows a pixel into a Euclidean disk', () => {
  const m = new Uint8Array(81);
  m[40] = 1; // centre of 9x9
  const d = dilate(m, 9, 9, 2);
  // radius 2: 13 pixels (dx^2 + dy^2 <= 4).
  assert.equal(d.reduce((s, v) => s + v, 0), 13);
  assert.equal(dilate(new Uint8Array(9), 3, 3, 2).reduce((s, v) => s + v, 0), 0);
});

/** A synthetic dermoscopy patch: skin of a known L*a*b*, a dark lesion, black corners, a blue sticker and a specular spot. */
function patch(skin: [number, number, number], w = 96, h = 80): { image: { width: number; height: number; data: Uint8Array }; mask: Uint8Array } {
  const data = new Uint8Array(w * h * 3);
  const mask = new Uint8Array(w * h);
  const skinRgb = labToRgb(...skin);
  const lesionRgb = labToRgb(30, 15, 20);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      let c = skinRgb;
      const r2 = (x - 48) ** 2 + (y - 40) ** 2;
      if (r2 <= 18 * 18) {
        c = lesionRgb;
        mask[i] = 1;
      } else if (Math.hypot(x - w / 2, y - h / 2) > 50) c = [5, 3, 2]; // vignette corners
      else if (x >= 78 && x < 86 && y >= 10 && y < 18) c = [30, 60, 220]; // blue sticker
      else if (x >= 10 && x < 14 && y >= 38 && y < 42) c = [255, 255, 255]; // specular
      data.set(c, 3 * i);
    }
  }
  return { image: { width: w, height: h, data }, mask };
}

test('imageFeatures: ITA of the skin around the lesion, excluding corners, stickers and highlights', () => {
  // Skin L*=70, b*=20: ITA = atan2(20, 20) = 45 degrees (light). 8-bit rounding moves it by < 1 degree.
  const { image, mask } = patch([70, 6, 20]);
  const f = imageFeatures(image, mask);
  close(f.ita, 45, 1.0, 'ITA');
  assert.equal(f.itaGroup, 'light');
  assert.ok(f.excluded.dark > 0 && f.excluded.coloured === 64 && f.excluded.saturated === 16, JSON.stringify(f.excluded));
  close(f.lesionSharePercent, (100 * mask.reduce((s, v) => s + v, 0)) / (96 * 80), 1e-9);
  assert.equal(f.size, '10-20%');
  assert.ok(f.darkCornerShare > 0.25, `dark corners ${f.darkCornerShare}`);
  // Contrast: CIEDE2000 between the lesion (30, 15, 20) and skin (70, 6, 20), both within 8-bit rounding.
  close(f.contrast, ciede2000([30, 15, 20], [70, 6, 20]), 0.8, 'contrast');
  // Darker skin: L*=45, b*=25 -> ITA = -11.3 (brown); L*=80, b*=15 -> 63.4 (very light).
  const brown = imageFeatures(...Object.values(patch([45, 10, 25])) as [never, Uint8Array]);
  close(brown.ita, -11.31, 1.0);
  assert.equal(brown.itaGroup, 'brown');
  const vl = imageFeatures(...Object.values(patch([80, 5, 15])) as [never, Uint8Array]);
  close(vl.ita, 63.43, 1.0);
  assert.equal(vl.itaGroup, 'very light');
});

test('imageFeatures: a lesion filling the frame leaves no skin, so ITA is unknown', () => {
  const { image } = patch([70, 6, 20]);
  const f = imageFeatures(image, new Uint8Array(96 * 80).fill(1));
  assert.ok(Number.isNaN(f.ita));
  assert.equal(f.itaGroup, 'unknown');
  assert.ok(Number.isNaN(f.contrast));
  assert.throws(() => imageFeatures(image, new Uint8Array(10)), /lesion mask has 10 pixels/);
});

test('contrast tertiles', () => {
  const cuts = tertileCuts([1, 2, 3, 4, 5, 6, 7, NaN]);
  close(cuts[0], 3, 1e-12);
  close(cuts[1], 5, 1e-12);
  assert.match(contrastBin(2, cuts), /^low/);
  assert.match(contrastBin(4, cuts), /^mid/);
  assert.match(contrastBin(6, cuts), /^high/);
  assert.equal(contrastBin(NaN, cuts), 'unknown');
});

test('readGroupsCsv: id -> columns, with one-line errors', async () => {
  const d = tempDir();
  const p = join(d, 'groups.csv');
  writeFileSync(p, 'id,fitzpatrick,device\nISIC_1.jpg,II,dermlite\nISIC_2,V,\n');
  const g = await readGroupsCsv(p);
  assert.deepEqual(g.columns, ['fitzpatrick', 'device']);
  assert.deepEqual(g.byId.get('ISIC_1'), { fitzpatrick: 'II', device: 'dermlite' });
  assert.deepEqual(g.byId.get('ISIC_2'), { fitzpatrick: 'V' });
  writeFileSync(p, 'name,x\na,1\n');
  await assert.rejects(readGroupsCsv(p), /first column must be the image id/);
  writeFileSync(p, 'id,x\na,1\na,2\n');
  await assert.rejects(readGroupsCsv(p), /appears twice/);
  await assert.rejects(readGroupsCsv(join(d, 'nope.csv')), /nope.csv: cannot read/);
});
