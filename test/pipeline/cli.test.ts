import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';
import { writeTinySegModel } from '../package/helpers.js';

const cli = join(packageRoot(), 'dist/src/cli/index.js');
const run = (args: string[], cwd: string) => spawnSync(process.execPath, [cli, ...args], { cwd, encoding: 'utf8', env: { ...process.env, LESIONFUSE_PROGRESS: '0' } });

test('lesionfuse run: a bad config lists every problem, one per line, runs nothing and exits 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-cli-'));
  try {
    writeFileSync(join(dir, 'p.yaml'), 'name: x\nteacher: { model: default:tutor }\nprofiles: [cpu-1t, gpu]\ndataset: { path: nowhere }\nbenchmark: { runs: 0 }\n');
    const r = run(['run', 'p.yaml'], dir);
    assert.equal(r.status, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.ok(lines.some((l) => l === "error: p.yaml: teacher.model: unknown model name 'default:tutor'; allowed: default:teacher, default:student or a path to an .onnx file"), r.stderr);
    assert.ok(lines.some((l) => l.startsWith("error: p.yaml: profiles[1]: unknown profile 'gpu'")));
    assert.ok(lines.some((l) => l.startsWith('error: p.yaml: dataset.path: missing folder')));
    assert.ok(lines.some((l) => l.startsWith('error: p.yaml: benchmark.runs:')));
    assert.match(lines[lines.length - 1]!, /^error: p\.yaml: 4 problems in the pipeline config \(listed above\); nothing was run$/);
    assert.deepEqual(readdirSync(dir), ['p.yaml']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lesionfuse package and package verify: a bundle from the CLI verifies; a tampered one exits 2 naming the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-cli-'));
  try {
    writeTinySegModel(join(dir, 'm.onnx'));
    const p = run(['package', 'm.onnx', '--profile', 'cpu-1t', '--out', 'b', '--tar', '--dice', '0.8'], dir);
    assert.equal(p.status, 0, p.stderr);
    assert.deepEqual(p.stdout.trim().split('\n'), [join(dir, 'b'), join(dir, 'b.tar.gz')]);
    const v = run(['package', 'verify', 'b.tar.gz'], dir);
    assert.equal(v.status, 0, v.stderr);
    assert.match(v.stdout, /OK\n/);
    writeFileSync(join(dir, 'b', 'MODEL_CARD.md'), 'edited');
    const bad = run(['package', 'verify', 'b'], dir);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^error: \S*\/b\/MODEL_CARD\.md: checksum mismatch/m);
    const noOut = run(['package', 'm.onnx'], dir);
    assert.equal(noOut.status, 2);
    assert.match(noOut.stderr, /--out: --out DIR is required/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
