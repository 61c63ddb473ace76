/**
 * The protobuf wire format, just what ONNX needs: a bounds-checked reader that
 * splits a message into its fields (keeping each field's exact bytes, so fields
 * the IR does not model can be written back unchanged and in place), and a
 * writer that collects output as a list of byte chunks, so large tensors are
 * referenced rather than copied until the final concatenation.
 *
 * Internal to src/onnx: errors are `WireError`s that io.ts turns into
 * LesionFuseErrors naming the file.
 */
import { endianness } from 'node:os';

if (endianness() !== 'LE') throw new Error('lesionfuse: ONNX tensors are little-endian; big-endian hosts are not supported');

export class WireError extends Error {
  constructor(
    message: string,
    /** true when the bytes ended before a field did (a truncated file, rather than garbage). */
    readonly truncated = false,
  ) {
    super(message);
  }
}

export const WT_VARINT = 0;
export const WT_I64 = 1;
export const WT_LEN = 2;
export const WT_I32 = 5;

/** One field of a message as it appears on the wire. */
export interface RawField {
  no: number;
  wt: number;
  /** Offset of the tag (start of the whole field). */
  start: number;
  /** Offset of the value (after the tag, and after the length for WT_LEN). */
  vstart: number;
  /** End of the field (exclusive). */
  end: number;
}

/** Read a varint at `pos` (at most 10 bytes). Returns [low 32 bits (unsigned), high 32 bits (unsigned), next pos]. */
function readVarintParts(buf: Uint8Array, pos: number, end: number): [number, number, number] {
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new WireError('a varint runs past the end of its message', true);
    const b = buf[pos++]!;
    if (i < 4) lo |= (b & 0x7f) << (7 * i);
    else if (i === 4) {
      lo |= (b & 0x0f) << 28;
      hi |= (b & 0x7f) >>> 4;
    } else hi |= (b & 0x7f) << (7 * i - 32);
    if ((b & 0x80) === 0) return [lo >>> 0, hi >>> 0, pos];
  }
  throw new WireError('a varint is longer than 10 bytes');
}

/** A cursor over the bytes of one message. */
export class WireReader {
  constructor(
    readonly buf: Uint8Array,
    public pos = 0,
    readonly end = buf.length,
  ) {}

  /** Unsigned varint as a number (exact up to 2^53). */
  uint(): number {
    const [lo, hi, p] = readVarintParts(this.buf, this.pos, this.end);
    this.pos = p;
    return hi * 4294967296 + lo;
  }
  /** int32 (negative values are sign-extended 10-byte varints on the wire). */
  int32(): number {
    const [lo, , p] = readVarintParts(this.buf, this.pos, this.end);
    this.pos = p;
    return lo | 0;
  }
  /** int64 as a bigint, exact. */
  int64Big(): bigint {
    const [lo, hi, p] = readVarintParts(this.buf, this.pos, this.end);
    this.pos = p;
    return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
  }
  /** uint64 as a bigint, exact. */
  uint64Big(): bigint {
    const [lo, hi, p] = readVarintParts(this.buf, this.pos, this.end);
    this.pos = p;
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
  /** int64 as a number (exact within +-2^53). */
  int64(): number {
    const [lo, hi, p] = readVarintParts(this.buf, this.pos, this.end);
    this.pos = p;
    if (hi & 0x80000000) return -((~hi >>> 0) * 4294967296 + (~lo >>> 0) + 1);
    return hi * 4294967296 + lo;
  }
  float32(): number {
    if (this.pos + 4 > this.end) throw new WireError('a float runs past the end of its message', true);
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }
  float64(): number {
    if (this.pos + 8 > this.end) throw new WireError('a double runs past the end of its message', true);
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getFloat64(0, true);
    this.pos += 8;
    return v;
  }
}

/**
 * Split the message in buf[start, end) into its fields, checking that every field
 * is well formed and lies inside the message.
 */
export function scanFields(buf: Uint8Array, start = 0, end = buf.length): RawField[] {
  const out: RawField[] = [];
  const r = new WireReader(buf, start, end);
  while (r.pos < end) {
    const fstart = r.pos;
    const tag = r.uint();
    const no = Math.floor(tag / 8);
    const wt = tag % 8;
    if (no === 0) throw new WireError(`field number 0 at byte ${fstart}`);
    let vstart = r.pos;
    switch (wt) {
      case WT_VARINT:
        r.uint();
        break;
      case WT_I64:
        r.pos += 8;
        break;
      case WT_I32:
        r.pos += 4;
        break;
      case WT_LEN: {
        const len = r.uint();
        vstart = r.pos;
        if (vstart + len > end) {
          throw new WireError(`field ${no} declares ${len} bytes at byte ${vstart} but only ${end - vstart} remain`, true);
        }
        r.pos += len;
        break;
      }
      default:
        throw new WireError(`unsupported wire type ${wt} (field ${no}) at byte ${fstart}`);
    }
    if (r.pos > end) throw new WireError(`field ${no} runs past the end of its message`, true);
    out.push({ no, wt, start: fstart, vstart, end: r.pos });
  }
  return out;
}

const utf8 = new TextDecoder('utf-8');
const utf8enc = new TextEncoder();

export function fieldString(buf: Uint8Array, f: RawField): string {
  return utf8.decode(buf.subarray(f.vstart, f.end));
}
export function fieldBytes(buf: Uint8Array, f: RawField): Uint8Array {
  return buf.subarray(f.vstart, f.end);
}
export function fieldRaw(buf: Uint8Array, f: RawField): Uint8Array {
  return buf.subarray(f.start, f.end);
}
export function encodeUtf8(s: string): Uint8Array {
  return utf8enc.encode(s);
}

/**
 * Output as a list of chunks. Small writes go to a scratch buffer; large byte
 * arrays are appended by reference (callers must not mutate them before `concat`).
 */
export class WireWriter {
  readonly parts: Uint8Array[] = [];
  length = 0;
  private scratch = new Uint8Array(256);
  private used = 0;

