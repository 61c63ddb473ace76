/**
 * The API guide's examples (docs/api.md, examples/*.mjs) run as a user would run them, each in a fresh
 * folder, and do what they say.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function run(example: string, args: string[] = []): { cwd: string; stdout: string } {
  const cwd = mkdtempSync(join(tmpdir(), 'lf-example-'));
  process.on('exit', () => rmSync(cwd, { recursive: true, force: true }));
  const r = spawnSync(process.execPath, [join(ROOT, 'examples', `${example}.mjs`), ...args], { cwd, encoding: 'utf8', env: { ...process.env, ORT_DISABLE_TELEMETRY: '1', LESIONFUSE_PROGRESS: '0' } });
  assert.equal(r.status, 0, `${example}: ${r.stderr}`);
  return { cwd, stdout: r.stdout };
}

test('every example is in the guide, and every example in the guide exists', () => {
  const guide = readFileSync(join(ROOT, 'docs', 'api.md'), 'utf8');
  const files = readdirSync(join(ROOT, 'examples')).filter((f) => f.endsWith('.mjs'));
  for (const f of files) assert.ok(guide.includes(`examples/${f}`), `docs/api.md does not mention examples/${f}`);
  for (const m of guide.matchAll(/examples\/([\w.-]+\.mjs)/g)) assert.ok(existsSync(join(ROOT, 'examples', m[1]!)), m[1]);
});

test('examples: segment a file, a buffer, a folder', () => {
  const f = run('segment-file');
  assert.match(f.stdout, /512 x 512, lesion \d+\.\d% -> mask\.png/);
  assert.ok(existsSync(join(f.cwd, 'mask.png')));
  assert.match(run('segment-buffer').stdout, /bytes -> 600 x 449 mask; model map 256 x 192/);
  const d = run('segment-folder');
  assert.match(d.stdout, /^6 segmented, 0 failed/);
  assert.equal(readdirSync(join(d.cwd, 'segmented')).filter((n) => n.endsWith('_overlay.jpg')).length, 6);
});

test('examples: evaluate, benchmark', () => {
  const e = run('evaluate');
  assert.match(e.stdout, /model: 6 images, Dice 0\.\d+/);
  assert.match(e.stdout, /masks: 2 paired, Dice 0\.\d+; left out 4 truth masks/);
  assert.ok(existsSync(join(e.cwd, 'evaluation', 'model', 'metrics.json')));
  const b = run('benchmark', ['default:student', '2']);
  assert.match(b.stdout, /cpu-1t: median \d+\.\d ms over 2 runs/);
  assert.match(b.stdout, /tensorrt: (skipped|median)/);
});

test('examples: quantize, bundle from code', () => {
  const q = run('quantize');
  assert.match(q.stdout, /\d+ nodes in INT8/);
  assert.ok(existsSync(join(q.cwd, 'student.int8.onnx')));
  const b = run('bundle');
  assert.match(b.stdout, /\d+ checks passed; sample mask agreement/);
  assert.ok(existsSync(join(b.cwd, 'student-bundle', 'manifest.json')));
});
