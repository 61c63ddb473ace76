#!/usr/bin/env node
// Run a LesionFuse edge bundle on one image with onnxruntime-node and sharp only (no LesionFuse needed).
// Usage: node run-bundle.mjs BUNDLE_DIR IMAGE OUT_MASK.png
// Writes the lesion mask (0 = skin, 255 = lesion) at the image's original size and prints a one-line summary.
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { join, sep } from 'node:path';
// onnxruntime's native library starts telemetry unless this is set before it loads: hence the dynamic import.
process.env.ORT_DISABLE_TELEMETRY = '1';
const ort = await import('onnxruntime-node');
const { default: sharp } = await import('sharp');

const [dir, imagePath, outPath] = process.argv.slice(2);
if (!dir || !imagePath || !outPath) throw new Error('usage: node run-bundle.mjs BUNDLE_DIR IMAGE OUT_MASK.png');
const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
// The manifest names the model file: it must be a regular file inside the bundle (no '..', no link out).
const modelPath = realpathSync(join(dir, String(m?.model?.file)));
if (!modelPath.startsWith(realpathSync(dir) + sep) || !statSync(modelPath).isFile()) {
  console.error(`${join(dir, 'manifest.json')}: model.file '${m?.model?.file}' is not a regular file inside the bundle`);
  process.exit(1);
}
const { height: H, width: W } = m.preprocessing.size;

// Pre-processing as the manifest says: upright (EXIF), RGB, resized to H x W, /255, minus mean, over std, NCHW.
const img = sharp(imagePath).rotate().removeAlpha().toColourspace('srgb');
const { width: origW, height: origH } = await img.clone().raw().toBuffer({ resolveWithObject: true }).then((r) => r.info);
const px = await img.resize(W, H, { fit: 'fill', kernel: 'linear' }).raw().toBuffer();
const order = m.preprocessing.channelOrder === 'BGR' ? [2, 1, 0] : [0, 1, 2];
const x = new Float32Array(3 * H * W);
for (let c = 0; c < 3; c++) {
  const s = order[c];
  for (let i = 0; i < H * W; i++) x[c * H * W + i] = (px[i * 3 + s] / 255 - m.preprocessing.mean[s]) / m.preprocessing.std[s];
}

const session = await ort.InferenceSession.create(modelPath);
const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, [1, 3, H, W]) });
const y = out[session.outputNames[0]].data;
const p = m.postprocessing.activation === 'sigmoid' ? y.map((v) => 1 / (1 + Math.exp(-v))) : y;

// Post-processing: bilinear resize (half-pixel centres) of the probability to the original size, then threshold.
const mask = Buffer.alloc(origW * origH);
let lesion = 0;
for (let oy = 0; oy < origH; oy++) {
  const fy = Math.max(0, (oy + 0.5) * (H / origH) - 0.5), y0 = Math.min(Math.floor(fy), H - 1), y1 = Math.min(y0 + 1, H - 1), ly = fy - y0;
  for (let ox = 0; ox < origW; ox++) {
    const fx = Math.max(0, (ox + 0.5) * (W / origW) - 0.5), x0 = Math.min(Math.floor(fx), W - 1), x1 = Math.min(x0 + 1, W - 1), lx = fx - x0;
    const v = (p[y0 * W + x0] * (1 - lx) + p[y0 * W + x1] * lx) * (1 - ly) + (p[y1 * W + x0] * (1 - lx) + p[y1 * W + x1] * lx) * ly;
    if (v > m.postprocessing.threshold) { mask[oy * origW + ox] = 255; lesion++; }
  }
}
await sharp(mask, { raw: { width: origW, height: origH, channels: 1 } }).toColourspace('b-w').png().toFile(outPath);
console.log(`${outPath}: ${origW} x ${origH}, lesion ${((100 * lesion) / (origW * origH)).toFixed(1)}% of the image (${m.name})`);
