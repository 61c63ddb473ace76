#!/usr/bin/env node
// Evaluate: a model on a dataset folder, and existing masks (e.g. a segment output folder) against truth masks.
// Usage: node examples/evaluate.mjs [DATASET_DIR] [OUT_DIR]
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { evaluate, runtime } from '../dist/src/index.js';

const data = process.argv[2] ?? fileURLToPath(new URL('../samples', import.meta.url)); // images/ + masks/
const out = process.argv[3] ?? 'evaluation';

// 1. A model on a dataset, at the original resolution (metrics.json + per_image.csv in `out`).
const r = await evaluate({ model: 'default:student', data, profile: 'cpu-1t', out: join(out, 'model'), progress: false });
console.log(`model: ${r.n_images} images, Dice ${r.mean.dice.toFixed(3)} [${r.ci95.dice.map((x) => x.toFixed(3)).join(', ')}]`);

// 2. Masks that already exist: segment two images, then score that folder against all truth masks.
const seg = join(out, 'masks');
await runtime.segmentFiles({ model: 'default:student', inputs: [join(data, 'images', 'IMD013.jpg'), join(data, 'images', 'ISIC_0000035.jpg')], out: seg, profile: 'cpu-1t', progress: false });
const p = await runtime.evaluatePredictions({ pred: seg, truth: join(data, 'masks'), skipUnpaired: true });
console.log(`masks: ${p.n_images} paired, Dice ${p.mean.dice.toFixed(3)}; left out ${p.unpaired.truth_without_prediction} truth masks without a prediction`);
