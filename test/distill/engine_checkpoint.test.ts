import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint, saveCheckpoint, type Checkpoint } from '../../src/distill/engine/checkpoint.js';
import { Rng } from '../../src/distill/engine/rng.js';

function sample(): Checkpoint {
  const rng = new Rng(9);
  rng.normal();
  return {
    step: 17,
    rng: rng.getState(),
    config: { lr: 0.001, student: 'tiny' },
    extra: { epoch: 2, best: 0.81 },
    tensors: [
      { group: 'param', name: 'conv.w', dims: [2, 1, 3, 3], data: Float32Array.from({ length: 18 }, (_, i) => Math.sin(i) * 1e-3) },
      { group: 'state', name: 'bn.m', dims: [2], data: Float32Array.from([0.5, -Infinity]) },
      { group: 'adam_v', name: 'conv.w', dims: [2, 1, 3, 3], data: new Float32Array(18).fill(Number.MIN_VALUE) },
    ],
  };
}

test('checkpoint round trip is exact', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-ckpt-'));
  try {
    const path = join(dir, 'a.ckpt');
    const ck = sample();
    await saveCheckpoint(path, ck);
    const back = await loadCheckpoint(path);
    assert.deepEqual(back, ck);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('corrupt, truncated and foreign files are refused by name', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-ckpt-'));
  try {
    const path = join(dir, 'a.ckpt');
    await saveCheckpoint(path, sample());
    const bytes = readFileSync(path);
    const flipped = Uint8Array.from(bytes);
    flipped[flipped.length - 5]! ^= 0x40;
    writeFileSync(join(dir, 'flipped.ckpt'), flipped);
    await assert.rejects(loadCheckpoint(join(dir, 'flipped.ckpt')), /flipped\.ckpt: .*checksum mismatch/);
    writeFileSync(join(dir, 'short.ckpt'), bytes.subarray(0, bytes.length - 10));
    await assert.rejects(loadCheckpoint(join(dir, 'short.ckpt')), /short\.ckpt: .*truncated/);
    writeFileSync(join(dir, 'tiny.ckpt'), bytes.subarray(0, 20));
    await assert.rejects(loadCheckpoint(join(dir, 'tiny.ckpt')), /tiny\.ckpt: .*truncated header/);
    writeFileSync(join(dir, 'model.onnx'), Buffer.from('\x08\x07\x12\x04test-not-a-checkpoint'));
    await assert.rejects(loadCheckpoint(join(dir, 'model.onnx')), /model\.onnx: .*wrong magic/);
    await assert.rejects(loadCheckpoint(join(dir, 'missing.ckpt')), /missing\.ckpt: cannot read checkpoint \(ENOENT\)/);
    const badJson = Uint8Array.from(bytes);
    badJson[14] = 0xff;
    writeFileSync(join(dir, 'json.ckpt'), badJson);
    await assert.rejects(loadCheckpoint(join(dir, 'json.ckpt')), /json\.ckpt: .*header is not valid JSON/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
