import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { benchmarkReport } from '../../src/runtime/benchmark.js';
import { tempDir } from './helpers.js';
import { halfModel } from './models.js';

test('benchmark: measured in a child process, cuda skipped with a reason, JSON + Markdown written', async () => {
  const dir = tempDir();
  const model = await halfModel(dir);
  const out = join(dir, 'bench');
  const r = await benchmarkReport({ models: [model], profiles: ['cpu-1t', 'cuda'], warmup: 1, runs: 5, throughputBatch: 4, throughputRuns: 2, out });
  assert.equal(r.results.length, 2);
  const [cpu, cuda] = r.results;
  assert.ok(cuda!.skipped);
  if (cuda!.skipped) assert.match(cuda!.reason, /cuda/);
  assert.ok(!cpu!.skipped);
  if (!cpu!.skipped) {
    assert.equal(cpu!.latencyMs.runs, 5);
    assert.ok(cpu!.latencyMs.median > 0 && cpu!.latencyMs.p90 >= cpu!.latencyMs.median);
    assert.equal(cpu!.throughput!.batch, 4);
    assert.ok(cpu!.throughput!.imagesPerSecond > 0);
    assert.ok(cpu!.peakRssBytes! > 10 * 2 ** 20, 'peak RSS of a Node process is tens of MiB');
    assert.ok(cpu!.peakRssDeltaBytes! >= 0 && cpu!.peakRssDeltaBytes! < cpu!.peakRssBytes!);
    assert.equal(cpu!.threads, 1);
    assert.match(cpu!.providerCheck!, /CPUExecutionProvider/);
    // child pid differs: the parent's own RSS is not what was reported
    assert.equal(cpu!.model.fileSizeBytes, statSync(model).size);
    assert.equal(cpu!.model.parameters, 3 + 256);
    assert.deepEqual(cpu!.model.inputSize, { height: 16, width: 16 });
  }
  assert.ok(r.machine.cpuModel.length > 0 && r.machine.logicalCores >= 1);
  assert.match(r.machine.onnxruntimeNode, /^1\.30/);
  const json = JSON.parse(readFileSync(join(out, 'bench.json'), 'utf8'));
  assert.equal(json.results.length, 2);
  const md = readFileSync(join(out, 'bench.md'), 'utf8');
  assert.match(md, /\| half \| cpu-1t \| 1 \|/);
  assert.match(md, /\| half \| cuda \| - \| skipped/);
});

test('benchmark refuses unknown profiles before any work', async () => {
  const dir = tempDir();
  await assert.rejects(benchmarkReport({ models: [await halfModel(dir)], profiles: ['cpu-1t', 'nope'] }), /unknown profile/);
});
