import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { distill, CHECKPOINT_FILE } from '../../src/distill/distill.js';
import { parseLossWeights } from '../../src/cli/commands/distill.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { DataType } from '../../src/onnx/ir.js';
import { readModel, writeModel } from '../../src/onnx/io.js';
import { IMAGENET_MEAN, IMAGENET_STD, readSegmentationMetadata, segmentationMetadataProps } from '../../src/onnx/metadata.js';
import { floatTensor } from '../../src/onnx/tensor.js';
import { Segmenter } from '../../src/runtime/segmenter.js';
import { decodeImage } from '../../src/runtime/image.js';

const FIX = join(process.cwd(), 'test', 'fixtures');
const S = 16;

/** A tiny teacher at 16x16: a 3x3 conv over RGB, so its logits carry real spatial structure. */
async function tinyTeacher(path: string): Promise<void> {
  const b = new GraphBuilder('tiny-teacher');
  const x = b.input('image', DataType.FLOAT, ['N', 3, S, S]);
  const w = new Float32Array(27).map((_, i) => ((i * 7) % 5) / 10 - 0.2);
  const wt = b.initializer('w', floatTensor([1, 3, 3, 3], w));
  const bt = b.initializer('b', floatTensor([1], [0.1]));
  b.output(b.op('Conv', [x, wt, bt], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }), 'logits', { dataType: DataType.FLOAT, shape: ['N', 1, S, S] });
  await writeModel(
    b.build({
      opset: 17,
      metadata: segmentationMetadataProps({ inputSize: { height: S, width: S }, mean: IMAGENET_MEAN, std: IMAGENET_STD, channelOrder: 'RGB', output: 'logits', threshold: 0.5, modelName: 'tiny-teacher' }),
    }),
    path,
  );
}

/** 4 fixture pairs for training and 2 for validation, in the images/ + masks/ layout with splits/. */
function fixtureDataset(dir: string): void {
  mkdirSync(join(dir, 'images'), { recursive: true });
  mkdirSync(join(dir, 'masks'), { recursive: true });
  mkdirSync(join(dir, 'splits'), { recursive: true });
  const pairs: [string, string][] = [
    ['ISIC_0000012.jpg', 'ISIC_0000012_segmentation.png'],
    ['ISIC_0000021.jpg', 'ISIC_0000021_segmentation.png'],
    ['IMD008.jpg', 'IMD008_lesion.png'],
    ['ISIC_0024321.jpg', 'ISIC_0024321_segmentation.png'],
    ['IMD009.jpg', 'IMD009_lesion.png'],
    ['ISIC_0024339.jpg', 'ISIC_0024339_segmentation.png'],
  ];
  for (const [img, mask] of pairs) {
    copyFileSync(join(FIX, 'images', img), join(dir, 'images', img));
    copyFileSync(join(FIX, 'masks', mask), join(dir, 'masks', mask));
  }
  writeFileSync(join(dir, 'splits', 'train.txt'), pairs.slice(0, 4).map(([i]) => `images/${i}`).join('\n') + '\n');
  writeFileSync(join(dir, 'splits', 'val.txt'), pairs.slice(4).map(([i]) => `images/${i}`).join('\n') + '\n');
}

const base = {
  student: 'ultralight' as const,
  width: 4,
  depth: 2,
  batch: 2,
  lr: 0.02,
  augment: false as const,
  progress: false,
  threads: 1,
};

