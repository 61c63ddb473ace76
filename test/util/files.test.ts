import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { walk } from '../../src/runtime/dataset.js';
import { listImageFiles } from '../../src/quantize/calibrate.js';
import { packageRoot } from '../../src/util/paths.js';

test('folder listings follow symbolic links to images and skip FIFOs, the same way everywhere', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-files-'));
  try {
    const fixtures = join(packageRoot(), 'test/fixtures/images');
    const real = join(fixtures, readdirSync(fixtures).sort()[0]!);
    mkdirSync(join(dir, 'imgs'));
    copyFileSync(real, join(dir, 'imgs/a.jpg'));
    symlinkSync(real, join(dir, 'imgs/b.jpg'));
    symlinkSync(join(dir, 'missing.jpg'), join(dir, 'imgs/c.jpg')); // a dangling link is not a file
    execFileSync('mkfifo', [join(dir, 'imgs/d.jpg')]);
    copyFileSync(join(packageRoot(), 'test/fixtures/formats/anim.gif'), join(dir, 'imgs/e.gif'));
    assert.deepEqual((await walk(join(dir, 'imgs'), 0)).map((p) => basename(p)), ['a.jpg', 'b.jpg', 'e.gif']);
    // Calibration takes the same image extensions as the rest of the SDK (it used to leave out .gif).
    assert.deepEqual((await listImageFiles(join(dir, 'imgs'))).map((p) => basename(p)), ['a.jpg', 'b.jpg', 'e.gif']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
