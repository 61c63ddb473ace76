import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { buildFullFieldSet } from '../../bench/fullfield-set.js';
import { openDataset } from '../../src/runtime/dataset.js';
import { readMask } from '../../src/runtime/image.js';

/** A tiny dataset in the shared data's layout: disc lesions on skin, two ISIC test images, one HAM, one PH2. */
async function tinyData(root: string): Promise<void> {
  const rows = ['id,source,split,image,mask'];
  const make = async (id: string, source: string, split: string, w: number, h: number, r: number, maskSuffix: string): Promise<void> => {
    const img = Buffer.alloc(w * h * 3);
    const m = Buffer.alloc(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const inside = (x - w / 2) ** 2 + (y - h / 2) ** 2 < r * r;
      m[i] = inside ? 255 : 0;
      img.set(inside ? [80 + (x % 7), 50, 40] : [220, 170 + (y % 5), 150], i * 3);
    }
    await fs.mkdir(join(root, source, 'images'), { recursive: true });
    await fs.mkdir(join(root, source, 'masks'), { recursive: true });
    const image = `${source}/images/${id}.jpg`;
    const mask = `${source}/masks/${id}${maskSuffix}.png`;
    await sharp(img, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toFile(join(root, image));
    await sharp(m, { raw: { width: w, height: h, channels: 1 } }).png().toFile(join(root, mask));
    rows.push([id, source, split, image, mask].join(','));
  };
  await make('ISIC_0000001', 'isic2018', 'test', 64, 64, 20, '_segmentation');
  await make('ISIC_0000002', 'isic2018', 'test', 64, 64, 12, '_segmentation');
  await make('ISIC_0000003', 'isic2018', 'train', 64, 64, 12, '_segmentation');
  await make('ISIC_0024400', 'ham10000', 'val', 80, 60, 15, '_segmentation');
  await make('IMD001', 'ph2', 'test', 77, 56, 14, '_lesion');
  await fs.writeFile(join(root, 'MANIFEST.csv'), rows.join('\n') + '\n');
}

async function filesOf(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.set(p.slice(dir.length), await fs.readFile(p));
    }
  };
  await walk(dir);
  return out;
}

test('the full-field set is deterministic for a seed, excludes the training split, and opens as a dataset', async () => {
  const root = await fs.mkdtemp(join(tmpdir(), 'lf-ff-'));
  try {
    await tinyData(join(root, 'data'));
    const opts = { data: join(root, 'data'), seed: 3, frameWidth: 128, frameHeight: 96, artefactShare: 1 };
    const a = await buildFullFieldSet({ ...opts, out: join(root, 'a') });
    const b = await buildFullFieldSet({ ...opts, out: join(root, 'b') });
    const c = await buildFullFieldSet({ ...opts, seed: 4, out: join(root, 'c') });
    assert.equal(a.manifestSha256, b.manifestSha256);
    const fa = await filesOf(join(root, 'a'));
    const fb = await filesOf(join(root, 'b'));
    assert.deepEqual([...fa.keys()].sort(), [...fb.keys()].sort());
    for (const [k, v] of fa) assert.ok(v.equals(fb.get(k)!), `${k} differs between two runs with the same seed`);
    assert.notEqual(a.manifestSha256, c.manifestSha256);
    // the training image is not in the set; the native ones keep their size
    assert.deepEqual(a.rows.map((r) => r.id).sort(), ['IMD001', 'ISIC_0000001', 'ISIC_0000002', 'ISIC_0024400']);
    const ph2 = a.rows.find((r) => r.id === 'IMD001')!;
    assert.equal(ph2.width, 77);
    // zoom-out images: 4:3 frame, lesion share in the asked range, the written mask agrees with the manifest
    for (const r of a.rows.filter((x) => x.source === 'isic2018-zoomout')) {
      assert.equal(r.width, 128);
      assert.equal(r.height, 96);
      assert.ok(r.lesion_share > 0.015 && r.lesion_share < 0.11, `share ${r.lesion_share}`);
      const m = await readMask(join(root, 'a', r.mask));
      const share = m.data.reduce((s, v) => s + v, 0) / m.data.length;
      assert.ok(Math.abs(share - r.lesion_share) < 1e-6);
      assert.ok(r.artefact_map !== '' || r.artefacts === '');
    }
    const ds = await openDataset(join(root, 'a'), { split: 'test' });
    assert.equal(ds.items.length, 4);
    assert.equal(ds.problems.length, 0);
    // a second build into the same folder is refused unless asked
    await assert.rejects(buildFullFieldSet({ ...opts, out: join(root, 'a') }), /not empty/);
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});
