import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { writeModel } from '../../src/onnx/io.js';
import { floatTensor } from '../../src/onnx/tensor.js';
import { DataType } from '../../src/onnx/ir.js';
import { segmentationMetadataProps } from '../../src/onnx/metadata.js';
import { aspectBin, buildProfile, compareProfiles, profileImages, tvdNoiseP, type AuditImage } from '../../src/runtime/audit.js';
import { main } from '../../src/cli/index.js';
import { tempDir } from './helpers.js';

/** logits = 50 - 100 R: the lesion is wherever the red channel is below one half (dark), at 64x64. */
async function darkModel(dir: string): Promise<string> {
  const b = new GraphBuilder('dark');
  const x = b.input('image', DataType.FLOAT, ['N', 3, 64, 64]);
  const w = b.initializer('w', floatTensor([1, 3, 1, 1], [-100, 0, 0]));
  const bias = b.initializer('b', floatTensor([1], [50]));
  b.output(b.op('Conv', [x, w, bias], { kernel_shape: [1, 1] }), 'logits', { dataType: DataType.FLOAT, shape: ['N', 1, 64, 64] });
  const p = join(dir, 'dark.onnx');
  await writeModel(b.build({ opset: 17, metadata: segmentationMetadataProps({ inputSize: { height: 64, width: 64 }, mean: [0, 0, 0], std: [1, 1, 1], output: 'logits' }) }), p);
  return p;
}

/** n images of light skin with a dark disk of radius r(i) at the centre. */
async function imageSet(dir: string, n: number, w: number, h: number, radius: (i: number) => number): Promise<void> {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const px = Buffer.alloc(w * h * 3);
    const r = radius(i);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const inside = (x - w / 2) ** 2 + (y - h / 2) ** 2 <= r * r;
        px.set(inside ? [90, 60, 50] : [220, 180, 160], 3 * (y * w + x));
      }
    }
    await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toFile(join(dir, `img${i}.png`));
  }
}

test('aspect groups', () => {
  assert.equal(aspectBin(1), 'square (0.95-1.05)');
  assert.equal(aspectBin(600 / 450), '4:3 (1.25-1.42)');
  assert.equal(aspectBin(768 / 560), '4:3 (1.25-1.42)');
  assert.equal(aspectBin(0.75), 'portrait (<0.95)');
});

test('audit: a planted shift (4:3 frames, small lesions) is warned on; a set like the reference is not', async () => {
  const d = tempDir('lf-audit-');
  const model = await darkModel(d);
  await imageSet(join(d, 'ref'), 12, 96, 96, (i) => 25 + (i % 5)); // lesions 21-31% of a square frame
  await imageSet(join(d, 'same'), 12, 96, 96, (i) => 26 + (i % 4));
  await imageSet(join(d, 'site'), 12, 128, 96, (i) => 6 + (i % 3)); // 4:3 frames, lesions ~1-2%
  const list = (s: string) => readdirSync(join(d, s)).map((f) => join(d, s, f));
  const ref = await profileImages(model, list('ref'), { description: 'reference', progress: false });
  assert.equal(ref.profile.n_images, 12);
  assert.equal(ref.profile.groups.aspect['square (0.95-1.05)'], 1);
  assert.equal(ref.profile.groups.lesion_size['20-40%'], 1);
  // Skin (220, 180, 160) is very light by ITA; the dark model is certain away from the lesion edge (|2p - 1| near 1).
  assert.equal(ref.profile.groups.skin_tone['very light'], 1);
  assert.ok(ref.profile.quantiles.confidence.p50 > 0.9);
  const same = await profileImages(model, list('same'), { progress: false });
  assert.deepEqual(compareProfiles(same.profile, ref.profile).filter((f) => f.warn), []);
  const site = await profileImages(model, list('site'), { progress: false });
  const findings = compareProfiles(site.profile, ref.profile);
  const warned = findings.filter((f) => f.warn).map((f) => f.what);
  assert.ok(warned.includes('aspect ratio'), warned.join('; '));
  assert.ok(warned.includes('predicted lesion size'), warned.join('; '));
  assert.ok(warned.includes('small lesions'), warned.join('; '));
  assert.ok(warned.includes('aspect ratio: 4:3 (1.25-1.42)'), warned.join('; '));
  assert.ok(!warned.includes('skin tone (ITA)'));
  const aspect = findings.find((f) => f.what === 'aspect ratio')!;
  assert.equal(aspect.shift, 1); // every image moved from square to 4:3: total variation 1
  assert.match(findings.find((f) => f.what === 'small lesions')!.message, /most predicted lesions \(100%\) cover under 5% of the frame \(validation: 0%\)/);
});

