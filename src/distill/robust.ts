/**
 * Transforms that make training (and the full-field proxy evaluation set) look like the images a clinic
 * takes rather than the centre-square crops the bundled models were trained on:
 * - {@link zoomOut}: shrink image + mask so the lesion covers a chosen share of a 4:3 (or any) frame, and
 *   fill the rest of the frame with skin mirrored from a band along the image's own border;
 * - {@link aspectCrop}: a random crop with the output's aspect ratio, resized (never stretched);
 * - {@link addArtefacts}: colour-calibration stickers, ruler ticks, dark vignette corners, hair strokes;
 *   stickers, rulers and the dark corners are placed off the lesion and never change the mask;
 * - {@link shiftSkinTone}: a global CIELAB map towards a lower ITA (darker, yellower skin), which scales the
 *   lesion's L* contrast with the skin's L* so the lesion stays plausibly darker than its skin.
 *
 * Images are HWC uint8 RGB, masks 0/1 (the layout of src/runtime/image.ts). Every function takes its
 * randomness from a `rand` (uniform [0, 1)), so a seed fixes the result byte for byte.
 * The Python teacher has the same transforms in teacher/robust.py.
 */
import { resizeBilinearU8 } from '../runtime/image.js';
import { LesionFuseError } from '../util/errors.js';

export interface RgbImage {
  width: number;
  height: number;
  /** width * height * 3, RGB. */
  data: Uint8Array;
}

export interface ImageMaskPair {
  image: RgbImage;
  /** width * height, 0/1, the image's size. */
  mask: Uint8Array;
}

function check(p: ImageMaskPair, what: string): void {
  const { width, height, data } = p.image;
  if (data.length !== width * height * 3 || p.mask.length !== width * height) {
    throw new LesionFuseError(`${what}: image (${data.length} bytes) and mask (${p.mask.length}) do not match ${width} x ${height}`);
  }
}

/** Lesion pixels / all pixels. */
export function lesionShare(mask: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < mask.length; i++) s += mask[i] ? 1 : 0;
  return mask.length ? s / mask.length : 0;
}

/** Resize a 0/1 mask the way the loaders do: 0/255 bilinear (Pillow-compatible), threshold at 128. */
export function resizeMask01(mask: Uint8Array, w: number, h: number, outW: number, outH: number): Uint8Array {
  const m255 = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) m255[i] = mask[i] ? 255 : 0;
  const r = resizeBilinearU8(m255, w, h, 1, outW, outH);
  for (let i = 0; i < r.length; i++) r[i] = r[i]! >= 128 ? 1 : 0;
  return r;
}

/** Mirror index: i outside [0, n) bounced back into [0, band) from the nearer edge (band <= n). */
function bounce(d: number, band: number): number {
  // d >= 1 steps beyond an edge -> offset inside the band from that edge, 0..band-1, back and forth
  const m = (d - 1) % (2 * band);
  return m < band ? m : 2 * band - 1 - m;
}

export interface ZoomOutOptions {
  /** Output frame size (default 1024 x 768, 4:3). */
  frameWidth?: number;
  frameHeight?: number;
  /** The lesion's share of the frame to aim for (e.g. 0.05). */
  targetShare: number;
  /** Width of the mirrored border band, as a fraction of the scaled image's shorter side (default 0.15). */
  band?: number;
  /** Never enlarge the image more than this (default 1.5). */
  maxScale?: number;
  rand: () => number;
}

export interface ZoomOutResult extends ImageMaskPair {
  /** Scale applied to the source image. */
  scale: number;
  /** Where the scaled source lies in the frame (its top-left corner and size). */
  placed: { x: number; y: number; width: number; height: number };
  /** The lesion share actually reached (differs from the target when the image had to be capped). */
  share: number;
}

/** Plausible skin where an image shows skin; used when there is none at all. */
const FALLBACK_SKIN = [205, 160, 145];

/**
 * A copy of the image with every lesion pixel replaced by the nearest skin pixel of its row (or, for a
 * row that is all lesion, of its column; for an image that is all lesion, a fixed skin colour): the
 * texture the fill is mirrored from, so a lesion cut by the image border is not copied into the fill.
 */
