import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, mkdirSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { evaluate, evaluatePredictions } from '../../src/runtime/evaluate.js';
import { writeMaskPng } from '../../src/runtime/image.js';
import { FIXTURES, tempDir } from './helpers.js';
import { halfModel } from './models.js';

/** Independent reference for one image: counts and brute-force surface distances. */
function reference(pred: Uint8Array, truth: Uint8Array, w: number, h: number) {
  let tp = 0, fp = 0, fn = 0, tn = 0;
  for (let i = 0; i < pred.length; i++) {
    if (pred[i] && truth[i]) tp++; else if (pred[i]) fp++; else if (truth[i]) fn++; else tn++;
  }
  const edge = (m: Uint8Array) => {
    const pts: [number, number][] = [];
    const at = (x: number, y: number) => (x < 0 || y < 0 || x >= w || y >= h ? 0 : m[y * w + x]!);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      if (at(x, y) && (!at(x - 1, y) || !at(x + 1, y) || !at(x, y - 1) || !at(x, y + 1))) pts.push([x, y]);
    }
    return pts;
  };
  const pe = edge(pred), te = edge(truth);
  const dist = (a: [number, number][], b: [number, number][]) => a.map(([x, y]) => Math.min(...b.map(([u, v]) => Math.hypot(x - u, y - v))));
  const dp = dist(pe, te), dt = dist(te, pe);
  const all = [...dp, ...dt].sort((a, b) => a - b);
  const pos = 0.95 * (all.length - 1);
  const lo = Math.floor(pos);
  const hd95 = all[lo]! + (all[Math.min(lo + 1, all.length - 1)]! - all[lo]!) * (pos - lo);
  const P = dp.filter((d) => d <= 2).length / dp.length, R = dt.filter((d) => d <= 2).length / dt.length;
  const iou = tp / (tp + fp + fn);
  return {
    dice: (2 * tp) / (2 * tp + fp + fn), iou, thresholded_jaccard: iou < 0.65 ? 0 : iou,
    sensitivity: tp / (tp + fn), specificity: tn / (tn + fp), hd95, boundary_f: P + R ? (2 * P * R) / (P + R) : 0,
  };
}

async function truthMask(path: string) {
  const { data, info } = await sharp(path).raw().toBuffer({ resolveWithObject: true });
  const m = new Uint8Array(info.width * info.height);
  for (let i = 0; i < m.length; i++) m[i] = data[i * info.channels]! > 127 ? 1 : 0;
  return { m, w: info.width, h: info.height };
}

test('evaluate on the fixtures gives the metrics a hand computation gives', async () => {
  const dir = tempDir();
  const model = await halfModel(dir); // predicts exactly the left half (x < 32) of every 64-px-wide image
  const out = join(dir, 'eval');
  // exact resize: the step sits exactly on the threshold at column 32, a tie the hand computation settles as p > 0.5
  const res = await evaluate({ model, data: FIXTURES, split: 'all', profile: 'cpu-1t', out, progress: false, segmenter: { resize: 'exact' } });
  assert.equal(res.n_images, 6);
  assert.deepEqual(res.failures, []);
  const expected: Record<string, ReturnType<typeof reference>> = {};
  for (const f of readdirSync(join(FIXTURES, 'masks'))) {
    const { m, w, h } = await truthMask(join(FIXTURES, 'masks', f));
    const pred = new Uint8Array(w * h).map((_, i) => (i % w < 32 ? 1 : 0));
    expected[f.replace(/_(segmentation|lesion)\.png$/, '')] = reference(pred, m, w, h);
  }
  for (const row of res.per_image) {
    const e = expected[row.id]!;
    for (const k of Object.keys(e) as (keyof typeof e)[]) assert.ok(Math.abs(row[k] - e[k]) < 1e-9, `${row.id} ${k}: ${row[k]} vs ${e[k]}`);
  }
  const meanDice = Object.values(expected).reduce((s, e) => s + e.dice, 0) / 6;
  assert.ok(Math.abs(res.mean.dice - meanDice) < 1e-12);
  assert.ok(res.ci95.dice[0] <= meanDice && meanDice <= res.ci95.dice[1]);
  assert.deepEqual(Object.keys(res.per_source).sort(), ['fixtures']);
  // files written
  const json = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
  assert.equal(json.n_images, 6);
  assert.ok(Math.abs(json.mean.dice - meanDice) < 1e-12);
  assert.equal(json.ci95.iou.length, 2);
  const csv = readFileSync(join(out, 'per_image.csv'), 'utf8').trim().split('\n');
  assert.equal(csv.length, 7);
  assert.match(csv[0]!, /^id,source,width,height,dice,iou,thresholded_jaccard,sensitivity,specificity,hd95,boundary_f,ita,ita_group,lesion_share_percent,contrast_de00,dark_corner_share,coloured_share,group:skin tone \(ITA\),group:lesion size,group:resolution,group:contrast,warnings$/);
  assert.deepEqual(readdirSync(out).sort(), ['metrics.json', 'per_image.csv', 'subgroups.md']);
});

