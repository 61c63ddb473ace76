#!/usr/bin/env node
// A bundle deployed as a user would: package MODEL, copy only the bundle folder to a new place, `npm install`
// there (the npm registry only), `npm test`, then `node run.mjs` on test images, and compare its masks with
// LesionFuse's Segmenter on the same images (pixel agreement, exact-equal count). Run after `npm run build`:
//   node bench/bundle-deploy.mjs MODEL --data ../shared/data --images 20 --out reports/package/NAME.json
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (n, d) => { const i = args.indexOf(n); return i >= 0 ? args[i + 1] : d; };
const model = args[0];
const data = resolve(opt('--data', join(root, '../shared/data')));
const nImages = Number(opt('--images', '20'));
const out = opt('--out', null);
if (!model) throw new Error('usage: node bench/bundle-deploy.mjs MODEL [--data DIR] [--images N] [--out FILE.json]');

const { packageBundle } = await import(join(root, 'dist/src/package/bundle.js'));
const { Segmenter } = await import(join(root, 'dist/src/runtime/segmenter.js'));
const { readMask } = await import(join(root, 'dist/src/runtime/image.js'));
const { cpuKind } = await import(join(root, 'dist/src/util/cpu.js'));

const work = mkdtempSync(join(tmpdir(), 'lf-deploy-'));
try {
  const b = await packageBundle({ model, profile: 'cpu-1t', out: join(work, 'made') });
  const device = join(work, 'device', basename(b.dir));
  cpSync(b.dir, device, { recursive: true });
  const t0 = Date.now();
  const install = execFileSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: device, encoding: 'utf8', env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' } });
  const installSeconds = (Date.now() - t0) / 1000;
  const test = execFileSync('npm', ['test', '--silent'], { cwd: device, encoding: 'utf8' }).trim();
  const images = readFileSync(join(data, 'splits/test.txt'), 'utf8').trim().split('\n').slice(0, nImages).map((p) => join(data, p));
  execFileSync(process.execPath, [join(device, 'run.mjs'), ...images, '--out', join(work, 'masks'), '--threads', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const seg = await Segmenter.create(model, { profile: 'cpu-1t' });
  const per = [];
  for (const img of images) {
    const want = await seg.segment(img);
    const got = await readMask(join(work, 'masks', `${basename(img).replace(/\.[^.]+$/, '')}_mask.png`));
    let same = 0;
    for (let i = 0; i < want.mask.length; i++) if ((want.mask[i] ? 1 : 0) === got.data[i]) same++;
    per.push({ image: basename(img), agreement: same / want.mask.length });
  }
  await seg.close();
  const result = {
    command: `node bench/bundle-deploy.mjs ${args.join(' ')}`,
    model, precision: b.manifest.model.precision, bundleFiles: Object.keys(b.manifest.files).length + 2,
    pinned: b.manifest.runtime.packages, npm: execFileSync('npm', ['--version'], { encoding: 'utf8' }).trim(), node: process.version,
    installSeconds, installTail: install.trim().split('\n').slice(-1)[0], npmTest: test.split('\n').filter((l) => /^(ok|FAIL)/.test(l)),
    images: per.length, identicalImages: per.filter((p) => p.agreement === 1).length, minAgreement: Math.min(...per.map((p) => p.agreement)),
    cpu: cpuKind(), loadavg: loadavg(),
  };
  console.log(JSON.stringify(result, null, 2));
  if (out) writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
} finally {
  rmSync(work, { recursive: true, force: true });
}