  private flush(): void {
    if (this.used > 0) {
      this.parts.push(this.scratch.slice(0, this.used));
      this.used = 0;
    }
  }
  private ensure(n: number): void {
    if (this.used + n > this.scratch.length) {
      this.flush();
      if (n > this.scratch.length) this.scratch = new Uint8Array(Math.max(n, this.scratch.length * 2));
    }
  }
  private byte(b: number): void {
    this.scratch[this.used++] = b;
    this.length++;
  }

  /** Unsigned varint from a non-negative number (< 2^53) or any bigint (two's complement, 64 bits). */
  varint(v: number | bigint): this {
    this.ensure(10);
    if (typeof v === 'number' && v >= 0 && v <= 0x7fffffff) {
      while (v > 0x7f) {
        this.byte((v & 0x7f) | 0x80);
        v >>>= 7;
      }
      this.byte(v);
      return this;
    }
    let b = BigInt.asUintN(64, typeof v === 'bigint' ? v : clampInt64(v));
    while (b > 0x7fn) {
      this.byte(Number(b & 0x7fn) | 0x80);
      b >>= 7n;
    }
    this.byte(Number(b));
    return this;
  }
  tag(no: number, wt: number): this {
    return this.varint(no * 8 + wt);
  }
  float32(x: number): this {
    this.ensure(4);
    new DataView(this.scratch.buffer, this.used, 4).setFloat32(0, x, true);
    this.used += 4;
    this.length += 4;
    return this;
  }
  float64(x: number): this {
    this.ensure(8);
    new DataView(this.scratch.buffer, this.used, 8).setFloat64(0, x, true);
    this.used += 8;
    this.length += 8;
    return this;
  }
  /** Append bytes verbatim (by reference when large). */
  raw(bytes: Uint8Array): this {
    if (bytes.length <= 64) {
      this.ensure(bytes.length);
      this.scratch.set(bytes, this.used);
      this.used += bytes.length;
      this.length += bytes.length;
    } else {
      this.flush();
      this.parts.push(bytes);
      this.length += bytes.length;
    }
    return this;
  }
  /** A length-delimited field holding `bytes`. */
  lenField(no: number, bytes: Uint8Array): this {
    this.tag(no, WT_LEN).varint(bytes.length);
    return this.raw(bytes);
  }
  stringField(no: number, s: string): this {
    return this.lenField(no, encodeUtf8(s));
  }
  /** A length-delimited field holding a sub-message written by `fill`. */
  message(no: number, fill: (w: WireWriter) => void): this {
    const child = new WireWriter();
    fill(child);
    child.flush();
    this.tag(no, WT_LEN).varint(child.length);
    this.flush();
    for (const p of child.parts) this.parts.push(p);
    this.length += child.length;
    return this;
  }
  /** All chunks written so far (the writer stays usable). */
  chunks(): Uint8Array[] {
    this.flush();
    return this.parts;
  }
  concat(): Uint8Array {
    this.flush();
    if (this.parts.length === 1) return this.parts[0]!;
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

const TWO63 = 9223372036854775808;
function clampInt64(x: number): bigint {
  if (!Number.isFinite(x)) throw new WireError(`cannot write ${x} as an integer`);
  if (x >= TWO63) return 9223372036854775807n;
  if (x <= -TWO63) return -9223372036854775808n;
  return BigInt(Math.trunc(x));
}
