/**
 * The ONE image and mask reader/writer of LesionFuse (sharp, plus a small BMP decoder because sharp has
 * none). Every stage that touches pixels (segmentation, evaluation, calibration, distillation) goes
 * through here, so the docs/inputs.md contract (EXIF orientation, colour modes, bombs, broken files) holds
 * everywhere in the same way.
 */
import { promises as fs } from 'node:fs';
import sharp, { type Metadata } from 'sharp';
import { LesionFuseError, describeError } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import { decodeBmp, isBmp, readBmpHeader } from './bmp.js';
import type { SegmentationMetadata } from '../onnx/metadata.js';

/** A decoded image: 8-bit RGB, interleaved, top row first, as a viewer shows it (EXIF orientation applied). */
export interface DecodedImage {
  width: number;
  height: number;
  /** width * height * 3 bytes, RGB, row-major (HWC). */
  data: Uint8Array;
  /** What was changed to get here (alpha flattened, 16-bit reduced, frames dropped...). */
  warnings: string[];
  /** Where it came from, when it came from a file. */
  path?: string;
}

/** A binary mask: 1 = lesion, 0 = skin, row-major. */
export interface Mask {
  width: number;
  height: number;
  /** width * height bytes of 0/1. */
  data: Uint8Array;
  warnings: string[];
}

/**
 * Largest declared width x height decoded by default (100 megapixels, e.g. 12000 x 8000): bigger
 * headers are refused before any pixel is decoded, since a tiny file can declare a gigantic image.
 * Raise it with `maxPixels` (API) or `--max-pixels` (CLI).
 */
export const DEFAULT_MAX_PIXELS = 100_000_000;

export interface ImageDecodeOptions {
  /** Refuse images whose header declares more pixels than this (default {@link DEFAULT_MAX_PIXELS}). */
  maxPixels?: number;
}

export type ImageFormat = 'jpeg' | 'png' | 'bmp' | 'tiff' | 'webp' | 'gif';

/** The file extensions read as images (folders and globs pick files by these). */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.jpe', '.jfif', '.png', '.bmp', '.dib', '.tif', '.tiff', '.webp', '.gif'] as const;

/** Recognise an image format from its first bytes (never from the extension, which may lie). */
export function sniffImageFormat(buf: Uint8Array): ImageFormat | null {
  const b = (i: number): number => buf[i] ?? -1;
  if (b(0) === 0xff && b(1) === 0xd8 && b(2) === 0xff) return 'jpeg';
  if (b(0) === 0x89 && b(1) === 0x50 && b(2) === 0x4e && b(3) === 0x47) return 'png';
  if (isBmp(buf) && buf.length >= 14) return 'bmp';
  if ((b(0) === 0x49 && b(1) === 0x49 && b(2) === 0x2a && b(3) === 0) || (b(0) === 0x4d && b(1) === 0x4d && b(2) === 0 && b(3) === 0x2a)) return 'tiff';
  if (b(0) === 0x52 && b(1) === 0x49 && b(2) === 0x46 && b(3) === 0x46 && b(8) === 0x57 && b(9) === 0x45 && b(10) === 0x42 && b(11) === 0x50) return 'webp';
  if (b(0) === 0x47 && b(1) === 0x49 && b(2) === 0x46 && b(3) === 0x38) return 'gif';
  return null;
}

function err(path: string, msg: string, cause?: unknown): LesionFuseError {
  return new LesionFuseError(msg, { subject: path, cause });
}

/** Read a file's bytes, turning every way it can be missing or unreadable into one clear line. */
async function readInputFile(path: string): Promise<Buffer> {
  let st;
  try {
    st = await fs.stat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw err(path, 'no such file');
    if (code === 'EACCES' || code === 'EPERM') throw err(path, 'permission denied');
    if (code === 'ENOTDIR') throw err(path, 'no such file (a parent is not a folder)');
    throw err(path, `cannot read: ${describeError(e)}`, e);
  }
  if (st.isDirectory()) throw err(path, 'is a directory, not an image file');
  if (!st.isFile()) throw err(path, 'is not a regular file');
  if (st.size === 0) throw err(path, 'empty file (0 bytes)');
  try {
    return await fs.readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') throw err(path, 'permission denied');
    throw err(path, `cannot read: ${describeError(e)}`, e);
  }
}

interface RawPixels {
  width: number;
  height: number;
  channels: number;
  /** 1 (uchar) or 2 (ushort) bytes per sample. */
  bytesPerSample: 1 | 2;
  data: Uint8Array | Uint16Array;
  warnings: string[];
  format: ImageFormat;
}

