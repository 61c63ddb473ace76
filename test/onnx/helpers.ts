/** Test helpers for src/onnx: running models in onnxruntime-node, a tiny independent protobuf encoder, paths. */
import * as ort from '../../src/util/ort.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeModel } from '../../src/onnx/io.js';
import type { Model } from '../../src/onnx/ir.js';

/** test/fixtures/onnx (the sources, not dist: fixtures are not compiled). */
export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'onnx');

export async function runModel(model: Model | Uint8Array | string, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const src = typeof model === 'string' ? model : model instanceof Uint8Array ? model : encodeModel(model);
  const session = typeof src === 'string' ? await ort.InferenceSession.create(src) : await ort.InferenceSession.create(src);
  try {
    return (await session.run(feeds)) as Record<string, ort.Tensor>;
  } finally {
    await session.release();
  }
}

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'lesionfuse-onnx-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A deterministic pseudo-random Float32Array in [-1, 1). */
export function seeded(n: number, seed = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 2 ** 32) * 2 - 1;
  }
  return out;
}

// A minimal protobuf encoder written independently of src/onnx/wire.ts, for hand-made messages.
export function varint(n: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  while (v > 0x7fn) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}
export const pb = {
  int: (no: number, n: number | bigint): number[] => [...varint(no * 8), ...varint(n)],
  bytes: (no: number, b: ArrayLike<number>): number[] => [...varint(no * 8 + 2), ...varint(b.length), ...Array.from(b)],
  str: (no: number, s: string): number[] => pb.bytes(no, Array.from(new TextEncoder().encode(s))),
  msg: (no: number, ...parts: number[][]): number[] => pb.bytes(no, parts.flat()),
  f32: (no: number, x: number): number[] => [...varint(no * 8 + 5), ...new Uint8Array(new Float32Array([x]).buffer)],
};
