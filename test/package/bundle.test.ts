import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageBundle, verifyBundle, type BundleManifest } from '../../src/package/bundle.js';
import { encodeModel } from '../../src/onnx/io.js';
import { packageRoot } from '../../src/util/paths.js';
import { tinySegModel, writeTinySegModel } from './helpers.js';

const root = packageRoot();
const sample = join(root, 'test/fixtures/images', readdirSync(join(root, 'test/fixtures/images')).sort()[0]!);

test('round trip: package a tiny model, verify the folder and the tarball', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-bundle-'));
  try {
    const model = writeTinySegModel(join(dir, 'tiny.onnx'));
    const r = await packageBundle({ model, profile: 'cpu-1t', out: join(dir, 'b'), tar: true, sample, metrics: { dice: 0.5, diceCi95: [0.4, 0.6], latencyMedianMs: 1.5, dataset: 'made-up' } });
    const m = JSON.parse(readFileSync(join(dir, 'b/manifest.json'), 'utf8')) as BundleManifest;
    assert.deepEqual(m.inputs, [{ name: 'image', type: 'float32', shape: [1, 3, 32, 32] }]);
    assert.deepEqual(m.preprocessing.size, { height: 32, width: 32 });
    assert.equal(m.postprocessing.activation, 'sigmoid');
    assert.equal(m.measured?.dice, 0.5);
    assert.equal(m.profile, 'cpu-1t');
    assert.ok(m.files['model.onnx'] && m.files['MODEL_CARD.md'] && m.files['sample/expected.json']);
    // sha256sum agrees with our checksums (the device side can check a bundle with coreutils alone).
    execFileSync('sha256sum', ['-c', '--quiet', 'CHECKSUMS.sha256'], { cwd: join(dir, 'b') });
    const card = readFileSync(join(dir, 'b/MODEL_CARD.md'), 'utf8');
    assert.match(card, /Not a diagnostic device/);
    assert.match(card, /lesionfuse\.training_data/);
    const v = await verifyBundle(join(dir, 'b'));
    assert.equal(v.sample.identical, true);
    assert.equal(v.sample.maskAgreement, 1);
    assert.ok(r.tarball && existsSync(r.tarball));
    const vt = await verifyBundle(r.tarball);
    assert.equal(vt.sample.identical, true);
    // The tarball extracts with system tar to the same bytes.
    const x = join(dir, 'x');
    mkdirSync(x);
    execFileSync('tar', ['-xzf', r.tarball, '-C', x]);
    for (const f of ['model.onnx', 'manifest.json', 'MODEL_CARD.md', 'CHECKSUMS.sha256', m.sample.input, 'sample/expected_mask.png']) {
      assert.deepEqual(readFileSync(join(x, 'b', f)), readFileSync(join(dir, 'b', f)), f);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a bundle for a target this machine lacks records its sample on the CPU and verifies on the CPU, saying so', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-bundle-'));
  try {
    const model = writeTinySegModel(join(dir, 'tiny.onnx'));
    const r = await packageBundle({ model, profile: 'cuda', out: join(dir, 'g'), sample });
    assert.equal(r.manifest.profile, 'cuda');
    assert.equal(r.manifest.profileDetails.executionProvider, 'cuda');
    const expected = JSON.parse(readFileSync(join(dir, 'g/sample/expected.json'), 'utf8'));
    assert.equal(expected.recordedWith, 'cpu-1t');
    const v = await verifyBundle(join(dir, 'g'));
    assert.match(v.checks.at(-1)!, /on cpu-1t \(bundle profile cuda cannot run here: .+; used cpu-1t\)/);
    assert.equal(v.sample.identical, true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tampered bundles are refused, naming the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-bundle-'));
  try {
    const model = writeTinySegModel(join(dir, 'tiny.onnx'));
    const fresh = async (name: string) => (await packageBundle({ model, profile: 'cpu-1t', out: join(dir, name), sample })).dir;
    // 1. model.onnx replaced by another valid model.
    const a = await fresh('a');
    writeFileSync(join(a, 'model.onnx'), encodeModel(tinySegModel({ weights: [-2, 1.5, 1] })));
    await assert.rejects(verifyBundle(a), /a\/model\.onnx: checksum mismatch/);
    // 2. manifest edited (threshold changed).
    const b = await fresh('b');
    const m = JSON.parse(readFileSync(join(b, 'manifest.json'), 'utf8')) as BundleManifest;
    m.postprocessing.threshold = 0.9;
    writeFileSync(join(b, 'manifest.json'), JSON.stringify(m));
    await assert.rejects(verifyBundle(b), /b\/manifest\.json: checksum mismatch/);
    // 3. model swapped AND checksums recomputed consistently: the sample output gives it away.
    const c = await fresh('c');
    writeFileSync(join(c, 'model.onnx'), encodeModel(tinySegModel({ weights: [-2, 1.5, 1] })));
    const { createHash } = await import('node:crypto');
    const h = (f: string) => createHash('sha256').update(readFileSync(join(c, f))).digest('hex');
    const mc = JSON.parse(readFileSync(join(c, 'manifest.json'), 'utf8')) as BundleManifest;
    mc.files['model.onnx'] = h('model.onnx');
    mc.model.sha256 = h('model.onnx'); // a careful tamperer updates this too (verify compares it with the file)
    writeFileSync(join(c, 'manifest.json'), JSON.stringify(mc));
    const lines = readFileSync(join(c, 'CHECKSUMS.sha256'), 'utf8').trim().split('\n').map((l) => {
      const f = l.slice(66);
      return `${h(f)}  ${f}`;
    });
    writeFileSync(join(c, 'CHECKSUMS.sha256'), lines.join('\n') + '\n');
    await assert.rejects(verifyBundle(c), /c\/model\.onnx: the model's output on the bundled sample differs from the recorded one/);
    // 4. an extra file and a missing file.
    const d = await fresh('d');
    writeFileSync(join(d, 'extra.txt'), 'x');
    await assert.rejects(verifyBundle(d), /d\/extra\.txt: file is not listed/);
    rmSync(join(d, 'extra.txt'));
    rmSync(join(d, 'MODEL_CARD.md'));
    await assert.rejects(verifyBundle(d), /d\/MODEL_CARD\.md: listed in CHECKSUMS\.sha256 but missing/);
    // 5. a corrupt tarball and a missing path.
    writeFileSync(join(dir, 'bad.tar.gz'), 'not gzip');
    await assert.rejects(verifyBundle(join(dir, 'bad.tar.gz')), /bad\.tar\.gz: not a gzip file/);
    await assert.rejects(verifyBundle(join(dir, 'nope')), /nope: no such bundle/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('data_profile.json beside the model travels in the bundle (checksummed), and `audit` finds it there', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-bundle-prof-'));
  try {
    const model = writeTinySegModel(join(dir, 'tiny.onnx'));
    const profile = { schema: 'lesionfuse.data-profile/1', description: 'made-up', n_images: 3 };
    writeFileSync(join(dir, 'data_profile.json'), JSON.stringify(profile));
    await packageBundle({ model, profile: 'cpu-1t', out: join(dir, 'b'), sample });
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'b/data_profile.json'), 'utf8')), profile);
    const m = JSON.parse(readFileSync(join(dir, 'b/manifest.json'), 'utf8')) as BundleManifest;
    assert.ok(m.files['data_profile.json']);
    await verifyBundle(join(dir, 'b'));
    const { auditModelPath } = await import('../../src/cli/commands/audit.js');
    assert.deepEqual(auditModelPath(join(dir, 'b')), { model: join(dir, 'b', 'model.onnx'), dir: join(dir, 'b') });
    await packageBundle({ model, profile: 'cpu-1t', out: join(dir, 'c'), sample, dataProfile: null });
    assert.equal(existsSync(join(dir, 'c/data_profile.json')), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