function checkPixels(path: string, width: number, height: number, maxPixels: number): void {
  if (!(width > 0 && height > 0)) throw err(path, `the header declares an empty image (${width} x ${height})`);
  if (width * height > maxPixels) {
    throw err(
      path,
      `the header declares ${width} x ${height} = ${width * height} pixels, above the limit of ${maxPixels} (a decompression bomb?); ` +
        `raise it with --max-pixels N (API: maxPixels) if the image is genuine`,
    );
  }
}

/**
 * Decode a file to raw samples without colour conversion, after the bomb check on its header.
 * `forImage` applies the image conversions (flatten alpha, sRGB, 8-bit); otherwise the raw channels
 * are kept (masks are read through their palette colours, never raw indices).
 */
async function decodeRaw(path: string, opts: ImageDecodeOptions, forImage: boolean): Promise<RawPixels> {
  return decodeRawBytes(await readInputFile(path), path, opts, forImage);
}

function maxPixelsOf(opts: ImageDecodeOptions): number {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!(maxPixels > 0)) throw new LesionFuseError(`maxPixels must be a positive number, got ${maxPixels}`, { subject: '--max-pixels' });
  return maxPixels;
}

function sniffOrThrow(buf: Uint8Array, path: string): ImageFormat {
  if (buf.length === 0) throw err(path, 'empty file (0 bytes)');
  const format = sniffImageFormat(buf);
  if (!format) {
    const head = Array.from(buf.subarray(0, 4), (x) => x.toString(16).padStart(2, '0')).join(' ');
    throw err(path, `not a supported image (JPEG, PNG, BMP, TIFF, WebP or GIF); the file starts with bytes ${head}`);
  }
  return format;
}

/** Read a non-BMP header with sharp, refuse bombs, and list the conversions an image decode will make. */
async function probe(buf: Buffer, path: string, format: ImageFormat, maxPixels: number, forImage: boolean): Promise<{ meta: Metadata; warnings: string[] }> {
  let meta: Metadata;
  try {
    meta = await sharp(buf, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw err(path, `corrupt or unreadable ${format.toUpperCase()} header (${describeError(e)})`, e);
  }
  const warnings: string[] = [];
  const pageHeight = meta.pageHeight ?? meta.height ?? 0;
  checkPixels(path, meta.width ?? 0, pageHeight, maxPixels);
  if ((meta.pages ?? 1) > 1) warnings.push(`${meta.pages} frames/pages; only the first is used`);
  if (forImage) {
    if (meta.space === 'cmyk') warnings.push('CMYK image converted to sRGB');
    if (meta.isPalette) warnings.push('palette image converted to RGB');
    else if (meta.channels !== undefined && meta.channels <= 2) warnings.push('grayscale image converted to RGB');
    if (meta.hasAlpha) warnings.push('alpha channel flattened over white');
    if (meta.depth === 'ushort') warnings.push('16-bit image reduced to 8 bits per channel');
  }
  return { meta, warnings };
}

function decodeFailure(e: unknown, path: string, format: ImageFormat): LesionFuseError {
  if (e instanceof LesionFuseError) return e;
  const m = describeError(e);
  const what = /truncat|premature|end of (file|stream)|unexpected end|not enough/i.test(m) ? 'truncated' : 'corrupt';
  return err(path, `${what} ${format.toUpperCase()} data (${m})`, e);
}

/** {@link decodeRaw} on bytes already in memory (`path` only names them in errors). */
async function decodeRawBytes(bufIn: Uint8Array, path: string, opts: ImageDecodeOptions, forImage: boolean): Promise<RawPixels> {
  const maxPixels = maxPixelsOf(opts);
  const buf = Buffer.isBuffer(bufIn) ? bufIn : Buffer.from(bufIn.buffer, bufIn.byteOffset, bufIn.byteLength);
  const format = sniffOrThrow(buf, path);

  if (format === 'bmp') {
    const warnings: string[] = [];
    const h = readBmpHeader(buf, path);
    checkPixels(path, h.width, h.height, maxPixels);
    const bmp = decodeBmp(buf, path);
    if (bmp.palette && forImage) warnings.push('palette image converted to RGB');
    let data = bmp.data;
    let channels: number = bmp.channels;
    if (bmp.channels === 4) {
      if (forImage) {
        data = flattenOverWhite(bmp.data, bmp.width * bmp.height);
        channels = 3;
        warnings.push('alpha channel flattened over white');
      }
    }
    return { width: bmp.width, height: bmp.height, channels, bytesPerSample: 1, data, warnings, format };
  }

  const { meta, warnings } = await probe(buf, path, format, maxPixels, forImage);
  try {
    let pipe = sharp(buf, { limitInputPixels: maxPixels, failOn: 'error', page: 0, pages: 1 }).rotate();
    if (forImage) {
      if (meta.hasAlpha) pipe = pipe.flatten({ background: { r: 255, g: 255, b: 255 } });
      pipe = pipe.toColourspace('srgb').removeAlpha().raw({ depth: 'uchar' });
    } else {
      pipe = pipe.raw();
    }
    const { data, info } = await pipe.toBuffer({ resolveWithObject: true });
    const samples = info.width * info.height * info.channels;
    const bytesPerSample = data.length === samples * 2 ? 2 : 1;
    const arr =
      bytesPerSample === 2
        ? new Uint16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length))
        : new Uint8Array(data.buffer, data.byteOffset, data.length);
    if (forImage && (info.channels !== 3 || bytesPerSample !== 1)) {
      throw err(path, `decoded to ${info.channels} channels of ${bytesPerSample * 8} bits, expected 8-bit RGB`);
    }
    return { width: info.width, height: info.height, channels: info.channels, bytesPerSample, data: arr, warnings, format };
  } catch (e) {
    throw decodeFailure(e, path, format);
  }
}