test('evaluate: subgroups from the truth masks, user groups and paired differences against a reference evaluation', async () => {
  const dir = tempDir();
  const model = await halfModel(dir);
  const first = await evaluate({ model, data: FIXTURES, split: 'all', profile: 'cpu-1t', out: join(dir, 'ref'), progress: false, minGroupN: 2 });
  // Lesion share per image from the truth mask, as the size group says.
  for (const f of readdirSync(join(FIXTURES, 'masks'))) {
    const { m } = await truthMask(join(FIXTURES, 'masks', f));
    const id = f.replace(/_(segmentation|lesion)\.png$/, '');
    const row = first.per_image.find((r) => r.id === id)!;
    const share = (100 * m.reduce((s, v) => s + v, 0)) / m.length;
    assert.ok(Math.abs(row.features!.lesion_share_percent - share) < 1e-9, `${id}: ${row.features!.lesion_share_percent} vs ${share}`);
  }
  const groupsCsv = join(dir, 'groups.csv');
  writeFileSync(groupsCsv, 'id,device\nIMD008,a\nIMD009,a\nISIC_0000012,b\nISIC_0000021,b\nISIC_0024321,b\n');
  const res = await evaluate({
    model, data: FIXTURES, split: 'all', profile: 'cpu-1t', out: join(dir, 'eval'), progress: false,
    minGroupN: 2, groups: groupsCsv, reference: join(dir, 'ref', 'metrics.json'),
  });
  const dev = res.subgroups.filter((g) => g.dimension === 'device');
  assert.deepEqual(dev.map((g) => [g.group, g.n]), [['a', 2], ['b', 3]]);
  const a = dev[0]!;
  const diceA = res.per_image.filter((r) => ['IMD008', 'IMD009'].includes(r.id)).map((r) => r.dice);
  assert.ok(Math.abs(a.dice!.mean - (diceA[0]! + diceA[1]!) / 2) < 1e-12);
  // The same model against itself: every paired difference is exactly 0.
  for (const g of res.subgroups.filter((x) => x.enough)) assert.equal(g.vs_reference!.dice.mean, 0, `${g.dimension} ${g.group}`);
  // Size groups partition the images; too-small groups carry no numbers.
  const size = res.subgroups.filter((g) => g.dimension === 'lesion size');
  assert.equal(size.reduce((s, g) => s + g.n, 0), 6);
  for (const g of size) assert.equal(g.dice === undefined, g.n < 2);
  const md = readFileSync(join(dir, 'eval', 'subgroups.md'), 'utf8');
  assert.match(md, /\*\*device\*\*/);
  assert.match(md, /Dice minus reference/);
  const strict = await evaluate({ model, data: FIXTURES, split: 'all', profile: 'cpu-1t', progress: false });
  assert.ok(strict.subgroups.filter((g) => g.dimension !== 'all').every((g) => !g.enough), 'six images: no group reaches 10');
  await assert.rejects(evaluate({ model, data: FIXTURES, split: 'all', profile: 'cpu-1t', progress: false, reference: join(dir, 'nope.json') }), /nope\.json: cannot read the reference/);
});

test('evaluate: limit, a mask of the wrong size is a failure and the rest goes on, unpaired stops first', async () => {
  const dir = tempDir();
  const model = await halfModel(dir);
  const data = join(dir, 'data');
  mkdirSync(join(data, 'images'), { recursive: true });
  mkdirSync(join(data, 'masks'), { recursive: true });
  for (const id of ['ISIC_0000012', 'ISIC_0000021']) {
    copyFileSync(join(FIXTURES, 'images', `${id}.jpg`), join(data, 'images', `${id}.jpg`));
    copyFileSync(join(FIXTURES, 'masks', `${id}_segmentation.png`), join(data, 'masks', `${id}_segmentation.png`));
  }
  await writeMaskPng(join(data, 'masks', 'ISIC_0000021_segmentation.png'), { width: 10, height: 10, data: new Uint8Array(100) });
  const res = await evaluate({ model, data, profile: 'cpu-1t', progress: false });
  assert.equal(res.n_images, 1);
  assert.equal(res.failures.length, 1);
  assert.match(res.failures[0]!.reason, /mask is 10 x 10 but its image is 64 x 64/);
  const lim = await evaluate({ model, data, profile: 'cpu-1t', progress: false, limit: 1 });
  assert.equal(lim.n_images + lim.failures.length, 1);
  writeFileSync(join(data, 'images', 'extra.jpg'), 'x');
  await assert.rejects(evaluate({ model, data, profile: 'cpu-1t', progress: false }), /1 unpaired.*extra\.jpg \(image without mask\).*--skip-unpaired/);
  const skipped = await evaluate({ model, data, profile: 'cpu-1t', progress: false, skipUnpaired: true });
  assert.equal(skipped.n_images, 1);
});

