import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Model } from '../../src/onnx/ir.js';
import { readModel, writeModel } from '../../src/onnx/io.js';
import { checkParity, defaultParityImageDir } from '../../src/export/parity.js';
import { rewriteFile } from '../../src/export/file.js';
import { rewrite } from '../../src/export/rewrite.js';
import type { Pass } from '../../src/export/pass.js';
import { main } from '../../src/cli/index.js';
import { packageRoot } from '../../src/util/paths.js';
import { Net, randomTensor } from './helpers.js';

const FIXTURES = join(packageRoot(), 'test', 'fixtures', 'images');

/** A tiny segmentation net at 32x32 with a BatchNorm and an Identity for the default passes to remove. */
function tinySeg(): Model {
  const n = new Net();
  const x = n.input('image', [1, 3, 32, 32]);
  const c = n.op('Conv', [n.op('Identity', [x]), n.init('w', randomTensor([4, 3, 3, 3], 1, 0.5)), n.init('b', randomTensor([4], 2, 0.1))], { pads: [1, 1, 1, 1] });
  const bn = n.op('BatchNormalization', [
    c,
    n.init('g', randomTensor([4], 3, 0.2, 1)),
    n.init('be', randomTensor([4], 4, 0.1)),
    n.init('mu', randomTensor([4], 5, 0.1)),
    n.init('var', randomTensor([4], 6, 0.2, 0.8)),
  ]);
  const r = n.op('Relu', [bn]);
  n.output(n.op('Conv', [r, n.init('w2', randomTensor([1, 4, 1, 1], 7)), n.init('b2', randomTensor([1], 8))]), [1, 1, 32, 32]);
  return n.build({ 'lesionfuse.input_size': '32x32', 'lesionfuse.model_name': 'tiny' });
}

/** A deliberately broken pass: scales one weight, as a buggy fold would. */
const breakWeights: Pass = {
  name: 'break-weights',
  description: 'test only: scale the first weight by 1.5',
  precision: 'float32',
  run: (model) => {
    const w = model.graph.initializers.find((i) => i.name === 'w')!;
    w.values = (w.values as Float32Array).map((v) => v * 1.5);
    return { model, changes: [{ pass: 'break-weights', kind: 'changed', message: 'scaled w' }] };
  },
};

test('the default images for parity exist (bundled samples or fixtures)', () => {
  assert.ok(defaultParityImageDir());
});

test('parity on real images passes for the default passes and fails for a broken pass', async () => {
  const m = tinySeg();
  const good = await rewrite(m, ['remove-identity', 'fold-batchnorm', 'remove-dead']);
  const p = await checkParity(m, good.model, { images: [FIXTURES] });
  assert.equal(p.passed, true, p.message);
  assert.ok(p.images >= 3 && p.maxAbsDiff <= 1e-4);
  assert.deepEqual(p.inputSize, { height: 32, width: 32 });
  const bad = await rewrite(m, ['break-weights'], { extraPasses: { 'break-weights': breakWeights } });
  const q = await checkParity(m, bad.model, { images: [FIXTURES] });
  assert.equal(q.passed, false);
  assert.ok(q.maxAbsDiff > 1e-3, q.message);
  assert.match(q.message, /max \|dp\| = .* \(tolerance 0\.0001\)/);
  // The same drift judged by mask agreement with a permissive floor passes: the modes really differ.
  const loose = await checkParity(m, bad.model, { images: [FIXTURES], mode: 'dice-agreement', minDiceAgreement: 0 });
  assert.equal(loose.passed, true);
});

test('rewriteFile refuses to write a drifting model, and --force writes it saying so', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-parity-'));
  const src = join(dir, 'in.onnx');
  await writeModel(tinySeg(), src);
  const out = join(dir, 'out.onnx');
  const opts = { extraPasses: { 'break-weights': breakWeights }, parity: { images: [FIXTURES] } };
  await assert.rejects(rewriteFile(src, out, ['break-weights'], opts), /refusing to write .*out\.onnx: the rewritten model drifts: max \|dp\|/);
  assert.equal(existsSync(out), false);
  const forced = await rewriteFile(src, out, ['break-weights'], { ...opts, force: true });
  assert.equal(forced.forced, true);
  assert.equal(forced.parity!.passed, false);
  assert.ok(existsSync(out));
  const ok = await rewriteFile(src, join(dir, 'ok.onnx'), ['remove-identity', 'fold-batchnorm', 'remove-dead'], { parity: { images: [FIXTURES] } });
  assert.equal(ok.parity!.passed, true);
  assert.equal(ok.nodesAfter, ok.nodesBefore - 2);
  const back = await readModel(join(dir, 'ok.onnx'));
  assert.equal(back.metadata['lesionfuse.model_name'], 'tiny');
});

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = process.stdout.write.bind(process.stdout);
  const e = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  // main() reports process.exitCode; keep the test runner's own value out of it and put it back after.
  const saved = process.exitCode;
  process.exitCode = undefined;
  try {
    const code = await main(args);
    return { code, out, err };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
    process.exitCode = saved;
  }
}