/** How an image is brought to the model's input size. */
export type ResizeMode = 'fast' | 'exact';

/**
 * An image already at the model's input size, with the size it has on screen (after EXIF orientation),
 * which is the size its mask gets.
 */
export interface ModelSizedImage {
  /** Original width and height (after EXIF orientation). */
  width: number;
  height: number;
  /** The model's input size. */
  modelWidth: number;
  modelHeight: number;
  /** modelWidth * modelHeight * 3 bytes, RGB, HWC. */
  data: Uint8Array;
  warnings: string[];
  path?: string;
}

/**
 * Decode an image straight to the model's input size: libvips resizes while decoding (JPEG shrink-on-load
 * by 2/4/8 in the DCT, then one triangle-filter reduction to W x H, the same filter family as Pillow's
 * BILINEAR), so a 6000 x 4000 photo is never held at full size. Same checks, conversions and warnings as
 * {@link decodeImage}. BMP (which sharp cannot read) is decoded in full and resized with
 * {@link resizeBilinearU8}. `input` is a path, or the file's bytes (then `label` names them in errors).
 */
export async function decodeResized(
  input: string | Uint8Array,
  size: { width: number; height: number },
  opts: ImageDecodeOptions & { label?: string } = {},
): Promise<ModelSizedImage> {
  const path = typeof input === 'string' ? input : (opts.label ?? 'image bytes');
  const buf = typeof input === 'string' ? await readInputFile(input) : Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const maxPixels = maxPixelsOf(opts);
  const format = sniffOrThrow(buf, path);
  const { width: W, height: H } = size;
  const withPath = <T extends object>(o: T): T => (typeof input === 'string' ? { ...o, path: input } : o);
  if (format === 'bmp') {
    const raw = await decodeRawBytes(buf, path, opts, true);
    const data = resizeBilinearU8(raw.data as Uint8Array, raw.width, raw.height, 3, W, H);
    return withPath({ width: raw.width, height: raw.height, modelWidth: W, modelHeight: H, data, warnings: raw.warnings });
  }
  const { meta, warnings } = await probe(buf, path, format, maxPixels, true);
  const w0 = meta.width ?? 0;
  const h0 = meta.pageHeight ?? meta.height ?? 0;
  const swap = (meta.orientation ?? 1) >= 5;
  try {
    let pipe = sharp(buf, { limitInputPixels: maxPixels, failOn: 'error', page: 0, pages: 1 }).rotate();
    if (meta.hasAlpha) pipe = pipe.flatten({ background: { r: 255, g: 255, b: 255 } });
    pipe = pipe.resize(W, H, { fit: 'fill', kernel: 'linear', fastShrinkOnLoad: true }).toColourspace('srgb').removeAlpha().raw({ depth: 'uchar' });
    const { data, info } = await pipe.toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || info.width !== W || info.height !== H || data.length !== W * H * 3) {
      throw err(path, `decoded to ${info.width} x ${info.height} x ${info.channels}, expected ${W} x ${H} x 3`);
    }
    return withPath({
      width: swap ? h0 : w0,
      height: swap ? w0 : h0,
      modelWidth: W,
      modelHeight: H,
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
      warnings,
    });
  } catch (e) {
    throw decodeFailure(e, path, format);
  }
}

