import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { benchmarkReport, parseInputOption } from '../../src/runtime/benchmark.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { DataType } from '../../src/onnx/ir.js';
import { floatTensor } from '../../src/onnx/tensor.js';
import { writeModel } from '../../src/onnx/io.js';
import { ROOT, tempDir } from './helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'index.js');
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

/** A classifier with a static 1x3x20x24 input and no LesionFuse metadata (an external model). */
async function staticClassifier(dir: string): Promise<string> {
  const b = new GraphBuilder('cls');
  const x = b.input('pixel_values', DataType.FLOAT, [1, 3, 20, 24]);
  const f = b.op('Flatten', [b.op('GlobalAveragePool', [x])], { axis: 1 });
  b.output(b.op('Gemm', [f, b.initializer('fc.w', floatTensor([5, 3], new Float32Array(15).fill(0.1))), b.initializer('fc.b', floatTensor([5], [0, 1, 2, 3, 4]))], { transB: 1 }), 'logits');
  const p = join(dir, 'cls.onnx');
  await writeModel(b.build({ opset: 17 }), p);
  return p;
}

/**
 * Two real inputs: an audio-like [N, 16] chunk and a recurrent state [2, B, 4] whose B the graph leaves open
 * (or, with stateBatch 'N', names like the input's batch), plus an int64 scalar.
 */
async function statefulModel(dir: string, stateBatch = 'B'): Promise<string> {
  const b = new GraphBuilder('stateful');
  const x = b.input('input', DataType.FLOAT, ['N', 16]);
  const st = b.input('state', DataType.FLOAT, [2, stateBatch, 4]);
  const sr = b.input('sr', DataType.INT64, []);
  const scale = b.op('Cast', [sr], { to: DataType.FLOAT });
  b.output(b.op('Mul', [b.op('ReduceMean', [x], { axes: [1], keepdims: 1 }), scale]), 'out', { dataType: DataType.FLOAT, shape: ['N', 1] });
  b.output(b.op('Add', [st, b.initializer('one', floatTensor([], [1]))]), 'stateN', { dataType: DataType.FLOAT, shape: [2, stateBatch, 4] });
  const p = join(dir, `stateful-${stateBatch}.onnx`);
  await writeModel(b.build({ opset: 17 }), p);
  return p;
}

test('bench runs a non-segmentation model with a static input at its declared shape', async () => {
  const dir = tempDir();
  const model = await staticClassifier(dir);
  const r = await benchmarkReport({ models: [model], profiles: ['cpu-1t'], warmup: 0, runs: 2, throughputBatch: 4, throughputRuns: 1, isolate: false });
  const x = r.results[0]!;
  assert.ok(!x.skipped);
  if (!x.skipped) {
    assert.deepEqual(x.model.inputSize, { height: 20, width: 24 });
    assert.deepEqual(x.feeds, [{ name: 'pixel_values', type: 'float32', dims: [1, 3, 20, 24], fill: 'synthetic', batchAxes: [] }]);
    assert.equal(x.latencyMs.runs, 2);
    assert.equal(x.throughput, null);
    assert.match(x.throughputNote!, /no input of the model has a batch dimension/);
  }
});

