/**
 * Bundles that deploy on their own: the bundle's runner (run.mjs, its lib/ and package.json) in a copied
 * folder gives the Segmenter's masks, its `npm test` passes for fp32 and INT8, and signatures are checked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageBundle, verifyBundle, type BundleManifest } from '../../src/package/bundle.js';
import { generateSigningKeys } from '../../src/package/signing.js';
import { Segmenter } from '../../src/runtime/segmenter.js';
import { readMask } from '../../src/runtime/image.js';
import { encodeModel } from '../../src/onnx/io.js';
import { DataType, type Model } from '../../src/onnx/ir.js';
import { sha256File } from '../../src/util/hash.js';
import { packageRoot } from '../../src/util/paths.js';
import { tinySegModel, writeTinySegModel } from './helpers.js';

const root = packageRoot();
// A larger-than-input sample, so that pre- and post-processing resizes both matter.
const sample = join(root, 'samples/images', readdirSync(join(root, 'samples/images')).sort()[0]!);

/** The tiny model with its input fake-quantized to uint8 (QuantizeLinear -> DequantizeLinear): an INT8 graph. */
function tinyInt8Model(): Model {
  const m = tinySegModel({ size: 64, weights: [-1, -1, -1], bias: 2, name: 'tiny-int8' });
  m.graph.nodes.unshift(
    { name: 'q', opType: 'QuantizeLinear', domain: '', inputs: ['image', 'qs', 'qz'], outputs: ['image_q'], attributes: {} },
    { name: 'dq', opType: 'DequantizeLinear', domain: '', inputs: ['image_q', 'qs', 'qz'], outputs: ['image_dq'], attributes: {} },
  );
  m.graph.nodes[2]!.inputs[0] = 'image_dq';
  m.graph.initializers.push(
    { name: 'qs', dataType: DataType.FLOAT, dims: [], values: Float32Array.from([0.02]) },
    { name: 'qz', dataType: DataType.UINT8, dims: [], values: Uint8Array.from([128]) },
  );
  return m;
}

