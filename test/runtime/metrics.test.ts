import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  dice, iou, thresholdedJaccard, sensitivity, specificity, hd95, boundaryF, imageMetrics,
  squaredDistanceTransform, boundaryPixels, bootstrapCI, meanOf, percentile, mulberry32, pairedDifference,
} from '../../src/runtime/metrics.js';

function rect(w: number, h: number, x0: number, y0: number, rw: number, rh: number): Uint8Array {
  const m = new Uint8Array(w * h);
  for (let y = y0; y < y0 + rh; y++) for (let x = x0; x < x0 + rw; x++) m[y * w + x] = 1;
  return m;
}

/** Brute-force reference: every pair of boundary pixels. */
function bruteSurfaceDistances(a: Uint8Array, b: Uint8Array, w: number, h: number): number[] {
  const ab = boundaryPixels(a, w, h);
  const bb = boundaryPixels(b, w, h);
  const pts = (m: Uint8Array) => { const r: [number, number][] = []; m.forEach((v, i) => { if (v) r.push([i % w, Math.floor(i / w)]); }); return r; };
  const pa = pts(ab), pb = pts(bb);
  const dir = (p: [number, number][], q: [number, number][]) => p.map(([x, y]) => Math.min(...q.map(([u, v]) => Math.hypot(x - u, y - v))));
  return dir(pa, pb).concat(dir(pb, pa));
}

test('dice/iou/sensitivity/specificity on a hand-counted case', () => {
  // 4x4: truth = left 2 columns (8 px), pred = top 2 rows (8 px); overlap 4
  const truth = rect(4, 4, 0, 0, 2, 4);
  const pred = rect(4, 4, 0, 0, 4, 2);
  assert.equal(dice(pred, truth), (2 * 4) / 16);
  assert.equal(iou(pred, truth), 4 / 12);
  assert.equal(thresholdedJaccard(pred, truth), 0); // 0.333 < 0.65
  assert.equal(sensitivity(pred, truth), 4 / 8);
  assert.equal(specificity(pred, truth), 4 / 8);
  const p2 = rect(4, 4, 0, 0, 2, 3); // 6 of truth's 8
  assert.equal(thresholdedJaccard(p2, truth), 6 / 8);
});

test('empty/full conventions', () => {
  const e = new Uint8Array(25);
  const s = rect(5, 5, 1, 1, 2, 2);
  const full = new Uint8Array(25).fill(1);
  assert.equal(dice(e, e), 1);
  assert.equal(iou(e, e), 1);
  assert.equal(thresholdedJaccard(e, e), 1);
  assert.equal(boundaryF(e, e, 5, 5), 1);
  assert.equal(hd95(e, e, 5, 5), 0);
  assert.equal(sensitivity(e, e), 1);
  for (const [p, t] of [[e, s], [s, e]] as const) {
    assert.equal(dice(p, t), 0);
    assert.equal(iou(p, t), 0);
    assert.equal(boundaryF(p, t, 5, 5), 0);
    assert.ok(Number.isNaN(hd95(p, t, 5, 5)));
  }
  assert.ok(Number.isNaN(sensitivity(s, e)));
  assert.equal(specificity(full, full), 1);
  assert.ok(Number.isNaN(specificity(s, full)));
  assert.throws(() => dice(new Uint8Array(3), new Uint8Array(4)), /same size/);
});

test('HD95 of single pixels is their Euclidean distance', () => {
  const a = new Uint8Array(10 * 10); a[1 * 10 + 1] = 1;
  const b = new Uint8Array(10 * 10); b[5 * 10 + 4] = 1; // (4,5) vs (1,1): 3,4 -> 5
  assert.equal(hd95(a, b, 10, 10), 5);
  assert.equal(hd95(a, a, 10, 10), 0);
});

test('HD95 of a square inside a concentric square is the gap', () => {
  // truth 20x20 square, pred 10x10 concentric: every pred boundary pixel is 5 from the truth boundary;
  // truth boundary pixels are 5 (edges) or up to 5*sqrt(2) (corners) from pred's.
  const w = 30;
  const truth = rect(w, w, 5, 5, 20, 20);
  const pred = rect(w, w, 10, 10, 10, 10);
  const ref = percentile(bruteSurfaceDistances(pred, truth, w, w), 95);
  assert.ok(Math.abs(hd95(pred, truth, w, w) - ref) < 1e-9);
  assert.ok(ref >= 5 && ref <= 5 * Math.SQRT2);
});

test('HD95 of squares offset by k matches a brute-force reference; max distance is k', () => {
  for (const k of [1, 3, 6]) {
    const w = 40;
    const a = rect(w, w, 5, 5, 15, 15);
    const b = rect(w, w, 5 + k, 5, 15, 15);
    const d = bruteSurfaceDistances(a, b, w, w);
    assert.equal(Math.max(...d), k);
    assert.ok(Math.abs(hd95(a, b, w, w) - percentile(d, 95)) < 1e-9);
  }
});

