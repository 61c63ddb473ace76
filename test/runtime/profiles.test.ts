import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listProfiles, loadProfile, profileAvailability, sessionOptionsFor, threadsFor } from '../../src/runtime/profiles.js';
import { createSession, RuntimeSession, ProfileUnavailableError } from '../../src/runtime/session.js';
import { LesionFuseError } from '../../src/util/errors.js';
import { tempDir } from './helpers.js';
import { halfModel } from './models.js';

test('shipped profiles load and validate', () => {
  const names = listProfiles().map((p) => p.name);
  for (const n of ['cpu-1t', 'cpu-2t', 'cpu-all', 'cuda', 'tensorrt', 'wasm']) assert.ok(names.includes(n), n);
  const p = loadProfile('cpu-2t');
  assert.equal(p.threads, 2);
  const o = sessionOptionsFor(p);
  assert.deepEqual(o.executionProviders, ['cpu']);
  assert.equal(o.intraOpNumThreads, 2);
  assert.equal(o.graphOptimizationLevel, 'all');
  assert.ok(threadsFor(loadProfile('cpu-all')) >= 1);
});

test('bad profiles: unknown name lists the shipped ones; bad fields named with allowed values', () => {
  assert.throws(() => loadProfile('gpu-fast'), (e: unknown) => e instanceof LesionFuseError && /unknown profile; shipped profiles: .*cpu-1t/.test(e.message));
  const d = tempDir();
  const f = join(d, 'mine.json');
  writeFileSync(f, JSON.stringify({ name: 'mine', executionProvider: 'npu', threads: 0, graphOptimizationLevel: 'all', batch: 1, description: '', extra: 1 }));
  assert.throws(() => loadProfile(f), (e: unknown) => {
    assert.ok(e instanceof LesionFuseError);
    assert.match(e.message, /executionProvider/);
    assert.match(e.message, /cpu.*cuda.*tensorrt.*wasm.*webgpu/);
    assert.match(e.message, /threads/);
    assert.match(e.message, /extra/);
    assert.ok(e.message.includes(f));
    return true;
  });
  writeFileSync(f, '{ not json');
  assert.throws(() => loadProfile(f), /not valid JSON/);
  writeFileSync(f, JSON.stringify({ name: 'mine', executionProvider: 'cpu', threads: 3, graphOptimizationLevel: 'basic', batch: 4, description: 'mine' }));
  assert.equal(loadProfile(f).batch, 4);
});

test('cuda and tensorrt are reported unavailable here with what was checked; cpu is available', async () => {
  assert.deepEqual(await profileAvailability(loadProfile('cpu-1t')), { available: true });
  const dir = tempDir();
  const model = await halfModel(dir);
  for (const n of ['cuda', 'tensorrt']) {
    const a = await profileAvailability(loadProfile(n));
    if (a.available) {
      // An install with the GPU libraries: the nodes must then really run on the GPU provider.
      const rs = await RuntimeSession.open(model, n);
      await rs.run({ image: rs.floatTensor(new Float32Array(3 * 256), [1, 3, 16, 16]) });
      assert.equal(rs.providerCheck!.fellBackToCpu, false, rs.providerCheck!.summary);
      await rs.close();
      continue;
    }
    assert.match(a.reason, new RegExp(`listSupportedBackends|'${n}'`));
    assert.match(a.reason, /onnxruntime-node/);
    await assert.rejects(createSession(model, n), ProfileUnavailableError);
  }
});

test('wasm profile runs through onnxruntime-web and gives the same output as onnxruntime-node', async () => {
  const avail = await profileAvailability(loadProfile('wasm'));
  if (!avail.available) {
    // onnxruntime-web is an optional dependency: the reason must then say what failed
    assert.match(avail.reason, /onnxruntime-web/);
    return;
  }
  const dir = tempDir();
  const model = await halfModel(dir);
  const x = new Float32Array(2 * 3 * 16 * 16).map((_, i) => Math.sin(i));
  const outs: Float32Array[] = [];
  for (const p of ['wasm', 'cpu-1t']) {
    const rs = await RuntimeSession.open(model, p);
    const r = await rs.run({ image: rs.floatTensor(x, [2, 3, 16, 16]) });
    outs.push(r.logits!.data as Float32Array);
    assert.ok(rs.providerCheck);
    assert.equal(rs.providerCheck!.fellBackToCpu, false);
    await rs.close();
  }
  assert.deepEqual(outs[0], outs[1]);
});
