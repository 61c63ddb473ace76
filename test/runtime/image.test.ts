import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, mkdirSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import {
  decodeImage, readMask, writeMaskPng, writeProbabilityPng, writeOverlayPng, toModelInput,
  resizeProbability, resizeBilinearU8, sniffImageFormat,
} from '../../src/runtime/image.js';
import { decodeBmp, encodeBmp } from '../../src/runtime/bmp.js';
import { LesionFuseError } from '../../src/util/errors.js';
import { FORMATS, FIXTURES, tempDir } from './helpers.js';

const f = (name: string) => join(FORMATS, name);

async function sharpRgb(path: string): Promise<Uint8Array> {
  const { data } = await sharp(path).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  return new Uint8Array(data);
}

function oneLineError(re: RegExp, path: string) {
  return (e: unknown) => {
    assert.ok(e instanceof LesionFuseError, `not a LesionFuseError: ${String(e)}`);
    assert.ok(!e.message.includes('\n'), 'message is one line');
    assert.ok(e.message.includes(path), `message names the path: ${e.message}`);
    assert.match(e.message, re);
    return true;
  };
}

test('PNG, TIFF, WebP, JPEG read as 8-bit RGB', async () => {
  const ref = await sharpRgb(f('rgb.png'));
  for (const name of ['rgb.png', 'rgb.tif', 'rgb.webp']) {
    const im = await decodeImage(f(name));
    assert.equal(im.width, 20);
    assert.equal(im.height, 15);
    assert.deepEqual(im.data, ref, name);
    assert.deepEqual(im.warnings, []);
  }
  const jpg = await decodeImage(join(FIXTURES, 'images', 'ISIC_0000012.jpg'));
  assert.equal(jpg.width, 64);
  assert.equal(jpg.data.length, 64 * 64 * 3);
});

test('BMP written by Pillow: 24-bit, 32-bit, 8-bit palette, 1-bit match the PNG reference', async () => {
  const ref = await sharpRgb(f('rgb.png'));
  assert.deepEqual((await decodeImage(f('rgb24.bmp'))).data, ref);
  assert.deepEqual((await decodeImage(f('rgba32.bmp'))).data, ref);
  const p8 = await decodeImage(f('pal8.bmp'));
  assert.deepEqual(p8.data, await sharpRgb(f('pal8_ref.png')));
  assert.ok(p8.warnings.some((w) => /palette/.test(w)));
  assert.deepEqual((await decodeImage(f('bw1.bmp'))).data, await sharpRgb(f('bw1_ref.png')));
});

test('BMP: top-down rows and truncated/RLE files', () => {
  const px = new Uint8Array(3 * 2 * 3).map((_, i) => i * 7);
  const a = decodeBmp(encodeBmp(3, 2, px, { topDown: true }));
  const b = decodeBmp(encodeBmp(3, 2, px));
  assert.deepEqual(a.data, px);
  assert.deepEqual(b.data, px);
  const bytes = encodeBmp(3, 2, px);
  assert.throws(() => decodeBmp(bytes.subarray(0, bytes.length - 4), 'x.bmp'), /truncated BMP/);
  const rle = new Uint8Array(bytes);
  new DataView(rle.buffer).setUint32(30, 1, true);
  assert.throws(() => decodeBmp(rle, 'x.bmp'), /RLE/);
});

test('grayscale, palette, 16-bit, CMYK become RGB with a warning', async () => {
  const g = await decodeImage(f('gray.png'));
  assert.equal(g.data.length, 20 * 15 * 3);
  assert.equal(g.data[0], g.data[1]);
  assert.equal(g.data[1], g.data[2]);
  assert.ok(g.warnings.some((w) => /grayscale/.test(w)));
  const g16 = await decodeImage(f('gray16.png'));
  assert.ok(g16.warnings.some((w) => /16-bit/.test(w)));
  // Pillow stored v * 257, so the 8-bit value is v again
  assert.deepEqual(g16.data, g.data);
  const p = await decodeImage(f('palette.png'));
  assert.deepEqual(p.data, await sharpRgb(f('pal8_ref.png')));
  assert.ok(p.warnings.some((w) => /palette/.test(w)));
  const c = await decodeImage(f('cmyk.jpg'));
  assert.ok(c.warnings.some((w) => /CMYK/.test(w)));
  const ref = await sharpRgb(f('rgb.png'));
  let diff = 0;
  for (let i = 0; i < ref.length; i++) diff += Math.abs(c.data[i]! - ref[i]!);
  assert.ok(diff / ref.length < 40, `CMYK decodes close to the RGB original (mean abs diff ${diff / ref.length})`);
});

