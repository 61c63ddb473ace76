/**
 * Training data held in memory at the training size, and seeded augmentation applied to the image, the
 * mask and the teacher's soft label TOGETHER (they must stay pixel-aligned or distillation teaches the
 * student to segment the wrong place).
 *
 * Why in memory: the 1,913 training images at 192 x 256 are ~282 MB as uint8 RGB, the masks 94 MB and the
 * float16 soft labels 188 MB, so decoding and resizing happen once instead of once per epoch.
 *
 * Geometry is an inverse mapping from each output pixel centre to a source position in the stored
 * sample: flips and 90-degree rotations land exactly on source pixel centres (so they are exact
 * permutations), scale jitter does not (image and soft label are then sampled bilinearly, the mask with
 * nearest neighbour; all three use the same source position and the same edge clamping).
 */
import { float16ToFloat32 } from '../onnx/tensor.js';
import { decodeImage, readMask, resizeBilinearU8, resizeProbability } from '../runtime/image.js';
import { sha256File } from '../util/hash.js';
import { Progress } from '../util/progress.js';
import { LesionFuseError } from '../util/errors.js';
import { addArtefacts, ARTEFACT_CODE, shiftSkinTone, zoomOut, type ImageMaskPair } from './robust.js';

/** Training images, masks and (optionally) teacher logits, all at one H x W, packed per sample. */
export interface InMemoryDataset {
  height: number;
  width: number;
  ids: string[];
  /** N x H x W x 3 RGB, uint8. */
  images: Uint8Array;
  /** N x H x W, 0/1. */
  masks: Uint8Array;
  /** N x H x W teacher logits as float16 bit patterns, or null (mask-only training). */
  soft: Uint16Array | null;
}

/** What augmentation does; every field has a default chosen for dermoscopy (no canonical orientation). */
export interface AugmentOptions {
  /** Horizontal flip with probability 0.5 (default true). */
  hflip?: boolean;
  /** Vertical flip with probability 0.5 (default true). */
  vflip?: boolean;
  /**
   * A random multiple of 90 degrees (default true). Applied only when H = W; for H != W a quarter turn
   * would change the shape, so only the half turn (already reachable by hflip + vflip) is used.
   */
  rotate90?: boolean;
  /** Zoom about the centre by a factor in [1 - s, 1 + s] (default 0.1; 0 disables). Zoom-out clamps at the edges. */
  scaleJitter?: number;
  /** Colour jitter on the image only: brightness, contrast, saturation factors in [1 - v, 1 + v] (defaults 0.1). */
  brightness?: number;
  contrast?: number;
  saturation?: number;
  /**
   * The full-field recipe of issue 11 (src/distill/robust.ts), applied before the transforms above; absent by
   * default, and when absent no random number is drawn for it (runs without it replay exactly as before).
   */
  robust?: RobustAugmentOptions;
}

/** Probabilities and ranges of the full-field transforms (see {@link robustSample}). */
export interface RobustAugmentOptions {
  /** Probability of a zoom-out (default 0.5). */
  zoomOut?: number;
  /** Lesion share of the frame after a zoom-out, drawn uniformly (default [0.02, 0.15]). */
  share?: [number, number];
  /** Probability of synthetic artefacts: stickers, ruler, dark corners, hair (default 0.5). */
  artefacts?: number;
  /** Probability of a skin-tone shift (default 0.3). */
  skinTone?: number;
  /** Target skin ITA range in degrees (default [-45, 25]: tan to dark). */
  itaRange?: [number, number];
}

/** The options `lesionfuse distill --robust` uses. */
export const DEFAULT_ROBUST: Required<RobustAugmentOptions> = { zoomOut: 0.5, share: [0.02, 0.15], artefacts: 0.5, skinTone: 0.3, itaRange: [-45, 25] };