function skinOnly(img: Uint8Array, mask: Uint8Array, w: number, h: number): Uint8Array {
  const out = new Uint8Array(img);
  const rowDone = new Uint8Array(h);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    let any = false;
    for (let x = 0; x < w; x++) if (!mask[row + x]) any = true;
    if (!any) continue;
    rowDone[y] = 1;
    const left = new Int32Array(w).fill(-1);
    let last = -1;
    for (let x = 0; x < w; x++) {
      if (!mask[row + x]) last = x;
      left[x] = last;
    }
    last = -1;
    for (let x = w - 1; x >= 0; x--) {
      if (!mask[row + x]) last = x;
      if (!mask[row + x]) continue;
      const l = left[x]!;
      const src = l < 0 ? last : last < 0 ? l : x - l <= last - x ? l : last;
      out.copyWithin((row + x) * 3, (row + src) * 3, (row + src) * 3 + 3);
    }
  }
  // rows with no skin at all: copy the nearest row that has skin (already filled above)
  for (let y = 0; y < h; y++) {
    if (rowDone[y]) continue;
    let src = -1;
    for (let d = 1; d < h && src < 0; d++) {
      if (y - d >= 0 && rowDone[y - d]) src = y - d;
      else if (y + d < h && rowDone[y + d]) src = y + d;
    }
    if (src >= 0) out.copyWithin(y * w * 3, src * w * 3, (src + 1) * w * 3);
    else for (let x = 0; x < w; x++) out.set(FALLBACK_SKIN, (y * w + x) * 3);
  }
  return out;
}

/**
 * Shrink the image so that its lesion covers `targetShare` of the frame, place it at a random position
 * inside the frame, and fill the rest by mirroring a band along the image's border back and forth. The
 * band is taken from the image with its lesion pixels replaced by nearby skin ({@link skinOnly}), so the
 * fill is skin (mask 0) even where the lesion touches the border. An empty mask is shrunk to half the
 * frame's height.
 */
export function zoomOut(p: ImageMaskPair, o: ZoomOutOptions): ZoomOutResult {
  check(p, 'zoomOut');
  const FW = o.frameWidth ?? 1024;
  const FH = o.frameHeight ?? 768;
  if (!(o.targetShare > 0 && o.targetShare < 1)) throw new LesionFuseError(`zoomOut: targetShare must be in (0, 1), got ${o.targetShare}`);
  const { width: W, height: H } = p.image;
  let lesion = 0;
  for (let i = 0; i < p.mask.length; i++) lesion += p.mask[i] ? 1 : 0;
  const fit = Math.min(FW / W, FH / H, o.maxScale ?? 1.5);
  let k = lesion > 0 ? Math.sqrt((o.targetShare * FW * FH) / lesion) : (0.5 * FH) / H;
  k = Math.min(k, fit);
  const sw = Math.max(1, Math.round(W * k));
  const sh = Math.max(1, Math.round(H * k));
  const img = sw === W && sh === H ? p.image.data : resizeBilinearU8(p.image.data, W, H, 3, sw, sh);
  const msk = sw === W && sh === H ? p.mask : resizeMask01(p.mask, W, H, sw, sh);
  const x0 = Math.floor(o.rand() * (FW - sw + 1));
  const y0 = Math.floor(o.rand() * (FH - sh + 1));
  const band = Math.max(1, Math.min(sw, sh, Math.round((o.band ?? 0.15) * Math.min(sw, sh))));
  const bandX = Math.min(band, sw);
  const bandY = Math.min(band, sh);
  // Source column / row of every frame column / row.
  const colOf = new Int32Array(FW);
  for (let x = 0; x < FW; x++) {
    const u = x - x0;
    colOf[x] = u < 0 ? bounce(-u, bandX) : u >= sw ? sw - 1 - bounce(u - sw + 1, bandX) : u;
  }
  const rowOf = new Int32Array(FH);
  for (let y = 0; y < FH; y++) {
    const v = y - y0;
    rowOf[y] = v < 0 ? bounce(-v, bandY) : v >= sh ? sh - 1 - bounce(v - sh + 1, bandY) : v;
  }
  // the lesion's blended rim counts as lesion too, so no lesion colour leaks into the fill
  const skin = skinOnly(img, dilate(msk, sw, sh, 2), sw, sh);
  const out = new Uint8Array(FW * FH * 3);
  const mOut = new Uint8Array(FW * FH);
  for (let y = 0; y < FH; y++) {
    const r = rowOf[y]! * sw;
    const insideY = y >= y0 && y < y0 + sh;
    for (let x = 0; x < FW; x++) {
      const s = r + colOf[x]!;
      const d = y * FW + x;
      const inside = insideY && x >= x0 && x < x0 + sw;
      const src = inside ? img : skin;
      out[d * 3] = src[s * 3]!;
      out[d * 3 + 1] = src[s * 3 + 1]!;
      out[d * 3 + 2] = src[s * 3 + 2]!;
      mOut[d] = inside ? msk[s]! : 0;
    }
  }
  return {
    image: { width: FW, height: FH, data: out },
    mask: mOut,
    scale: k,
    placed: { x: x0, y: y0, width: sw, height: sh },
    share: lesionShare(mOut),
  };
}