test('tvdNoiseP: how often samples from one pooled distribution differ as much', () => {
  // Every image in group x here, every one in y there: two samples of 20 from a 50/50 mix are never that far apart.
  assert.equal(tvdNoiseP({ x: 1 }, 20, { y: 1 }, 20, 1), 0);
  // Any two samples are at least 0 apart.
  assert.equal(tvdNoiseP({ x: 0.5, y: 0.5 }, 20, { x: 0.5, y: 0.5 }, 20, 0), 1);
  // A 0.2 difference between samples of 10 is common noise; between samples of 1000 it is not.
  assert.ok(tvdNoiseP({ x: 0.6, y: 0.4 }, 10, { x: 0.4, y: 0.6 }, 10, 0.2) > 0.2);
  assert.ok(tvdNoiseP({ x: 0.6, y: 0.4 }, 1000, { x: 0.4, y: 0.6 }, 1000, 0.2) < 0.01);
});

test('audit: fewer than 10 site images lists differences but warns on nothing', () => {
  const img = (aspect: number, share: number): AuditImage => ({
    path: 'x', width: 100, height: Math.round(100 / aspect), aspect, ita: 60, itaGroup: 'very light', lesionSharePercent: share, sizeGroup: share < 5 ? '<5%' : '20-40%',
    resolution: '<500 px', darkCorners: false, sticker: false, confidence: 0.9, meanLab: [60, 10, 15],
  });
  const ref = buildProfile(Array.from({ length: 20 }, () => img(1, 30)), { description: 'r', model: 'm', threshold: 0.5, failed: 0 });
  const site = buildProfile(Array.from({ length: 5 }, () => img(1.33, 2)), { description: 's', model: 'm', threshold: 0.5, failed: 0 });
  const f = compareProfiles(site, ref);
  assert.ok(f.find((x) => x.what === 'aspect ratio')!.shift === 1);
  assert.ok(f.every((x) => !x.warn));
});

test('lesionfuse audit: --write-profile, then a comparison written as audit.json/md/csv; a missing profile is one line', async () => {
  const d = tempDir('lf-audit-cli-');
  const model = await darkModel(d);
  await imageSet(join(d, 'ref'), 10, 96, 96, (i) => 25 + (i % 5));
  await imageSet(join(d, 'site'), 10, 128, 96, () => 7);
  writeFileSync(join(d, 'ref', 'broken.png'), 'not an image');
  const prof = join(d, 'data_profile.json');
  assert.equal(await main(['audit', model, '--images', join(d, 'ref'), '--write-profile', prof, '--quiet']), 3); // the broken file
  process.exitCode = 0;
  const p = JSON.parse(readFileSync(prof, 'utf8'));
  assert.equal(p.schema, 'lesionfuse.data-profile/1');
  assert.equal(p.n_images, 10);
  assert.equal(p.n_failed, 1);
  // data_profile.json beside the model is the default reference.
  const out = join(d, 'out');
  assert.equal(await main(['audit', model, '--images', join(d, 'site'), '--out', out, '--quiet']), 0);
  assert.deepEqual(readdirSync(out).sort(), ['audit.json', 'audit.md', 'audit_images.csv']);
  assert.match(readFileSync(join(out, 'audit.md'), 'utf8'), /WARNING: aspect ratio: 100% 4:3/);
  const other = join(d, 'elsewhere');
  mkdirSync(other);
  const m2 = join(other, 'm.onnx');
  writeFileSync(m2, readFileSync(model));
  assert.equal(await main(['audit', m2, '--images', join(d, 'site'), '--quiet']), 2);
  process.exitCode = 0;
});
