import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectedComponents, fillHoles, postprocessMask } from '../../src/runtime/postprocess.js';

/** Parse a picture: '#' = 1, '.' = 0. */
function pic(rows: string[]): { mask: Uint8Array; w: number; h: number } {
  const h = rows.length;
  const w = rows[0]!.length;
  const mask = new Uint8Array(w * h);
  rows.forEach((r, y) => [...r].forEach((c, x) => (mask[y * w + x] = c === '#' ? 1 : 0)));
  return { mask, w, h };
}
function show(m: Uint8Array, w: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < m.length; i += w) out.push([...m.subarray(i, i + w)].map((v) => (v ? '#' : '.')).join(''));
  return out;
}

test('two blobs: the largest is kept; "central" prefers a central blob over a larger one in the corner', () => {
  const p = pic([
    '###.......',
    '###.......',
    '###.......',
    '..........',
    '.....##...',
    '.....##...',
    '..........',
  ]);
  const cc = connectedComponents(p.mask, p.w, p.h);
  assert.equal(cc.components.length, 2);
  assert.deepEqual(cc.components.map((c) => c.area), [9, 4]);
  assert.deepEqual(show(postprocessMask(p.mask, p.w, p.h, { components: 'largest', keepRatio: 1 }), p.w), [
    '###.......',
    '###.......',
    '###.......',
    '..........',
    '..........',
    '..........',
    '..........',
  ]);
  // centre (4.5, 3); corner blob centroid (1, 1): distance 4.03 of half-diagonal 5.41 -> 9 x 0.255 = 2.3;
  // central blob centroid (5.5, 4.5): distance 1.80 -> 4 x 0.667 = 2.67, so the central one wins
  assert.deepEqual(show(postprocessMask(p.mask, p.w, p.h, { components: 'central', keepRatio: 1 }), p.w), [
    '..........',
    '..........',
    '..........',
    '..........',
    '.....##...',
    '.....##...',
    '..........',
  ]);
  // keepRatio 0.4 keeps both (4 >= 0.4 x 9), 0.5 only the largest
  assert.deepEqual(postprocessMask(p.mask, p.w, p.h, { components: 'largest', keepRatio: 0.4 }), p.mask);
  assert.equal(postprocessMask(p.mask, p.w, p.h, { components: 'largest', keepRatio: 0.5 }).reduce((a, v) => a + v, 0), 9);
  // the default: the central blob (score 2.67) is kept, and the corner one too (9 >= 0.3 x 4)
  assert.deepEqual(postprocessMask(p.mask, p.w, p.h), p.mask);
});

test('diagonal neighbours are one component (8-connectivity), two with 4-connectivity', () => {
  const p = pic(['#..', '.#.', '..#']);
  assert.equal(connectedComponents(p.mask, 3, 3).components.length, 1);
  assert.equal(connectedComponents(p.mask, 3, 3, 4).components.length, 3);
});

test('a hole is filled; a gap open to the border is not a hole', () => {
  const p = pic([
    '.......',
    '.#####.',
    '.#..##.',
    '.#####.',
    '.......',
  ]);
  assert.deepEqual(show(fillHoles(p.mask, p.w, p.h), p.w), ['.......', '.#####.', '.#####.', '.#####.', '.......']);
  const open = pic(['#####', '#...#', '#....', '#####']);
  assert.deepEqual(fillHoles(open.mask, open.w, open.h), open.mask);
  // a hole touching the hole only diagonally from outside is still a hole (background is 4-connected)
  const diag = pic(['.###', '#..#', '####']);
  assert.deepEqual(show(fillHoles(diag.mask, 4, 3), 4), ['.###', '####', '####']);
});

test('an empty mask stays empty, a full mask stays full; bad sizes are refused', () => {
  assert.deepEqual(postprocessMask(new Uint8Array(12), 4, 3), new Uint8Array(12));
  assert.deepEqual(postprocessMask(new Uint8Array(12).fill(1), 4, 3), new Uint8Array(12).fill(1));
  assert.throws(() => postprocessMask(new Uint8Array(11), 4, 3), /not 4 x 3/);
});