export interface AspectCropOptions {
  outWidth: number;
  outHeight: number;
  /** The crop's area as a fraction of the largest crop of that aspect, drawn in [minArea, 1] (default 0.5). */
  minArea?: number;
  rand: () => number;
}

/**
 * A random crop with the output's aspect ratio (the largest such crop scaled by sqrt(area) in [minArea, 1]),
 * at a random position, resized to the output: the lesion keeps its shape instead of being stretched.
 */
export function aspectCrop(p: ImageMaskPair, o: AspectCropOptions): ImageMaskPair & { crop: { x: number; y: number; width: number; height: number } } {
  check(p, 'aspectCrop');
  const { width: W, height: H } = p.image;
  const aspect = o.outWidth / o.outHeight;
  let cw = W;
  let ch = Math.round(W / aspect);
  if (ch > H) {
    ch = H;
    cw = Math.round(H * aspect);
  }
  const minArea = o.minArea ?? 0.5;
  const f = Math.sqrt(minArea + (1 - minArea) * o.rand());
  cw = Math.max(1, Math.min(W, Math.round(cw * f)));
  ch = Math.max(1, Math.min(H, Math.round(ch * f)));
  const x = Math.floor(o.rand() * (W - cw + 1));
  const y = Math.floor(o.rand() * (H - ch + 1));
  const ci = new Uint8Array(cw * ch * 3);
  const cm = new Uint8Array(cw * ch);
  for (let r = 0; r < ch; r++) {
    ci.set(p.image.data.subarray(((y + r) * W + x) * 3, ((y + r) * W + x + cw) * 3), r * cw * 3);
    cm.set(p.mask.subarray((y + r) * W + x, (y + r) * W + x + cw), r * cw);
  }
  return {
    image: { width: o.outWidth, height: o.outHeight, data: resizeBilinearU8(ci, cw, ch, 3, o.outWidth, o.outHeight) },
    mask: resizeMask01(cm, cw, ch, o.outWidth, o.outHeight),
    crop: { x, y, width: cw, height: ch },
  };
}

/** Codes of the artefact map returned by {@link addArtefacts}. */
export const ARTEFACT_CODE = { none: 0, sticker: 1, ruler: 2, vignette: 3, hair: 4 } as const;
export type ArtefactKind = Exclude<keyof typeof ARTEFACT_CODE, 'none'>;

export interface ArtefactRecord {
  kind: ArtefactKind;
  /** Bounding box in the image, pixels. */
  box: { x: number; y: number; width: number; height: number };
  /** Pixels of this artefact in the artefact map. */
  pixels: number;
  /** Stickers: RGB colour. */
  colour?: [number, number, number];
}

export interface ArtefactOptions {
  rand: () => number;
  /** Probability of each kind (defaults: sticker 0.5, ruler 0.3, vignette 0.3, hair 0.3). */
  sticker?: number;
  ruler?: number;
  vignette?: number;
  hair?: number;
  /** Up to this many stickers when there are stickers (default 2). */
  maxStickers?: number;
}

