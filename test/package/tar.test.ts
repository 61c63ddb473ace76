import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTar, createTarGz, readTar, readTarGz, type TarEntry } from '../../src/package/tar.js';

const longName = `bundle/${'deep-folder-name/'.repeat(6)}file-with-a-long-name.txt`; // > 100 bytes: uses the prefix field
function entries(): TarEntry[] {
  const big = new Uint8Array(1500);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
  return [
    { name: 'bundle/', data: new Uint8Array(0) },
    { name: 'bundle/manifest.json', data: new TextEncoder().encode('{"a": 1}\n') },
    { name: 'bundle/model.onnx', data: big },
    { name: 'bundle/empty.txt', data: new Uint8Array(0) },
    { name: longName, data: new TextEncoder().encode('long\n'), mode: 0o600 },
  ];
}

test('system tar extracts our .tar.gz to the same files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-tar-'));
  try {
    const tgz = join(dir, 'b.tar.gz');
    writeFileSync(tgz, createTarGz(entries()));
    const listing = execFileSync('tar', ['-tzf', tgz], { encoding: 'utf8' }).trim().split('\n');
    assert.deepEqual(listing, entries().map((e) => e.name));
    const x = join(dir, 'x');
    mkdirSync(x);
    execFileSync('tar', ['-xzf', tgz, '-C', x]);
    for (const e of entries()) {
      if (e.name.endsWith('/')) continue;
      assert.deepEqual(new Uint8Array(readFileSync(join(x, e.name))), e.data, e.name);
    }
    assert.equal(statSync(join(x, longName)).mode & 0o777, 0o600);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('readTar reads what system tar writes (ustar) and what we write', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-tar-'));
  try {
    mkdirSync(join(dir, 'src/sub'), { recursive: true });
    writeFileSync(join(dir, 'src/a.txt'), 'hello');
    writeFileSync(join(dir, 'src/sub/b.bin'), new Uint8Array(700).fill(7));
    execFileSync('tar', ['--format=ustar', '-czf', join(dir, 'sys.tar.gz'), '-C', dir, 'src']);
    const got = readTarGz(readFileSync(join(dir, 'sys.tar.gz')), 'sys.tar.gz');
    const files = Object.fromEntries(got.filter((e) => !e.name.endsWith('/')).map((e) => [e.name, e.data.length]));
    assert.deepEqual(files, { 'src/a.txt': 5, 'src/sub/b.bin': 700 });
    const back = readTar(createTar(entries()));
    assert.deepEqual(back.map((e) => [e.name, e.data.length]), entries().map((e) => [e.name, e.data.length]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('equal inputs give byte-identical archives; corrupt and hostile archives are refused by name', () => {
  assert.deepEqual(createTarGz(entries()), createTarGz(entries()));
  const tar = createTar(entries());
  const bad = tar.slice();
  bad[10] ^= 0xff; // inside the first header's name: checksum no longer matches
  assert.throws(() => readTar(bad, 'b.tar'), /b\.tar: not a valid tar archive \(header checksum mismatch/);
  assert.throws(() => readTarGz(new Uint8Array([1, 2, 3]), 'x.tar.gz'), /x\.tar\.gz: not a gzip file/);
  assert.throws(() => readTar(tar.subarray(0, 1100), 't.tar'), /truncated/);
  assert.throws(() => createTar([{ name: '../evil', data: new Uint8Array(1) }]), /without '\.\.'/);
});
