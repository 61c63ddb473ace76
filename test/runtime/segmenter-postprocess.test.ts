import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Segmenter } from '../../src/runtime/segmenter.js';
import { lesionPostprocess } from '../../src/runtime/postprocess.js';
import { tempDir } from './helpers.js';
import { redModel } from './models.js';
import { join } from 'node:path';
import { readModel, writeModel } from '../../src/onnx/io.js';

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

test('a model whose metadata says lesionfuse.postprocess=lesion is post-processed by default; none, or no key, is not', async () => {
  const dir = tempDir();
  const path = await redModel(dir);
  const m = await readModel(path);
  m.metadata['lesionfuse.postprocess'] = 'lesion';
  await writeModel(m, join(dir, 'red-pp.onnx'));
  const W = 64;
  const data = new Uint8Array(W * W * 3);
  for (let y = 0; y < W; y++) for (let x = 0; x < W; x++) if ((x < 20 && y < 20) || (x >= 50 && y >= 50 && x < 53 && y < 53)) data[(y * W + x) * 3] = 255;
  const img = { width: W, height: W, data, warnings: [] };
  const count = (mask: Uint8Array) => mask.reduce((a, v) => a + v, 0);
  const byMeta = await Segmenter.create(join(dir, 'red-pp.onnx'), { profile: 'cpu-1t' });
  const off = await Segmenter.create(join(dir, 'red-pp.onnx'), { profile: 'cpu-1t', postprocess: 'none' });
  const plain = await Segmenter.create(path, { profile: 'cpu-1t' });
  const asked = await Segmenter.create(path, { profile: 'cpu-1t', postprocess: 'lesion' });
  try {
    assert.equal(count((await byMeta.segment(img)).mask), 400); // the 3x3 speck (2% of the main blob) is dropped
    assert.equal(count((await off.segment(img)).mask), 409);
    assert.equal(count((await plain.segment(img)).mask), 409);
    assert.equal(count((await asked.segment(img)).mask), 400);
    assert.deepEqual(byMeta.postprocess?.describe, { kind: 'lesion-components', components: 'central', keepRatio: 0.3, fillHoles: true });
  } finally {
    for (const s of [byMeta, off, plain, asked]) await s.close();
  }
  m.metadata['lesionfuse.postprocess'] = 'maybe';
  await writeModel(m, join(dir, 'red-bad.onnx'));
  await assert.rejects(Segmenter.create(join(dir, 'red-bad.onnx'), { profile: 'cpu-1t' }), /lesionfuse.postprocess must be lesion or none/);
});
