/**
 * The security and fault review's cases, kept fixed: crafted bundles, models and folders (files in
 * test/fixtures/hostile, made by make-hostile.mjs there; links, FIFOs and read-only folders made here at run
 * time). Each case must end in a one-line error naming the file, with nothing deleted, read or written outside
 * where it belongs, no hang and no telemetry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageBundle, verifyBundle, type BundleManifest } from '../../src/package/bundle.js';
import { readTarGz } from '../../src/package/tar.js';
import { readModel, encodeModel } from '../../src/onnx/io.js';
import { DataType, type Model } from '../../src/onnx/ir.js';
import { LesionFuseError } from '../../src/util/errors.js';
import { sha256File } from '../../src/util/hash.js';
import { removePendingTemps, trackTemp } from '../../src/util/atomic.js';
import { RuntimeSession } from '../../src/runtime/session.js';
import { packageRoot } from '../../src/util/paths.js';
import { writeTinySegModel } from '../package/helpers.js';

const root = packageRoot();
const corpus = join(root, 'test/fixtures/hostile');
const cli = join(root, 'dist/src/cli/index.js');
const sample = join(root, 'test/fixtures/images', readdirSync(join(root, 'test/fixtures/images')).sort()[0]!);

function tmp(): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'lf-hostile-'));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Run the CLI; returns exit status and stderr. */
function run(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', cwd: opts.cwd, env: { ...process.env, LESIONFUSE_PROGRESS: '0', ...opts.env }, timeout: 60_000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

/** One line of error, no stack trace. */
function oneLineError(stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${stderr}`);
  assert.match(lines[0]!, /^error: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(stderr, /\n\s+at /);
}

/** Rewrite a bundle's manifest and re-hash everything, as someone who can edit the bundle would. */
async function tamper(dir: string, edit: (m: BundleManifest) => unknown): Promise<void> {
  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as BundleManifest;
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(edit(m), null, 2));
  const lines: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(join(d, e.name), r);
      else if (r !== 'CHECKSUMS.sha256') lines.push(r);
    }
  };
  walk(dir, '');
  const out: string[] = [];
  for (const f of lines.sort()) out.push(`${await sha256File(join(dir, f))}  ${f}`);
  writeFileSync(join(dir, 'CHECKSUMS.sha256'), out.join('\n') + '\n');
}

test('package --out refuses a folder it did not make, keeps the user\'s files, and never replaces the model\'s own folder', async () => {
  const t = tmp();
  try {
    const model = writeTinySegModel(join(t.dir, 'tiny.onnx'));
    writeFileSync(join(t.dir, 'MODEL_CARD.md'), 'my card');
    mkdirSync(join(t.dir, 'd'));
    writeFileSync(join(t.dir, 'd/thesis.txt'), 'x');
    const r = run(['package', model, '--profile', 'cpu-1t', '--sample', sample, '--out', join(t.dir, 'd')]);
    assert.equal(r.status, 2);
    oneLineError(r.stderr, /d: holds files LesionFuse did not make as a bundle \('thesis.txt'\).*--force/);
    assert.equal(readFileSync(join(t.dir, 'd/thesis.txt'), 'utf8'), 'x');
    // The model's own folder: refused even with --force; the model and its card survive.
    for (const extra of [[], ['--force']]) {
      const r2 = run(['package', 'tiny.onnx', '--profile', 'cpu-1t', '--sample', sample, '--out', '.', ...extra], { cwd: t.dir });
      assert.equal(r2.status, 2);
      oneLineError(r2.stderr, /is \(or holds\) \S*tiny.onnx, an input of this command/);
      assert.ok(existsSync(model) && existsSync(join(t.dir, 'MODEL_CARD.md')));
    }
    // An existing bundle is replaced without --force; a user's folder with --force.
    await packageBundle({ model, profile: 'cpu-1t', out: join(t.dir, 'b'), sample });
    await packageBundle({ model, profile: 'cpu-1t', out: join(t.dir, 'b'), sample });
    writeFileSync(join(t.dir, 'b/notes.txt'), 'mine');
    await assert.rejects(packageBundle({ model, profile: 'cpu-1t', out: join(t.dir, 'b'), sample }), /notes.txt/);
    await packageBundle({ model, profile: 'cpu-1t', out: join(t.dir, 'd'), sample, force: true });
    assert.ok(!existsSync(join(t.dir, 'd/thesis.txt')));
    await verifyBundle(join(t.dir, 'd'));
  } finally {
    t.done();
  }
});

test('no telemetry: a process that runs a session under an empty HOME writes nothing there and no /tmp/mat-debug log', () => {
  const t = tmp();
  try {
    const home = join(t.dir, 'home');
    mkdirSync(home);
    const model = writeTinySegModel(join(t.dir, 'tiny.onnx'));
    const script = join(t.dir, 'child.mjs');
    writeFileSync(script, [
      `const { RuntimeSession } = await import(${JSON.stringify(join(root, 'dist/src/runtime/session.js'))});`,
      `const s = await RuntimeSession.open(${JSON.stringify(model)}, 'cpu-1t');`,
      `const out = await s.run({ image: s.floatTensor(new Float32Array(3 * 32 * 32), [1, 3, 32, 32]) });`,
      `console.log(JSON.stringify({ pid: process.pid, n: Object.keys(out).length, env: process.env.ORT_DISABLE_TELEMETRY }));`,
    ].join('\n'));
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, XDG_CACHE_HOME: join(home, '.cache') };
    delete env.ORT_DISABLE_TELEMETRY;
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8', env, timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const child = JSON.parse(r.stdout) as { pid: number; n: number; env: string };
    assert.equal(child.n, 1);
    assert.equal(child.env, '1'); // the switch onnxruntime reads, set by LesionFuse before it loaded
    assert.deepEqual(readdirSync(home), [], 'nothing written under HOME');
    assert.ok(!existsSync(`/tmp/mat-debug-${child.pid}.log`), 'no telemetry debug log');
  } finally {
    t.done();
  }
});

function externalModel(location: string): Model {
  return {
    irVersion: 8, opsetImports: [{ domain: '', version: 17 }], producerName: 't', producerVersion: '0', domain: '', modelVersion: 1, docString: '',
    graph: {
      name: 'ext',
      nodes: [{ name: 'add', opType: 'Add', domain: '', inputs: ['x', 'w'], outputs: ['y'], attributes: {} }],
      inputs: [{ name: 'x', dataType: DataType.FLOAT, shape: [4] }],
      outputs: [{ name: 'y', dataType: DataType.FLOAT, shape: [4] }],
      initializers: [{ name: 'w', dataType: DataType.FLOAT, dims: [4], values: new Float32Array(0), external: { location, offset: 0, length: 16 } }],
      valueInfo: [],
    },
    metadata: {},
  };
}

test('external data is read only from regular files inside the model\'s folder: no symbolic link out, no FIFO hang', async () => {
  const t = tmp();
  try {
    const secret = join(t.dir, 'secret.bin');
    writeFileSync(secret, Buffer.from(new Float32Array([1, 2, 3, 4]).buffer));
    mkdirSync(join(t.dir, 'm'));
    symlinkSync(secret, join(t.dir, 'm/w.bin'));
    writeFileSync(join(t.dir, 'm/model.onnx'), encodeModel(externalModel('w.bin')));
    await assert.rejects(readModel(join(t.dir, 'm/model.onnx')), (e: unknown) => e instanceof LesionFuseError && /m\/model.onnx: .*w.bin.* outside the model's folder/.test(e.message));
    // A link that stays inside the folder is fine.
    writeFileSync(join(t.dir, 'm/real.bin'), Buffer.from(new Float32Array([1, 2, 3, 4]).buffer));
    symlinkSync('real.bin', join(t.dir, 'm/inside.bin'));
    writeFileSync(join(t.dir, 'm/ok.onnx'), encodeModel(externalModel('inside.bin')));
    const ok = await readModel(join(t.dir, 'm/ok.onnx'));
    assert.deepEqual(Array.from(ok.graph.initializers[0]!.values as Float32Array), [1, 2, 3, 4]);
    // A FIFO: refused at once (inspect used to hang forever).
    execFileSync('mkfifo', [join(t.dir, 'm/fifo.bin')]);
    writeFileSync(join(t.dir, 'm/fifo.onnx'), encodeModel(externalModel('fifo.bin')));
    const r = run(['inspect', join(t.dir, 'm/fifo.onnx')]);
    assert.equal(r.status, 2);
    oneLineError(r.stderr, /fifo.onnx: .*fifo.bin.* not a regular file/);
    // rewrite and package never copy the outside bytes into their output.
    const r2 = run(['rewrite', join(t.dir, 'm/model.onnx'), join(t.dir, 'out.onnx')]);
    assert.equal(r2.status, 2);
    assert.ok(!existsSync(join(t.dir, 'out.onnx')));
  } finally {
    t.done();
  }
});

test('package verify: paths stay inside the bundle, every hash is checked once, the manifest describes the model', async () => {
  const t = tmp();
  try {
    const model = writeTinySegModel(join(t.dir, 'tiny.onnx'));
    const make = async (name: string) => (await packageBundle({ model, profile: 'cpu-1t', out: join(t.dir, name), sample })).dir;
    const cases: [string, (m: BundleManifest) => unknown, RegExp][] = [
      ['escape-model', (m) => ({ ...m, model: { ...m.model, file: '../../../../etc/passwd' } }), /model.file '..\/..\/..\/..\/etc\/passwd' is not a plain path inside the bundle/],
      ['escape-expected', (m) => ({ ...m, sample: { ...m.sample, expected: '../../../../etc/passwd' } }), /sample.expected .* is not a plain path/],
      ['absolute', (m) => ({ ...m, sample: { ...m.sample, mask: '/etc/passwd' } }), /sample.mask '\/etc\/passwd' is not a relative path/],
      ['null', () => null, /manifest.json: not a valid bundle manifest/],
      ['wrong-sha', (m) => ({ ...m, model: { ...m.model, sha256: '0'.repeat(64) } }), /model.sha256 .* is not the model file's SHA-256/],
      ['wrong-size', (m) => ({ ...m, model: { ...m.model, sizeBytes: 1 } }), /model.sizeBytes is 1/],
    ];
    for (const [name, edit, want] of cases) {
      const dir = await make(name);
      await tamper(dir, edit);
      const r = run(['package', 'verify', dir]);
      assert.equal(r.status, 2, name);
      oneLineError(r.stderr, want);
      assert.doesNotMatch(r.stderr, /root:/, 'never prints what an outside file holds');
    }
    // A symbolic link inside the bundle (to a file outside) is refused, even when the checksums list it.
    const linked = await make('linked');
    rmSync(join(linked, 'sample/expected.json'));
    writeFileSync(join(t.dir, 'outside.json'), '{}');
    symlinkSync(join(t.dir, 'outside.json'), join(linked, 'sample/expected.json'));
    await assert.rejects(verifyBundle(linked), /symbolic link/);
    // Duplicate lines in CHECKSUMS.sha256 (a bad one, then the good one) are refused, as sha256sum -c would fail.
    const dup = await make('dup');
    const ck = readFileSync(join(dup, 'CHECKSUMS.sha256'), 'utf8');
    const modelLine = ck.split('\n').find((l) => l.endsWith('  model.onnx'))!;
    writeFileSync(join(dup, 'CHECKSUMS.sha256'), `${'f'.repeat(64)}  model.onnx\n${ck}`);
    assert.ok(modelLine);
    await assert.rejects(verifyBundle(dup), /CHECKSUMS.sha256: line \d+: 'model.onnx' is listed twice/);
  } finally {
    t.done();
  }
});

test('archives: a gzip bomb is refused with the limit, a file-and-folder clash with one line', async () => {
  const bomb = readFileSync(join(corpus, 'bomb.tar.gz'));
  assert.throws(() => readTarGz(bomb, 'bomb.tar.gz'), /bomb.tar.gz: inflates to more than 256 MiB .* decompression bomb/);
  // The limit is a parameter: the same bytes under a 1 MiB limit.
  assert.throws(() => readTarGz(bomb, 'bomb.tar.gz', 2 ** 20), /more than 1 MiB/);
  const r = run(['package', 'verify', join(corpus, 'bomb.tar.gz')]);
  assert.equal(r.status, 2);
  oneLineError(r.stderr, /bomb.tar.gz: inflates to more than/);
  const c = run(['package', 'verify', join(corpus, 'clash.tar.gz')]);
  assert.equal(c.status, 2);
  oneLineError(c.stderr, /clash.tar.gz: entry 'b\/model.onnx\/x' lies under 'b\/model.onnx', which is a file/);
});

test('models: subgraphs nested thousands deep and checker errors give one line and a failing exit', () => {
  const deep = run(['inspect', join(corpus, 'deep-if.onnx')]);
  assert.equal(deep.status, 2);
  oneLineError(deep.stderr, /deep-if.onnx: subgraphs .* nested more than 64 levels/);
  const t = tmp();
  try {
    // A node output nobody produces: the checker flags it as an error, so inspect must not exit 0.
    const m = externalModel('x');
    m.graph.initializers = [];
    writeFileSync(join(t.dir, 'bad.onnx'), encodeModel(m));
    const r = run(['inspect', join(t.dir, 'bad.onnx')]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /error: .*bad.onnx: /);
  } finally {
    t.done();
  }
});

test('onnxruntime run-time errors come out as one line naming the model', async () => {
  const t = tmp();
  try {
    const model = writeTinySegModel(join(t.dir, 'tiny.onnx'));
    const s = await RuntimeSession.open(model, 'cpu-1t', { verifyProvider: false });
    await assert.rejects(
      s.run({ image: s.floatTensor(new Float32Array(3 * 4 * 5), [1, 3, 4, 5]) }),
      (e: unknown) => e instanceof LesionFuseError && e.message.startsWith(`${model}: onnxruntime failed to run`) && !e.message.includes('\n'),
    );
  } finally {
    t.done();
  }
});

test('an interrupt removes the temporary files being written', () => {
  const t = tmp();
  try {
    const p = join(t.dir, '.out.onnx.123.tmp');
    writeFileSync(p, 'partial');
    trackTemp(p);
    removePendingTemps();
    assert.ok(!existsSync(p));
  } finally {
    t.done();
  }
});
