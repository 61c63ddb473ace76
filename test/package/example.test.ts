import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageBundle } from '../../src/package/bundle.js';
import { readMask } from '../../src/runtime/image.js';
import { packageRoot } from '../../src/util/paths.js';
import { writeTinySegModel } from './helpers.js';

const root = packageRoot();

test('examples/run-bundle.mjs (onnxruntime-node + sharp only) reproduces the recorded sample mask', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-example-'));
  try {
    // A larger-than-input sample, so that pre- and post-processing resizes both matter.
    const sample = join(root, 'samples/images', readdirSync(join(root, 'samples/images')).sort()[0]!);
    const model = writeTinySegModel(join(dir, 'tiny.onnx'), { size: 64, weights: [-1, -1, -1], bias: 2 }); // dark pixels = lesion
    const b = await packageBundle({ model, profile: 'cpu-1t', out: join(dir, 'bundle'), sample });
    const out = join(dir, 'mask.png');
    const line = execFileSync(process.execPath, [join(root, 'examples/run-bundle.mjs'), b.dir, join(b.dir, b.manifest.sample.input), out], { encoding: 'utf8' });
    assert.match(line, /lesion \d+\.\d% of the image/);
    const got = await readMask(out);
    const want = await readMask(join(b.dir, b.manifest.sample.mask));
    assert.equal(got.width, want.width);
    assert.equal(got.height, want.height);
    let agree = 0;
    let fg = 0;
    for (let i = 0; i < got.data.length; i++) {
      if (got.data[i] === want.data[i]) agree++;
      fg += want.data[i]!;
    }
    // The mask is neither empty nor full, so agreement is a real comparison; sharp's resize differs from
    // the runtime's Pillow-style one by a few levels at most, which moves only pixels at the threshold.
    assert.ok(fg > 0.02 * want.data.length && fg < 0.98 * want.data.length, `mask covers ${fg} pixels`);
    assert.ok(agree / got.data.length > 0.98, `agreement ${agree / got.data.length}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