export const DEFAULT_AUGMENT: Required<Omit<AugmentOptions, 'robust'>> = {
  hflip: true,
  vflip: true,
  rotate90: true,
  scaleJitter: 0.1,
  brightness: 0.1,
  contrast: 0.1,
  saturation: 0.1,
};

/** No augmentation at all (validation, tests). */
export const NO_AUGMENT: Required<Omit<AugmentOptions, 'robust'>> = {
  hflip: false,
  vflip: false,
  rotate90: false,
  scaleJitter: 0,
  brightness: 0,
  contrast: 0,
  saturation: 0,
};

/** The random choices for one sample, drawn once so the three arrays get the same transform. */
export interface AugmentDraw {
  hflip: boolean;
  vflip: boolean;
  /** Quarter turns clockwise, 0..3 (odd values only when H = W). */
  quarterTurns: number;
  scale: number;
  brightness: number;
  contrast: number;
  saturation: number;
}

/** Draw the random choices for one sample from `rand` (uniform [0, 1)), in a fixed order. */
export function drawAugment(rand: () => number, height: number, width: number, opts: AugmentOptions = {}): AugmentDraw {
  const o = { ...DEFAULT_AUGMENT, ...opts };
  const u = (): number => rand();
  const hflip = u() < 0.5 && o.hflip;
  const vflip = u() < 0.5 && o.vflip;
  const turnDraw = Math.floor(u() * 4);
  const quarterTurns = o.rotate90 ? (height === width ? turnDraw : turnDraw & 2) : 0;
  const jitter = (v: number): number => 1 + (2 * u() - 1) * v;
  return {
    hflip,
    vflip,
    quarterTurns,
    scale: jitter(o.scaleJitter),
    brightness: jitter(o.brightness),
    contrast: jitter(o.contrast),
    saturation: jitter(o.saturation),
  };
}

/**
 * For output pixel (y, x) the source position (in pixel-centre coordinates of the stored sample), for
 * every output pixel: sy[i], sx[i]. Order of operations on the output: undo rotation, undo flips, undo zoom.
 */
function sourceGrid(height: number, width: number, d: AugmentDraw): { sy: Float32Array; sx: Float32Array } {
  const n = height * width;
  const sy = new Float32Array(n);
  const sx = new Float32Array(n);
  const cy = (height - 1) / 2;
  const cx = (width - 1) / 2;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      // Output -> pre-rotation coordinates (rotation by quarterTurns clockwise about the centre).
      let py = y - cy;
      let px = x - cx;
      // Undo a clockwise quarter turn per turn: the output's (py, px) came from the input's (-px, py).
      for (let t = 0; t < d.quarterTurns; t++) {
        const oy = py;
        py = -px;
        px = oy;
      }
      if (d.hflip) px = -px;
      if (d.vflip) py = -py;
      sy[y * width + x] = cy + py / d.scale;
      sx[y * width + x] = cx + px / d.scale;
    }
  }
  return { sy, sx };
}

function clampIndex(v: number, n: number): number {
  return v < 0 ? 0 : v > n - 1 ? n - 1 : v;
}

/** One augmented sample: image (HWC uint8), mask (0/1) and soft label (float32 logits, or null). */
export interface AugmentedSample {
  image: Uint8Array;
  mask: Uint8Array;
  soft: Float32Array | null;
}

/**
 * Apply one draw to one sample. `soft` is float32 logits (already decoded from float16) or null.
 * Exact permutation when `d.scale === 1`; otherwise bilinear (image, soft) and nearest (mask) at the same
 * source positions.
 */
