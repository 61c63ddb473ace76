#!/usr/bin/env node
// Benchmark a model under profiles (latency percentiles; profiles this machine cannot run are skipped with the reason).
// Usage: node examples/benchmark.mjs [MODEL] [RUNS]
import { benchmark } from '../dist/src/index.js';

const model = process.argv[2] ?? 'default:student';
const runs = Number(process.argv[3] ?? 3);
const results = await benchmark({ models: [model], profiles: ['cpu-1t', 'tensorrt'], runs, warmup: 1, throughputBatch: 0, isolate: false });
for (const r of results) {
  if (r.skipped) console.log(`${r.profile.name}: skipped (${r.reason})`);
  else console.log(`${r.profile.name}: median ${r.latencyMs.median.toFixed(1)} ms over ${runs} runs`);
}
