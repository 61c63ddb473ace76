/**
 * A small Windows BMP decoder: sharp (libvips) has no BMP loader, and PH2 ships its images and masks as
 * BMP. Supports what dermoscopy archives contain: uncompressed 1/4/8-bit palette, 16-bit (5-5-5 or
 * bitfields), 24-bit and 32-bit (BI_RGB or BI_BITFIELDS) pixels, bottom-up and top-down rows, the
 * OS/2 core header and the Windows 40/52/56/108/124-byte headers. RLE and embedded JPEG/PNG are refused
 * with a clear message rather than decoded wrongly.
 */
import { LesionFuseError } from '../util/errors.js';

export interface BmpHeader {
  width: number;
  height: number;
  bitsPerPixel: number;
  compression: number;
  topDown: boolean;
  dataOffset: number;
  headerSize: number;
}

export interface BmpImage {
  width: number;
  height: number;
  /** 3 (RGB) or 4 (RGBA, only when the file has a real alpha channel). */
  channels: 3 | 4;
  data: Uint8Array;
  /** True when the file stores colours through a palette (1/4/8-bit). */
  palette: boolean;
}

/** True when the bytes start like a BMP file. */
export function isBmp(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x42 && buf[1] === 0x4d;
}

function fail(path: string, msg: string): never {
  throw new LesionFuseError(msg, { subject: path });
}

/** Read only the headers (for the decompression-bomb check before any pixel is decoded). */
export function readBmpHeader(buf: Uint8Array, path = '<buffer>'): BmpHeader {
  if (!isBmp(buf)) fail(path, 'not a BMP file (no "BM" signature)');
  if (buf.length < 26) fail(path, `truncated BMP: ${buf.length} bytes, shorter than its headers`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dataOffset = dv.getUint32(10, true);
  const headerSize = dv.getUint32(14, true);
  if (headerSize === 12) {
    return {
      width: dv.getUint16(18, true),
      height: dv.getUint16(20, true),
      bitsPerPixel: dv.getUint16(24, true),
      compression: 0,
      topDown: false,
      dataOffset,
      headerSize,
    };
  }
  if (![40, 52, 56, 64, 108, 124].includes(headerSize)) fail(path, `unsupported BMP header size ${headerSize}`);
  if (buf.length < 14 + 40) fail(path, `truncated BMP: ${buf.length} bytes, shorter than its headers`);
  const width = dv.getInt32(18, true);
  const rawHeight = dv.getInt32(22, true);
  return {
    width,
    height: Math.abs(rawHeight),
    bitsPerPixel: dv.getUint16(28, true),
    compression: dv.getUint32(30, true),
    topDown: rawHeight < 0,
    dataOffset,
    headerSize,
  };
}

/** Shift and scale for a channel bitmask (e.g. 0x7c00 -> shift 10, 5 bits). */
function maskInfo(mask: number): { shift: number; max: number } {
  if (mask === 0) return { shift: 0, max: 0 };
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  let bits = 0;
  while (((mask >>> (shift + bits)) & 1) === 1) bits++;
  return { shift, max: 2 ** bits - 1 };
}

/** Decode a BMP file's pixels to 8-bit RGB (or RGBA when the file carries alpha), top row first. */
export function decodeBmp(buf: Uint8Array, path = '<buffer>'): BmpImage {
  const h = readBmpHeader(buf, path);
  const { width, height, bitsPerPixel: bpp, compression } = h;
  if (width <= 0 || height <= 0) fail(path, `BMP declares an empty image (${width} x ${height})`);
  if (compression === 1 || compression === 2) fail(path, 'RLE-compressed BMP is not supported; convert it to PNG');
  if (compression === 4 || compression === 5) fail(path, 'BMP with embedded JPEG/PNG data is not supported; extract or convert it');
  if (compression !== 0 && compression !== 3 && compression !== 6) fail(path, `unsupported BMP compression ${compression}`);
  if (![1, 4, 8, 16, 24, 32].includes(bpp)) fail(path, `unsupported BMP bit depth ${bpp}`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);

  // Channel masks for 16/32-bit pixels.
  let masks: [number, number, number, number];
  if (compression === 3 || compression === 6) {
    const at = 14 + 40; // masks follow the 40-byte header, or sit inside the larger headers at the same place
    if (buf.length < at + 12) fail(path, 'truncated BMP: bitfield masks missing');
    const alpha = h.headerSize >= 56 || compression === 6 ? dv.getUint32(at + 12, true) : 0;
    masks = [dv.getUint32(at, true), dv.getUint32(at + 4, true), dv.getUint32(at + 8, true), alpha];
  } else if (bpp === 16) {
    masks = [0x7c00, 0x03e0, 0x001f, 0];
  } else {
    masks = [0xff0000, 0xff00, 0xff, 0];
  }

  // Palette for <= 8-bit pixels.
  let palette: Uint8Array | null = null;
  if (bpp <= 8) {
    const entrySize = h.headerSize === 12 ? 3 : 4;
    const declared = h.headerSize === 12 ? 0 : dv.getUint32(46, true);
    const count = declared > 0 ? Math.min(declared, 256) : 1 << bpp;
    const start = 14 + h.headerSize + (compression === 3 && h.headerSize === 40 ? 12 : 0);
    if (start + count * entrySize > buf.length) fail(path, 'truncated BMP: palette missing');
    palette = new Uint8Array(256 * 3);
    for (let i = 0; i < count; i++) {
      const o = start + i * entrySize;
      palette[i * 3] = buf[o + 2]!;
      palette[i * 3 + 1] = buf[o + 1]!;
      palette[i * 3 + 2] = buf[o]!;
    }
  }

  const stride = Math.floor((bpp * width + 31) / 32) * 4;
  const need = h.dataOffset + stride * height;
  if (need > buf.length) {
    fail(path, `truncated BMP: pixel data needs ${need} bytes, the file has ${buf.length}`);
  }
  const hasAlpha = bpp === 32 && masks[3] !== 0;
  const channels: 3 | 4 = hasAlpha ? 4 : 3;
  const out = new Uint8Array(width * height * channels);
  const mi = masks.map(maskInfo);
  const scale = (v: number, m: { shift: number; max: number }): number => (m.max === 0 ? 0 : Math.round((((v >>> m.shift) & m.max) * 255) / m.max));

  for (let row = 0; row < height; row++) {
    const y = h.topDown ? row : height - 1 - row;
    const base = h.dataOffset + row * stride;
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * channels;
      if (palette) {
        let idx: number;
        if (bpp === 8) idx = buf[base + x]!;
        else if (bpp === 4) idx = (buf[base + (x >> 1)]! >> (x & 1 ? 0 : 4)) & 0x0f;
        else idx = (buf[base + (x >> 3)]! >> (7 - (x & 7))) & 1;
        out[o] = palette[idx * 3]!;
        out[o + 1] = palette[idx * 3 + 1]!;
        out[o + 2] = palette[idx * 3 + 2]!;
      } else if (bpp === 24) {
        const p = base + x * 3;
        out[o] = buf[p + 2]!;
        out[o + 1] = buf[p + 1]!;
        out[o + 2] = buf[p]!;
      } else {
        const v = bpp === 16 ? dv.getUint16(base + x * 2, true) : dv.getUint32(base + x * 4, true);
        out[o] = scale(v, mi[0]!);
        out[o + 1] = scale(v, mi[1]!);
        out[o + 2] = scale(v, mi[2]!);
        if (hasAlpha) out[o + 3] = scale(v, mi[3]!);
      }
    }
  }
  return { width, height, channels, data: out, palette: palette !== null };
}