export function applyAugment(
  image: Uint8Array,
  mask: Uint8Array,
  soft: Float32Array | null,
  height: number,
  width: number,
  d: AugmentDraw,
): AugmentedSample {
  const n = height * width;
  if (image.length !== n * 3 || mask.length !== n || (soft && soft.length !== n)) {
    throw new LesionFuseError(`augment: sample arrays do not match ${height} x ${width}`);
  }
  const { sy, sx } = sourceGrid(height, width, d);
  const outImg = new Float32Array(n * 3);
  const outMask = new Uint8Array(n);
  const outSoft = soft ? new Float32Array(n) : null;
  for (let i = 0; i < n; i++) {
    const fy = clampIndex(sy[i]!, height);
    const fx = clampIndex(sx[i]!, width);
    // Nearest for the mask (round half up, stable for exact pixel centres).
    const ny = Math.min(height - 1, Math.floor(fy + 0.5));
    const nx = Math.min(width - 1, Math.floor(fx + 0.5));
    outMask[i] = mask[ny * width + nx]!;
    const y0 = Math.floor(fy);
    const x0 = Math.floor(fx);
    const y1 = Math.min(height - 1, y0 + 1);
    const x1 = Math.min(width - 1, x0 + 1);
    const wy = fy - y0;
    const wx = fx - x0;
    const w00 = (1 - wy) * (1 - wx);
    const w01 = (1 - wy) * wx;
    const w10 = wy * (1 - wx);
    const w11 = wy * wx;
    const i00 = y0 * width + x0;
    const i01 = y0 * width + x1;
    const i10 = y1 * width + x0;
    const i11 = y1 * width + x1;
    for (let c = 0; c < 3; c++) {
      outImg[i * 3 + c] = w00 * image[i00 * 3 + c]! + w01 * image[i01 * 3 + c]! + w10 * image[i10 * 3 + c]! + w11 * image[i11 * 3 + c]!;
    }
    if (outSoft && soft) outSoft[i] = w00 * soft[i00]! + w01 * soft[i01]! + w10 * soft[i10]! + w11 * soft[i11]!;
  }
  // Colour jitter on the image only: brightness (scale), contrast (blend with the mean grey), saturation
  // (blend with each pixel's grey), in that order; ITU-R 601 luma weights.
  const jitter = d.brightness !== 1 || d.contrast !== 1 || d.saturation !== 1;
  let meanGrey = 0;
  if (jitter) {
    for (let i = 0; i < n; i++) meanGrey += 0.299 * outImg[i * 3]! + 0.587 * outImg[i * 3 + 1]! + 0.114 * outImg[i * 3 + 2]!;
    meanGrey = (meanGrey / n) * d.brightness;
  }
  const outU8 = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    let r = outImg[i * 3]!;
    let g = outImg[i * 3 + 1]!;
    let b = outImg[i * 3 + 2]!;
    if (jitter) {
      r *= d.brightness;
      g *= d.brightness;
      b *= d.brightness;
      r = meanGrey + (r - meanGrey) * d.contrast;
      g = meanGrey + (g - meanGrey) * d.contrast;
      b = meanGrey + (b - meanGrey) * d.contrast;
      const grey = 0.299 * r + 0.587 * g + 0.114 * b;
      r = grey + (r - grey) * d.saturation;
      g = grey + (g - grey) * d.saturation;
      b = grey + (b - grey) * d.saturation;
    }
    outU8[i * 3] = Math.max(0, Math.min(255, Math.round(r)));
    outU8[i * 3 + 1] = Math.max(0, Math.min(255, Math.round(g)));
    outU8[i * 3 + 2] = Math.max(0, Math.min(255, Math.round(b)));
  }
  return { image: outU8, mask: outMask, soft: outSoft };
}

let f16Table: Float32Array | null = null;
/** float16 bit pattern -> float32, through a 64K lookup table built once with the onnx codec. */
function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    const all = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) all[i] = i;
    f16Table = float16ToFloat32(all);
  }
  return f16Table;
}

/** The decoded float32 soft label of sample `index`, or null when the dataset has none. */
export function softLabelOf(ds: InMemoryDataset, index: number): Float32Array | null {
  if (!ds.soft) return null;
  const n = ds.height * ds.width;
  const t = f16ToF32Table();
  const out = new Float32Array(n);
  const base = index * n;
  for (let i = 0; i < n; i++) out[i] = t[ds.soft[base + i]!]!;
  return out;
}

