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
  assert.match(q.message, /max \|dy\| = .* \(tolerance 0\.0001, relative above 1\)/);
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
  await assert.rejects(rewriteFile(src, out, ['break-weights'], opts), /refusing to write .*out\.onnx: the rewritten model drifts: raw output .*max \|dy\|/);
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

/** An external segmenter that already ends in a Sigmoid (probabilities) and carries no LesionFuse metadata. */
function probabilityModel(): Model {
  const n = new Net();
  const x = n.input('image', [1, 3, 32, 32]);
  const c = n.op('Conv', [x, n.init('w', randomTensor([1, 3, 3, 3], 11, 0.8)), n.init('b', randomTensor([1], 12, 0.2))], { pads: [1, 1, 1, 1] });
  n.output(n.op('Sigmoid', [c]), [1, 1, 32, 32]);
  return n.build({});
}

test('set-metadata on an external probability model: outputs identical, judged as a metadata change, written without --force', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-meta-'));
  const src = join(dir, 'ext.onnx');
  await writeModel(probabilityModel(), src);
  const out = join(dir, 'ext.meta.onnx');
  const r = await rewriteFile(src, out, ['set-metadata'], { metadata: { 'lesionfuse.output': 'probabilities' }, parity: { images: [FIXTURES] } });
  assert.equal(r.forced, false);
  assert.equal(r.parity!.passed, true, r.parity!.message);
  assert.equal(r.parity!.maxAbsDiff, 0);
  assert.deepEqual(r.parity!.metadataChanges, [{ key: 'lesionfuse.output', after: 'probabilities' }]);
  assert.match(r.parity!.message, /metadata changed \(lesionfuse\.output \(unset\) -> probabilities\): this changes how LesionFuse reads the model, not its outputs, which are identical/);
  assert.equal((await readModel(out)).metadata['lesionfuse.output'], 'probabilities');
});

test('parity compares raw outputs: a change the sigmoid would hide is still drift', async () => {
  // Logits of about +-40: sigmoid(40) and sigmoid(48) are both 1 in float32, so a comparison of
  // probabilities sees nothing, but the graph's outputs differ by 20%.
  const n = new Net();
  const x = n.input('image', [1, 3, 32, 32]);
  n.output(n.op('Conv', [x, n.init('w', randomTensor([1, 3, 1, 1], 3, 0.1, 40)), n.init('b', randomTensor([1], 4, 1))]), [1, 1, 32, 32]);
  const m = n.build({ 'lesionfuse.output': 'logits', 'lesionfuse.mean': '0,0,0', 'lesionfuse.std': '1,1,1' });
  const scaled: Pass = {
    name: 'scale-w',
    description: 'test only',
    precision: 'float32',
    run: (model) => {
      const w = model.graph.initializers.find((i) => i.name === 'w')!;
      w.values = (w.values as Float32Array).map((v) => v * 1.2);
      return { model, changes: [] };
    },
  };
  const bad = await rewrite(m, ['scale-w'], { extraPasses: { 'scale-w': scaled } });
  const p = await checkParity(m, bad.model, { images: [FIXTURES] });
  assert.equal(p.passed, false, p.message);
  // Relative to |y| above 1: about 0.2 (not 0, and not the absolute difference of ~8).
  assert.ok(p.maxAbsDiff > 0.15 && p.maxAbsDiff < 0.25, p.message);
  assert.equal(p.worstDiceAgreement, 1, 'the masks (one reading: logits > 0) agree');
});

test('parity feeds extra inputs zeros, compares every output, and runs a model without an image input', async () => {
  // Image + a recurrent state with two outputs (mask logits, new state).
  const n = new Net();
  const x = n.input('image', ['N', 3, 32, 32]);
  const st = n.input('state', [2, 1, 4]);
  n.output(n.op('Conv', [x, n.init('w', randomTensor([1, 3, 1, 1], 5))]), ['N', 1, 32, 32]);
  n.output(n.op('Add', [st, n.init('k', randomTensor([4], 6))]), [2, 1, 4]);
  const m = n.build({});
  const same = await checkParity(m, (await rewrite(m, ['remove-identity'])).model, { images: [FIXTURES] });
  assert.equal(same.passed, true, same.message);
  assert.deepEqual(same.outputs, ['conv0_out', 'add1_out']);
  const changeState: Pass = {
    name: 'change-state',
    description: 'test only',
    precision: 'float32',
    run: (model) => {
      const k = model.graph.initializers.find((i) => i.name === 'k')!;
      k.values = (k.values as Float32Array).map((v) => v + 0.01);
      return { model, changes: [] };
    },
  };
  const drift = await checkParity(m, (await rewrite(m, ['change-state'], { extraPasses: { 'change-state': changeState } })).model, { images: [FIXTURES] });
  assert.equal(drift.passed, false, 'a change in the second output is drift');
  assert.ok(Math.abs(drift.maxAbsDiff - 0.01) < 1e-5, drift.message);
  assert.equal(drift.worstDiceAgreement, 1, 'the first output (the mask) did not change');

  // Audio-like: [N, 16] -> [N, 1]; no image input, so pseudo-random inputs.
  const a = new Net();
  const au = a.input('input', ['N', 16]);
  a.output(a.op('MatMul', [au, a.init('m', randomTensor([16, 1], 7))]), ['N', 1]);
  const am = a.build({});
  const ap = await checkParity(am, (await rewrite(am, ['remove-identity'])).model);
  assert.equal(ap.passed, true, ap.message);
  assert.match(ap.message, /pseudo-random input\(s\) \(the model has no image input\)/);

  // A dimension nothing fixes is refused in one line.
  const u = new Net();
  u.input('image', [1, 3, 32, 32]);
  u.input('state', [2, 'B', 4]);
  u.output(u.op('Identity', ['state']), [2, 'B', 4]);
  const um = u.build({});
  await assert.rejects(checkParity(um, um, { images: [FIXTURES] }), /input 'state' dimension 1 \('B'\) is not fixed by the model/);
  // ... but a state dimension named like the image's batch dimension is the batch.
  const v = new Net();
  v.input('image', ['N', 3, 32, 32]);
  v.input('state', [2, 'N', 4]);
  v.output(v.op('Identity', ['state']), [2, 'N', 4]);
  const vm = v.build({});
  const vp = await checkParity(vm, vm, { images: [FIXTURES] });
  assert.equal(vp.passed, true, vp.message);
});
