import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { openDataset, assertPaired, parseCsvLine } from '../../src/runtime/dataset.js';
import { LesionFuseError } from '../../src/util/errors.js';
import { SHARED_DATA, tempDir } from './helpers.js';

function touch(p: string) {
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, 'x');
}

test('shared data manifest layout: split counts equal the lines of splits/*.txt', { skip: !existsSync(join(SHARED_DATA, 'MANIFEST.csv')) }, async () => {
  for (const split of ['train', 'val', 'test'] as const) {
    const lines = readFileSync(join(SHARED_DATA, 'splits', `${split}.txt`), 'utf8').split('\n').filter((l) => l.trim());
    const ds = await openDataset(SHARED_DATA, { split });
    assert.equal(ds.layout, 'lesionfuse-manifest');
    assert.equal(ds.items.length, lines.length, split);
    assert.deepEqual(ds.problems, []);
    assert.deepEqual(new Set(ds.items.map((i) => i.split)), new Set([split]));
  }
  const ph2 = await openDataset(SHARED_DATA, { split: 'test', sources: ['ph2'] });
  assert.ok(ph2.items.length > 0 && ph2.items.every((i) => i.source === 'ph2' && i.maskPath.endsWith('_lesion.png')));
  const all = await openDataset(SHARED_DATA, { split: 'all' });
  assert.equal(all.items.length, readFileSync(join(SHARED_DATA, 'MANIFEST.csv'), 'utf8').trim().split('\n').length - 1);
  assert.deepEqual(new Set(all.items.map((i) => i.source)), new Set(['isic2018', 'ham10000', 'ph2']));
  await assert.rejects(openDataset(SHARED_DATA, { sources: ['nope'] }), /unknown source/);
});

test('ISIC challenge folders: images and masks in sibling folders, unpaired listed', async () => {
  const d = tempDir();
  touch(join(d, 'ISIC2018_Task1-2_Training_Input', 'ISIC_0000001.jpg'));
  touch(join(d, 'ISIC2018_Task1-2_Training_Input', 'ISIC_0000002.jpg'));
  touch(join(d, 'ISIC2018_Task1-2_Training_Input', 'ISIC_0000003.jpg'));
  touch(join(d, 'ISIC2018_Task1_Training_GroundTruth', 'ISIC_0000001_segmentation.png'));
  touch(join(d, 'ISIC2018_Task1_Training_GroundTruth', 'ISIC_0000002_segmentation.png'));
  touch(join(d, 'ISIC2018_Task1_Training_GroundTruth', 'ISIC_0000009_segmentation.png'));
  touch(join(d, 'ISIC2018_Task1-2_Training_Input', 'LICENSE.txt'));
  const ds = await openDataset(d);
  assert.equal(ds.layout, 'isic');
  assert.deepEqual(ds.items.map((i) => i.id), ['ISIC_0000001', 'ISIC_0000002']);
  assert.ok(ds.items[0]!.maskPath.endsWith('ISIC_0000001_segmentation.png'));
  assert.deepEqual(ds.problems.map((p) => p.reason).sort(), ['image without mask', 'mask without image']);
  assert.throws(() => assertPaired(ds), (e: unknown) => e instanceof LesionFuseError && /2 unpaired.*ISIC_0000003\.jpg \(image without mask\).*--skip-unpaired/.test(e.message) && !e.message.includes('\n'));
  assert.doesNotThrow(() => assertPaired(ds, true));
  await assert.rejects(openDataset(d, { split: 'test' }), /no train\/val\/test split.*--split all/);
  // same folder form
  const s = tempDir();
  touch(join(s, 'ISIC_0000005.jpg'));
  touch(join(s, 'ISIC_0000005_segmentation.png'));
  assert.equal((await openDataset(s)).items.length, 1);
});

