import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadPipelineConfig } from '../../src/pipeline/config.js';
import { runPipeline, type PipelineResult } from '../../src/pipeline/run.js';
import { verifyBundle } from '../../src/package/bundle.js';
import { packageRoot } from '../../src/util/paths.js';
import { setLogLevel } from '../../src/util/log.js';
import type { TradeoffReport } from '../../src/report/types.js';
import { writeTinySegModel } from '../package/helpers.js';
import { parseXml } from '../report/xmlcheck.js';

const fixtures = join(packageRoot(), 'test/fixtures');

function statuses(r: PipelineResult): Record<string, string> {
  return Object.fromEntries(r.steps.map((s) => [s.id, s.status]));
}

test('a tiny pipeline runs end to end, its report carries the evaluation numbers, and re-runs reuse exactly the unchanged steps', async () => {
  process.env.LESIONFUSE_PROGRESS = '0';
  setLogLevel('quiet');
  const dir = mkdtempSync(join(tmpdir(), 'lf-pipe-'));
  try {
    writeTinySegModel(join(dir, 'big.onnx'), { size: 32, weights: [-1, -1, -1], bias: 2, name: 'big' });
    writeTinySegModel(join(dir, 'small.onnx'), { size: 32, weights: [-1.2, -0.8, -1], bias: 1.5, name: 'small' });
    const config = (runs: number) => ({
      name: 'tiny',
      out: 'out',
      teacher: { model: 'big.onnx', id: 'big' },
      students: [{ model: 'small.onnx', id: 'small' }],
      rewrite: { passes: ['remove-identity', 'remove-dead'] },
      profiles: ['cpu-1t', 'cuda'],
      dataset: { path: fixtures, limit: 3 },
      benchmark: { warmup: 1, runs, throughputBatch: 1, throughputRuns: 1 },
      report: { overlays: 1 },
      select: { rule: 'fastest-within', profile: 'cpu-1t', maxDiceDrop: 1 },
      package: { tar: true },
    });
    const write = (runs: number) => writeFileSync(join(dir, 'p.yaml'), stringify(config(runs)));
    write(2);
    const r1 = await runPipeline(loadPipelineConfig(join(dir, 'p.yaml')), { command: 'test' });
    assert.deepEqual(r1.failed, []);
    const s1 = statuses(r1);
    assert.ok(Object.entries(s1).every(([, s]) => s === 'ran'), JSON.stringify(s1));
    for (const id of ['rewrite/big', 'evaluate/big-fp32', 'evaluate/small-rewritten', 'benchmark/cpu-1t', 'overlays/big-fp32']) assert.ok(id in s1, id);

    // The report's numbers are the evaluation's, as written by evaluate into metrics.json.
    const rep = JSON.parse(readFileSync(join(dir, 'out/report/report.json'), 'utf8')) as TradeoffReport;
    assert.equal(rep.candidates.length, 4);
    for (const c of rep.candidates) {
      const m = JSON.parse(readFileSync(join(dir, 'out/steps/evaluate', c.id, 'metrics.json'), 'utf8'));
      assert.equal(c.accuracy!.dice, m.mean.dice);
      assert.deepEqual(c.accuracy!.diceCi95, m.ci95.dice);
      assert.equal(c.accuracy!.iou, m.mean.iou);
      assert.equal(c.accuracy!.thresholdedJaccard, m.mean.thresholded_jaccard);
      assert.equal(c.accuracy!.nImages, 3);
      // Every candidate is timed in one interleaved run per profile; the report's numbers are that run's.
      const b = JSON.parse(readFileSync(join(dir, 'out/steps/benchmark/cpu-1t/bench.json'), 'utf8'));
      const row = b.results.find((x: { model: { path: string } }) => x.model.path === c.modelPath);
      assert.equal(row.latencyMode, 'interleaved');
      const o = rep.profiles[0]!.outcomes[c.id]!;
      assert.equal(o.status, 'measured');
      assert.equal(o.status === 'measured' && o.speed.latencyMedianMs, row.latencyMs.median);
      assert.ok(existsSync(join(dir, 'out/report', c.overlays[0]!.file)));
    }
    // Rewriting removed nothing here, so fp32 and rewritten score the same: a cross-check of the evaluation path.
    assert.equal(rep.candidates.find((c) => c.id === 'big-fp32')!.accuracy!.dice, rep.candidates.find((c) => c.id === 'big-rewritten')!.accuracy!.dice);
    parseXml(readFileSync(join(dir, 'out/report/plot-cpu-1t.svg'), 'utf8'));
    // A profile that cannot run here is listed as skipped with the reason, and is not a failure.
    const cuda = rep.profiles.find((p) => p.profile === 'cuda')!;
    assert.match(cuda.skippedReason ?? '', /\w/);
    assert.ok(Object.values(cuda.outcomes).every((o) => o.status === 'skipped'));
    assert.match(readFileSync(join(dir, 'out/report/report.md'), 'utf8'), /## Profile cuda\n\n.*\n\nSkipped: /);
    assert.ok(rep.selection?.chosen);
    assert.ok(r1.bundle && r1.bundle.tarball);
    await verifyBundle(r1.bundle.tarball);

    // Second run: everything reused.
    const r2 = await runPipeline(loadPipelineConfig(join(dir, 'p.yaml')), { command: 'test' });
    assert.ok(r2.steps.filter((s) => s.id !== 'report').every((s) => s.status === 'reused'), JSON.stringify(statuses(r2)));

    // A bundle whose files were changed after the run is not reused: the package step runs again and the
    // bundle verifies (before, the step said 'reused' while the bundle held garbage).
    writeFileSync(join(r1.bundle.dir, 'model.onnx'), 'garbage');
    const r2b = await runPipeline(loadPipelineConfig(join(dir, 'p.yaml')), { command: 'test' });
    const pk = r2b.steps.find((s) => s.id.startsWith('package/'))!;
    assert.equal(pk.status, 'ran');
    await verifyBundle(r2b.bundle!.dir);

    // A changed setting (benchmark runs) re-runs the benchmarks only.
    write(3);
    const r3 = statuses(await runPipeline(loadPipelineConfig(join(dir, 'p.yaml')), { command: 'test' }));
    for (const [id, s] of Object.entries(r3)) {
      if (id === 'report') continue;
      const expect = id.startsWith('benchmark/') || id.startsWith('package/') ? 'ran' : 'reused';
      // package re-runs only because its recorded latency changed; it may legitimately stay reused if the median is equal.
      if (id.startsWith('package/')) continue;
      assert.equal(s, expect, id);
    }

    // A changed input file (the student) re-runs that student's steps, and the interleaved benchmark (which
    // times every candidate together) only.
    writeTinySegModel(join(dir, 'small.onnx'), { size: 32, weights: [-1.1, -0.9, -1], bias: 1.4, name: 'small' });
    const r4 = statuses(await runPipeline(loadPipelineConfig(join(dir, 'p.yaml')), { command: 'test' }));
    for (const [id, s] of Object.entries(r4)) {
      if (id === 'report' || id.startsWith('package/')) continue;
      assert.equal(s, id.includes('small') || id === 'benchmark/cpu-1t' ? 'ran' : 'reused', id);
    }
  } finally {
    setLogLevel('info');
    rmSync(dir, { recursive: true, force: true });
  }
});
