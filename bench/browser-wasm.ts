/**
 * Browser latency of a model inside a web bundle's page (the `browser-wasm` profile): the model packaged with
 * `package --target web`, its page opened in headless system Chromium (Debian's chromium, driven by
 * playwright-core), and `session.run` on the bundled sample's input timed inside the page (performance.now),
 * median and p90 over --runs runs after --warmup runs. onnxruntime-web's wasm provider (SIMD), --threads threads
 * (the page is served cross-origin isolated, so threads > 1 are real); WebGPU is not used.
 *
 *   npx tsc -p . && node dist/bench/browser-wasm.js [--model default:student] [--runs 100] [--warmup 10]
 *       [--threads 1] [--out reports/browser/browser-wasm.json]
 *
 * Run it on a quiet machine: timings on a loaded one mean little.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeJsonAtomic } from '../src/util/atomic.js';
import { packageRoot } from '../src/util/paths.js';
import { packageWebBundle } from '../src/package/web.js';
import { loadProfile, threadsFor } from '../src/runtime/profiles.js';
import { machineInfo } from '../src/runtime/benchmark.js';

function arg(name: string, def?: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
}

const profile = loadProfile('browser-wasm');
const model = arg('--model', 'default:student')!;
const runs = Number(arg('--runs', '100'));
const warmup = Number(arg('--warmup', '10'));
const threads = Number(arg('--threads', String(threadsFor(profile))));
const out = arg('--out', join(packageRoot(), 'reports', 'browser', 'browser-wasm.json'))!;
for (const [k, v] of [['--runs', runs], ['--warmup', warmup], ['--threads', threads]] as const) {
  if (!Number.isInteger(v) || v < (k === '--warmup' ? 0 : 1)) throw new Error(`${k} must be a ${k === '--warmup' ? 'non-negative' : 'positive'} integer`);
}

const startLoad = loadavg().map((x) => Math.round(x * 100) / 100);
const tmp = mkdtempSync(join(tmpdir(), 'lf-browser-bench-'));
try {
  const bundle = join(tmp, 'web');
  await packageWebBundle({ model, out: bundle, webgpu: false });
  const playwright = await import('playwright-core');
  type Bench = (dir: string, o: object) => Promise<Record<string, unknown> & { latencyMs: { median: number; p90: number } }>;
  const { benchWebBundle } = (await import(pathToFileURL(join(bundle, 'tools/bench.mjs')).href)) as { benchWebBundle: Bench };
  const r = await benchWebBundle(bundle, { playwright, runs, warmup, threads });
  const result = {
    profile: { ...profile, threads },
    modelArgument: model,
    command: `node dist/bench/browser-wasm.js --model ${model} --runs ${runs} --warmup ${warmup} --threads ${threads}`,
    ...r,
    // The machine that ran the browser, with the load average at the start and the end (a busy machine shows here).
    host: { ...machineInfo(), loadAverage: { start: startLoad, end: loadavg().map((x) => Math.round(x * 100) / 100) } },
  };
  await mkdir(dirname(out), { recursive: true });
  await writeJsonAtomic(out, result);
  process.stdout.write(`${out}: ${profile.name} ${model}: median ${r.latencyMs.median.toFixed(2)} ms, p90 ${r.latencyMs.p90.toFixed(2)} ms over ${runs} runs (${threads} thread(s))\n`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