/** Resize an already decoded image to the model size with libvips (the fast path for in-memory images). */
export async function resizeDecodedFast(img: DecodedImage, size: { width: number; height: number }): Promise<Uint8Array> {
  const { width: W, height: H } = size;
  if (img.width === W && img.height === H) return new Uint8Array(img.data);
  const { data } = await sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(W, H, { fit: 'fill', kernel: 'linear' })
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/**
 * Scale model-size RGB pixels (HWC, uint8) into the NCHW float32 tensor `out` at image `n` in one pass:
 * `(v / 255 - mean[c]) / std[c]` looked up in a 256-entry table per channel, in the model's channel order.
 */
export function normaliseInto(px: Uint8Array, meta: ModelInputSpec, out: Float32Array, n: number): void {
  const { height: H, width: W } = meta;
  const plane = H * W;
  if (px.length !== plane * 3) throw new LesionFuseError(`model-size image has ${px.length} bytes, not ${W} x ${H} x 3`);
  const order = meta.channelOrder === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  const luts = order.map((src) => {
    const lut = new Float32Array(256);
    for (let v = 0; v < 256; v++) lut[v] = (v / 255 - meta.mean[src]!) / meta.std[src]!;
    return lut;
  });
  const base = n * 3 * plane;
  const l0 = luts[0]!, l1 = luts[1]!, l2 = luts[2]!;
  const s0 = order[0]!, s1 = order[1]!, s2 = order[2]!;
  for (let i = 0, p = 0; i < plane; i++, p += 3) {
    out[base + i] = l0[px[p + s0]!]!;
    out[base + plane + i] = l1[px[p + s1]!]!;
    out[base + 2 * plane + i] = l2[px[p + s2]!]!;
  }
}


function flattenOverWhite(rgba: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const a = rgba[i * 4 + 3]! / 255;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.round(rgba[i * 4 + c]! * a + 255 * (1 - a));
  }
  return out;
}

/**
 * Decode an image file to 8-bit RGB as a viewer shows it: EXIF orientation applied; grayscale,
 * palette, CMYK and 16-bit converted; alpha flattened over white; the first frame of multi-frame
 * files. Each conversion is stated in `warnings`. Headers declaring more than `maxPixels` are refused
 * before decoding. Bad files (missing, directory, no permission, empty, truncated, corrupt, not an
 * image) throw a LesionFuseError naming the path. `input` may also be the file's bytes (a Buffer or
 * Uint8Array; `label` then names them in errors).
 */
export async function decodeImage(input: string | Uint8Array, opts: ImageDecodeOptions & { label?: string } = {}): Promise<DecodedImage> {
  if (typeof input !== 'string') {
    const raw = await decodeRawBytes(input, opts.label ?? 'image bytes', opts, true);
    return { width: raw.width, height: raw.height, data: raw.data as Uint8Array, warnings: raw.warnings };
  }
  const raw = await decodeRaw(input, opts, true);
  return { width: raw.width, height: raw.height, data: raw.data as Uint8Array, warnings: raw.warnings, path: input };
}

export interface ReadMaskOptions extends ImageDecodeOptions {
  /** The size of the mask's image: a different size is refused by name unless `resize` is set. */
  expectSize?: { width: number; height: number };
  /** Resize (nearest neighbour) a mask whose size differs from `expectSize` instead of refusing it. */
  resize?: boolean;
}

/**
 * Read a mask as binary (1 = lesion). 0/255, 0/1, boolean (1-bit) and palette masks are read exactly;
 * palette masks go through their palette colours (HAM10000's inverted palettes, index 0 = white, come
 * out right). Colour masks count the brightest channel. Anything with intermediate values (anti-aliased
 * edges, JPEG masks) is thresholded at half the range (>= 128 of 255) with a warning saying how many
 * pixels were in between.
 */
export async function readMask(path: string, opts: ReadMaskOptions = {}): Promise<Mask> {
  const raw = await decodeRaw(path, opts, false);
  const warnings = [...raw.warnings];
  const n = raw.width * raw.height;
  const max = raw.bytesPerSample === 2 ? 65535 : 255;
  // Colour channels only: a trailing alpha (2 = gray+alpha, 4 = RGBA) is not part of the mask.
  const colour = raw.channels === 2 || raw.channels === 4 ? raw.channels - 1 : raw.channels;
  if (colour !== raw.channels) warnings.push('alpha channel of the mask ignored');
  const v = new Uint32Array(n);
  let onlyZeroOne = true;
  let intermediate = 0;
  for (let i = 0; i < n; i++) {
    let m = 0;
    for (let c = 0; c < colour; c++) m = Math.max(m, raw.data[i * raw.channels + c]!);
    v[i] = m;
    if (m > 1) onlyZeroOne = false;
    if (m !== 0 && m !== max) intermediate++;
  }
  const data = new Uint8Array(n);
  if (onlyZeroOne) {
    for (let i = 0; i < n; i++) data[i] = v[i]!;
  } else {
    const half = (max + 1) / 2;
    for (let i = 0; i < n; i++) data[i] = v[i]! >= half ? 1 : 0;
    if (intermediate > 0) {
      warnings.push(`${intermediate} of ${n} mask pixels are neither 0 nor ${max} (anti-aliased or lossy${raw.format === 'jpeg' ? ' JPEG' : ''}); thresholded at ${half}`);
    } else if (raw.format === 'jpeg') {
      warnings.push('JPEG mask (lossy format); read as binary');
    }
  }
  let mask: Mask = { width: raw.width, height: raw.height, data, warnings };
  const ex = opts.expectSize;
  if (ex && (ex.width !== mask.width || ex.height !== mask.height)) {
    if (!opts.resize) {
      throw err(path, `mask is ${mask.width} x ${mask.height} but its image is ${ex.width} x ${ex.height}; fix the pair or allow resizing (--resize-masks)`);
    }
    mask = resizeMaskNearest(mask, ex.width, ex.height);
    mask.warnings.push(`mask resized from ${raw.width} x ${raw.height} to ${ex.width} x ${ex.height} (nearest neighbour)`);
  }
  return mask;
}

