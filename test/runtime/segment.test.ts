import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { expandInputs, globToRegExp, safeOutputStem, failuresCsv } from '../../src/runtime/segment.js';
import { FIXTURES, ROOT, tempDir } from './helpers.js';
import { halfModel } from './models.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'index.js');

test('segment CLI: a batch with one bad file goes on, writes failures.csv and exits 3', async () => {
  const dir = tempDir();
  const model = await halfModel(dir);
  const inp = join(dir, 'in');
  mkdirSync(join(inp, 'sub'), { recursive: true });
  copyFileSync(join(FIXTURES, 'images', 'IMD008.jpg'), join(inp, 'Läsion scan.v2.JPG'));
  copyFileSync(join(FIXTURES, 'images', 'ISIC_0000012.jpg'), join(inp, 'sub', 'a.jpg'));
  copyFileSync(join(FIXTURES, 'images', 'ISIC_0000021.jpg'), join(inp, 'a.png.jpg'));
  copyFileSync(join(FIXTURES, 'images', 'ISIC_0024321.jpg'), join(inp, 'a.jpg'));
  writeFileSync(join(inp, 'broken.jpg'), 'not an image');
  const out = join(dir, 'out');
  const r = spawnSync(process.execPath, [CLI, 'segment', model, inp, join(dir, 'missing.png'), '--out', out, '--profile', 'cpu-1t', '--batch', '2', '--outputs', 'mask,prob,overlay'], { encoding: 'utf8', env: { ...process.env, LESIONFUSE_PROGRESS: '0' } });
  assert.equal(r.status, 3, r.stderr);
  const files = readdirSync(out).sort();
  // 4 good images x 3 outputs + failures.csv + segment.json; 'a.jpg' twice -> a, a_2; 'a.png.jpg' -> a.png
  assert.deepEqual(files, [
    'Läsion_scan.v2_mask.png', 'Läsion_scan.v2_overlay.jpg', 'Läsion_scan.v2_prob.png',
    'a.png_mask.png', 'a.png_overlay.jpg', 'a.png_prob.png',
    'a_2_mask.png', 'a_2_overlay.jpg', 'a_2_prob.png',
    'a_mask.png', 'a_overlay.jpg', 'a_prob.png',
    'failures.csv', 'segment.json',
  ].sort());
  const csv = readFileSync(join(out, 'failures.csv'), 'utf8').trim().split('\n');
  assert.equal(csv[0], 'path,reason');
  assert.equal(csv.length, 3);
  assert.ok(csv.some((l) => l.includes('broken.jpg') && /not a supported image/.test(l)));
  assert.ok(csv.some((l) => l.includes('missing.png') && /no such file/.test(l)));
  // masks are 0/255 at the original size
  const m = await sharp(join(out, 'Läsion_scan.v2_mask.png')).metadata();
  assert.deepEqual([m.width, m.height, m.channels], [64, 48, 1]);
  const { data } = await sharp(join(out, 'a_mask.png')).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([...new Set(data)].sort((x, y) => x - y), [0, 255]);
  assert.match(r.stderr, /broken\.jpg: .*not a supported image/);
});

test('segment CLI: all good -> exit 0 with an empty failures.csv; eval and bench CLIs run', async () => {
  const dir = tempDir();
  const model = await halfModel(dir);
  const out = join(dir, 'o');
  const env = { ...process.env, LESIONFUSE_PROGRESS: '0' };
  const r = spawnSync(process.execPath, [CLI, 'segment', model, join(FIXTURES, 'images', 'IMD00?.jpg'), '--out', out, '--profile', 'cpu-1t', '--outputs', 'prob,mask'], { encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readdirSync(out).sort(), ['IMD008_mask.png', 'IMD008_prob.png', 'IMD009_mask.png', 'IMD009_prob.png', 'failures.csv', 'segment.json']);
  assert.equal(readFileSync(join(out, 'failures.csv'), 'utf8'), 'path,reason\n');
  const e = spawnSync(process.execPath, [CLI, 'eval', model, '--data', FIXTURES, '--profile', 'cpu-1t', '--json'], { encoding: 'utf8', env });
  assert.equal(e.status, 0, e.stderr);
  assert.equal(JSON.parse(e.stdout).n_images, 6);
  const bad = spawnSync(process.execPath, [CLI, 'eval', model], { encoding: 'utf8', env });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--data DIR/);
  const b = spawnSync(process.execPath, [CLI, 'bench', model, '--profile', 'cpu-1t', 'tensorrt', '--runs', '2', '--warmup', '1', '--batch', '2'], { encoding: 'utf8', env });
  assert.equal(b.status, 0, b.stderr);
  assert.match(b.stdout, /\| half \| cpu-1t \| 1 \|/);
  assert.match(b.stdout, /\| half \| tensorrt \| - \| skipped/);
});

test('inputs: folders walked, quoted globs with * ? and **, unmatched inputs are failures', async () => {
  const d = tempDir();
  mkdirSync(join(d, 'x', 'y'), { recursive: true });
  for (const f of ['a.JPG', 'b.png', 'notes.txt', join('x', 'c.jpg'), join('x', 'y', 'd.jpeg')]) writeFileSync(join(d, f), '');
  const folder = await expandInputs([d]);
  assert.deepEqual(folder.files.map((f) => f.slice(d.length + 1)).sort(), ['a.JPG', 'b.png', join('x', 'c.jpg'), join('x', 'y', 'd.jpeg')].sort());
  const g = await expandInputs([join(d, '*.JPG'), join(d, '?.png'), join(d, '**', '*.jp*g'), join(d, 'zz*')]);
  assert.deepEqual(g.files.map((f) => f.slice(d.length + 1)).sort(), ['a.JPG', 'b.png', join('x', 'c.jpg'), join('x', 'y', 'd.jpeg')].sort());
  assert.deepEqual(g.failures.map((f) => f.reason), ['pattern matches no files']);
  assert.ok(globToRegExp('a?c*.png').test('abcdef.png'));
  assert.ok(!globToRegExp('*.png').test('a.png.jpg'));
});

test('safe output names', () => {
  const used = new Set<string>();
  assert.equal(safeOutputStem('/x/My Scan (1).JPG', used), 'My_Scan_1');
  assert.equal(safeOutputStem('/y/my scan 1.png', used), 'my_scan_1_2'); // case-insensitive file systems
  assert.equal(safeOutputStem('/y/MY_SCAN_1.tif', used), 'MY_SCAN_1_3');
  assert.equal(safeOutputStem('/z/.hidden.jpg', used), 'hidden');
  assert.equal(safeOutputStem('/z/Hautläsion.tar.v2.bmp', used), 'Hautläsion.tar.v2');
  assert.equal(safeOutputStem('/z/???.jpg', used), 'image');
  assert.equal(safeOutputStem('/z/a/../evil.jpg', used), 'evil');
  assert.equal(failuresCsv([{ path: 'a,b.jpg', reason: 'x "y"' }]), 'path,reason\n"a,b.jpg","x ""y"""\n');
});
