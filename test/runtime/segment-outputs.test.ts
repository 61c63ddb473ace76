import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { segmentFiles, SEGMENT_JSON, type SegmentRecord } from '../../src/runtime/segment.js';
import { Segmenter } from '../../src/runtime/segmenter.js';
import { writeMaskPng, readMask } from '../../src/runtime/image.js';
import { sha256File } from '../../src/util/hash.js';
import { VERSION } from '../../src/version.js';
import { FIXTURES, ROOT, tempDir } from './helpers.js';
import { halfModel, redModel } from './models.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'index.js');
const IMG = (n: string): string => join(FIXTURES, 'images', n);
const env = { ...process.env, LESIONFUSE_PROGRESS: '0' };
const cli = (args: string[], extraEnv: Record<string, string> = {}) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...env, ...extraEnv } });

function inputFolder(dir: string, names: string[]): string {
  const inp = join(dir, 'in');
  mkdirSync(inp, { recursive: true });
  for (const n of names) copyFileSync(IMG(n), join(inp, n));
  return inp;
}

test('segment writes only masks by default, and a segment.json saying what made them', async () => {
  const dir = tempDir();
  const model = await halfModel(dir);
  const inp = inputFolder(dir, ['IMD008.jpg', 'ISIC_0000012.jpg']);
  const out = join(dir, 'out');
  const r = cli(['segment', model, inp, '--out', out, '--profile', 'cpu-1t']);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readdirSync(out).sort(), ['IMD008_mask.png', 'ISIC_0000012_mask.png', 'failures.csv', SEGMENT_JSON]);
  const rec = JSON.parse(readFileSync(join(out, SEGMENT_JSON), 'utf8')) as SegmentRecord;
  assert.equal(rec.format, 'lesionfuse-segment/1');
  assert.equal(rec.complete, true);
  assert.equal(rec.model.sha256, await sha256File(model));
  assert.equal(rec.model.path, model);
  assert.equal(rec.model.name, 'half');
  assert.equal(rec.profile, 'cpu-1t');
  assert.equal(rec.threshold, 0.5);
  assert.equal(rec.resize, 'exact');
  assert.deepEqual(rec.input_size, { height: 16, width: 16 });
  assert.equal(rec.postprocess, null);
  assert.equal(rec.sdk_version, VERSION);
  assert.deepEqual(rec.outputs, ['mask']);
  assert.equal(rec.failures, 0);
  assert.deepEqual(rec.items, [
    { input: join(inp, 'IMD008.jpg'), width: 64, height: 48, mask: 'IMD008_mask.png' },
    { input: join(inp, 'ISIC_0000012.jpg'), width: 64, height: 64, mask: 'ISIC_0000012_mask.png' },
  ]);
  // the overlay, when asked, is small and the probability map is full size
  const o = join(dir, 'o2');
  const r2 = cli(['segment', model, IMG('IMD008.jpg'), '--out', o, '--profile', 'cpu-1t', '--outputs', 'overlay,prob']);
  assert.equal(r2.status, 0, r2.stderr);
  assert.deepEqual(readdirSync(o).sort(), ['IMD008_overlay.jpg', 'IMD008_prob.png', 'failures.csv', SEGMENT_JSON]);
  const bad = cli(['segment', model, IMG('IMD008.jpg'), '--out', join(dir, 'o3'), '--outputs', 'mask,heatmap']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--outputs: unknown output 'heatmap'/);
});

