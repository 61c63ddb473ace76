#!/usr/bin/env node
// Segment a folder into masks + small overlays, with segment.json and failures.csv.
// Usage: node examples/segment-folder.mjs [FOLDER] [OUT_DIR]
import { fileURLToPath } from 'node:url';
import { runtime } from '../dist/src/index.js';

const folder = process.argv[2] ?? fileURLToPath(new URL('../samples/images', import.meta.url));
const out = process.argv[3] ?? 'segmented';

const res = await runtime.segmentFiles({
  model: 'default:student',
  inputs: [folder], // files, folders and quoted globs
  out, // new, empty, or made by segment with the same model and settings
  outputs: ['mask', 'overlay'],
  profile: 'cpu-1t',
  progress: false,
});
console.log(`${res.segmented.length} segmented, ${res.failures.length} failed; model sha256 ${res.record.model.sha256.slice(0, 12)}..., record in ${res.recordPath}`);
for (const f of res.failures) console.log(`failed: ${f.path}: ${f.reason}`);
