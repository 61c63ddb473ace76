/**
 * Byte-for-byte round trip of ONNX files the SDK does not change: decode then encode every
 * `.onnx` under the given files/folders and compare with the original bytes.
 *
 *   node dist/bench/roundtrip.js models teacher/.venv/lib/python3.11/site-packages/onnx/backend/test/data
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { decodeModel, encodeModel } from '../src/onnx/io.js';

function collect(path: string, out: string[]): void {
  if (statSync(path).isDirectory()) {
    for (const e of readdirSync(path).sort()) collect(join(path, e), out);
  } else if (path.endsWith('.onnx')) out.push(path);
}

const files: string[] = [];
for (const p of process.argv.slice(2)) collect(p, files);
let identical = 0;
const differing: string[] = [];
const failed: string[] = [];
for (const f of files) {
  const bytes = readFileSync(f);
  try {
    const again = encodeModel(decodeModel(bytes, { path: f, baseDir: dirname(f), loadExternalData: false }));
    if (Buffer.compare(Buffer.from(again), bytes) === 0) identical++;
    else differing.push(f);
  } catch (err) {
    failed.push(`${f}: ${(err as Error).message}`);
  }
}
console.log(`${identical}/${files.length} files identical after decode -> encode`);
for (const f of differing) console.log(`differs: ${f}`);
for (const f of failed) console.log(`failed: ${f}`);
process.exitCode = differing.length || failed.length ? 1 : 0;