/**
 * Encode 8-bit RGB as a 24-bit bottom-up BMP, or an 8-bit palette BMP when `palette` is given
 * (used by tests and fixtures; LesionFuse never writes BMP outputs).
 */
export function encodeBmp(
  width: number,
  height: number,
  pixels: Uint8Array,
  opts: { palette?: Uint8Array /* RGB triples */; topDown?: boolean } = {},
): Uint8Array {
  const bpp = opts.palette ? 8 : 24;
  const stride = Math.floor((bpp * width + 31) / 32) * 4;
  const paletteCount = opts.palette ? opts.palette.length / 3 : 0;
  const dataOffset = 14 + 40 + paletteCount * 4;
  const size = dataOffset + stride * height;
  const buf = new Uint8Array(size);
  const dv = new DataView(buf.buffer);
  buf[0] = 0x42;
  buf[1] = 0x4d;
  dv.setUint32(2, size, true);
  dv.setUint32(10, dataOffset, true);
  dv.setUint32(14, 40, true);
  dv.setInt32(18, width, true);
  dv.setInt32(22, opts.topDown ? -height : height, true);
  dv.setUint16(26, 1, true);
  dv.setUint16(28, bpp, true);
  dv.setUint32(34, stride * height, true);
  dv.setUint32(46, paletteCount, true);
  for (let i = 0; i < paletteCount; i++) {
    buf[54 + i * 4] = opts.palette![i * 3 + 2]!;
    buf[54 + i * 4 + 1] = opts.palette![i * 3 + 1]!;
    buf[54 + i * 4 + 2] = opts.palette![i * 3]!;
  }
  for (let row = 0; row < height; row++) {
    const y = opts.topDown ? row : height - 1 - row;
    const base = dataOffset + row * stride;
    for (let x = 0; x < width; x++) {
      if (opts.palette) {
        buf[base + x] = pixels[y * width + x]!;
      } else {
        const s = (y * width + x) * 3;
        buf[base + x * 3] = pixels[s + 2]!;
        buf[base + x * 3 + 1] = pixels[s + 1]!;
        buf[base + x * 3 + 2] = pixels[s]!;
      }
    }
  }
  return buf;
}
