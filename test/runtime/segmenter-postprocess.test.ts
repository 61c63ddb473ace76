import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Segmenter } from '../../src/runtime/segmenter.js';
import { lesionPostprocess } from '../../src/runtime/postprocess.js';
import { tempDir } from './helpers.js';
import { redModel } from './models.js';

test('the Segmenter postprocess option keeps the largest red blob and fills its hole; off by default', async () => {
  const dir = tempDir();
  const path = await redModel(dir); // lesion where R >= 128, input 64 x 64
  // a red ring (outer radius 14, hole radius 4) at (20, 20) and a small red square at (50..55, 50..55)
  const W = 64;
  const data = new Uint8Array(W * W * 3);
  const ring = (x: number, y: number): boolean => {
    const d = Math.hypot(x - 20, y - 20);
    return d <= 14 && d > 4;
  };
  for (let y = 0; y < W; y++) for (let x = 0; x < W; x++) {
    const red = ring(x, y) || (x >= 50 && x < 56 && y >= 50 && y < 56);
    data[(y * W + x) * 3] = red ? 255 : 0;
  }
  const img = { width: W, height: W, data, warnings: [] };
  const plain = await Segmenter.create(path, { profile: 'cpu-1t' });
  const post = await Segmenter.create(path, { profile: 'cpu-1t', postprocess: lesionPostprocess() });
  try {
    const a = await plain.segment(img);
    const b = await post.segment(img);
    for (let y = 0; y < W; y++) for (let x = 0; x < W; x++) {
      const i = y * W + x;
      const inSquare = x >= 50 && x < 56 && y >= 50 && y < 56;
      assert.equal(a.mask[i], ring(x, y) || inSquare ? 1 : 0, `raw mask at ${x},${y}`);
      assert.equal(b.mask[i], Math.hypot(x - 20, y - 20) <= 14 ? 1 : 0, `post-processed mask at ${x},${y}`);
    }
    assert.deepEqual(a.probability, b.probability, 'post-processing changes the mask only');
  } finally {
    await plain.close();
    await post.close();
  }
});