/** Calibration-sticker-like colours: orange, green, blue, yellow, red, white. */
const STICKER_COLOURS: [number, number, number][] = [
  [240, 130, 40],
  [60, 170, 80],
  [50, 110, 200],
  [235, 210, 60],
  [210, 50, 50],
  [245, 245, 240],
];

/** Dilation of the lesion by `r` pixels with a square window (cheap, and conservative for a disc). */
function dilate(mask: Uint8Array, w: number, h: number, r: number): Uint8Array {
  const tmp = new Uint8Array(mask.length);
  for (let y = 0; y < h; y++) {
    // two sweeps per row
    let last = -Infinity;
    for (let x = 0; x < w; x++) {
      if (mask[y * w + x]) last = x;
      if (x - last <= r) tmp[y * w + x] = 1;
    }
    last = Infinity;
    for (let x = w - 1; x >= 0; x--) {
      if (mask[y * w + x]) last = x;
      if (last - x <= r) tmp[y * w + x] = 1;
    }
  }
  const out = new Uint8Array(mask.length);
  for (let x = 0; x < w; x++) {
    let last = -Infinity;
    for (let y = 0; y < h; y++) {
      if (tmp[y * w + x]) last = y;
      if (y - last <= r) out[y * w + x] = 1;
    }
    last = Infinity;
    for (let y = h - 1; y >= 0; y--) {
      if (tmp[y * w + x]) last = y;
      if (last - y <= r) out[y * w + x] = 1;
    }
  }
  return out;
}

function blend(data: Uint8Array, i: number, c: readonly number[], a: number): void {
  for (let k = 0; k < 3; k++) data[i * 3 + k] = Math.round(data[i * 3 + k]! * (1 - a) + c[k]! * a);
}

/**
 * Draw synthetic artefacts on a copy of the image. The mask is returned unchanged: stickers, ruler ticks
 * and the dark corners are placed only where they do not touch the lesion (dilated by a margin), so they
 * are background by construction; hair may cross the lesion (as in real images, where the expert mask
 * keeps the lesion under the hair). The artefact map marks each artefact's pixels (ARTEFACT_CODE).
 */
