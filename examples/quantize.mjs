#!/usr/bin/env node
// Quantize a model to INT8 (QDQ) with calibration images, and save it.
// Usage: node examples/quantize.mjs [MODEL] [CALIB_DIR] [OUT.onnx]
import { fileURLToPath } from 'node:url';
import { loadModel, writeModel, quantize, resolveModelPath } from '../dist/src/index.js';

const model = process.argv[2] ?? 'default:student';
const calib = process.argv[3] ?? fileURLToPath(new URL('../samples/images', import.meta.url));
const out = process.argv[4] ?? 'student.int8.onnx';

const float = await loadModel(resolveModelPath(model));
// no val split here: the Dice gate needs masks (val: a dataset folder with a val split); sensitivity off to keep it quick
const q = await quantize(float, { calib, calibLimit: 4, sensitivity: 'off' });
await writeModel(q.model, out);
console.log(`${q.quantizedNodes.length} nodes in INT8, ${q.floatNodes.length} kept in float; calibration on ${q.calibration.images} images; gate: ${q.gate.verdict} -> ${out}`);