test('evaluatePredictions scores existing masks matched by id; NaN HD95 is excluded from its mean with a count', async () => {
  const dir = tempDir();
  const truth = join(dir, 'truth');
  const pred = join(dir, 'pred');
  const w = 20, h = 10;
  const sq = (x0: number) => new Uint8Array(w * h).map((_, i) => (i % w >= x0 && i % w < x0 + 5 && Math.floor(i / w) >= 2 && Math.floor(i / w) < 7 ? 1 : 0));
  await writeMaskPng(join(truth, 'ISIC_0000001_segmentation.png'), { width: w, height: h, data: sq(2) });
  await writeMaskPng(join(pred, 'ISIC_0000001.png'), { width: w, height: h, data: sq(2) });
  await writeMaskPng(join(truth, 'IMD002_lesion.png'), { width: w, height: h, data: sq(2) });
  await writeMaskPng(join(pred, 'IMD002_mask.png'), { width: w, height: h, data: new Uint8Array(w * h) });
  await writeMaskPng(join(truth, 'case3.png'), { width: w, height: h, data: sq(2) });
  await writeMaskPng(join(pred, 'orphan_segmentation.png'), { width: w, height: h, data: sq(2) });
  const res = await evaluatePredictions({ pred, truth, out: join(dir, 'out') });
  assert.equal(res.n_images, 2);
  const byId = Object.fromEntries(res.per_image.map((r) => [r.id, r]));
  assert.equal(byId.ISIC_0000001!.dice, 1);
  assert.equal(byId.ISIC_0000001!.hd95, 0);
  assert.equal(byId.IMD002!.dice, 0);
  assert.ok(Number.isNaN(byId.IMD002!.hd95));
  assert.equal(res.mean.dice, 0.5);
  assert.equal(res.mean.hd95, 0);
  assert.equal(res.n_valid.hd95, 1);
  assert.equal(res.n_valid.dice, 2);
  assert.deepEqual(res.failures.map((f) => f.reason).sort(), ['no prediction for id case3 in ' + pred, 'no truth mask for id orphan']);
  const json = JSON.parse(readFileSync(join(dir, 'out', 'metrics.json'), 'utf8'));
  assert.equal(json.per_image.find((r: { id: string }) => r.id === 'IMD002').hd95, null);
  assert.match(readFileSync(join(dir, 'out', 'per_image.csv'), 'utf8'), /IMD002,ph2,20,10,0,0,0,0,1,NaN,0,/);
});

test('evaluate refuses in one line, with the first reason, when no image could be evaluated (no table of NaN)', async () => {
  const dir = tempDir();
  const { GraphBuilder } = await import('../../src/onnx/builder.js');
  const { DataType } = await import('../../src/onnx/ir.js');
  const { floatTensor } = await import('../../src/onnx/tensor.js');
  const { writeModel } = await import('../../src/onnx/io.js');
  // Two channels from an op the SDK's shape inference does not know (com.microsoft FusedConv), so the
  // model opens and every image fails at run time.
  const b = new GraphBuilder('two-maps');
  const x = b.input('x', DataType.FLOAT, [1, 3, 8, 8]);
  const w = b.initializer('w', floatTensor([2, 3, 1, 1], new Float32Array(6).fill(0.1)));
  b.output(b.op('FusedConv', [x, w], { kernel_shape: [1, 1], activation: 'Relu' }, { domain: 'com.microsoft' }), 'out', { dataType: DataType.FLOAT, shape: [1, 'C', 8, 8] });
  const model = b.build({ opset: 17 });
  model.opsetImports.push({ domain: 'com.microsoft', version: 1 });
  const path = join(dir, 'two-maps.onnx');
  await writeModel(model, path);
  const data = join(dir, 'data');
  mkdirSync(join(data, 'images'), { recursive: true });
  mkdirSync(join(data, 'masks'), { recursive: true });
  for (const id of ['ISIC_0000012', 'ISIC_0000021']) {
    copyFileSync(join(FIXTURES, 'images', `${id}.jpg`), join(data, 'images', `${id}.jpg`));
    copyFileSync(join(FIXTURES, 'masks', `${id}_segmentation.png`), join(data, 'masks', `${id}_segmentation.png`));
  }
  await assert.rejects(evaluate({ model: path, data, progress: false }), (e: Error) => {
    assert.match(e.message, /two-maps\.onnx.*none of the 2 image\(s\) could be evaluated; the first: .*ISIC_0000012\.jpg: .*not one map per image/);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
});