test('segment refuses a folder made by another model or with other settings, and a foreign folder, unless --overwrite', async () => {
  const dir = tempDir();
  const half = await halfModel(dir);
  const red = await redModel(dir);
  const out = join(dir, 'out');
  assert.equal(cli(['segment', half, IMG('IMD008.jpg'), '--out', out, '--profile', 'cpu-1t']).status, 0);
  const before = readFileSync(join(out, 'IMD008_mask.png'));
  const recBefore = readFileSync(join(out, SEGMENT_JSON), 'utf8');
  // another model: refused, nothing changed
  const r = cli(['segment', red, IMG('IMD008.jpg'), '--out', out, '--profile', 'cpu-1t']);
  assert.equal(r.status, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /was made by another model .*--overwrite/);
  assert.deepEqual(readFileSync(join(out, 'IMD008_mask.png')), before);
  assert.equal(readFileSync(join(out, SEGMENT_JSON), 'utf8'), recBefore);
  // same model, other threshold: refused too
  const t = cli(['segment', half, IMG('IMD008.jpg'), '--out', out, '--profile', 'cpu-1t', '--threshold', '0.3']);
  assert.equal(t.status, 2);
  assert.match(t.stderr, /other settings \(threshold 0\.5 -> 0\.3\)/);
  // same model and settings: a second run adds to the folder, keeping the first run's items
  assert.equal(cli(['segment', half, IMG('ISIC_0000012.jpg'), '--out', out, '--profile', 'cpu-1t']).status, 0);
  const rec = JSON.parse(readFileSync(join(out, SEGMENT_JSON), 'utf8')) as SegmentRecord;
  assert.deepEqual(rec.items.map((i) => i.mask), ['IMD008_mask.png', 'ISIC_0000012_mask.png']);
  // --overwrite: the other model's run is recorded alone
  const w = cli(['segment', red, IMG('IMD008.jpg'), '--out', out, '--profile', 'cpu-1t', '--overwrite']);
  assert.equal(w.status, 0, w.stderr);
  const rec2 = JSON.parse(readFileSync(join(out, SEGMENT_JSON), 'utf8')) as SegmentRecord;
  assert.equal(rec2.model.sha256, await sha256File(red));
  assert.deepEqual(rec2.items.map((i) => i.mask), ['IMD008_mask.png']);
  // a folder holding someone's files
  const mine = join(dir, 'mine');
  mkdirSync(mine);
  writeFileSync(join(mine, 'thesis.txt'), 'x');
  const f = cli(['segment', half, IMG('IMD008.jpg'), '--out', mine]);
  assert.equal(f.status, 2);
  assert.match(f.stderr, /mine: holds files not made by `lesionfuse segment`/);
  assert.deepEqual(readdirSync(mine), ['thesis.txt']);
});

test('segment refuses --out inside an input folder, and never reads its own outputs through a glob', async () => {
  const dir = tempDir();
  const model = await halfModel(dir);
  const inp = inputFolder(dir, ['IMD008.jpg']);
  const r = cli(['segment', model, inp, '--out', join(inp, 'masks')]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--out: the output folder is inside the input folder/);
  assert.ok(!existsSync(join(inp, 'masks')));
  // a glob over a parent that holds the output folder
  const out = join(dir, 'seg');
  assert.equal(cli(['segment', model, IMG('IMD008.jpg'), '--out', out, '--profile', 'cpu-1t']).status, 0);
  const g = cli(['segment', model, join(dir, '**', '*.png'), join(dir, '**', '*.jpg'), '--out', out, '--profile', 'cpu-1t', '--json']);
  assert.equal(g.status, 3, g.stderr); // the .png pattern finds only the output folder's masks, which are left out
  const res = JSON.parse(g.stdout) as { segmented: { input: string }[]; failures: { path: string; reason: string }[] };
  assert.deepEqual(res.segmented.map((s) => s.input), [join(inp, 'IMD008.jpg')]);
  assert.deepEqual(res.failures, [{ path: join(dir, '**', '*.png'), reason: 'pattern matches no files' }]);
});

test('segment: the output folder is made and checked before the model is opened (one line, no temp folder left)', async () => {
  const dir = tempDir();
  const model = await halfModel(dir);
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp);
  // a parent that cannot hold folders (even for root): /sys is read-only
  const r = cli(['segment', model, IMG('IMD008.jpg'), '--out', '/sys/lesionfuse-test/out'], { TMPDIR: tmp });
  assert.equal(r.status, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /\/sys\/lesionfuse-test\/out: cannot create the output folder: permission denied/);
  assert.deepEqual(readdirSync(tmp), []); // no lf-ortprof-* folder
  // a parent that is a file
  writeFileSync(join(dir, 'file'), 'x');
  const p = cli(['segment', model, IMG('IMD008.jpg'), '--out', join(dir, 'file', 'out')], { TMPDIR: tmp });
  assert.equal(p.status, 2);
  assert.match(p.stderr, /file\/out: .*a parent is not a folder/);
  // failures.csv cannot be written: refused before any image is segmented
  const out = join(dir, 'out');
  mkdirSync(join(out, 'failures.csv'), { recursive: true });
  const w = cli(['segment', model, IMG('IMD008.jpg'), '--out', out, '--overwrite'], { TMPDIR: tmp });
  assert.equal(w.status, 2);
  assert.match(w.stderr, /failures\.csv: cannot write in the output folder/);
  assert.deepEqual(readdirSync(out), ['failures.csv']);
  assert.deepEqual(readdirSync(tmp), []);
});