test('alpha is flattened over white, stated', async () => {
  for (const name of ['rgba_half_transparent.png', 'la_half_transparent.png']) {
    const im = await decodeImage(f(name));
    assert.ok(im.warnings.some((w) => /alpha.*white/.test(w)), name);
    assert.deepEqual([...im.data.subarray(0, 3)], [255, 255, 255], `${name}: transparent pixel is white`);
    const right = (5 * 20 + 15) * 3;
    assert.ok(im.data[right]! < 250 || im.data[right + 1]! < 250, `${name}: opaque pixel keeps its colour`);
  }
});

test('EXIF orientation 6 is applied as a viewer shows it', async () => {
  const dir = tempDir();
  const w = 6, h = 4;
  const px = new Uint8Array(w * h * 3);
  px[0] = 255; // top-left red
  const p = join(dir, 'rot.jpg');
  // PNG-lossless check is impossible for JPEG; use large blocks instead: left column red
  for (let y = 0; y < h; y++) for (let x = 0; x < 2; x++) px[(y * w + x) * 3] = 255;
  await sharp(px, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toFile(p);
  const im = await decodeImage(p);
  // orientation 6 = rotate 90° clockwise to display: size swaps, the stored left column becomes the top row
  assert.equal(im.width, h);
  assert.equal(im.height, w);
  assert.ok(im.data[0]! > 200 && im.data[(0 * im.width + 3) * 3]! > 200, 'top row red');
  assert.ok(im.data[((im.height - 1) * im.width) * 3]! < 60, 'bottom row not red');
});

test('multi-frame GIF and TIFF: first frame with a warning', async () => {
  const ref = await sharpRgb(f('rgb.png'));
  const t = await decodeImage(f('multipage.tif'));
  assert.equal(t.height, 15);
  assert.deepEqual(t.data, ref);
  assert.ok(t.warnings.some((w) => /3 frames/.test(w)));
  const g = await decodeImage(f('anim.gif'));
  assert.equal(g.height, 15);
  assert.equal(g.width, 20);
  assert.ok(g.warnings.some((w) => /3 frames/.test(w)));
});

/** A PNG of just a signature, an IHDR declaring w x h, and IEND (no pixel data at all). */
function pngHeaderOnly(w: number, h: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0; });
  const crc = (b: Buffer) => { let c = 0xffffffff; for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const c = Buffer.alloc(4); c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13); ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 2;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(10))), chunk('IEND', Buffer.alloc(0))]);
}

test('decompression bomb refused before decoding, limit named, raisable', async () => {
  const dir = tempDir();
  const p = join(dir, 'bomb.png');
  writeFileSync(p, pngHeaderOnly(100000, 100000));
  await assert.rejects(decodeImage(p), oneLineError(/10000000000 pixels.*limit of 100000000.*--max-pixels/, p));
  // a BMP bomb too (own decoder)
  const bmp = encodeBmp(2, 2, new Uint8Array(12));
  new DataView(bmp.buffer).setInt32(18, 50000, true);
  new DataView(bmp.buffer).setInt32(22, 50000, true);
  const pb = join(dir, 'bomb.bmp');
  writeFileSync(pb, bmp);
  await assert.rejects(decodeImage(pb), oneLineError(/limit of/, pb));
  // the limit is adjustable
  await assert.rejects(decodeImage(f('rgb.png'), { maxPixels: 100 }), /300 pixels, above the limit of 100/);
  assert.equal((await decodeImage(f('rgb.png'), { maxPixels: 300 })).width, 20);
});