export function addArtefacts(p: ImageMaskPair, o: ArtefactOptions): ImageMaskPair & { artefactMap: Uint8Array; artefacts: ArtefactRecord[] } {
  check(p, 'addArtefacts');
  const { width: W, height: H } = p.image;
  const data = new Uint8Array(p.image.data);
  const map = new Uint8Array(W * H);
  const artefacts: ArtefactRecord[] = [];
  const side = Math.min(W, H);
  const margin = Math.max(2, Math.round(0.02 * side));
  const keepOut = dilate(p.mask, W, H, margin);
  const u = o.rand;
  const pr = { sticker: o.sticker ?? 0.5, ruler: o.ruler ?? 0.3, vignette: o.vignette ?? 0.3, hair: o.hair ?? 0.3 };
  // Draws happen in a fixed order whatever is chosen, so one kind's choice never shifts another's.
  const want = { vignette: u() < pr.vignette, ruler: u() < pr.ruler, sticker: u() < pr.sticker, hair: u() < pr.hair };

  // Painted bottom to top: hair, dark corners, ruler, stickers (a sticker covers the hair under it).
  if (want.hair) {
    const strands = 3 + Math.floor(u() * 10);
    let n = 0;
    for (let s = 0; s < strands; s++) {
      // a quadratic Bezier from one random point to another, through a random control point
      const p0 = [u() * W, u() * H];
      const ang = u() * Math.PI * 2;
      const L = (0.2 + 0.4 * u()) * side;
      const p2 = [p0[0]! + Math.cos(ang) * L, p0[1]! + Math.sin(ang) * L];
      const p1 = [(p0[0]! + p2[0]!) / 2 + (u() - 0.5) * 0.3 * L, (p0[1]! + p2[1]!) / 2 + (u() - 0.5) * 0.3 * L];
      const thick = 0.6 + u() * Math.max(0.6, 0.004 * side);
      const col = [25 + 30 * u(), 18 + 20 * u(), 12 + 15 * u()];
      const steps = Math.ceil(L * 2);
      for (let k = 0; k <= steps; k++) {
        const t = k / steps;
        const x = (1 - t) * (1 - t) * p0[0]! + 2 * (1 - t) * t * p1[0]! + t * t * p2[0]!;
        const y = (1 - t) * (1 - t) * p0[1]! + 2 * (1 - t) * t * p1[1]! + t * t * p2[1]!;
        const rr = Math.ceil(thick);
        for (let yy = Math.floor(y) - rr; yy <= Math.floor(y) + rr; yy++) {
          for (let xx = Math.floor(x) - rr; xx <= Math.floor(x) + rr; xx++) {
            if (yy < 0 || xx < 0 || yy >= H || xx >= W) continue;
            const a = Math.max(0, Math.min(1, thick - Math.hypot(xx - x, yy - y)));
            if (a <= 0) continue;
            const i = yy * W + xx;
            blend(data, i, col, 0.85 * a);
            if (a >= 0.5) {
              map[i] = ARTEFACT_CODE.hair;
              n++;
            }
          }
        }
      }
    }
    artefacts.push({ kind: 'hair', box: { x: 0, y: 0, width: W, height: H }, pixels: n });
  }
  if (want.vignette) {
    // Dark outside a circle about the centre: radius from the farthest lesion pixel (plus margin) to 1.15x
    // the half-diagonal's 0.8; darkening ramps over a soft edge.
    const cx = (W - 1) / 2;
    const cy = (H - 1) / 2;
    const halfDiag = Math.hypot(cx, cy);
    let far = 0;
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) if (keepOut[y * W + x]) far = Math.max(far, Math.hypot(x - cx, y - cy));
    const r0 = Math.max(far + 1, halfDiag * (0.75 + 0.2 * u()));
    const soft = 0.12 * halfDiag;
    const strength = 0.75 + 0.2 * u();
    let n = 0;
    if (r0 < halfDiag) {
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const i = y * W + x;
          const d = Math.hypot(x - cx, y - cy) - r0;
          if (d <= 0 || keepOut[i]) continue;
          const a = strength * Math.min(1, d / soft);
          blend(data, i, [8, 6, 6], a);
          if (a >= 0.5) {
            map[i] = ARTEFACT_CODE.vignette;
            n++;
          }
        }
      }
      if (n > 0) artefacts.push({ kind: 'vignette', box: { x: 0, y: 0, width: W, height: H }, pixels: n });
    }
  }

  if (want.ruler) {
    // Tick marks along one edge: a long tick every 5th, dark grey, on a pale strip.
    const edge = Math.floor(u() * 4); // 0 top, 1 bottom, 2 left, 3 right
    const horizontal = edge < 2;
    const len = horizontal ? W : H;
    const depth = Math.max(6, Math.round(0.06 * side));
    const pitch = Math.max(3, Math.round((0.012 + 0.01 * u()) * side));
    const offset = Math.round(u() * 0.04 * side);
    const start = Math.floor(u() * 0.3 * len);
    const end = Math.min(len, start + Math.round((0.4 + 0.5 * u()) * len));
    const strip: number[] = [];
    let clash = false;
    for (let t = start; t < end && !clash; t++) {
      for (let dd = 0; dd < depth; dd++) {
        const q = offset + dd;
        const x = horizontal ? t : edge === 2 ? q : W - 1 - q;
        const y = horizontal ? (edge === 0 ? q : H - 1 - q) : t;
        if (x < 0 || y < 0 || x >= W || y >= H) continue;
        const i = y * W + x;
        if (keepOut[i]) {
          clash = true;
          break;
        }
        strip.push(i, t, dd);
      }
    }
    if (!clash && strip.length > 0) {
      let n = 0;
      let bx0 = W;
      let by0 = H;
      let bx1 = -1;
      let by1 = -1;
      for (let k = 0; k < strip.length; k += 3) {
        const i = strip[k]!;
        const t = strip[k + 1]! - start;
        const dd = strip[k + 2]!;
        const tick = t % pitch === 0 && dd < (Math.floor(t / pitch) % 5 === 0 ? depth : Math.round(depth * 0.55));
        blend(data, i, tick ? [30, 30, 35] : [225, 222, 210], tick ? 0.9 : 0.55);
        map[i] = ARTEFACT_CODE.ruler;
        n++;
        const x = i % W;
        const y = (i - x) / W;
        bx0 = Math.min(bx0, x);
        by0 = Math.min(by0, y);
        bx1 = Math.max(bx1, x);
        by1 = Math.max(by1, y);
      }
      artefacts.push({ kind: 'ruler', box: { x: bx0, y: by0, width: bx1 - bx0 + 1, height: by1 - by0 + 1 }, pixels: n });
    }
  }

  if (want.sticker) {
    const count = 1 + Math.floor(u() * (o.maxStickers ?? 2));
    for (let s = 0; s < count; s++) {
      const r = Math.max(3, Math.round((0.03 + 0.05 * u()) * side));
      const colour = STICKER_COLOURS[Math.floor(u() * STICKER_COLOURS.length)]!;
      // up to 30 tries at a spot fully inside the frame and off the lesion and other artefacts
      let cx = -1;
      let cy = -1;
      for (let t = 0; t < 30; t++) {
        const x = r + Math.floor(u() * Math.max(1, W - 2 * r));
        const y = r + Math.floor(u() * Math.max(1, H - 2 * r));
        let ok = true;
        for (let yy = y - r - 1; yy <= y + r + 1 && ok; yy++) {
          for (let xx = x - r - 1; xx <= x + r + 1; xx++) {
            if (yy < 0 || xx < 0 || yy >= H || xx >= W) continue;
            const i = yy * W + xx;
            if ((keepOut[i] || (map[i] && map[i] !== ARTEFACT_CODE.hair)) && Math.hypot(xx - x, yy - y) <= r + 1) {
              ok = false;
              break;
            }
          }
        }
        if (ok) {
          cx = x;
          cy = y;
          break;
        }
      }
      if (cx < 0) continue;
      let n = 0;
      for (let yy = Math.max(0, cy - r - 1); yy <= Math.min(H - 1, cy + r + 1); yy++) {
        for (let xx = Math.max(0, cx - r - 1); xx <= Math.min(W - 1, cx + r + 1); xx++) {
          const d = Math.hypot(xx - cx, yy - cy);
          const a = Math.max(0, Math.min(1, r + 0.5 - d)); // anti-aliased edge
          if (a <= 0) continue;
          const i = yy * W + xx;
          // a slightly darker rim, a little shading across the disc
          const shade = d > r - Math.max(1, r * 0.12) ? 0.8 : 1 - 0.1 * ((yy - cy) / r);
          blend(data, i, colour.map((c) => Math.min(255, c * shade)), 0.95 * a);
          if (a >= 0.5) {
            map[i] = ARTEFACT_CODE.sticker;
            n++;
          }
        }
      }
      artefacts.push({ kind: 'sticker', box: { x: cx - r, y: cy - r, width: 2 * r + 1, height: 2 * r + 1 }, pixels: n, colour });
    }
  }

  // hair and dark corners may be partly covered by what was painted later: count what is left visible
  const counts = new Array(5).fill(0);
  for (let i = 0; i < map.length; i++) counts[map[i]!]++;
  for (const r of artefacts) if (r.kind === 'hair' || r.kind === 'vignette') r.pixels = counts[ARTEFACT_CODE[r.kind]];
  return { image: { width: W, height: H, data }, mask: p.mask, artefactMap: map, artefacts: artefacts.filter((r) => r.pixels > 0) };
}

