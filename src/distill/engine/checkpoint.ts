/**
 * Training checkpoints: one file holding weights, BatchNorm statistics,
 * optimizer moments, step, RNG state and the run's config.
 *
 * Layout (little-endian): 8-byte magic `LFCKPT01`, uint32 header length, the
 * header as UTF-8 JSON, then the float32 blocks back to back. The header lists
 * every tensor (group, name, dims, byte offset) and the SHA-256 of the data
 * section, so a truncated or corrupted file is refused by name before any
 * value is used. Nothing in the file is executed: JSON and raw floats only.
 * Written through `writeFileAtomic`, so a kill mid-write leaves the previous
 * checkpoint intact.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { writeFileAtomic } from '../../util/atomic.js';
import { LesionFuseError } from '../../util/errors.js';
import type { RngState } from './rng.js';

const MAGIC = 'LFCKPT01';
const FORMAT_VERSION = 1;

/** Tensor groups a checkpoint holds. */
export type TensorGroup = 'param' | 'state' | 'adam_m' | 'adam_v';

export interface CheckpointTensor {
  group: TensorGroup;
  name: string;
  dims: number[];
  data: Float32Array;
}

export interface Checkpoint {
  /** Optimizer updates done so far. */
  step: number;
  rng: { s: RngState; spare: number | null };
  /** The run's configuration (any JSON): checked by the caller on resume. */
  config: unknown;
  /** Free-form JSON the caller wants back (epoch, best score...). */
  extra?: unknown;
  tensors: CheckpointTensor[];
}

interface HeaderTensor {
  group: TensorGroup;
  name: string;
  dims: number[];
  offset: number;
  count: number;
}
interface Header {
  format: string;
  version: number;
  step: number;
  rng: Checkpoint['rng'];
  config: unknown;
  extra?: unknown;
  tensors: HeaderTensor[];
  dataBytes: number;
  dataSha256: string;
}

/** Serialise a checkpoint to bytes. */
export function encodeCheckpoint(ck: Checkpoint): Uint8Array {
  let offset = 0;
  const tensors: HeaderTensor[] = ck.tensors.map((t) => {
    const count = t.dims.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`checkpoint tensor ${t.group}/${t.name}: ${t.data.length} values for dims [${t.dims.join(',')}]`);
    const h = { group: t.group, name: t.name, dims: t.dims, offset, count };
    offset += count * 4;
    return h;
  });
  const data = new Uint8Array(offset);
  const view = new DataView(data.buffer);
  ck.tensors.forEach((t, k) => {
    const base = tensors[k]!.offset;
    for (let i = 0; i < t.data.length; i++) view.setFloat32(base + 4 * i, t.data[i]!, true);
  });
  const header: Header = {
    format: MAGIC,
    version: FORMAT_VERSION,
    step: ck.step,
    rng: ck.rng,
    config: ck.config,
    extra: ck.extra,
    tensors,
    dataBytes: data.length,
    dataSha256: createHash('sha256').update(data).digest('hex'),
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + 4 + json.length + data.length);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(8, json.length, true);
  out.set(json, 12);
  out.set(data, 12 + json.length);
  return out;
}

/** Parse checkpoint bytes; any inconsistency is a LesionFuseError naming `subject`. */
export function decodeCheckpoint(bytes: Uint8Array, subject = 'checkpoint'): Checkpoint {
  const bad = (why: string): LesionFuseError => new LesionFuseError(`not a valid LesionFuse checkpoint: ${why}`, { subject });
  if (bytes.length < 12) throw bad(`file is ${bytes.length} bytes, shorter than the header`);
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) throw bad('wrong magic bytes (not a checkpoint file)');
  const hlen = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(8, true);
  if (12 + hlen > bytes.length) throw bad('truncated header');
  let header: Header;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(12, 12 + hlen))) as Header;
  } catch {
    throw bad('header is not valid JSON');
  }
  if (header.format !== MAGIC || header.version !== FORMAT_VERSION) throw bad(`unsupported format version ${String(header.version)}`);
  if (!Array.isArray(header.tensors) || typeof header.dataBytes !== 'number' || typeof header.step !== 'number') throw bad('header fields missing');
  const data = bytes.subarray(12 + hlen);
  if (data.length !== header.dataBytes) {
    throw bad(data.length < header.dataBytes ? `truncated: ${data.length} of ${header.dataBytes} data bytes` : 'trailing bytes after the data');
  }
  if (createHash('sha256').update(data).digest('hex') !== header.dataSha256) throw bad('data checksum mismatch (corrupted file)');
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const tensors = header.tensors.map((t) => {
    const count = t.dims.reduce((a, b) => a * b, 1);
    if (count !== t.count || t.offset < 0 || t.offset + 4 * count > data.length) throw bad(`tensor ${t.group}/${t.name} out of bounds`);
    const arr = new Float32Array(count);
    for (let i = 0; i < count; i++) arr[i] = view.getFloat32(t.offset + 4 * i, true);
    return { group: t.group, name: t.name, dims: t.dims, data: arr };
  });
  return { step: header.step, rng: header.rng, config: header.config, extra: header.extra, tensors };
}

/** Write a checkpoint atomically (temp file + rename). */
export async function saveCheckpoint(path: string, ck: Checkpoint): Promise<void> {
  await writeFileAtomic(path, encodeCheckpoint(ck));
}

/** Read and validate a checkpoint file. */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(path);
  } catch (err) {
    throw new LesionFuseError(`cannot read checkpoint (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { subject: path, cause: err });
  }
  return decodeCheckpoint(bytes, path);
}
