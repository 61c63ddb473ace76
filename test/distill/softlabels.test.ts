import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computeSoftLabels, softLabelFolder } from '../../src/distill/softlabels.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { DataType } from '../../src/onnx/ir.js';
import { writeModel } from '../../src/onnx/io.js';
import { IMAGENET_MEAN, IMAGENET_STD, segmentationMetadataProps } from '../../src/onnx/metadata.js';
import { float16ToFloat32, floatTensor } from '../../src/onnx/tensor.js';
import { mulberry32 } from '../../src/runtime/metrics.js';

const H = 8;
const W = 12;

/** A tiny "teacher": one 1x1 conv from RGB to one logit, with the metadata the runtime reads. */
async function tinyTeacher(path: string, w: [number, number, number], bias: number): Promise<void> {
  const b = new GraphBuilder('tiny-teacher');
  const x = b.input('image', DataType.FLOAT, ['N', 3, H, W]);
  const wt = b.initializer('w', floatTensor([1, 3, 1, 1], w));
  const bt = b.initializer('b', floatTensor([1], [bias]));
  b.output(b.op('Conv', [x, wt, bt], { kernel_shape: [1, 1] }), 'logits', { dataType: DataType.FLOAT, shape: ['N', 1, H, W] });
  const model = b.build({
    opset: 17,
    metadata: segmentationMetadataProps({ inputSize: { height: H, width: W }, mean: IMAGENET_MEAN, std: IMAGENET_STD, channelOrder: 'RGB', output: 'logits', threshold: 0.5, modelName: 'tiny' }),
  });
  await writeModel(model, path);
}

/** The teacher's logits computed by hand. */
function expected(rgb: Uint8Array, w: number[], bias: number): Float32Array {
  const out = new Float32Array(H * W);
  for (let i = 0; i < H * W; i++) {
    let s = bias;
    for (let c = 0; c < 3; c++) s += w[c]! * ((rgb[i * 3 + c]! / 255 - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]!);
    out[i] = s;
  }
  return out;
}

function samples(n: number, seed: number) {
  const r = mulberry32(seed);
  return Array.from({ length: n }, (_, k) => ({ key: `img${seed}_${k}`, rgb: new Uint8Array(H * W * 3).map(() => Math.floor(r() * 256)) }));
}

test('soft labels: computed through the teacher, cached as float16, reused, recomputed when the teacher or image changes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-soft-'));
  try {
    const teacher = join(dir, 'teacher.onnx');
    const cacheDir = join(dir, 'cache');
    const wA: [number, number, number] = [0.5, -1.2, 0.8];
    await tinyTeacher(teacher, wA, 0.3);
    const s = samples(5, 1);
    const opts = { teacher, cacheDir, height: H, width: W, batch: 2, progress: false };

    const first = await computeSoftLabels(s, opts);
    assert.equal(first.misses, 5);
    assert.equal(first.hits, 0);
    const got = float16ToFloat32(first.logits);
    s.forEach((smp, k) => {
      const ref = expected(smp.rgb, wA, 0.3);
      for (let i = 0; i < H * W; i++) {
        // float16 keeps ~11 bits: relative error <= 2^-11, plus a little for float32 arithmetic.
        assert.ok(Math.abs(got[k * H * W + i]! - ref[i]!) <= 1e-3 * Math.max(1, Math.abs(ref[i]!)), `sample ${k} pixel ${i}: ${got[k * H * W + i]} vs ${ref[i]}`);
      }
    });
    assert.equal(first.folder, softLabelFolder(cacheDir, first.teacherSha256, H, W));
    assert.equal(readdirSync(first.folder).filter((f) => f.endsWith('.f16')).length, 5);

    // Same teacher, same images: all from the cache, identical bits.
    const second = await computeSoftLabels(s, opts);
    assert.deepEqual([second.hits, second.misses], [5, 0]);
    assert.deepEqual(second.logits, first.logits);

    // One new image: only it is computed. A truncated cache file is recomputed, not trusted.
    truncateSync(join(first.folder, `${s[0]!.key}.f16`), 10);
    const more = [...s, ...samples(1, 2)];
    const third = await computeSoftLabels(more, opts);
    assert.deepEqual([third.hits, third.misses], [4, 2]);
    assert.deepEqual(third.logits.subarray(0, 5 * H * W), first.logits);

    // A changed teacher file (new hash) misses everything and gives its own labels.
    const wB: [number, number, number] = [-0.4, 0.9, 0.1];
    await tinyTeacher(teacher, wB, -0.2);
    const fourth = await computeSoftLabels(s, opts);
    assert.deepEqual([fourth.hits, fourth.misses], [0, 5]);
    assert.notEqual(fourth.teacherSha256, first.teacherSha256);
    const refB = expected(s[2]!.rgb, wB, -0.2);
    const gotB = float16ToFloat32(fourth.logits.subarray(2 * H * W, 3 * H * W));
    for (let i = 0; i < H * W; i++) assert.ok(Math.abs(gotB[i]! - refB[i]!) <= 1e-3 * Math.max(1, Math.abs(refB[i]!)));

    // A different input size is refused: the student trains at the teacher's size.
    await assert.rejects(
      computeSoftLabels([{ key: 'x', rgb: new Uint8Array(16 * 16 * 3) }], { ...opts, height: 16, width: 16 }),
      /teacher takes 8x12/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
