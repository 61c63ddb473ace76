// Browser latency of the bundled model: the model call alone (session.run on the sample's input), in
// headless Chromium, median and p90 over --runs runs after --warmup runs. Writes JSON.
//   node tools/bench.mjs [--runs 50] [--warmup 5] [--threads N] [--out bench.json]
import { writeFileSync, renameSync } from 'node:fs';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { openBundle, findChromium } from './browser.mjs';

function quantile(sorted, q) {
  const i = (sorted.length - 1) * q;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (i - lo);
}

/** Measure; returns the JSON-able result. `threads` pins the wasm thread count (default: the page's choice). */
export async function benchWebBundle(dir, { playwright, chromium = findChromium(), runs = 50, warmup = 5, threads } = {}) {
  const q = new URLSearchParams({ provider: 'wasm' });
  if (threads) q.set('threads', String(threads));
  const b = await openBundle(dir, { playwright, chromium, query: `?${q}` });
  try {
    if (b.info.error) throw new Error(`the page did not start: ${b.info.error}`);
    if (!b.info.selfCheck.ok) throw new Error(`the page's self-check failed (mask agreement ${b.info.selfCheck.agreement}): not measuring a wrong model`);
    const times = await b.page.evaluate((o) => window.lesionfuse.bench(o), { runs, warmup });
    const sorted = [...times].sort((x, y) => x - y);
    return {
      what: 'onnxruntime-web session.run latency of the bundled model on the bundled sample (preprocessing excluded), headless Chromium',
      model: { name: b.manifest.name, sha256: b.manifest.model.sha256, sizeBytes: b.manifest.model.sizeBytes, inputSize: b.manifest.preprocessing.size },
      runtime: b.manifest.runtime,
      browser: { executable: b.chromium, version: b.version, userAgent: b.info.userAgent, hardwareConcurrency: b.info.hardwareConcurrency },
      machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length },
      provider: b.info.provider,
      threads: b.info.threads,
      crossOriginIsolated: b.info.crossOriginIsolated,
      runs, warmup,
      latencyMs: { median: quantile(sorted, 0.5), p90: quantile(sorted, 0.9), min: sorted[0], max: sorted[sorted.length - 1] },
      timesMs: times,
      measuredAt: new Date().toISOString(),
    };
  } finally {
    await b.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : dflt;
  };
  const dir = resolve(fileURLToPath(new URL('..', import.meta.url)));
  const playwright = await import('playwright-core');
  const r = await benchWebBundle(dir, { playwright, runs: Number(arg('--runs', 50)), warmup: Number(arg('--warmup', 5)), threads: arg('--threads') ? Number(arg('--threads')) : undefined });
  const out = arg('--out');
  const text = JSON.stringify(r, null, 2) + '\n';
  if (out) {
    writeFileSync(`${out}.tmp`, text);
    renameSync(`${out}.tmp`, out);
    console.log(`wrote ${out}: median ${r.latencyMs.median.toFixed(2)} ms over ${r.runs} runs (${r.provider}, ${r.threads} thread(s))`);
  } else process.stdout.write(text);
}
