import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repo root (tests run from dist/test/runtime). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const FIXTURES = join(ROOT, 'test', 'fixtures');
export const FORMATS = join(FIXTURES, 'formats');
export const SHARED_DATA = join(ROOT, '..', 'shared', 'data');

/** A fresh temporary folder, removed when the test process exits. */
export function tempDir(prefix = 'lf-rt-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  process.on('exit', () => rmSync(d, { recursive: true, force: true }));
  return d;
}