/** Copy a bundle to a new place, with the installed packages an `npm install` there would give. */
function deploy(bundle: string, where: string): string {
  cpSync(bundle, where, { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(where, 'node_modules'));
  return where;
}

test('a copied fp32 bundle runs alone: run.mjs writes the Segmenter\'s masks, npm test passes bit-identical', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-runner-'));
  try {
    const model = writeTinySegModel(join(dir, 'tiny.onnx'), { size: 64, weights: [-1, -1, -1], bias: 2 }); // dark pixels = lesion
    const b = await packageBundle({ model, profile: 'cpu-1t', out: join(dir, 'bundle'), sample });
    assert.equal(b.manifest.model.precision, 'fp32');
    const pkg = JSON.parse(readFileSync(join(b.dir, 'package.json'), 'utf8'));
    for (const p of ['onnxruntime-node', 'sharp', 'zod']) {
      assert.equal(pkg.dependencies[p], JSON.parse(readFileSync(join(root, 'node_modules', p, 'package.json'), 'utf8')).version, p);
      assert.equal(pkg.allowScripts[p], false);
    }
    assert.match(readFileSync(join(b.dir, 'README.md'), 'utf8'), /npm test/);
    const d = deploy(b.dir, join(dir, 'device'));
    const t = spawnSync(process.execPath, [join(d, 'test.mjs')], { encoding: 'utf8', cwd: d });
    assert.equal(t.status, 0, t.stderr);
    assert.match(t.stdout, /ok {2}sample .*: mask agreement 100\.000% \(0 of \d+ pixels differ\); need >= 100\.0% \(fp32 on the same kind of CPU/);
    // Two images, one bad in the middle: the batch goes on, exit 1, and the good masks equal the Segmenter's.
    const second = join(root, 'samples/images', readdirSync(join(root, 'samples/images')).sort()[1]!);
    writeFileSync(join(dir, 'broken.jpg'), 'not an image');
    const r = spawnSync(process.execPath, [join(d, 'run.mjs'), sample, join(dir, 'broken.jpg'), second, '--out', join(dir, 'masks')], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /error: .*broken.jpg: /);
    const seg = await Segmenter.create(model, { profile: 'cpu-1t' });
    try {
      for (const img of [sample, second]) {
        const want = await seg.segment(img);
        const stem = img.split('/').pop()!.replace(/\.[^.]+$/, '');
        const got = await readMask(join(dir, 'masks', `${stem}_mask.png`));
        assert.deepEqual([got.width, got.height], [want.width, want.height]);
        assert.ok(Buffer.from(got.data).equals(Buffer.from(want.mask)), `${stem}: mask differs from the Segmenter's`);
        const fg = want.mask.reduce((a, v) => a + v, 0);
        assert.ok(fg > 0.02 * want.mask.length && fg < 0.98 * want.mask.length, 'a real comparison: neither empty nor full');
      }
    } finally {
      await seg.close();
    }
    // A changed file in the copy: the runner refuses before running anything.
    writeFileSync(join(d, 'lib/runtime/image.js'), '// changed');
    const bad = spawnSync(process.execPath, [join(d, 'run.mjs'), sample, '--out', join(dir, 'masks2')], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /lib\/runtime\/image.js: checksum mismatch/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an INT8 bundle says int8 in its manifest and card, labels its parent\'s card as the parent\'s, and its npm test uses the agreement bound', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-runner-'));
  try {
    writeFileSync(join(dir, 'tiny-int8.onnx'), encodeModel(tinyInt8Model()));
    writeFileSync(join(dir, 'MODEL_CARD.md'), '# Parent\n\nTest Dice 0.853 (of the float parent).\n');
    const b = await packageBundle({ model: join(dir, 'tiny-int8.onnx'), profile: 'cpu-1t', out: join(dir, 'bundle'), sample });
    assert.equal(b.manifest.model.precision, 'int8');
    const card = readFileSync(join(b.dir, 'MODEL_CARD.md'), 'utf8');
    assert.match(card, /precision \*\*int8\*\*/);
    assert.match(card, /Nothing measured on this file was given .* describe that model, not this one/);
    assert.match(card, /## Card of the model this one was made from \(verbatim; it describes that model, not this int8 file\)/);
    const d = deploy(b.dir, join(dir, 'device'));
    const t = spawnSync(process.execPath, [join(d, 'test.mjs')], { encoding: 'utf8', cwd: d });
    assert.equal(t.status, 0, t.stderr);
    assert.match(t.stdout, /need >= 99\.0% \(int8 model or another kind of CPU: /);
    await verifyBundle(b.dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('signed bundles: another signer, an edit after signing and a missing signature are each refused, saying which', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-sign-'));
  try {
    const mine = generateSigningKeys();
    const theirs = generateSigningKeys();
    for (const [n, k] of [['mine', mine], ['theirs', theirs]] as const) {
      writeFileSync(join(dir, `${n}.pem`), k.privateKeyPem);
      writeFileSync(join(dir, `${n}.pub.pem`), k.publicKeyPem);
    }
    const model = writeTinySegModel(join(dir, 'tiny.onnx'));
    const b = await packageBundle({ model, profile: 'cpu-1t', out: join(dir, 'signed'), sample, sign: join(dir, 'mine.pem') });
    const v = await verifyBundle(b.dir, { pubkey: join(dir, 'mine.pub.pem') });
    assert.ok(v.checks.some((c) => c.startsWith(`signature: manifest.json signed by the given key (key id ${mine.keyId.slice(0, 16)}`)));
    await assert.rejects(verifyBundle(b.dir, { pubkey: join(dir, 'theirs.pub.pem') }), new RegExp(`signed by another key \\(key id ${mine.keyId.slice(0, 16)}\\.\\.\\.\\), not by the given public key \\(key id ${theirs.keyId.slice(0, 16)}`));
    // Re-signed by someone else after an edit: refused as another signer.
    const other = await packageBundle({ model, profile: 'cpu-1t', out: join(dir, 'other'), sample, sign: join(dir, 'theirs.pem') });
    await assert.rejects(verifyBundle(other.dir, { pubkey: join(dir, 'mine.pub.pem') }), /signed by another key/);
    // Edited after signing, every hash recomputed (the claimed Dice changed): the signature no longer matches.
    const m = JSON.parse(readFileSync(join(b.dir, 'manifest.json'), 'utf8')) as BundleManifest;
    m.measured = { dice: 0.99 };
    writeFileSync(join(b.dir, 'manifest.json'), JSON.stringify(m, null, 2));
    const lines = readFileSync(join(b.dir, 'CHECKSUMS.sha256'), 'utf8').trim().split('\n');
    const fixed = await Promise.all(lines.map(async (l) => `${await sha256File(join(b.dir, l.slice(66)))}  ${l.slice(66)}`));
    writeFileSync(join(b.dir, 'CHECKSUMS.sha256'), fixed.join('\n') + '\n');
    await verifyBundle(b.dir); // without a key: the hashes are consistent
    await assert.rejects(verifyBundle(b.dir, { pubkey: join(dir, 'mine.pub.pem') }), /manifest.json was edited after signing/);
    // The runner on the device refuses it the same way, and an unsigned bundle when a key is required.
    const d = deploy(b.dir, join(dir, 'device'));
    const r = spawnSync(process.execPath, [join(d, 'run.mjs'), sample, '--out', join(dir, 'm'), '--pubkey', join(dir, 'mine.pub.pem')], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /manifest.json was edited after signing/);
    const unsigned = await packageBundle({ model, profile: 'cpu-1t', out: join(dir, 'unsigned'), sample });
    await assert.rejects(verifyBundle(unsigned.dir, { pubkey: join(dir, 'mine.pub.pem') }), /unsigned: no manifest.sig.json/);
    // The CLI: keygen, package --sign, verify --pubkey.
    const cli = join(root, 'dist/src/cli/index.js');
    execFileSync(process.execPath, [cli, 'keygen', '--out', join(dir, 'k')], { stdio: 'pipe' });
    execFileSync(process.execPath, [cli, 'package', model, '--profile', 'cpu-1t', '--sample', sample, '--out', join(dir, 'cli'), '--sign', join(dir, 'k.pem')], { stdio: 'pipe' });
    const ok = execFileSync(process.execPath, [cli, 'package', 'verify', join(dir, 'cli'), '--pubkey', join(dir, 'k.pub.pem')], { encoding: 'utf8' });
    assert.match(ok, /ok {2}signature: manifest.json signed by the given key/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a signed bundle is LesionFuse\'s own: packaging over it needs no --force', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-sign-'));
  try {
    const k = generateSigningKeys();
    writeFileSync(join(dir, 'k.pem'), k.privateKeyPem);
    const model = writeTinySegModel(join(dir, 'tiny.onnx'));
    await packageBundle({ model, profile: 'cpu-1t', out: join(dir, 'b'), sample, sign: join(dir, 'k.pem') });
    const again = await packageBundle({ model, profile: 'cpu-1t', out: join(dir, 'b'), sample });
    assert.ok(!readdirSync(again.dir).includes('manifest.sig.json'), 'the unsigned re-package replaced the signed bundle whole');
    writeFileSync(join(dir, 'b/notes.txt'), 'mine');
    await assert.rejects(packageBundle({ model, profile: 'cpu-1t', out: join(dir, 'b'), sample }), /notes.txt/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
