import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, copyFileSync, readdirSync, writeFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeModel } from '../../src/onnx/io.js';
import { main } from '../../src/cli/index.js';
import { packageRoot } from '../../src/util/paths.js';
import { tinySegNet } from './nets.js';

test('lesionfuse quantize writes OUT and OUT.quant.json; bad options are refused with exit code 2', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-qcli-'));
  try {
    const fx = join(packageRoot(), 'test', 'fixtures');
    const data = join(dir, 'data');
    for (const d of ['images', 'masks', 'splits']) mkdirSync(join(data, d), { recursive: true });
    const imgs = readdirSync(join(fx, 'images')).sort();
    for (const f of imgs) copyFileSync(join(fx, 'images', f), join(data, 'images', f));
    for (const f of readdirSync(join(fx, 'masks'))) copyFileSync(join(fx, 'masks', f), join(data, 'masks', f));
    writeFileSync(join(data, 'splits', 'train.txt'), imgs.slice(0, 4).map((f) => `images/${f}`).join('\n'));
    writeFileSync(join(data, 'splits', 'val.txt'), imgs.slice(4).map((f) => `images/${f}`).join('\n'));
    const inPath = join(dir, 'tiny.onnx');
    await writeModel(tinySegNet(4, 'N'), inPath);
    const out = join(dir, 'tiny.int8.onnx');
    process.env.LESIONFUSE_PROGRESS = '0';
    const code = await main(['quantize', inPath, out, '--calib', data, '--gate', '0.5', '--quiet', '--exclude', 'head']);
    assert.equal(code, 0);
    assert.ok(existsSync(out));
    const rec = JSON.parse(readFileSync(`${out}.quant.json`, 'utf8'));
    assert.equal(rec.gate.passed, true);
    assert.ok(rec.floatNodes.some((f: { key: string; reason: string }) => f.key === 'head' && f.reason === 'excluded by the user'));
    assert.ok(rec.calibration.seconds > 0);
    assert.equal(await main(['quantize', inPath, join(dir, 'x.onnx'), '--calib', data, '--calibrator', 'median', '--quiet']), 2);
    assert.equal(await main(['quantize', inPath, join(dir, 'x.onnx'), '--calib', data, '--exclude', 'nope', '--quiet']), 2);
    assert.ok(!existsSync(join(dir, 'x.onnx')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('quantize --val-split all gates on an images/masks folder without splits; without it the warning names that option', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-qsplit-'));
  try {
    const fx = join(packageRoot(), 'test', 'fixtures');
    const mine = join(dir, 'mine');
    for (const d of ['images', 'masks']) {
      mkdirSync(join(mine, d), { recursive: true });
      for (const f of readdirSync(join(fx, d))) copyFileSync(join(fx, d, f), join(mine, d, f));
    }
    const inPath = join(dir, 'tiny.onnx');
    await writeModel(tinySegNet(4, 'N'), inPath);
    process.env.LESIONFUSE_PROGRESS = '0';
    const out = join(dir, 'a.int8.onnx');
    assert.equal(await main(['quantize', inPath, out, '--calib', join(fx, 'images'), '--val', mine, '--val-split', 'all', '--gate', '0.5', '--quiet', '--no-sensitivity']), 0);
    const rec = JSON.parse(readFileSync(`${out}.quant.json`, 'utf8'));
    assert.equal(rec.dice.images, readdirSync(join(fx, 'images')).length);
    assert.match(rec.dice.source, /mine \(all images\)/);

    const err: string[] = [];
    const w = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
    try {
      assert.equal(await main(['quantize', inPath, join(dir, 'b.int8.onnx'), '--calib', join(fx, 'images'), '--val', mine, '--gate', '0.5', '--no-sensitivity']), 0);
    } finally {
      process.stderr.write = w;
    }
    const text = err.join('');
    assert.match(text, /has no val split to measure Dice on .*--val-split all/);
    assert.doesNotMatch(text, /use --split all/);
    assert.equal(await main(['quantize', inPath, join(dir, 'c.onnx'), '--calib', join(fx, 'images'), '--val-split', 'some', '--quiet']), 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