test('broken inputs: one line naming the path and the problem', async () => {
  const dir = tempDir();
  const empty = join(dir, 'empty.jpg'); writeFileSync(empty, '');
  await assert.rejects(decodeImage(empty), oneLineError(/empty file/, empty));
  const text = join(dir, 'notes.jpg'); writeFileSync(text, 'this is not an image\n');
  await assert.rejects(decodeImage(text), oneLineError(/not a supported image/, text));
  const full = readFileSync(join(FIXTURES, 'images', 'ISIC_0000012.jpg'));
  const trunc = join(dir, 'trunc.jpg'); writeFileSync(trunc, full.subarray(0, Math.floor(full.length / 2)));
  await assert.rejects(decodeImage(trunc), oneLineError(/truncated|corrupt/, trunc));
  const png = readFileSync(f('rgb.png'));
  const truncPng = join(dir, 'trunc.png'); writeFileSync(truncPng, png.subarray(0, png.length - 30));
  await assert.rejects(decodeImage(truncPng), oneLineError(/truncated|corrupt/, truncPng));
  const corrupt = Buffer.from(png); for (let i = 60; i < corrupt.length - 20; i++) corrupt[i] = 0x5a;
  const corruptPath = join(dir, 'corrupt.png'); writeFileSync(corruptPath, corrupt);
  await assert.rejects(decodeImage(corruptPath), oneLineError(/corrupt|truncated/, corruptPath));
  const sub = join(dir, 'folder.png'); mkdirSync(sub);
  await assert.rejects(decodeImage(sub), oneLineError(/directory/, sub));
  const missing = join(dir, 'missing.png');
  await assert.rejects(decodeImage(missing), oneLineError(/no such file/, missing));
  if (process.getuid?.() !== 0) {
    const locked = join(dir, 'locked.png'); writeFileSync(locked, png); chmodSync(locked, 0);
    await assert.rejects(decodeImage(locked), oneLineError(/permission denied/, locked));
  }
});

test('odd names: spaces, non-ASCII, upper-case extension, several dots', async () => {
  const dir = tempDir();
  const p = join(dir, 'Läsion scan.v2.final.PNG');
  writeFileSync(p, readFileSync(f('rgb.png')));
  assert.equal((await decodeImage(p)).width, 20);
});

test('masks: 0/255, 0/1, boolean, 16-bit, palette (through the palette), BMP palette read as the same binary mask', async () => {
  const expected = new Uint8Array(20 * 15);
  for (let y = 4; y < 11; y++) for (let x = 5; x < 15; x++) expected[y * 20 + x] = 1;
  for (const name of ['mask_0255.png', 'mask_01.png', 'mask_bool.png', 'mask16.png', 'mask_palette.png', 'mask_inverted_palette.png', 'mask_palette8.bmp']) {
    const m = await readMask(f(name));
    assert.equal(m.width, 20, name);
    assert.deepEqual(m.data, expected, name);
    assert.deepEqual(m.warnings, [], name);
  }
  const empty = await readMask(f('mask_empty.png'));
  assert.equal(empty.data.reduce((s, v) => s + v, 0), 0);
});

test('anti-aliased and JPEG masks are thresholded at half the range with a counted warning', async () => {
  const expected = new Uint8Array(20 * 15);
  for (let y = 4; y < 11; y++) for (let x = 5; x < 15; x++) expected[y * 20 + x] = 1;
  for (const name of ['mask_antialiased.png', 'mask_lossy.jpg']) {
    const m = await readMask(f(name));
    assert.ok(m.warnings.some((w) => /\d+ of 300 mask pixels.*thresholded at 128/.test(w)), `${name}: ${m.warnings}`);
    let wrong = 0;
    for (let i = 0; i < expected.length; i++) if (m.data[i] !== expected[i]) wrong++;
    assert.ok(wrong <= 4, `${name}: ${wrong} pixels differ from the true rectangle`);
  }
});