test('distill: a few steps on 4 fixture images reduce the loss, write a valid student the runtime runs, and resume continues exactly', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-distill-'));
  try {
    const data = join(dir, 'data');
    fixtureDataset(data);
    const teacher = join(dir, 'teacher.onnx');
    await tinyTeacher(teacher);

    const straight = await distill({ ...base, teacher, data, out: join(dir, 'a'), epochs: 3 });
    assert.equal(straight.trainImages, 4);
    assert.equal(straight.valImages, 2);
    assert.equal(straight.steps, 6);
    assert.equal(straight.history.length, 3);
    const losses = straight.history.map((h) => h.loss);
    assert.ok(losses[2]! < losses[0]!, `loss did not go down: ${losses.join(', ')}`);
    assert.ok(straight.teacherValDice !== null && straight.teacherValDice >= 0);
    assert.ok(Object.keys(straight.history[0]!.terms).includes('loss_kd'));

    // The student: inference graph with the metadata, run by the runtime at the original image size.
    const model = await readModel(straight.studentPath);
    assert.ok(!model.graph.nodes.some((n) => n.opType === 'BatchNormalization' && n.outputs.length > 1));
    assert.ok(!model.graph.outputs.some((o) => o.name.startsWith('loss')));
    const meta = readSegmentationMetadata(model.metadata);
    assert.deepEqual(meta.inputSize, { height: S, width: S });
    assert.equal(meta.output, 'logits');
    assert.equal(meta.threshold, 0.5);
    assert.match(model.metadata['lesionfuse.teacher_sha256']!, /^[0-9a-f]{64}$/);
    assert.equal(Number(model.metadata['lesionfuse.val_dice']).toFixed(4), straight.bestValDice.toFixed(4));
    const seg = await Segmenter.create(straight.studentPath);
    const img = await decodeImage(join(FIX, 'images', 'IMD009.jpg'));
    const r = await seg.segment(img);
    assert.equal(r.width, img.width);
    assert.equal(r.height, img.height);
    assert.equal(r.mask.length, img.width * img.height);
    await seg.close();

    // Resume: stop inside epoch 2 (after 3 of 6 steps), resume == 3 epochs straight (same losses, same student).
    const outB = join(dir, 'b');
    const stopped = await distill({ ...base, teacher, data, out: outB, epochs: 3, maxSteps: 3 });
    assert.equal(stopped.steps, 3);
    assert.equal(stopped.history.length, 1);
    await assert.rejects(distill({ ...base, teacher, data, out: outB, epochs: 3 }), /--resume/);
    const resumed = await distill({ ...base, teacher, data, out: outB, epochs: 3, resume: true });
    assert.deepEqual(resumed.history.map((h) => h.loss), losses);
    assert.equal(resumed.bestValDice, straight.bestValDice);
    assert.ok(existsSync(join(outB, CHECKPOINT_FILE)));
    const wa = (await readModel(straight.studentPath)).graph.initializers;
    const wb = (await readModel(resumed.studentPath)).graph.initializers;
    assert.deepEqual(wb.map((i) => Array.from(i.values as Float32Array)), wa.map((i) => Array.from(i.values as Float32Array)));

    // --no-kd: the same student on masks alone, no teacher input, no soft labels.
    const masksOnly = await distill({ ...base, data, out: join(dir, 'c'), epochs: 1, kd: false, inputSize: { height: S, width: S } });
    assert.equal(masksOnly.teacherValDice, null);
    assert.ok(!Object.keys(masksOnly.history[0]!.terms).includes('loss_kd'));
    assert.ok(!existsSync(join(dir, 'c', 'cache')));
    const recipe = JSON.parse((await readModel(masksOnly.studentPath)).metadata['lesionfuse.recipe']!);
    assert.equal(recipe.kd, false);
    assert.ok(JSON.parse(readFileSync(join(dir, 'c', 'distill.json'), 'utf8')).steps === 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('distill: data problems stop before the first step with the list; bad options are refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-distill-bad-'));
  try {
    const data = join(dir, 'data');
    fixtureDataset(data);
    copyFileSync(join(FIX, 'images', 'IMD008.jpg'), join(data, 'images', 'orphan.jpg'));
    const teacher = join(dir, 'teacher.onnx');
    await tinyTeacher(teacher);
    await assert.rejects(distill({ ...base, teacher, data, out: join(dir, 'o'), epochs: 1 }), /orphan\.jpg/);
    assert.ok(!existsSync(join(dir, 'o', CHECKPOINT_FILE)));
    await assert.rejects(distill({ ...base, data, out: join(dir, 'o2'), epochs: 1 }), /--teacher/);
    await assert.rejects(distill({ ...base, teacher, data, out: join(dir, 'o3'), epochs: 1, student: 'resnet' }), /available: unet-small/);
    await assert.rejects(distill({ ...base, teacher, data, out: join(dir, 'o4'), epochs: 1, batch: 9, skipUnpaired: true }), /fewer than one batch/);
    assert.deepEqual(parseLossWeights('bce=1, dice=0.5,kd=2'), { bce: 1, dice: 0.5, kd: 2 });
    assert.throws(() => parseLossWeights('ce=1'), /--loss-weights/);
    assert.throws(() => parseLossWeights('kd=-1'), /--loss-weights/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A teacher made elsewhere: no lesionfuse.* metadata, input [1, 3, 16, 16] (static) or [N, 3, H, W]. */
async function externalTeacher(path: string, shape: (number | string)[]): Promise<void> {
  const b = new GraphBuilder('ext-teacher');
  const x = b.input('input', DataType.FLOAT, shape);
  const wt = b.initializer('w', floatTensor([1, 3, 3, 3], new Float32Array(27).map((_, i) => ((i * 5) % 7) / 10 - 0.3)));
  b.output(b.op('Conv', [x, wt], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }), 'out', { dataType: DataType.FLOAT, shape: [shape[0]!, 1, shape[2]!, shape[3]!] });
  await writeModel(b.build({ opset: 17 }), path);
}

test('distill: a teacher whose graph fixes its input size needs no metadata; a symbolic one takes --input-size', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-distill-ext-'));
  try {
    const data = join(dir, 'data');
    fixtureDataset(data);
    const fixedT = join(dir, 'fixed.onnx');
    await externalTeacher(fixedT, [1, 3, S, S]);
    const r = await distill({ ...base, teacher: fixedT, data, out: join(dir, 'a'), epochs: 1 });
    const student = await readModel(r.studentPath);
    assert.equal(readSegmentationMetadata(student.metadata).inputSize!.height, S);
    assert.ok(r.teacherValDice !== null);
    await assert.rejects(distill({ ...base, teacher: fixedT, data, out: join(dir, 'b'), epochs: 1, inputSize: { height: 32, width: 32 } }), /fixed at 16x16, but --input-size 32x32/);

    const dynT = join(dir, 'dyn.onnx');
    await externalTeacher(dynT, ['N', 3, 'H', 'W']);
    await assert.rejects(distill({ ...base, teacher: dynT, data, out: join(dir, 'c'), epochs: 1 }), /dyn\.onnx.*symbolic and it has no lesionfuse\.input_size; give --input-size HxW/);
    const d = await distill({ ...base, teacher: dynT, data, out: join(dir, 'd'), epochs: 1, inputSize: { height: S, width: S } });
    assert.equal(readSegmentationMetadata((await readModel(d.studentPath)).metadata).inputSize!.width, S);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