/** Nearest-neighbour resize of a binary mask (half-pixel centres). */
export function resizeMaskNearest(mask: Mask, width: number, height: number): Mask {
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(mask.height - 1, Math.floor(((y + 0.5) * mask.height) / height));
    for (let x = 0; x < width; x++) {
      const sx = Math.min(mask.width - 1, Math.floor(((x + 0.5) * mask.width) / width));
      out[y * width + x] = mask.data[sy * mask.width + sx]!;
    }
  }
  return { width, height, data: out, warnings: [...mask.warnings] };
}

async function pngBytes(data: Uint8Array, width: number, height: number, channels: 1 | 3): Promise<Buffer> {
  const img = sharp(Buffer.from(data.buffer, data.byteOffset, data.byteLength), { raw: { width, height, channels } });
  // Without an explicit colourspace sharp would store a single channel as RGB.
  return (channels === 1 ? img.toColourspace('b-w') : img)
    .png({ compressionLevel: 6 })
    .toBuffer();
}

/**
 * Anything with a binary mask: a {@link Mask} (`data`) or a segmentation result (`mask`, as returned by
 * `Segmenter.segment()`), width * height values, non-zero = lesion.
 */
export type MaskLike = { width: number; height: number; data: Uint8Array } | { width: number; height: number; mask: Uint8Array };

/** The 0/1 (or 0/non-zero) pixels of a {@link MaskLike}. */
export function maskPixels(m: MaskLike): Uint8Array {
  const px = 'mask' in m ? m.mask : m.data;
  if (px.length !== m.width * m.height) throw new LesionFuseError(`mask has ${px.length} values, not ${m.width} x ${m.height}`);
  return px;
}

/** The PNG bytes {@link writeMaskPng} writes. */
export async function maskPngBytes(mask: MaskLike): Promise<Buffer> {
  const src = maskPixels(mask);
  const px = new Uint8Array(mask.width * mask.height);
  for (let i = 0; i < px.length; i++) px[i] = src[i] ? 255 : 0;
  return pngBytes(px, mask.width, mask.height, 1);
}

/**
 * Write a mask as a single-channel 8-bit PNG, 0 = skin and 255 = lesion, atomically. Takes a {@link Mask}
 * or the result of `Segmenter.segment()` directly.
 */
export async function writeMaskPng(path: string, mask: MaskLike): Promise<void> {
  const src = maskPixels(mask);
  const px = new Uint8Array(mask.width * mask.height);
  for (let i = 0; i < px.length; i++) px[i] = src[i] ? 255 : 0;
  await writeFileAtomic(path, await pngBytes(px, mask.width, mask.height, 1));
}

/** Write a probability map (0..1) as an 8-bit grayscale PNG (round(p * 255)), atomically. */
export async function writeProbabilityPng(path: string, probability: Float32Array, width: number, height: number): Promise<void> {
  if (probability.length !== width * height) throw new LesionFuseError(`probability map has ${probability.length} values, not ${width} x ${height}`, { subject: path });
  const px = new Uint8Array(width * height);
  for (let i = 0; i < px.length; i++) px[i] = Math.round(Math.min(1, Math.max(0, probability[i]!)) * 255);
  await writeFileAtomic(path, await pngBytes(px, width, height, 1));
}

