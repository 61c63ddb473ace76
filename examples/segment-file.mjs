#!/usr/bin/env node
// Segment one image file and write its mask. Usage: node examples/segment-file.mjs [IMAGE] [OUT_MASK.png]
// In your own project, import from 'lesionfuse' instead of '../dist/src/index.js'.
import { fileURLToPath } from 'node:url';
import { Segmenter, runtime } from '../dist/src/index.js';

const image = process.argv[2] ?? fileURLToPath(new URL('../samples/images/ISIC_0000035.jpg', import.meta.url));
const out = process.argv[3] ?? 'mask.png';

const seg = await Segmenter.create('default:student', { profile: 'cpu-1t' });
try {
  const result = await seg.segment(image); // { width, height, mask (0/1), probability, warnings, ... }
  await runtime.writeMaskPng(out, result); // 0 = skin, 255 = lesion, at the image's own size
  const lesion = result.mask.reduce((s, v) => s + v, 0) / result.mask.length;
  console.log(`${image}: ${result.width} x ${result.height}, lesion ${(100 * lesion).toFixed(1)}% -> ${out}`);
} finally {
  await seg.close();
}
