/**
 * A small ustar (POSIX.1-1988) writer and reader, enough for edge bundles: regular files and folders,
 * names up to 255 bytes (prefix + name split), sizes up to 8 GB. Written here so that a bundle needs no
 * archive dependency; gzip comes from node:zlib. The output extracts with any `tar`.
 */
import { gzipSync, gunzipSync } from 'node:zlib';
import { LesionFuseError } from '../util/errors.js';

/** One entry of an archive. */
export interface TarEntry {
  /** Path inside the archive, '/'-separated, relative (no leading '/', no '..'). Folders end with '/'. */
  name: string;
  /** File contents; empty for a folder. */
  data: Uint8Array;
  /** Permission bits. Default 0o644 for files, 0o755 for folders. */
  mode?: number;
  /** Modification time, seconds since the epoch. Default 0 (1970), so that equal inputs give equal archives. */
  mtime?: number;
}

const BLOCK = 512;
const enc = new TextEncoder();
const dec = new TextDecoder();

function checkName(name: string): void {
  if (!name || name.startsWith('/') || name.split('/').some((p) => p === '..') || name.includes('\0')) {
    throw new LesionFuseError(`tar entry name must be a relative path without '..': '${name}'`);
  }
}

function writeString(buf: Uint8Array, offset: number, length: number, s: string): void {
  const b = enc.encode(s);
  if (b.length > length) throw new LesionFuseError(`tar header field too long: '${s}'`);
  buf.set(b, offset);
}

/** Octal, zero-padded, NUL-terminated, as ustar numeric fields are. */
function writeOctal(buf: Uint8Array, offset: number, length: number, value: number): void {
  const s = Math.floor(value).toString(8).padStart(length - 1, '0');
  if (s.length > length - 1) throw new LesionFuseError(`tar numeric field overflow (${value})`);
  writeString(buf, offset, length, s + '\0');
}

/** Split a long name into ustar's prefix (155 bytes) and name (100 bytes) at a '/'. */
function splitName(name: string): { prefix: string; name: string } {
  if (enc.encode(name).length <= 100) return { prefix: '', name };
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== '/') continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (enc.encode(prefix).length <= 155 && enc.encode(rest).length <= 100 && rest.length > 0) return { prefix, name: rest };
  }
  throw new LesionFuseError(`tar entry name too long for ustar: '${name}'`);
}