test('HD95 and boundary F on random blobs match brute force', () => {
  const rand = mulberry32(7);
  for (let trial = 0; trial < 5; trial++) {
    const w = 23, h = 17;
    const a = new Uint8Array(w * h), b = new Uint8Array(w * h);
    for (let i = 0; i < a.length; i++) { a[i] = rand() < 0.4 ? 1 : 0; b[i] = rand() < 0.3 ? 1 : 0; }
    const d = bruteSurfaceDistances(a, b, w, h);
    assert.ok(Math.abs(hd95(a, b, w, h) - percentile(d, 95)) < 1e-9);
    // boundary F with brute force
    const ab = boundaryPixels(a, w, h), bb = boundaryPixels(b, w, h);
    const na = ab.reduce((s, v) => s + v, 0);
    const da = d.slice(0, na), db = d.slice(na);
    const P = da.filter((x) => x <= 2).length / da.length, R = db.filter((x) => x <= 2).length / db.length;
    const F = P + R === 0 ? 0 : (2 * P * R) / (P + R);
    assert.ok(Math.abs(boundaryF(a, b, w, h, 2) - F) < 1e-12);
  }
});

test('distance transform is exact against brute force', () => {
  const w = 31, h = 19;
  const rand = mulberry32(3);
  const f = new Uint8Array(w * h);
  for (let i = 0; i < f.length; i++) f[i] = rand() < 0.03 ? 1 : 0;
  const dt = squaredDistanceTransform(f, w, h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    let best = Infinity;
    for (let i = 0; i < f.length; i++) if (f[i]) best = Math.min(best, (x - (i % w)) ** 2 + (y - Math.floor(i / w)) ** 2);
    assert.equal(dt[y * w + x], best);
  }
});

test('boundary F tolerance: a 3-pixel shift is perfect at tol 3 and worse at tol 1', () => {
  const w = 40;
  const a = rect(w, w, 5, 5, 20, 20), b = rect(w, w, 8, 5, 20, 20);
  assert.equal(boundaryF(a, b, w, w, 3), 1);
  assert.ok(boundaryF(a, b, w, w, 1) < 1);
});

test('imageMetrics gathers all metrics', () => {
  const truth = rect(8, 8, 2, 2, 4, 4);
  const m = imageMetrics(truth, truth, 8, 8);
  assert.deepEqual(m, { dice: 1, iou: 1, thresholded_jaccard: 1, sensitivity: 1, specificity: 1, hd95: 0, boundary_f: 1 });
});

test('bootstrap is deterministic per seed and brackets the mean', () => {
  const v = Array.from({ length: 50 }, (_, i) => (i * 37) % 11 / 10);
  const a = bootstrapCI(v, { seed: 1 });
  const b = bootstrapCI(v, { seed: 1 });
  const c = bootstrapCI(v, { seed: 2 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  const { mean } = meanOf(v);
  assert.ok(a[0] < mean && mean < a[1]);
  assert.deepEqual(bootstrapCI([0.5, 0.5, 0.5]), [0.5, 0.5]);
  const m = meanOf([1, NaN, 3]);
  assert.deepEqual(m, { mean: 2, n: 2, nSkipped: 1 });
  assert.deepEqual(bootstrapCI([NaN]), [NaN, NaN]);
});

test('percentile interpolates linearly like numpy', () => {
  assert.equal(percentile([1, 2, 3, 4], 50), 2.5);
  assert.ok(Math.abs(percentile([4, 1, 3, 2], 95) - 3.85) < 1e-12);
  assert.equal(percentile([7], 95), 7);
});

test('imageMetrics (one shared pass) equals the single-metric functions', () => {
  const rand = mulberry32(11);
  const w = 19, h = 13;
  const cases: [Uint8Array, Uint8Array][] = [];
  for (let t = 0; t < 6; t++) {
    const a = new Uint8Array(w * h), b = new Uint8Array(w * h);
    for (let i = 0; i < a.length; i++) { a[i] = rand() < 0.35 * (t % 3) ? 1 : 0; b[i] = rand() < 0.3 * ((t + 1) % 3) ? 1 : 0; }
    cases.push([a, b]);
  }
  cases.push([new Uint8Array(w * h).fill(1), new Uint8Array(w * h).fill(1)]);
  for (const [p, t] of cases) {
    const m = imageMetrics(p, t, w, h, { boundaryTolerancePx: 1.5 });
    const want = { dice: dice(p, t), iou: iou(p, t), thresholded_jaccard: thresholdedJaccard(p, t), sensitivity: sensitivity(p, t), specificity: specificity(p, t), hd95: hd95(p, t, w, h), boundary_f: boundaryF(p, t, w, h, 1.5) };
    assert.deepEqual(m, want);
  }
});

test('pairedDifference: hand-computed means, counts, undefined pairs left out, HD95 direction', () => {
  // differences a - b: +0.1, -0.2, 0, +0.4 (the NaN pair is left out)
  const p = pairedDifference([0.9, 0.5, 0.7, 0.8, NaN], [0.8, 0.7, 0.7, 0.4, 0.6]);
  assert.equal(p.n, 4);
  assert.ok(Math.abs(p.mean - 0.075) < 1e-12);
  assert.equal(p.better, 2);
  assert.equal(p.worse, 1);
  assert.deepEqual(p.ci95, bootstrapCI([0.9 - 0.8, 0.5 - 0.7, 0, 0.8 - 0.4]));
  // lower is better (distances): differences -2 (better), +5 (worse), 0 (tie)
  const h = pairedDifference([10, 20, 5], [12, 15, 5], { lowerIsBetter: true });
  assert.equal(h.mean, 1);
  assert.equal(h.better, 1);
  assert.equal(h.worse, 1);
  assert.throws(() => pairedDifference([1, 2], [1]), /same images: 2 vs 1/);
});
