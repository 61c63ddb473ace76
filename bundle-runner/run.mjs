#!/usr/bin/env node
// Runs this LesionFuse edge bundle: images (or folders of images) in, lesion masks out, with the same
// pre-processing, threshold and post-processing as LesionFuse's Segmenter (its runtime files are in lib/).
//
//   node run.mjs IMAGE_OR_FOLDER... --out DIR [--pubkey SIGNER.pub.pem] [--threads N]
//
// Before anything runs, every file of the bundle is checked against CHECKSUMS.sha256 and manifest.json, and
// with --pubkey the manifest's Ed25519 signature too. Writes DIR/<name>_mask.png (0 = skin, 255 = lesion, the
// image's original size) per image; a bad image is reported in one line and the batch goes on (exit 1 at the end).
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const lib = (p) => import(new URL(`./lib/${p}`, import.meta.url).href); // lib/util/ort.js turns telemetry off first

function usage(msg) {
  if (msg) console.error(`error: ${msg}`);
  console.error('usage: node run.mjs IMAGE_OR_FOLDER... --out DIR [--pubkey SIGNER.pub.pem] [--threads N]');
  process.exit(2);
}

const args = process.argv.slice(2);
const inputs = [];
let out = null;
let pubkeyPath = null;
let threads = null;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--out') out = args[++i];
  else if (a === '--pubkey') pubkeyPath = args[++i];
  else if (a === '--threads') threads = Number(args[++i]);
  else if (a === '--help' || a === '-h') usage();
  else if (a.startsWith('--')) usage(`unknown option ${a}`);
  else inputs.push(a);
}
if (!inputs.length) usage('give at least one image or folder');
if (!out) usage('--out DIR is required');
if (threads !== null && !(Number.isInteger(threads) && threads > 0)) usage('--threads takes a whole number above 0');

const { LesionFuseError, describeError } = await lib('util/errors.js');
try {
  const { checkBundleFiles } = await lib('package/integrity.js');
  const { loadPublicKey } = await lib('package/signing.js');
  const pubkey = pubkeyPath ? loadPublicKey(pubkeyPath) : undefined;
  const { manifest, modelFile, checks } = await checkBundleFiles(here, basename(here), pubkey ? { pubkey } : {});
  console.error(`bundle ${manifest.name}: ${checks.join('; ')}`);
  // Only now load the code that runs the model: a changed file has been refused above.
  const { Segmenter } = await lib('runtime/segmenter.js');
  const { IMAGE_EXTENSIONS, writeMaskPng } = await lib('runtime/image.js');

  // Images: files as given; folders: their image files (by extension), sorted, not recursing.
  const files = [];
  for (const p of inputs) {
    let st;
    try { st = statSync(p); } catch { console.error(`error: ${p}: no such file or folder`); process.exitCode = 1; continue; }
    if (st.isDirectory()) {
      const found = readdirSync(p).filter((f) => IMAGE_EXTENSIONS.includes(extname(f).toLowerCase())).sort().map((f) => join(p, f));
      if (!found.length) { console.error(`error: ${p}: no images (${IMAGE_EXTENSIONS.join(' ')})`); process.exitCode = 1; }
      files.push(...found);
    } else files.push(p);
  }
  mkdirSync(out, { recursive: true });
  const profile = { ...manifest.profileDetails, ...(threads ? { threads } : {}) };
  const seg = await Segmenter.create(modelFile, { profile });
  let ok = 0;
  const seen = new Set();
  try {
    for (const f of files) {
      let stem = basename(f, extname(f));
      while (seen.has(stem)) stem += '_';
      seen.add(stem);
      try {
        const r = await seg.segment(f);
        const target = join(out, `${stem}_mask.png`);
        if (existsSync(target) && resolve(target) === resolve(f)) throw new LesionFuseError('would overwrite its own input', { subject: f });
        await writeMaskPng(target, { width: r.width, height: r.height, data: r.mask });
        let lesion = 0;
        for (let i = 0; i < r.mask.length; i++) lesion += r.mask[i] ? 1 : 0;
        console.log(`${target}: ${r.width} x ${r.height}, lesion ${((100 * lesion) / r.mask.length).toFixed(1)}% of the image`);
        ok++;
      } catch (err) {
        console.error(`error: ${describeError(err)}`);
        process.exitCode = 1;
      }
    }
  } finally {
    await seg.close();
  }
  console.error(`${ok} of ${files.length} images segmented into ${out}${process.exitCode ? " (some inputs failed: see above)" : ""}`);
} catch (err) {
  console.error(`error: ${describeError(err)}`);
  process.exit(err instanceof LesionFuseError ? 2 : 1);
}