test('mask size mismatch refused by name, or resized when asked', async () => {
  const p = f('mask_0255.png');
  await assert.rejects(readMask(p, { expectSize: { width: 40, height: 30 } }), oneLineError(/mask is 20 x 15 but its image is 40 x 30/, p));
  const m = await readMask(p, { expectSize: { width: 40, height: 30 }, resize: true });
  assert.equal(m.width, 40);
  assert.equal(m.data.reduce((s, v) => s + v, 0), 4 * 70);
});

test('writers round-trip and are atomic (no temp files left)', async () => {
  const dir = tempDir();
  const mask = { width: 20, height: 15, data: (await readMask(f('mask_0255.png'))).data };
  await writeMaskPng(join(dir, 'm.png'), mask);
  const back = await readMask(join(dir, 'm.png'));
  assert.deepEqual(back.data, mask.data);
  const raw = await sharp(join(dir, 'm.png')).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([...new Set(raw.data)].sort((a, b) => a - b), [0, 255]);
  const prob = new Float32Array(300).map((_, i) => i / 299);
  await writeProbabilityPng(join(dir, 'p.png'), prob, 20, 15);
  assert.equal((await sharp(join(dir, 'p.png')).metadata()).channels, 1);
  const pr = await sharp(join(dir, 'p.png')).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  assert.equal(pr.data[299], 255);
  assert.equal(pr.data[150], Math.round((150 / 299) * 255));
  const im = await decodeImage(f('rgb.png'));
  await writeOverlayPng(join(dir, 'o.png'), im, mask);
  const ov = await decodeImage(join(dir, 'o.png'));
  assert.deepEqual([...ov.data.subarray(0, 3)], [...im.data.subarray(0, 3)], 'outside the lesion unchanged');
  const edge = (4 * 20 + 5) * 3;
  assert.deepEqual([...ov.data.subarray(edge, edge + 3)], [255, 255, 0], 'outline yellow');
  const { readdirSync } = await import('node:fs');
  assert.deepEqual(readdirSync(dir).sort(), ['m.png', 'o.png', 'p.png']);
});

test('resize matches Pillow BILINEAR exactly (reference made by Pillow)', async () => {
  const ref = JSON.parse(readFileSync(f('pillow_resize_reference.json'), 'utf8')) as Record<string, number[]>;
  const src = await sharpRgb(f('rgb.png'));
  for (const [size, bytes] of Object.entries(ref)) {
    const [w, h] = size.split('x').map(Number) as [number, number];
    const got = resizeBilinearU8(src, 20, 15, 3, w, h);
    let maxDiff = 0;
    for (let i = 0; i < bytes.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i]! - bytes[i]!));
    assert.equal(maxDiff, 0, `${size}: max difference ${maxDiff}`);
  }
});

test('toModelInput: NCHW, mean/std, BGR order', () => {
  const img = { width: 2, height: 1, data: new Uint8Array([255, 0, 51, 0, 255, 102]), warnings: [] };
  const x = toModelInput([img, img], { height: 1, width: 2, mean: [0.5, 0, 0], std: [0.5, 1, 2], channelOrder: 'RGB' });
  assert.equal(x.length, 2 * 3 * 2);
  assert.deepEqual([...x.subarray(0, 6)].map((v) => +v.toFixed(5)), [1, -1, 0, 1, 0.1, 0.2]);
  const b = toModelInput([img], { height: 1, width: 2, mean: [0.5, 0, 0], std: [0.5, 1, 2], channelOrder: 'BGR' });
  assert.deepEqual([...b].map((v) => +v.toFixed(5)), [0.1, 0.2, 0, 1, 1, -1]);
});

test('resizeProbability: half-pixel bilinear, hand-computed', () => {
  // 1x2 -> 1x4: source centres at 0.5, 1.5 (in output units 1, 3): out = [a, 0.75a+0.25b, 0.25a+0.75b, b]
  const out = resizeProbability(new Float32Array([0, 1]), 1, 2, 1, 4);
  assert.deepEqual([...out], [0, 0.25, 0.75, 1]);
  const same = resizeProbability(new Float32Array([0.2, 0.4]), 1, 2, 1, 2);
  assert.deepEqual([...same].map((v) => +v.toFixed(6)), [0.2, 0.4]);
  const down = resizeProbability(new Float32Array([0, 1, 2, 3]), 2, 2, 1, 1);
  assert.equal(down[0], 1.5);
});