/** Write the image with the lesion tinted red (40%) and its outline in yellow, as an RGB PNG, atomically. */
export async function writeOverlayPng(path: string, image: DecodedImage, mask: MaskLike): Promise<void> {
  const { width: w, height: h } = image;
  if (mask.width !== w || mask.height !== h) {
    throw new LesionFuseError(`overlay: mask is ${mask.width} x ${mask.height} but the image is ${w} x ${h}`, { subject: path });
  }
  const px = new Uint8Array(image.data);
  tint(px, maskPixels(mask), w, h);
  await writeFileAtomic(path, await pngBytes(px, w, h, 3));
}

/** Longest side of the overlays `segment` writes (they are for looking at, not for measuring). */
export const OVERLAY_MAX_SIDE = 1024;

/**
 * The overlay of {@link writeOverlayPng}, downscaled so that its longest side is at most `maxSide`
 * (default {@link OVERLAY_MAX_SIDE}): the image is decoded at that size by libvips and the mask
 * resampled (nearest) to it; written as a JPEG (quality 85), atomically.
 */
export async function writeOverlayJpeg(
  path: string,
  source: string | Uint8Array | DecodedImage,
  mask: MaskLike,
  opts: ImageDecodeOptions & { maxSide?: number } = {},
): Promise<void> {
  const maxSide = opts.maxSide ?? OVERLAY_MAX_SIDE;
  const scale = Math.min(1, maxSide / Math.max(mask.width, mask.height));
  const w = Math.max(1, Math.round(mask.width * scale));
  const h = Math.max(1, Math.round(mask.height * scale));
  let px: Uint8Array;
  if (typeof source === 'object' && 'data' in source && 'width' in source && !(source instanceof Uint8Array)) {
    px = source.width === w && source.height === h ? new Uint8Array(source.data) : await resizeDecodedFast(source, { width: w, height: h });
  } else {
    const img = await decodeResized(source as string | Uint8Array, { width: w, height: h }, opts);
    if (img.width !== mask.width || img.height !== mask.height) {
      throw new LesionFuseError(`overlay: mask is ${mask.width} x ${mask.height} but the image is ${img.width} x ${img.height}`, { subject: path });
    }
    px = img.data;
  }
  const small = resizeMaskNearest({ width: mask.width, height: mask.height, data: maskPixels(mask), warnings: [] }, w, h);
  tint(px, small.data, w, h);
  const bytes = await sharp(Buffer.from(px.buffer, px.byteOffset, px.byteLength), { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
  await writeFileAtomic(path, bytes);
}

/** Tint the lesion red (40%) and draw its outline in yellow, in place on RGB pixels. */
function tint(px: Uint8Array, m: Uint8Array, w: number, h: number): void {
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (!m[i]) continue;
      const edge = x === 0 || y === 0 || x === w - 1 || y === h - 1 || !m[i - 1] || !m[i + 1] || !m[i - w] || !m[i + w];
      if (edge) {
        px[i * 3] = 255;
        px[i * 3 + 1] = 255;
        px[i * 3 + 2] = 0;
      } else {
        px[i * 3] = Math.round(px[i * 3]! * 0.6 + 255 * 0.4);
        px[i * 3 + 1] = Math.round(px[i * 3 + 1]! * 0.6);
        px[i * 3 + 2] = Math.round(px[i * 3 + 2]! * 0.6);
      }
    }
  }
}

const PRECISION_BITS = 22;
const ONE = 2 ** PRECISION_BITS;

/**
 * Triangle-filter weights for one axis, support widened by the scale when downscaling (antialiasing),
 * as fixed-point integers with 22 fractional bits (Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`).
 */
function resampleWeights(inSize: number, outSize: number): { start: Int32Array; count: Int32Array; weights: Float64Array; taps: number } {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the triangle filter's support (1) widened by the scale
  const taps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * taps);
  const w = new Float64Array(taps);
  for (let i = 0; i < outSize; i++) {
    const centre = (i + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(centre - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(centre + support + 0.5));
    const n = hi - lo;
    let total = 0;
    for (let k = 0; k < n; k++) {
      const t = Math.abs((k + lo - centre + 0.5) / filterScale);
      w[k] = t < 1 ? 1 - t : 0;
      total += w[k]!;
    }
    for (let k = 0; k < n; k++) weights[i * taps + k] = Math.trunc(0.5 + (total !== 0 ? w[k]! / total : w[k]!) * ONE);
    start[i] = lo;
    count[i] = n;
  }
  return { start, count, weights, taps };
}

