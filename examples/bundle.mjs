#!/usr/bin/env node
// Make an edge bundle from code (model + manifest + card + a sample with its recorded output), then verify it.
// Usage: node examples/bundle.mjs [MODEL] [OUT_DIR]
import { packageBundle, verifyBundle } from '../dist/src/index.js';

const model = process.argv[2] ?? 'default:student';
const out = process.argv[3] ?? 'student-bundle';
const b = await packageBundle({ model, profile: 'cpu-1t', out });
const v = await verifyBundle(out);
console.log(`bundle ${v.name} in ${b.dir}: ${v.checks.length} checks passed; sample mask agreement ${(100 * v.sample.maskAgreement).toFixed(2)}%`);