function header(entry: TarEntry): Uint8Array {
  checkName(entry.name);
  const isDir = entry.name.endsWith('/');
  const h = new Uint8Array(BLOCK);
  const { prefix, name } = splitName(entry.name);
  writeString(h, 0, 100, name);
  writeOctal(h, 100, 8, entry.mode ?? (isDir ? 0o755 : 0o644));
  writeOctal(h, 108, 8, 0); // uid
  writeOctal(h, 116, 8, 0); // gid
  writeOctal(h, 124, 12, isDir ? 0 : entry.data.length);
  writeOctal(h, 136, 12, entry.mtime ?? 0);
  h.fill(0x20, 148, 156); // checksum field counts as spaces while summing
  h[156] = isDir ? 0x35 /* '5' */ : 0x30 /* '0' */;
  writeString(h, 257, 6, 'ustar\0');
  writeString(h, 263, 2, '00');
  writeString(h, 265, 32, 'root');
  writeString(h, 297, 32, 'root');
  writeString(h, 345, 155, prefix);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  writeString(h, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return h;
}

/** The bytes of an uncompressed ustar archive holding `entries`, in order. */
export function createTar(entries: readonly TarEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (const e of entries) {
    const h = header(e);
    parts.push(h);
    total += BLOCK;
    if (!e.name.endsWith('/') && e.data.length > 0) {
      parts.push(e.data);
      const pad = (BLOCK - (e.data.length % BLOCK)) % BLOCK;
      if (pad) parts.push(new Uint8Array(pad));
      total += e.data.length + pad;
    }
  }
  parts.push(new Uint8Array(2 * BLOCK)); // two zero blocks end the archive
  total += 2 * BLOCK;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function readString(buf: Uint8Array, offset: number, length: number): string {
  const slice = buf.subarray(offset, offset + length);
  const nul = slice.indexOf(0);
  return dec.decode(nul >= 0 ? slice.subarray(0, nul) : slice);
}

function readOctal(buf: Uint8Array, offset: number, length: number, what: string, source: string): number {
  const s = readString(buf, offset, length).trim();
  if (!/^[0-7]*$/.test(s)) throw new LesionFuseError(`not a valid tar archive (bad ${what} field)`, { subject: source });
  return s ? parseInt(s, 8) : 0;
}

/**
 * Read the entries of an uncompressed ustar (or GNU/pax-free) archive. Checks each header's checksum
 * and refuses names that would escape the extraction folder. `source` names the file in errors.
 */
export function readTar(bytes: Uint8Array, source = 'archive'): TarEntry[] {
  const out: TarEntry[] = [];
  let off = 0;
  let ended = false;
  while (off + BLOCK <= bytes.length) {
    const h = bytes.subarray(off, off + BLOCK);
    if (h.every((b) => b === 0)) {
      ended = true;
      break;
    }
    const stored = readOctal(h, 148, 8, 'checksum', source);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
    if (sum !== stored) throw new LesionFuseError(`not a valid tar archive (header checksum mismatch at byte ${off})`, { subject: source });
    const name = readString(h, 0, 100);
    const prefix = readString(h, 345, 155);
    const full = prefix ? `${prefix}/${name}` : name;
    const size = readOctal(h, 124, 12, 'size', source);
    const type = String.fromCharCode(h[156] || 0x30);
    const mode = readOctal(h, 100, 8, 'mode', source);
    const mtime = readOctal(h, 136, 12, 'mtime', source);
    off += BLOCK;
    if (off + size > bytes.length) throw new LesionFuseError(`tar archive is truncated (entry '${full}' needs ${size} bytes)`, { subject: source });
    const data = bytes.slice(off, off + size);
    off += Math.ceil(size / BLOCK) * BLOCK;
    if (type === '5') out.push({ name: full.endsWith('/') ? full : full + '/', data: new Uint8Array(0), mode, mtime });
    else if (type === '0') {
      checkName(full);
      out.push({ name: full, data, mode, mtime });
    } else throw new LesionFuseError(`tar entry '${full}' has type '${type}': bundles hold only files and folders`, { subject: source });
  }
  // Every tar writer ends an archive with zero blocks; without them the file was cut short.
  if (!ended) throw new LesionFuseError('tar archive is truncated (no end-of-archive blocks)', { subject: source });
  return out;
}

/** createTar + gzip (level 9; mtime 0 in the gzip header, so equal inputs give equal bytes). */
export function createTarGz(entries: readonly TarEntry[]): Uint8Array {
  return gzipSync(createTar(entries), { level: 9 });
}

/** The largest archive `readTarGz` inflates by default: 20x the compressed size, at least 256 MiB, at most 4 GiB. */
export function defaultInflateLimit(compressedBytes: number): number {
  return Math.min(4 * 2 ** 30, Math.max(256 * 2 ** 20, 20 * compressedBytes));
}

/**
 * gunzip + readTar, with one-line errors naming `source`. Inflating stops at `maxBytes` (default
 * {@link defaultInflateLimit}): a gzip bomb is refused with the limit in the message instead of filling memory.
 */
export function readTarGz(bytes: Uint8Array, source = 'archive', maxBytes = defaultInflateLimit(bytes.length)): TarEntry[] {
  let raw: Uint8Array;
  try {
    raw = gunzipSync(bytes, { maxOutputLength: maxBytes });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      const mib = (maxBytes / 2 ** 20).toFixed(0);
      throw new LesionFuseError(
        `inflates to more than ${mib} MiB (the limit for a ${(bytes.length / 2 ** 20).toFixed(1)} MiB archive: 20x its size, at least 256 MiB); refused as a possible decompression bomb`,
        { subject: source },
      );
    }
    throw new LesionFuseError(`not a gzip file or corrupt (${e.message})`, { subject: source });
  }
  return readTar(raw, source);
}