test('segment: order and failures kept under concurrency, a failed write leaves no partial outputs', async () => {
  const dir = tempDir();
  const model = await halfModel(dir);
  const inp = join(dir, 'in');
  mkdirSync(inp);
  const names = ['a.jpg', 'b.jpg', 'c-broken.jpg', 'd.jpg', 'e.jpg', 'f-broken.png', 'g.jpg', 'h.jpg'];
  const srcs = ['IMD008.jpg', 'IMD009.jpg', '', 'ISIC_0000012.jpg', 'ISIC_0000021.jpg', '', 'ISIC_0024321.jpg', 'ISIC_0024339.jpg'];
  names.forEach((n, k) => (srcs[k] ? copyFileSync(IMG(srcs[k]!), join(inp, n)) : writeFileSync(join(inp, n), 'broken')));
  const out = join(dir, 'out');
  // the probability map of g cannot be written (a folder is in the way): g's mask must not stay behind
  mkdirSync(join(out, 'g_prob.png'), { recursive: true });
  const res = await segmentFiles({ model, inputs: [inp, join(dir, 'nothing-here.jpg')], out, profile: 'cpu-1t', batchSize: 3, writeConcurrency: 3, prefetch: 5, outputs: ['mask', 'prob'], overwrite: true, progress: false });
  assert.deepEqual(res.segmented.map((s) => s.input.slice(inp.length + 1)), ['a.jpg', 'b.jpg', 'd.jpg', 'e.jpg', 'h.jpg']);
  assert.deepEqual(res.failures.map((f) => f.path.slice(dir.length + 1)), ['nothing-here.jpg', 'in/c-broken.jpg', 'in/f-broken.png', 'in/g.jpg']);
  assert.match(res.failures[3]!.reason, /could not write outputs/);
  const csv = readFileSync(join(out, 'failures.csv'), 'utf8').trim().split('\n').slice(1);
  assert.deepEqual(csv.map((l) => l.split(',')[0]!.slice(dir.length + 1)), ['nothing-here.jpg', 'in/c-broken.jpg', 'in/f-broken.png', 'in/g.jpg']);
  assert.ok(!existsSync(join(out, 'g_mask.png')));
  assert.ok(statSync(join(out, 'g_prob.png')).isDirectory());
  assert.deepEqual(res.record.items.map((i) => i.mask), ['a_mask.png', 'b_mask.png', 'd_mask.png', 'e_mask.png', 'h_mask.png']);
  // each mask is its own image's (sizes differ between the inputs) and is the half model's left half
  for (const s of res.segmented) {
    const meta = await sharp(s.input).metadata();
    const m = await readMask(s.mask!);
    assert.deepEqual([m.width, m.height], [meta.width, meta.height]);
    for (let y = 0; y < m.height; y++) for (let x = 0; x < m.width; x++) assert.equal(m.data[y * m.width + x], x < m.width / 2 ? 1 : 0);
  }
});

test('segment follows symbolic links to images in a folder; --quiet prints no progress', async () => {
  const dir = tempDir();
  const model = await halfModel(dir);
  const inp = join(dir, 'links');
  mkdirSync(inp);
  symlinkSync(IMG('IMD008.jpg'), join(inp, 'linked.jpg'));
  symlinkSync(join(dir, 'missing.jpg'), join(inp, 'dangling.jpg'));
  const out = join(dir, 'out');
  const noisy = cli(['segment', model, inp, '--out', out, '--profile', 'cpu-1t'], { LESIONFUSE_PROGRESS: '1' });
  assert.equal(noisy.status, 0, noisy.stderr);
  assert.deepEqual(readdirSync(out).sort(), ['failures.csv', 'linked_mask.png', SEGMENT_JSON]);
  assert.match(noisy.stderr, /segment 1\/1 .*images\/s/);
  const quiet = cli(['segment', model, inp, '--out', join(dir, 'q'), '--profile', 'cpu-1t', '--quiet'], { LESIONFUSE_PROGRESS: '1' });
  assert.equal(quiet.status, 0, quiet.stderr);
  assert.equal(quiet.stderr, '');
});