test('lesionfuse rewrite: default passes with --json, --list, and one-line errors for bad models and options', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-cli-'));
  const src = join(dir, 'in.onnx');
  await writeModel(tinySeg(), src);
  const r = await cli(['rewrite', src, join(dir, 'out.onnx'), '--images', FIXTURES, '--json']);
  assert.equal(r.code, 0, r.err + r.out);
  const j = JSON.parse(r.out);
  assert.equal(j.parity.passed, true);
  assert.deepEqual(j.passes.map((p: { name: string }) => p.name), ['remove-identity', 'fold-constants', 'merge-duplicates', 'simplify-reshape', 'fold-batchnorm', 'fuse-bias-add', 'remove-dead']);
  assert.ok(existsSync(join(dir, 'out.onnx')));

  const list = await cli(['rewrite', '--list']);
  assert.equal(list.code, 0);
  assert.match(list.out, /fold-batchnorm/);

  const zero = join(dir, 'zero.onnx');
  writeFileSync(zero, '');
  const junk = join(dir, 'junk.onnx');
  writeFileSync(junk, 'this is not a protobuf at all, just text\n');
  const whole = readFileSync(src);
  const truncated = join(dir, 'truncated.onnx');
  writeFileSync(truncated, whole.subarray(0, Math.floor(whole.length / 2)));
  for (const [bad, why] of [
    [truncated, /truncated\.onnx.*(truncated|corrupt)/],
    [dir, /is a directory/],
    [zero, /zero\.onnx.*(empty|0 bytes)/],
    [junk, /junk\.onnx.*(not an ONNX|truncated|corrupt)/],
    [join(dir, 'missing.onnx'), /missing\.onnx.*no such file/],
  ] as const) {
    const b = await cli(['rewrite', bad, join(dir, 'never.onnx')]);
    assert.equal(b.code, 2);
    const lines = b.err.trim().split('\n');
    assert.equal(lines.length, 1, b.err);
    assert.match(lines[0]!, why);
    assert.equal(existsSync(join(dir, 'never.onnx')), false);
  }
  const badPass = await cli(['rewrite', src, join(dir, 'x.onnx'), '--passes', 'remove-identity,warp-speed']);
  assert.equal(badPass.code, 2);
  assert.match(badPass.err, /--passes: unknown pass 'warp-speed'/);
  const badSize = await cli(['rewrite', src, join(dir, 'x.onnx'), '--input-size', '100x100']);
  assert.equal(badSize.code, 2);
});

test('a model onnxruntime cannot run is not written unchecked unless forced', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-unchecked-'));
  const n = new Net();
  const x = n.input('image', [1, 3, 32, 32]);
  const y = n.op('MadeUpOp', [n.op('Identity', [x])], {}, 1, 'custom');
  n.nodes[n.nodes.length - 1]!.domain = 'com.example';
  n.output(y, [1, 3, 32, 32]);
  const m = n.build();
  m.opsetImports.push({ domain: 'com.example', version: 1 });
  const src = join(dir, 'custom.onnx');
  await writeModel(m, src);
  const out = join(dir, 'out.onnx');
  await assert.rejects(rewriteFile(src, out, ['remove-identity'], { parity: { images: [FIXTURES] } }), /refusing to write .*out\.onnx: the parity check could not run: the original model does not run in onnxruntime/);
  assert.equal(existsSync(out), false);
  const r = await rewriteFile(src, out, ['remove-identity'], { parity: { images: [FIXTURES] }, force: true });
  assert.equal(r.forced, true);
  assert.equal(r.parity, null);
  const back = await readModel(out);
  assert.deepEqual(back.graph.nodes.map((q) => `${q.domain}:${q.opType}`), ['com.example:MadeUpOp']);
});