/**
 * One sample through the full-field transforms, at the same size: a zoom-out (the soft label resized into the
 * same rectangle, the fill given the teacher's median skin logit), artefacts (the soft label pushed to at most
 * that skin logit under stickers, rulers and dark corners, which are never on the lesion), a skin-tone shift
 * (image only). Three draws decide which apply, then each transform draws what it needs.
 */
export function robustSample(
  image: Uint8Array,
  mask: Uint8Array,
  soft: Float32Array | null,
  height: number,
  width: number,
  opts: RobustAugmentOptions,
  rand: () => number,
): AugmentedSample {
  const o = { ...DEFAULT_ROBUST, ...opts };
  const doZoom = rand() < o.zoomOut;
  const doArt = rand() < o.artefacts;
  const doTone = rand() < o.skinTone;
  let pair: ImageMaskPair = { image: { width, height, data: image }, mask };
  let outSoft = soft;
  let skinLogit = -6;
  if (soft) {
    const v: number[] = [];
    for (let i = 0; i < mask.length; i++) if (!mask[i]) v.push(soft[i]!);
    if (v.length) skinLogit = v.sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  }
  if (doZoom) {
    const [lo, hi] = o.share;
    const z = zoomOut(pair, { frameWidth: width, frameHeight: height, targetShare: lo + (hi - lo) * rand(), rand, maxScale: 1 });
    pair = z;
    if (soft) {
      const { x, y, width: pw, height: ph } = z.placed;
      const r = resizeProbability(soft, height, width, ph, pw);
      const out = new Float32Array(width * height).fill(skinLogit);
      for (let yy = 0; yy < ph; yy++) out.set(r.subarray(yy * pw, (yy + 1) * pw), (y + yy) * width + x);
      outSoft = out;
    }
  }
  if (doArt) {
    const a = addArtefacts(pair, { rand });
    pair = { image: a.image, mask: a.mask };
    if (outSoft) {
      const out = new Float32Array(outSoft);
      for (let i = 0; i < out.length; i++) {
        const c = a.artefactMap[i]!;
        if (c === ARTEFACT_CODE.sticker || c === ARTEFACT_CODE.ruler || c === ARTEFACT_CODE.vignette) out[i] = Math.min(out[i]!, skinLogit);
      }
      outSoft = out;
    }
  }
  if (doTone) {
    const [lo, hi] = o.itaRange;
    pair = { image: shiftSkinTone(pair, { targetIta: lo + (hi - lo) * rand() }).image, mask: pair.mask };
  }
  return { image: pair.image.data, mask: pair.mask, soft: outSoft };
}

/** A batch in the layout the training graph takes. */
export interface TrainingBatch {
  n: number;
  /** N x 3 x H x W, normalised with mean/std (0-1 pixel values). */
  image: Float32Array;
  /** N x 1 x H x W, 0/1. */
  mask: Float32Array;
  /** N x 1 x H x W teacher logits, or null when the dataset has none. */
  teacher: Float32Array | null;
}

/** uint8 RGB HWC images -> normalised float NCHW (the student's input layout), written into `out` at sample `slot`. */
export function writeNormalisedImage(
  img: Uint8Array,
  height: number,
  width: number,
  mean: readonly [number, number, number],
  std: readonly [number, number, number],
  out: Float32Array,
  slot: number,
): void {
  const n = height * width;
  const base = slot * 3 * n;
  for (let c = 0; c < 3; c++) {
    const m = mean[c]!;
    const s = std[c]!;
    const o = base + c * n;
    for (let i = 0; i < n; i++) out[o + i] = (img[i * 3 + c]! / 255 - m) / s;
  }
}

/**
 * Assemble the samples `indices` of `ds` into a batch, augmenting each with draws from `rand` (pass
 * {@link NO_AUGMENT} for validation). Draws happen in index order, so a seed fixes the batch exactly.
 */
