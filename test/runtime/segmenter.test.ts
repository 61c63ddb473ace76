import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import sharp from 'sharp';
import { Segmenter } from '../../src/runtime/segmenter.js';
import { ProfileUnavailableError } from '../../src/runtime/session.js';
import { decodeImage, resizeProbability } from '../../src/runtime/image.js';
import { DataType } from '../../src/onnx/ir.js';
import { floatTensor } from '../../src/onnx/tensor.js';
import { FIXTURES, tempDir } from './helpers.js';
import { halfModel, redModel, oddModel } from './models.js';

const IMAGES = ['ISIC_0000012', 'ISIC_0000021', 'ISIC_0024321', 'ISIC_0024339', 'IMD008', 'IMD009'].map((id) => join(FIXTURES, 'images', `${id}.jpg`));

test('a built model runs end to end on the fixture images; output at the original size', async () => {
  const dir = tempDir();
  // the exact path: its way back is the half-pixel bilinear map checked below
  const seg = await Segmenter.create(await halfModel(dir), { profile: 'cpu-1t', resize: 'exact' });
  try {
    assert.deepEqual(seg.inputSize, { height: 16, width: 16 });
    const results = await seg.segmentBatch(IMAGES, { batchSize: 4 });
    assert.equal(results.length, 6);
    for (const r of results) {
      const meta = await sharp(r.path!).metadata();
      assert.equal(r.width, meta.width);
      assert.equal(r.height, meta.height);
      assert.equal(r.mask.length, r.width * r.height);
      // hand reasoning: the step between model columns 7 and 8 lands between original columns 31 and 32
      for (let y = 0; y < r.height; y++) for (let x = 0; x < r.width; x++) assert.equal(r.mask[y * r.width + x], x < 32 ? 1 : 0);
      // the probability is sigmoid(step) resized with half-pixel bilinear
      const s = 1 / (1 + Math.exp(-10));
      const map = new Float32Array(256).map((_, i) => (i % 16 < 8 ? s : 1 - s));
      const want = resizeProbability(map, 16, 16, r.height, r.width);
      for (let i = 0; i < want.length; i++) assert.ok(Math.abs(r.probability[i]! - want[i]!) < 1e-6);
    }
    assert.match(seg.providerCheck!.summary, /CPUExecutionProvider/);
    assert.equal(seg.providerCheck!.fellBackToCpu, false);
  } finally {
    await seg.close();
  }
});

test('preprocessing from metadata: mean 0/std 1 red-channel model gives R >= 128 exactly', async () => {
  const dir = tempDir();
  const seg = await Segmenter.create(await redModel(dir), { profile: 'cpu-1t' });
  try {
    const path = join(FIXTURES, 'images', 'ISIC_0000012.jpg'); // 64 x 64: no resizing
    const { data, info } = await sharp(path).raw().toBuffer({ resolveWithObject: true });
    const r = await seg.segment(path);
    let lesion = 0;
    for (let i = 0; i < info.width * info.height; i++) {
      const want = data[i * info.channels]! >= 128 ? 1 : 0;
      assert.equal(r.mask[i], want, `pixel ${i}`);
      lesion += want;
    }
    assert.ok(lesion > 0 && lesion < 64 * 64, 'the test is not trivial');
    // runTensor returns raw logits as the model outputs them
    const img = await decodeImage(path);
    const x = new Float32Array(3 * 64 * 64);
    for (let i = 0; i < 64 * 64; i++) for (let c = 0; c < 3; c++) x[c * 4096 + i] = img.data[i * 3 + c]! / 255;
    const logits = await seg.runTensor(x, 1);
    assert.ok(Math.abs(logits[100]! - (100 * (img.data[300]! / 255) - 50)) < 1e-3);
  } finally {
    await seg.close();
  }
});

test('a fixed batch-1 model still segments a batch; small images get a warning', async () => {
  const dir = tempDir();
  const seg = await Segmenter.create(await halfModel(dir, { batch: 1, size: 128 }), { profile: 'cpu-1t' });
  try {
    const rs = await seg.segmentBatch(IMAGES.slice(0, 3), { batchSize: 3 });
    assert.equal(rs.length, 3);
    assert.ok(rs.every((r) => r.warnings.some((w) => /smaller than the model input 128 x 128/.test(w))));
    assert.equal(rs[2]!.mask[0], 1);
  } finally {
    await seg.close();
  }
});

