import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runStep, FileHasher, canonicalJson } from '../../src/pipeline/cache.js';

test('a step is reused when inputs and settings are unchanged, re-run when either changes or an output is touched', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-cache-'));
  try {
    const input = join(dir, 'in.txt');
    writeFileSync(input, 'abc');
    let calls = 0;
    const fn = async (d: string) => {
      calls++;
      const text = readFileSync(input, 'utf8').toUpperCase();
      writeFileSync(join(d, 'out.txt'), text);
      return { files: ['out.txt'], result: { length: text.length } };
    };
    const spec = (settings: unknown) => ({ id: 'upper', dir: join(dir, 'step'), inputs: [input], settings });
    const h = () => new FileHasher(); // a fresh hasher per "run", as each CLI run has
    const r1 = await runStep(spec({ a: 1, b: 2 }), h(), fn);
    assert.equal(r1.status, 'ran');
    const r2 = await runStep(spec({ b: 2, a: 1 }), h(), fn); // key order does not matter
    assert.equal(r2.status, 'reused');
    assert.deepEqual(r2.status === 'reused' && r2.result, { length: 3 });
    assert.equal(calls, 1);
    assert.equal((await runStep(spec({ a: 1, b: 3 }), h(), fn)).status, 'ran'); // setting changed
    assert.equal(calls, 2);
    writeFileSync(input, 'abcd'); // input changed
    const r4 = await runStep(spec({ a: 1, b: 3 }), h(), fn);
    assert.equal(r4.status, 'ran');
    assert.deepEqual(r4.status === 'ran' && r4.result, { length: 4 });
    writeFileSync(join(dir, 'step/out.txt'), 'tampered'); // output changed behind the cache's back
    assert.equal((await runStep(spec({ a: 1, b: 3 }), h(), fn)).status, 'ran');
    assert.equal(readFileSync(join(dir, 'step/out.txt'), 'utf8'), 'ABCD');
    assert.equal((await runStep(spec({ a: 1, b: 3 }), h(), fn)).status, 'reused');
    assert.equal(calls, 4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failed step reports one line and leaves nothing to reuse', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-cache-'));
  try {
    const spec = { id: 'boom', dir: join(dir, 'boom'), inputs: [], settings: {} };
    const r = await runStep(spec, new FileHasher(), async () => {
      throw new Error('it broke\nsecond line');
    });
    assert.deepEqual(r.status === 'failed' && r.reason, 'it broke');
    let ran = false;
    const again = await runStep(spec, new FileHasher(), async () => {
      ran = true;
      return { files: [], result: 1 };
    });
    assert.equal(again.status, 'ran');
    assert.ok(ran);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('canonical JSON sorts keys at every level and drops undefined', () => {
  assert.equal(canonicalJson({ b: [{ d: 1, c: 2 }], a: undefined, e: null }), '{"b":[{"c":2,"d":1}],"e":null}');
});