test('bench feeds extra inputs with zeros or the --input values, and refuses an unsized dimension in one line', async () => {
  const dir = tempDir();
  const model = await statefulModel(dir);
  await assert.rejects(benchmarkReport({ models: [model], profiles: ['cpu-1t'], runs: 1, isolate: false }), (e: Error) => {
    assert.match(e.message, /stateful-B\.onnx.*input 'state' dimension 1 \('B'\) is not fixed by the model; give --input state=2xNx4/);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
  const r = await benchmarkReport({
    models: [model],
    profiles: ['cpu-1t'],
    warmup: 0,
    runs: 1,
    throughputBatch: 3,
    throughputRuns: 1,
    isolate: false,
    inputs: Object.fromEntries([parseInputOption('state=2x1x4'), parseInputOption('sr=:16000')]),
  });
  const x = r.results[0]!;
  assert.ok(!x.skipped);
  if (!x.skipped) {
    assert.deepEqual(
      x.feeds.map((f) => [f.name, f.type, f.dims, f.fill, f.batchAxes]),
      [
        ['input', 'float32', [1, 16], 'synthetic', [0]],
        ['state', 'float32', [2, 1, 4], 0, []],
        ['sr', 'int64', [], 16000, []],
      ],
    );
    assert.equal(x.throughput!.batch, 3);
  }
  await assert.rejects(benchmarkReport({ models: [model], profiles: ['cpu-1t'], isolate: false, inputs: { nope: { fill: 1 } } }), /no input 'nope' \(inputs: input, state, sr\)/);
  await assert.rejects(benchmarkReport({ models: [model], profiles: ['cpu-1t'], isolate: false, inputs: { state: { shape: [2, 1] } } }), /--input state has rank 2, the model declares rank 3/);
});

test('a state dimension named like the batch is the batch: fed 1, scaled by the throughput batch', async () => {
  const dir = tempDir();
  const model = await statefulModel(dir, 'N');
  const r = await benchmarkReport({ models: [model], profiles: ['cpu-1t'], warmup: 0, runs: 1, throughputBatch: 3, throughputRuns: 1, isolate: false });
  const x = r.results[0]!;
  assert.ok(!x.skipped);
  if (!x.skipped) {
    assert.deepEqual(x.feeds.map((f) => [f.name, f.dims, f.batchAxes]), [['input', [1, 16], [0]], ['state', [2, 1, 4], [1]], ['sr', [], []]]);
    assert.equal(x.throughput!.batch, 3, x.throughputNote);
  }
});

test('--input parsing: shape, fill, declared shape, scalar, and one-line refusals', () => {
  assert.deepEqual(parseInputOption('state=2x1x128'), ['state', { shape: [2, 1, 128] }]);
  assert.deepEqual(parseInputOption('state=2x1x128:0.5'), ['state', { shape: [2, 1, 128], fill: 0.5 }]);
  assert.deepEqual(parseInputOption('sr=:16000'), ['sr', { fill: 16000 }]);
  assert.deepEqual(parseInputOption('sr=scalar:8000'), ['sr', { shape: [], fill: 8000 }]);
  assert.throws(() => parseInputOption('state'), /--input: expected NAME=SHAPE\[:fill\]/);
  assert.throws(() => parseInputOption('state=2x0'), /must be positive integers/);
  assert.throws(() => parseInputOption('state=2x1:abc'), /fill value 'abc' of input 'state' is not a number/);
});

test('lesionfuse bench CLI: --input sizes the extra input', () => {
  const dir = tempDir();
  return statefulModel(dir).then((model) => {
    const r = spawnSync(process.execPath, [CLI, 'bench', model, '--runs', '1', '--warmup', '0', '--batch', '0', '--input', 'state=2x1x4', '--input', 'sr=:16000', '--json'], {
      encoding: 'utf8',
      env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' },
    });
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(j.results[0].feeds[1].dims, [2, 1, 4]);
  });
});

test('several models: latency comes from one interleaved run per profile, with each model\'s ratio to the first', async () => {
  const dir = tempDir();
  const model = await halfModel(dir);
  const r = await benchmarkReport({ models: [model, model], profiles: ['cpu-1t'], warmup: 1, runs: 7, throughputBatch: 0, isolate: false });
  const [a, b] = r.results;
  assert.ok(a && b && !a.skipped && !b.skipped);
  if (a.skipped || b.skipped) return;
  assert.equal(a.latencyMode, 'interleaved');
  assert.equal(b.latencyMode, 'interleaved');
  assert.equal(a.latencyMs.runs, 7);
  assert.equal(a.ratioToFirst, null);
  // The same model twice: every per-round ratio is a ratio of two positive times, and the spread is ordered.
  assert.ok(b.ratioToFirst && b.ratioToFirst.p10 > 0 && b.ratioToFirst.p10 <= b.ratioToFirst.median && b.ratioToFirst.median <= b.ratioToFirst.p90);
  assert.ok(a.latencyMs.p10! <= a.latencyMs.median && a.latencyMs.median <= a.latencyMs.p90);
  assert.equal(r.machine.loadAverage.start.length, 3);
  assert.equal(r.machine.loadAverage.end!.length, 3);
  // One model alone keeps the per-process measurement.
  const one = await benchmarkReport({ models: [model], profiles: ['cpu-1t'], warmup: 1, runs: 3, throughputBatch: 0, isolate: false });
  assert.ok(!one.results[0]!.skipped && one.results[0]!.latencyMode === 'alone');
});