// ---- CIELAB (sRGB, D65) ----

function srgbToLinear(c: number): number {
  const v = c / 255;
  return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
}
function linearToSrgb(v: number): number {
  const c = v <= 0.0031308 ? 12.92 * v : 1.055 * v ** (1 / 2.4) - 0.055;
  return Math.max(0, Math.min(255, Math.round(c * 255)));
}
const XN = 0.95047;
const YN = 1.0;
const ZN = 1.08883;
const EPS = 216 / 24389;
const KAPPA = 24389 / 27;
function fLab(t: number): number {
  return t > EPS ? Math.cbrt(t) : (KAPPA * t + 16) / 116;
}
function fLabInv(f: number): number {
  const t = f * f * f;
  return t > EPS ? t : (116 * f - 16) / KAPPA;
}

/** sRGB 0-255 -> CIELAB (D65 white). */
export function rgbToLab(r: number, g: number, b: number): [number, number, number] {
  const R = srgbToLinear(r);
  const G = srgbToLinear(g);
  const B = srgbToLinear(b);
  const X = 0.4124564 * R + 0.3575761 * G + 0.1804375 * B;
  const Y = 0.2126729 * R + 0.7151522 * G + 0.072175 * B;
  const Z = 0.0193339 * R + 0.119192 * G + 0.9503041 * B;
  const fx = fLab(X / XN);
  const fy = fLab(Y / YN);
  const fz = fLab(Z / ZN);
  return [116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)];
}