test('models that are not segmentation models are refused with shapes and the fixing option', async () => {
  const dir = tempDir();
  const two = await oddModel(dir, 'two-inputs', (b) => {
    const a = b.input('a', DataType.FLOAT, [1, 3, 8, 8]);
    const c = b.input('c', DataType.FLOAT, [1, 3, 8, 8]);
    b.output(b.op('Add', [a, c]), 'y', { dataType: DataType.FLOAT, shape: [1, 3, 8, 8] });
  });
  await assert.rejects(Segmenter.create(two), /one image tensor, this one has 2 inputs \('a' \[1, 3, 8, 8\], 'c' \[1, 3, 8, 8\]\)/);
  const dyn = await oddModel(dir, 'dynamic', (b) => {
    const x = b.input('x', DataType.FLOAT, ['N', 3, 'H', 'W']);
    const w = b.initializer('w', floatTensor([1, 3, 1, 1], [1, 1, 1]));
    b.output(b.op('Conv', [x, w], { kernel_shape: [1, 1] }), 'y', { dataType: DataType.FLOAT, shape: ['N', 1, 'H', 'W'] });
  });
  await assert.rejects(Segmenter.create(dyn), /dynamic height\/width \[N, 3, H, W\].*--input-size HxW/);
  const ok = await Segmenter.create(dyn, { inputSize: { height: 8, width: 8 }, profile: 'cpu-1t' });
  assert.equal((await ok.segment(IMAGES[0]!)).width, 64);
  await ok.close();
  const multi = await oddModel(dir, 'multi', (b) => {
    const x = b.input('x', DataType.FLOAT, [1, 3, 8, 8]);
    const w = b.initializer('w', floatTensor([1, 3, 1, 1], [1, 1, 1]));
    const y = b.op('Conv', [x, w], { kernel_shape: [1, 1] });
    const r = b.op('Relu', [y]);
    b.output(y, 'mask_logits', { dataType: DataType.FLOAT, shape: [1, 1, 8, 8] });
    b.output(r, 'aux', { dataType: DataType.FLOAT, shape: [1, 1, 8, 8] });
  });
  await assert.rejects(Segmenter.create(multi), /2 outputs \('mask_logits' \[1, 1, 8, 8\], 'aux' \[1, 1, 8, 8\]\); choose .* --output NAME/);
  const chosen = await Segmenter.create(multi, { output: 'aux', profile: 'cpu-1t' });
  assert.equal(chosen.outputName, 'aux');
  await chosen.close();
  await assert.rejects(Segmenter.create(multi, { output: 'nope' }), /no output named 'nope'/);
  const cls = await oddModel(dir, 'classifier', (b) => {
    const x = b.input('x', DataType.FLOAT, [1, 3, 8, 8]);
    b.output(b.op('GlobalAveragePool', [x]), 'y', { dataType: DataType.FLOAT, shape: [1, 3, 1, 1] });
  });
  await assert.rejects(Segmenter.create(cls), /output 'y' has shape \[1, 3, 1, 1\], not a segmentation map/);
  const nhwc = await oddModel(dir, 'nhwc', (b) => {
    const x = b.input('x', DataType.FLOAT, [1, 8, 8, 3]);
    b.output(b.op('Identity', [x]), 'y', { dataType: DataType.FLOAT, shape: [1, 8, 8, 3] });
  });
  await assert.rejects(Segmenter.create(nhwc), /channels-last/);
});

test('a cuda profile is refused here with what was checked, never run on the CPU silently', async () => {
  const dir = tempDir();
  const p = await halfModel(dir);
  await assert.rejects(Segmenter.create(p, { profile: 'cuda' }), (e: unknown) => {
    assert.ok(e instanceof ProfileUnavailableError);
    assert.match(e.reason, /listSupportedBackends|provider/);
    return true;
  });
});

test('bad model files: one line naming the file', async () => {
  const dir = tempDir();
  const { writeFileSync } = await import('node:fs');
  const empty = join(dir, 'empty.onnx');
  writeFileSync(empty, '');
  const text = join(dir, 'text.onnx');
  writeFileSync(text, 'hello, this is not a model');
  for (const p of [empty, text, join(dir, 'missing.onnx'), dir]) {
    await assert.rejects(Segmenter.create(p, { profile: 'cpu-1t' }), (e: unknown) => {
      assert.ok(e instanceof Error && e.name === 'LesionFuseError', String(e));
      assert.ok(e.message.includes(p) && !e.message.includes('\n'), e.message);
      return true;
    });
  }
});

test('a multi-class output with a symbolic channel dimension is refused when the model is opened, not per image', async () => {
  const dir = tempDir();
  const multi = await oddModel(dir, 'multiclass', (b) => {
    const x = b.input('x', DataType.FLOAT, ['N', 3, 'H', 'W']);
    const w = b.initializer('w', floatTensor([21, 3, 1, 1], new Float32Array(63).fill(0.1)));
    b.output(b.op('Conv', [x, w], { kernel_shape: [1, 1] }), 'out', { dataType: DataType.FLOAT, shape: ['N', 'C', 'H', 'W'] });
  });
  await assert.rejects(Segmenter.create(multi, { inputSize: { height: 8, width: 8 } }), /multiclass\.onnx.*output 'out' has 21 channels at 8x8 \(declared \[N, C, H, W\]\): a multi-class map/);
  // One channel behind the same symbolic declaration opens as before.
  const one = await oddModel(dir, 'oneclass', (b) => {
    const x = b.input('x', DataType.FLOAT, ['N', 3, 'H', 'W']);
    const w = b.initializer('w', floatTensor([1, 3, 1, 1], [0.1, 0.1, 0.1]));
    b.output(b.op('Conv', [x, w], { kernel_shape: [1, 1] }), 'out', { dataType: DataType.FLOAT, shape: ['N', 'C', 'H', 'W'] });
  });
  const s = await Segmenter.create(one, { inputSize: { height: 8, width: 8 }, profile: 'cpu-1t' });
  await s.close();
});