function clip8(acc: number): number {
  const v = Math.floor(acc / ONE);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Resize 8-bit interleaved pixels with a bilinear (triangle) filter, half-pixel centres, widened when
 * downscaling: the same algorithm and fixed-point arithmetic as Pillow's `Image.resize(..., BILINEAR)`,
 * which the teacher's training preprocessing uses, so models see the same pixels at inference
 * (horizontal pass, then vertical, each rounded to 8 bits).
 */
export function resizeBilinearU8(src: Uint8Array, inW: number, inH: number, channels: number, outW: number, outH: number): Uint8Array {
  const C = channels;
  let cur = src;
  let curW = inW;
  if (outW !== inW) {
    const hx = resampleWeights(inW, outW);
    const { start, count, weights, taps } = hx;
    const tmp = new Uint8Array(outW * inH * C);
    const acc = new Float64Array(C);
    for (let y = 0; y < inH; y++) {
      const rowIn = y * inW * C;
      const rowOut = y * outW * C;
      for (let x = 0; x < outW; x++) {
        const n = count[x]!;
        const wBase = x * taps;
        let p = rowIn + start[x]! * C;
        if (C === 3) {
          // the common case, with the accumulators in locals
          let a0 = ONE / 2;
          let a1 = ONE / 2;
          let a2 = ONE / 2;
          for (let k = 0; k < n; k++, p += 3) {
            const w = weights[wBase + k]!;
            a0 += cur[p]! * w;
            a1 += cur[p + 1]! * w;
            a2 += cur[p + 2]! * w;
          }
          const o = rowOut + x * 3;
          tmp[o] = clip8(a0);
          tmp[o + 1] = clip8(a1);
          tmp[o + 2] = clip8(a2);
          continue;
        }
        acc.fill(ONE / 2);
        for (let k = 0; k < n; k++, p += C) {
          const w = weights[wBase + k]!;
          for (let c = 0; c < C; c++) acc[c]! += cur[p + c]! * w;
        }
        for (let c = 0; c < C; c++) tmp[rowOut + x * C + c] = clip8(acc[c]!);
      }
    }
    cur = tmp;
    curW = outW;
  }
  if (outH === inH) return cur === src ? new Uint8Array(src) : cur;
  const vy = resampleWeights(inH, outH);
  const rowLen = curW * C;
  const out = new Uint8Array(rowLen * outH);
  const acc = new Float64Array(rowLen);
  for (let y = 0; y < outH; y++) {
    acc.fill(ONE / 2);
    const n = vy.count[y]!;
    const s = vy.start[y]!;
    // whole rows at a time: sequential memory access
    for (let k = 0; k < n; k++) {
      const w = vy.weights[y * vy.taps + k]!;
      const off = (s + k) * rowLen;
      for (let i = 0; i < rowLen; i++) acc[i]! += cur[off + i]! * w;
    }
    const o = y * rowLen;
    for (let i = 0; i < rowLen; i++) out[o + i] = clip8(acc[i]!);
  }
  return out;
}

/** What {@link toModelInput} needs to know: the model's fixed input size and its normalisation. */
export type ModelInputSpec = Pick<SegmentationMetadata, 'mean' | 'std' | 'channelOrder'> & { height: number; width: number };

/**
 * Prepare images as one NCHW float32 batch for the model: resize each to H x W (see
 * {@link resizeBilinearU8}), scale to 0..1, subtract `mean` and divide by `std` per channel, in the
 * model's channel order (RGB or BGR).
 */
export function toModelInput(images: readonly DecodedImage[], meta: ModelInputSpec): Float32Array {
  const { height: H, width: W } = meta;
  const out = new Float32Array(images.length * 3 * H * W);
  images.forEach((img, n) => {
    if (img.data.length !== img.width * img.height * 3) {
      throw new LesionFuseError(`image has ${img.data.length} bytes, not ${img.width} x ${img.height} x 3`, { subject: img.path ?? 'image' });
    }
    normaliseInto(resizeBilinearU8(img.data, img.width, img.height, 3, W, H), meta, out, n);
  });
  return out;
}

/** Half-pixel-centre bilinear taps along one axis: source columns x0/x1 and weight lx of x1, per output column. */
function bilinearTaps(fromW: number, toW: number, sx: number): { x0: Int32Array; x1: Int32Array; lx: Float32Array } {
  const x0 = new Int32Array(toW);
  const x1 = new Int32Array(toW);
  const lx = new Float32Array(toW);
  for (let x = 0; x < toW; x++) {
    const f = Math.max(0, (x + 0.5) * sx - 0.5);
    const i = Math.min(Math.floor(f), fromW - 1);
    x0[x] = i;
    x1[x] = Math.min(i + 1, fromW - 1);
    lx[x] = f - i;
  }
  return { x0, x1, lx };
}

/**
 * Bilinear resize of a single-channel float map with half-pixel centres and edge clamping (PyTorch's
 * `interpolate(mode='bilinear', align_corners=False)` without antialiasing): used to bring the model's
 * probability map back to the original image size.
 */
export function resizeProbability(prob: Float32Array, fromH: number, fromW: number, toH: number, toW: number): Float32Array {
  if (prob.length !== fromH * fromW) throw new LesionFuseError(`probability map has ${prob.length} values, not ${fromH} x ${fromW}`);
  if (fromH === toH && fromW === toW) return new Float32Array(prob);
  const out = new Float32Array(toH * toW);
  const sy = fromH / toH;
  const sx = fromW / toW;
  const { x0, x1, lx } = bilinearTaps(fromW, toW, sx);
  // Each source row interpolated to the output width once (cached), then blended per output row.
  const rowCache = new Map<number, Float32Array>();
  const horizontal = (r: number): Float32Array => {
    let row = rowCache.get(r);
    if (!row) {
      row = new Float32Array(toW);
      const base = r * fromW;
      for (let x = 0; x < toW; x++) {
        const a = prob[base + x0[x]!]!;
        row[x] = a + (prob[base + x1[x]!]! - a) * lx[x]!;
      }
      if (rowCache.size > 4) rowCache.delete(rowCache.keys().next().value!);
      rowCache.set(r, row);
    }
    return row;
  };
  for (let y = 0; y < toH; y++) {
    const fy = Math.max(0, (y + 0.5) * sy - 0.5);
    const y0 = Math.min(Math.floor(fy), fromH - 1);
    const y1 = Math.min(y0 + 1, fromH - 1);
    const ly = fy - y0;
    const a = horizontal(y0);
    const b = horizontal(y1);
    const o = y * toW;
    for (let x = 0; x < toW; x++) out[o + x] = a[x]! * (1 - ly) + b[x]! * ly;
  }
  return out;
}

/**
 * The mask {@link resizeProbability} followed by `p > threshold` gives, bit for bit, without making the
 * full-size probability map: bilinear interpolation is a convex combination of the four model pixels
 * around an output pixel, so where all four are above the threshold (or none is) the answer is known and
 * whole runs of output pixels are filled at once; only the cells the lesion boundary crosses are
 * interpolated (with the same float32 rounding as resizeProbability). The cost is the output's size in
 * bytes plus the boundary's length, not a float map of width x height.
 */
export function thresholdUpscaled(prob: Float32Array, fromH: number, fromW: number, toH: number, toW: number, threshold: number): Uint8Array {
  if (prob.length !== fromH * fromW) throw new LesionFuseError(`probability map has ${prob.length} values, not ${fromH} x ${fromW}`);
  const out = new Uint8Array(toH * toW);
  if (fromH === toH && fromW === toW) {
    for (let i = 0; i < out.length; i++) out[i] = prob[i]! > threshold ? 1 : 0;
    return out;
  }
  const f32 = Math.fround;
  const sy = fromH / toH;
  const sx = fromW / toW;
  const { x0, x1, lx } = bilinearTaps(fromW, toW, sx);
  // Each model pixel is clearly above (2), clearly below (0) or near (1) the threshold; the margin keeps
  // float rounding of an interpolation from ever deciding a filled run, and near cells are interpolated.
  const eps = 1e-5;
  const side = new Uint8Array(prob.length);
  for (let i = 0; i < prob.length; i++) side[i] = prob[i]! > threshold + eps ? 2 : prob[i]! < threshold - eps ? 0 : 1;
  for (let y = 0; y < toH; y++) {
    const fy = Math.max(0, (y + 0.5) * sy - 0.5);
    const y0 = Math.min(Math.floor(fy), fromH - 1);
    const y1 = Math.min(y0 + 1, fromH - 1);
    const ly = fy - y0;
    const r0 = y0 * fromW;
    const r1 = y1 * fromW;
    const o = y * toW;
    let x = 0;
    while (x < toW) {
      const c0 = x0[x]!;
      const c1 = x1[x]!;
      // the run of output columns that share this pair of model columns
      let end = x + 1;
      while (end < toW && x0[end] === c0) end++;
      const s00 = side[r0 + c0]!, s01 = side[r0 + c1]!, s10 = side[r1 + c0]!, s11 = side[r1 + c1]!;
      const n = s00 + s01 + s10 + s11;
      if (n === 8) out.fill(1, o + x, o + end);
      else if (n !== 0) {
        const a0 = prob[r0 + c0]!, a1 = prob[r0 + c1]!, b0 = prob[r1 + c0]!, b1 = prob[r1 + c1]!;
        for (let k = x; k < end; k++) {
          const l = lx[k]!;
          const ra = f32(a0 + (a1 - a0) * l);
          const rb = f32(b0 + (b1 - b0) * l);
          out[o + k] = f32(ra * (1 - ly) + rb * ly) > threshold ? 1 : 0;
        }
      }
      x = end;
    }
  }
  return out;
}
