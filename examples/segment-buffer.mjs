#!/usr/bin/env node
// Segment image bytes already in memory (an upload, a camera frame...). Usage: node examples/segment-buffer.mjs [IMAGE]
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Segmenter } from '../dist/src/index.js';

const image = process.argv[2] ?? fileURLToPath(new URL('../samples/images/IMD013.jpg', import.meta.url));
const bytes = await readFile(image); // a Buffer; any Uint8Array works

const seg = await Segmenter.create('default:student', { profile: 'cpu-1t' });
try {
  const r = await seg.segment(bytes);
  // the probability map at the model's resolution is always there; `r.probability` (full size) is made on first use
  const { width: w, height: h, data } = r.modelProbability;
  const peak = data.reduce((m, p) => Math.max(m, p), 0);
  console.log(`${bytes.length} bytes -> ${r.width} x ${r.height} mask; model map ${w} x ${h}, highest probability ${peak.toFixed(3)}`);
} finally {
  await seg.close();
}