/** CIELAB (D65) -> sRGB 0-255, clipped to the gamut per channel. */
export function labToRgb(L: number, a: number, b: number): [number, number, number] {
  const fy = (L + 16) / 116;
  const X = XN * fLabInv(fy + a / 500);
  const Y = YN * fLabInv(fy);
  const Z = ZN * fLabInv(fy - b / 200);
  const R = 3.2404542 * X - 1.5371385 * Y - 0.4985314 * Z;
  const G = -0.969266 * X + 1.8760108 * Y + 0.041556 * Z;
  const B = 0.0556434 * X - 0.2040259 * Y + 1.0572252 * Z;
  return [linearToSrgb(Math.max(0, R)), linearToSrgb(Math.max(0, G)), linearToSrgb(Math.max(0, B))];
}

/** Individual typology angle, degrees: atan((L* - 50) / b*). */
export function ita(L: number, b: number): number {
  return (Math.atan2(L - 50, b) * 180) / Math.PI;
}

export interface SkinToneOptions {
  /** Target ITA of the skin, degrees (e.g. 10 = tan, -10 = brown, -40 = dark). */
  targetIta: number;
  /** Target skin b* (default: the skin's own b* raised by 20%, at least 12). */
  targetB?: number;
}

/**
 * Move the skin (mask = 0) towards `targetIta` with one global CIELAB map: L' = Lt + (L - Ls) * (Lt / Ls),
 * b' = b + (bt - bs), a unchanged (Ls, bs: the skin's median L* and b*; bt the target b*, Lt = 50 + bt *
 * tan(ITA)). The same map applies to the lesion, so its L* contrast to the skin shrinks with the skin's
 * L* (a lesion on darker skin is less contrasted, as in real images) and no seam appears at the border.
 * Returns the new image and the skin's ITA before and after (median L*, b* of the skin pixels).
 */
export function shiftSkinTone(p: ImageMaskPair, o: SkinToneOptions): { image: RgbImage; itaBefore: number; itaAfter: number } {
  check(p, 'shiftSkinTone');
  const { width: W, height: H, data } = p.image;
  const n = W * H;
  const L = new Float32Array(n);
  const A = new Float32Array(n);
  const B = new Float32Array(n);
  const skinL: number[] = [];
  const skinB: number[] = [];
  for (let i = 0; i < n; i++) {
    const [l, a, b] = rgbToLab(data[i * 3]!, data[i * 3 + 1]!, data[i * 3 + 2]!);
    L[i] = l;
    A[i] = a;
    B[i] = b;
    if (!p.mask[i]) {
      skinL.push(l);
      skinB.push(b);
    }
  }
  const med = (v: number[]): number => {
    if (v.length === 0) return NaN;
    const s = [...v].sort((x, y) => x - y);
    return s[Math.floor(s.length / 2)]!;
  };
  const Ls = med(skinL.length ? skinL : Array.from(L));
  const bs = med(skinB.length ? skinB : Array.from(B));
  const bt = o.targetB ?? Math.max(12, bs * 1.2);
  const Lt = Math.max(5, Math.min(95, 50 + bt * Math.tan((o.targetIta * Math.PI) / 180)));
  const c = Ls > 0 ? Lt / Ls : 1;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const l = Math.max(0, Math.min(100, Lt + (L[i]! - Ls) * c));
    const [r, g, b] = labToRgb(l, A[i]!, B[i]! + (bt - bs));
    out[i * 3] = r;
    out[i * 3 + 1] = g;
    out[i * 3 + 2] = b;
  }
  return { image: { width: W, height: H, data: out }, itaBefore: ita(Ls, bs), itaAfter: ita(Lt, bt) };
}
