import test from 'node:test';
import assert from 'node:assert/strict';
import * as lf from '../src/index.js';

// The public surface the README and docs/style.md promise: if an entry point disappears or stops
// being a function, users' code breaks, so this test names each one.
test('the public API exposes the entry points of every stage', () => {
  for (const name of ['loadModel', 'rewrite', 'quantize', 'distill', 'benchmark', 'evaluate', 'report', 'packageBundle', 'verifyBundle', 'runPipeline'] as const) {
    assert.equal(typeof lf[name], 'function', `${name} is exported as a function`);
  }
  assert.match(lf.VERSION, /^\d+\.\d+\.\d+$/);
});

test('default:teacher resolves to the bundled file, and an unknown alias is refused by name', () => {
  assert.ok(lf.resolveModelPath('default:teacher').endsWith('models/teacher/teacher.onnx'));
  assert.throws(() => lf.resolveModelPath('default:nope'), (e: unknown) => e instanceof lf.LesionFuseError && /default:nope/.test((e as Error).message));
});