test('PH2 folders: nested BMP form and flat form', async () => {
  const d = tempDir();
  for (const id of ['IMD002', 'IMD003']) {
    touch(join(d, 'PH2 Dataset images', id, `${id}_Dermoscopic_Image`, `${id}.bmp`));
    touch(join(d, 'PH2 Dataset images', id, `${id}_lesion`, `${id}_lesion.bmp`));
    touch(join(d, 'PH2 Dataset images', id, `${id}_roi`, `${id}_R1.bmp`));
  }
  const ds = await openDataset(d);
  assert.equal(ds.layout, 'ph2');
  assert.deepEqual(ds.items.map((i) => [i.id, i.source]), [['IMD002', 'ph2'], ['IMD003', 'ph2']]);
  assert.ok(ds.items[1]!.maskPath.endsWith(join('IMD003_lesion', 'IMD003_lesion.bmp')));
  assert.deepEqual(ds.problems, []);
  const f = tempDir();
  touch(join(f, 'IMD100.jpg'));
  touch(join(f, 'IMD100_lesion.png'));
  const flat = await openDataset(f);
  assert.equal(flat.layout, 'ph2');
  assert.equal(flat.items.length, 1);
});

test('images/ + masks/ pairs by stem, at the root or one per sub-folder', async () => {
  const d = tempDir();
  touch(join(d, 'images', 'a.jpg'));
  touch(join(d, 'images', 'b.v2.PNG'));
  touch(join(d, 'images', 'c.jpg'));
  touch(join(d, 'masks', 'a_mask.png'));
  touch(join(d, 'masks', 'b.v2.png'));
  touch(join(d, 'masks', 'z_segmentation.png'));
  const ds = await openDataset(d);
  assert.equal(ds.layout, 'images-masks');
  assert.deepEqual(ds.items.map((i) => i.id), ['a', 'b.v2']);
  assert.deepEqual(ds.problems.map((p) => p.reason).sort(), ['image without mask', 'mask without image']);
  const n = tempDir();
  touch(join(n, 'clinicA', 'images', 'x.jpg'));
  touch(join(n, 'clinicA', 'masks', 'x_lesion.png'));
  touch(join(n, 'clinicB', 'images', 'y.jpg'));
  touch(join(n, 'clinicB', 'masks', 'y.png'));
  const nested = await openDataset(n);
  assert.deepEqual(nested.items.map((i) => [i.id, i.source]), [['x', 'clinicA'], ['y', 'clinicB']]);
});

test('missing folder, a file, an empty folder: clear errors', async () => {
  const d = tempDir();
  await assert.rejects(openDataset(join(d, 'nope')), /no such folder/);
  writeFileSync(join(d, 'f.txt'), 'x');
  await assert.rejects(openDataset(join(d, 'f.txt')), /not a folder/);
  mkdirSync(join(d, 'empty'));
  await assert.rejects(openDataset(join(d, 'empty')), /no dataset layout found/);
});

test('manifest rows whose files are missing are problems', async () => {
  const d = tempDir();
  touch(join(d, 'src1', 'images', 'A.jpg'));
  touch(join(d, 'src1', 'masks', 'A_segmentation.png'));
  touch(join(d, 'src1', 'images', 'B.jpg'));
  writeFileSync(join(d, 'MANIFEST.csv'), 'id,source,split,image,mask,note\nA,src1,test,src1/images/A.jpg,src1/masks/A_segmentation.png,"x, y"\nB,src1,test,src1/images/B.jpg,src1/masks/B_segmentation.png,\n');
  const ds = await openDataset(d);
  assert.deepEqual(ds.items.map((i) => i.id), ['A']);
  assert.equal(ds.problems.length, 1);
  assert.match(ds.problems[0]!.reason, /image without mask/);
  // a missing file of another split does not stop work on this one
  writeFileSync(join(d, 'MANIFEST.csv'), 'id,source,split,image,mask\nA,src1,test,src1/images/A.jpg,src1/masks/A_segmentation.png\nB,src1,train,src1/images/B.jpg,src1/masks/B_segmentation.png\n');
  assert.deepEqual((await openDataset(d, { split: 'test' })).problems, []);
  assert.equal((await openDataset(d, { split: 'train' })).problems.length, 1);
});

test('CSV quoting', () => {
  assert.deepEqual(parseCsvLine('a,"b,c","d ""q"""'), ['a', 'b,c', 'd "q"']);
});