test('format sniffing ignores the extension', () => {
  assert.equal(sniffImageFormat(readFileSync(f('rgb.png'))), 'png');
  assert.equal(sniffImageFormat(readFileSync(f('rgb24.bmp'))), 'bmp');
  assert.equal(sniffImageFormat(Buffer.from('hello')), null);
});

test('thresholdUpscaled is bit-identical to resizeProbability then > t (up, down, same size, ties)', async () => {
  const { thresholdUpscaled, resizeProbability } = await import('../../src/runtime/image.js');
  let seed = 7;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const cases: [number, number, number, number][] = [[6, 8, 45, 61], [12, 16, 12, 16], [16, 16, 48, 64], [16, 12, 7, 5], [5, 7, 200, 301], [1, 4, 3, 17]];
  for (const [h, w, H, W] of cases) {
    for (const kind of ['noise', 'smooth', 'ties']) {
      const p = new Float32Array(h * w).map((_, i) => {
        if (kind === 'noise') return rnd();
        if (kind === 'ties') return [0.5, 0.25, 0.75, 0.5000001][Math.floor(rnd() * 4)]!;
        return 1 / (1 + Math.exp(-((i % w) - w / 2 + Math.floor(i / w) / 3)));
      });
      for (const t of [0.5, 0.3]) {
        const ref = resizeProbability(p, h, w, H, W);
        const got = thresholdUpscaled(p, h, w, H, W, t);
        for (let i = 0; i < ref.length; i++) assert.equal(got[i], ref[i]! > t ? 1 : 0, `${h}x${w}->${H}x${W} ${kind} t=${t} at ${i}`);
      }
    }
  }
});

test('decodeResized (fast path): original size after EXIF orientation, pixels near the Pillow-exact resize, same checks', async () => {
  const { decodeResized, resizeBilinearU8 } = await import('../../src/runtime/image.js');
  const dir = tempDir();
  // a smooth 120 x 80 gradient stored with orientation 6: shown 80 wide, 120 high
  const w = 120, h = 80;
  const px = new Uint8Array(w * h * 3).map((_, i) => { const k = Math.floor(i / 3); return (k % w) + Math.floor(k / w); });
  const p = join(dir, 'rot.png');
  await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().withMetadata({ orientation: 6 }).toFile(p);
  const fast = await decodeResized(p, { width: 20, height: 30 });
  assert.deepEqual([fast.width, fast.height, fast.modelWidth, fast.modelHeight, fast.data.length], [80, 120, 20, 30, 20 * 30 * 3]);
  const full = await decodeImage(p);
  const exact = resizeBilinearU8(full.data, full.width, full.height, 3, 20, 30);
  let maxDiff = 0;
  for (let i = 0; i < exact.length; i++) maxDiff = Math.max(maxDiff, Math.abs(exact[i]! - fast.data[i]!));
  assert.ok(maxDiff <= 3, `fast vs exact differ by ${maxDiff} levels`);
  // bytes and paths give the same; bad input is refused with the same one-line errors and warnings
  const fromBytes = await decodeResized(readFileSync(p), { width: 20, height: 30 });
  assert.deepEqual(fromBytes.data, fast.data);
  const gray = await decodeResized(f('gray.png'), { width: 8, height: 8 });
  assert.ok(gray.warnings.some((x) => /grayscale/.test(x)));
  const bmp = await decodeResized(f('rgb24.bmp'), { width: 8, height: 8 });
  assert.equal(bmp.data.length, 8 * 8 * 3);
  writeFileSync(join(dir, 'bad.jpg'), 'nope');
  await assert.rejects(decodeResized(join(dir, 'bad.jpg'), { width: 8, height: 8 }), /bad\.jpg: not a supported image/);
  await assert.rejects(decodeResized(p, { width: 8, height: 8 }, { maxPixels: 100 }), /above the limit of 100/);
});