export function makeBatch(
  ds: InMemoryDataset,
  indices: readonly number[],
  opts: {
    rand: () => number;
    augment: AugmentOptions;
    mean: readonly [number, number, number];
    std: readonly [number, number, number];
  },
): TrainingBatch {
  const { height, width } = ds;
  const n = height * width;
  const b = indices.length;
  const image = new Float32Array(b * 3 * n);
  const mask = new Float32Array(b * n);
  const teacher = ds.soft ? new Float32Array(b * n) : null;
  indices.forEach((idx, slot) => {
    let img = ds.images.subarray(idx * n * 3, (idx + 1) * n * 3);
    let m = ds.masks.subarray(idx * n, (idx + 1) * n);
    let s = softLabelOf(ds, idx);
    if (opts.augment.robust) ({ image: img, mask: m, soft: s } = robustSample(img, m, s, height, width, opts.augment.robust, opts.rand));
    const d = drawAugment(opts.rand, height, width, opts.augment);
    const a = applyAugment(img, m, s, height, width, d);
    writeNormalisedImage(a.image, height, width, opts.mean, opts.std, image, slot);
    for (let i = 0; i < n; i++) mask[slot * n + i] = a.mask[i]!;
    if (teacher && a.soft) teacher.set(a.soft, slot * n);
  });
  return { n: b, image, mask, teacher };
}

/** What the loader needs of a dataset item (src/runtime/dataset.ts's DatasetItem has these). */
export interface LoadableItem {
  id: string;
  imagePath: string;
  maskPath: string;
}

/** An in-memory dataset plus each image file's SHA-256 (the soft-label cache key). */
export interface LoadedDataset extends InMemoryDataset {
  imageSha256: string[];
  /** Warnings from decoding (EXIF, alpha, anti-aliased masks...), one line each with the file. */
  warnings: string[];
}

/**
 * Decode every image and mask once and resize them to `height` x `width` the way the runtime and the
 * teacher's preprocessing do (Pillow-compatible bilinear; the 0/255 mask resized bilinearly and
 * thresholded at 128), into one packed array each. Soft labels are attached later (see softlabels.ts).
 */
export async function loadInMemoryDataset(
  items: readonly LoadableItem[],
  opts: { height: number; width: number; label?: string; progress?: boolean },
): Promise<LoadedDataset> {
  const { height, width } = opts;
  const n = height * width;
  const images = new Uint8Array(items.length * n * 3);
  const masks = new Uint8Array(items.length * n);
  const imageSha256: string[] = [];
  const warnings: string[] = [];
  const bar = opts.progress === false ? null : new Progress(opts.label ?? 'loading images', items.length);
  for (let k = 0; k < items.length; k++) {
    const it = items[k]!;
    const img = await decodeImage(it.imagePath);
    const mask = await readMask(it.maskPath);
    for (const w of img.warnings) warnings.push(`${it.imagePath}: ${w}`);
    for (const w of mask.warnings) warnings.push(`${it.maskPath}: ${w}`);
    if (mask.width !== img.width || mask.height !== img.height) {
      throw new LesionFuseError(`mask is ${mask.width} x ${mask.height} but its image is ${img.width} x ${img.height}`, { subject: it.maskPath });
    }
    images.set(resizeBilinearU8(img.data, img.width, img.height, 3, width, height), k * n * 3);
    const m255 = new Uint8Array(mask.data.length);
    for (let i = 0; i < m255.length; i++) m255[i] = mask.data[i] ? 255 : 0;
    const mr = resizeBilinearU8(m255, mask.width, mask.height, 1, width, height);
    for (let i = 0; i < n; i++) masks[k * n + i] = mr[i]! >= 128 ? 1 : 0;
    imageSha256.push(await sha256File(it.imagePath));
    bar?.tick();
  }
  return { height, width, ids: items.map((i) => i.id), images, masks, soft: null, imageSha256, warnings };
}