test('the result of Segmenter.segment() fits writeMaskPng; a buffer segments like its file', async () => {
  const dir = tempDir();
  const seg = await Segmenter.create(await halfModel(dir), { profile: 'cpu-1t' });
  try {
    const r = await seg.segment(IMG('IMD009.jpg'));
    await writeMaskPng(join(dir, 'm.png'), r);
    const m = await readMask(join(dir, 'm.png'));
    assert.deepEqual(m.data, r.mask);
    const b = await seg.segment(readFileSync(IMG('IMD009.jpg')));
    assert.deepEqual(b.mask, r.mask);
    await assert.rejects(seg.segment(Buffer.from('nope')), /image bytes: not a supported image/);
  } finally {
    await seg.close();
  }
});

test('eval --pred works on a segment output folder: only masks, paired by id, --skip-unpaired scores the overlap', async () => {
  const dir = tempDir();
  const model = await halfModel(dir);
  const out = join(dir, 'out');
  const four = ['IMD008.jpg', 'ISIC_0000012.jpg', 'ISIC_0000021.jpg', 'ISIC_0024321.jpg'];
  const inp = inputFolder(dir, four);
  const s = cli(['segment', model, inp, '--out', out, '--profile', 'cpu-1t', '--outputs', 'mask,prob,overlay']);
  assert.equal(s.status, 0, s.stderr);
  const truth = join(FIXTURES, 'masks'); // 6 truth masks: 2 have no prediction
  const strict = cli(['eval', '--pred', out, '--truth', truth, '--json']);
  assert.equal(strict.status, 3, strict.stderr);
  const rs = JSON.parse(strict.stdout);
  assert.equal(rs.n_images, 4);
  assert.deepEqual(rs.failures.map((f: { reason: string }) => f.reason.replace(/ in .*/, '')).sort(), ['no prediction for id IMD009', 'no prediction for id ISIC_0024339']);
  const skip = cli(['eval', '--pred', out, '--truth', truth, '--json', '--skip-unpaired']);
  assert.equal(skip.status, 0, skip.stderr);
  const r = JSON.parse(skip.stdout);
  assert.equal(r.n_images, 4);
  assert.deepEqual(r.failures, []);
  assert.deepEqual(r.unpaired, { truth_without_prediction: 2, prediction_without_truth: 0 });
  assert.match(skip.stderr, /left out 2 truth mask\(s\) without a prediction and 0 prediction\(s\) without truth/);
  // the scores are those of the masks against the truth (Dice computed here from the files)
  for (const row of r.per_image as { id: string; dice: number }[]) {
    const p = await readMask(join(out, `${row.id}_mask.png`));
    const tName = readdirSync(truth).find((n) => n.startsWith(row.id + '_'))!;
    const t = await readMask(join(truth, tName));
    let inter = 0, sum = 0;
    for (let i = 0; i < p.data.length; i++) { inter += p.data[i]! & t.data[i]!; sum += p.data[i]! + t.data[i]!; }
    assert.ok(Math.abs(row.dice - (2 * inter) / sum) < 1e-12, row.id);
  }
  // a folder from another tool with _prob and _overlay files beside the masks: only the masks are read
  const other = join(dir, 'other');
  mkdirSync(other);
  copyFileSync(join(out, 'IMD008_mask.png'), join(other, 'IMD008_mask.png'));
  copyFileSync(join(out, 'IMD008_prob.png'), join(other, 'IMD008_prob.png'));
  copyFileSync(join(out, 'IMD008_overlay.jpg'), join(other, 'IMD008_overlay.jpg'));
  const o = cli(['eval', '--pred', other, '--truth', truth, '--json', '--skip-unpaired']);
  assert.equal(o.status, 0, o.stderr);
  assert.equal(JSON.parse(o.stdout).n_images, 1);
});
