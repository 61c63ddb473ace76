/**
 * Image-derived subgroup features, so that results can be broken down by the images they come from:
 * skin tone (Individual Typology Angle), lesion size, image resolution, lesion-skin contrast, and groups
 * a user supplies (`--groups groups.csv`).
 *
 * Colour: 8-bit sRGB -> CIELAB with the D65 white (IEC 61966-2-1 transfer curve and matrix; Xn = 0.95047,
 * Yn = 1, Zn = 1.08883; CIE 1976 L*a*b* with epsilon 216/24389 and kappa 24389/27). Checked against
 * scikit-image's `rgb2lab` by `bench/subgroups-crosscheck.py` (reports/subgroups/).
 *
 * Skin pixels (what ITA and the contrast are measured on) are the pixels that are all of:
 * - outside the lesion mask dilated by `dilatePx` (default 3% of the shorter side, at least 3 px): the
 *   truth mask when the image is labelled (so groups do not depend on the model being evaluated), the
 *   predicted mask otherwise;
 * - not dark: L* >= 25 (dark corners and the vignette of the dermoscope, hair shadows);
 * - not saturated: no channel at 250 or more (specular reflections, overexposure) and not all channels
 *   at 5 or less;
 * - not strongly coloured: chroma C* = sqrt(a*^2 + b*^2) <= 60, and hue angle atan2(b*, a*) in
 *   [-20, 110] degrees when C* > 25 (skin is a low-chroma red-to-yellow; rulers, stickers and ink marks
 *   are blue, green, purple or vivid).
 * ITA = atan2(L* - 50, b*) in degrees, from the medians of L* and b* over the skin pixels (robust to the
 * hair and freckles the rules above leave in). Fewer than {@link MIN_SKIN_PIXELS} skin pixels (or under
 * 1% of the image): ITA is NaN and the group is 'unknown'.
 */
import { promises as fs } from 'node:fs';
import { LesionFuseError, describeError } from '../util/errors.js';
import { parseCsvLine } from './dataset.js';
import { squaredDistanceTransform, percentile } from './metrics.js';

export type Lab = [number, number, number];

const XN = 0.95047;
const YN = 1.0;
const ZN = 1.08883;
const EPS = 216 / 24389;
const KAPPA = 24389 / 27;

/** sRGB transfer curve inverse: 0-1 encoded value -> linear light. */
export function srgbToLinear(c: number): number {
  return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
}

function linearToSrgb(c: number): number {
  return c <= 0.0031308 ? 12.92 * c : 1.055 * Math.pow(c, 1 / 2.4) - 0.055;
}

const LINEAR_LUT = (() => {
  const t = new Float64Array(256);
  for (let i = 0; i < 256; i++) t[i] = srgbToLinear(i / 255);
  return t;
})();

function f(t: number): number {
  return t > EPS ? Math.cbrt(t) : (KAPPA * t + 16) / 116;
}

function finv(t: number): number {
  return t * t * t > EPS ? t * t * t : (116 * t - 16) / KAPPA;
}

/** CIELAB (D65) of an 8-bit sRGB colour into `out` (no allocation: the per-pixel path). */
export function rgbToLabInto(r: number, g: number, b: number, out: Float64Array): void {
  const R = LINEAR_LUT[r & 255]!;
  const G = LINEAR_LUT[g & 255]!;
  const B = LINEAR_LUT[b & 255]!;
  const fx = f((0.4124564 * R + 0.3575761 * G + 0.1804375 * B) / XN);
  const fy = f(0.2126729 * R + 0.7151522 * G + 0.072175 * B);
  const fz = f((0.0193339 * R + 0.119192 * G + 0.9503041 * B) / ZN);
  out[0] = 116 * fy - 16;
  out[1] = 500 * (fx - fy);
  out[2] = 200 * (fy - fz);
}

/** CIELAB (D65) of an 8-bit sRGB colour. */
export function rgbToLab(r: number, g: number, b: number): Lab {
  const R = LINEAR_LUT[r & 255]!;
  const G = LINEAR_LUT[g & 255]!;
  const B = LINEAR_LUT[b & 255]!;
  const X = 0.4124564 * R + 0.3575761 * G + 0.1804375 * B;
  const Y = 0.2126729 * R + 0.7151522 * G + 0.072175 * B;
  const Z = 0.0193339 * R + 0.119192 * G + 0.9503041 * B;
  const fx = f(X / XN);
  const fy = f(Y / YN);
  const fz = f(Z / ZN);
  return [116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)];
}

/** The 8-bit sRGB colour of a CIELAB (D65) value, clipped to 0-255 (used to make test patches). */
export function labToRgb(L: number, a: number, b: number): [number, number, number] {
  const fy = (L + 16) / 116;
  const fx = fy + a / 500;
  const fz = fy - b / 200;
  const X = XN * finv(fx);
  const Y = YN * (L > KAPPA * EPS ? fy * fy * fy : L / KAPPA);
  const Z = ZN * finv(fz);
  const lin = [
    3.2404542 * X - 1.5371385 * Y - 0.4985314 * Z,
    -0.969266 * X + 1.8760108 * Y + 0.041556 * Z,
    0.0556434 * X - 0.2040259 * Y + 1.0572252 * Z,
  ];
  return lin.map((c) => Math.max(0, Math.min(255, Math.round(255 * linearToSrgb(Math.max(0, c)))))) as [number, number, number];
}

/** Individual Typology Angle in degrees: atan2(L* - 50, b*). */
export function ita(L: number, b: number): number {
  return (Math.atan2(L - 50, b) * 180) / Math.PI;
}

/** ITA groups as used in the dermatology literature (Chardon et al.), lightest first. */
export const ITA_BINS = ['very light', 'light', 'intermediate', 'tan', 'brown', 'dark'] as const;
export type ItaBin = (typeof ITA_BINS)[number] | 'unknown';

/** very light > 55, light 41-55, intermediate 28-41, tan 10-28, brown -30..10, dark < -30 (degrees). */
export function itaBin(value: number): ItaBin {
  if (!Number.isFinite(value)) return 'unknown';
  if (value > 55) return 'very light';
  if (value > 41) return 'light';
  if (value > 28) return 'intermediate';
  if (value > 10) return 'tan';
  if (value >= -30) return 'brown';
  return 'dark';
}

/** Lesion share of the frame, in percent: <5, 5-10, 10-20, 20-40, >40. */
export const SIZE_BINS = ['<5%', '5-10%', '10-20%', '20-40%', '>40%'] as const;
export type SizeBin = (typeof SIZE_BINS)[number];

export function sizeBin(sharePercent: number): SizeBin {
  if (sharePercent < 5) return '<5%';
  if (sharePercent < 10) return '5-10%';
  if (sharePercent < 20) return '10-20%';
  if (sharePercent <= 40) return '20-40%';
  return '>40%';
}

/** Image resolution by the shorter side in pixels. */
export const RESOLUTION_BINS = ['<500 px', '500-999 px', '1000-1999 px', '>=2000 px'] as const;
export type ResolutionBin = (typeof RESOLUTION_BINS)[number];

export function resolutionBin(width: number, height: number): ResolutionBin {
  const s = Math.min(width, height);
  if (s < 500) return '<500 px';
  if (s < 1000) return '500-999 px';
  if (s < 2000) return '1000-1999 px';
  return '>=2000 px';
}

const deg = (r: number): number => (r * 180) / Math.PI;
const rad = (d: number): number => (d * Math.PI) / 180;

/**
 * CIEDE2000 colour difference (kL = kC = kH = 1), following Sharma, Wu and Dalal (2005), whose published
 * test pairs the tests use.
 */
export function ciede2000(lab1: Lab, lab2: Lab): number {
  const [L1, a1, b1] = lab1;
  const [L2, a2, b2] = lab2;
  const C1 = Math.hypot(a1, b1);
  const C2 = Math.hypot(a2, b2);
  const Cm = (C1 + C2) / 2;
  const G = 0.5 * (1 - Math.sqrt(Cm ** 7 / (Cm ** 7 + 25 ** 7)));
  const a1p = (1 + G) * a1;
  const a2p = (1 + G) * a2;
  const C1p = Math.hypot(a1p, b1);
  const C2p = Math.hypot(a2p, b2);
  const hp = (a: number, b: number): number => {
    if (a === 0 && b === 0) return 0;
    const h = deg(Math.atan2(b, a));
    return h < 0 ? h + 360 : h;
  };
  const h1p = hp(a1p, b1);
  const h2p = hp(a2p, b2);
  const dLp = L2 - L1;
  const dCp = C2p - C1p;
  let dhp = 0;
  if (C1p * C2p !== 0) {
    dhp = h2p - h1p;
    if (dhp > 180) dhp -= 360;
    else if (dhp < -180) dhp += 360;
  }
  const dHp = 2 * Math.sqrt(C1p * C2p) * Math.sin(rad(dhp / 2));
  const Lmp = (L1 + L2) / 2;
  const Cmp = (C1p + C2p) / 2;
  let hmp = h1p + h2p;
  if (C1p * C2p !== 0) {
    if (Math.abs(h1p - h2p) <= 180) hmp = (h1p + h2p) / 2;
    else hmp = h1p + h2p < 360 ? (h1p + h2p + 360) / 2 : (h1p + h2p - 360) / 2;
  }
  const T = 1 - 0.17 * Math.cos(rad(hmp - 30)) + 0.24 * Math.cos(rad(2 * hmp)) + 0.32 * Math.cos(rad(3 * hmp + 6)) - 0.2 * Math.cos(rad(4 * hmp - 63));
  const dTheta = 30 * Math.exp(-(((hmp - 275) / 25) ** 2));
  const Rc = 2 * Math.sqrt(Cmp ** 7 / (Cmp ** 7 + 25 ** 7));
  const Sl = 1 + (0.015 * (Lmp - 50) ** 2) / Math.sqrt(20 + (Lmp - 50) ** 2);
  const Sc = 1 + 0.045 * Cmp;
  const Sh = 1 + 0.015 * Cmp * T;
  const Rt = -Math.sin(rad(2 * dTheta)) * Rc;
  const tl = dLp / Sl;
  const tc = dCp / Sc;
  const th = dHp / Sh;
  return Math.sqrt(tl * tl + tc * tc + th * th + Rt * tc * th);
}

/** Fewest skin pixels an ITA is computed from. */
export const MIN_SKIN_PIXELS = 200;

export interface SkinRules {
  /** Dilation of the lesion mask before skin is taken, in pixels (default 3% of the shorter side, >= 3). */
  dilatePx?: number;
  /** Darkest L* counted as skin (default 25). */
  minL?: number;
  /** Largest chroma counted as skin (default 60). */
  maxChroma?: number;
}

/** Why pixels outside the dilated lesion were not counted as skin (counts of pixels). */
export interface SkinExclusions {
  dark: number;
  saturated: number;
  coloured: number;
}

export interface ImageFeatures {
  width: number;
  height: number;
  /** width / height. */
  aspect: number;
  resolution: ResolutionBin;
  /** Lesion pixels / all pixels x 100 (of the mask the features were computed from). */
  lesionSharePercent: number;
  size: SizeBin;
  /** Median L*, a*, b* of the skin pixels (NaN when too few). */
  skinLab: Lab;
  /** Median L*, a*, b* of the lesion pixels (NaN when the mask is empty). */
  lesionLab: Lab;
  ita: number;
  itaGroup: ItaBin;
  /** CIEDE2000 between lesionLab and skinLab (NaN when either is missing). */
  contrast: number;
  skinPixels: number;
  excluded: SkinExclusions;
  /** Share (0-1) of the four corner boxes (each 12% of width and height) with L* < 25: dark corners / vignette. */
  darkCornerShare: number;
  /** Share (0-1) of pixels outside the dilated lesion that are strongly coloured (stickers, rulers, ink). */
  colouredShare: number;
  /** Mean sRGB value of each channel over the whole image, 0-255. */
  meanRgb: [number, number, number];
}

/** Skin hue: atan2(b*, a*) within [-20, 110] degrees. */
function hueIsSkin(a: number, b: number): boolean {
  const h = deg(Math.atan2(b, a));
  return h >= -20 && h <= 110;
}

function median(values: Float32Array, n: number): number {
  if (n === 0) return NaN;
  const s = values.slice(0, n).sort();
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** Dilate a 0/1 mask by a Euclidean radius (exact, via the distance transform). */
export function dilate(mask: Uint8Array, width: number, height: number, radius: number): Uint8Array {
  const out = new Uint8Array(mask.length);
  let any = false;
  for (let i = 0; i < mask.length; i++) if (mask[i]) { any = true; break; }
  if (!any) return out;
  const d = squaredDistanceTransform(mask, width, height);
  const r2 = radius * radius;
  for (let i = 0; i < out.length; i++) out[i] = d[i]! <= r2 ? 1 : 0;
  return out;
}

/**
 * Features of one image (RGB, HWC) given its lesion mask (0/1, the same size): see the module comment
 * for the skin rules. `mask` is the truth for labelled images and the prediction otherwise.
 */
export function imageFeatures(image: { width: number; height: number; data: Uint8Array }, mask: Uint8Array, rules: SkinRules = {}): ImageFeatures {
  const { width, height, data } = image;
  const n = width * height;
  if (data.length !== n * 3) throw new LesionFuseError(`image data has ${data.length} bytes, not ${width} x ${height} x 3`);
  if (mask.length !== n) throw new LesionFuseError(`lesion mask has ${mask.length} pixels, not ${width} x ${height}`);
  const minL = rules.minL ?? 25;
  const maxChroma = rules.maxChroma ?? 60;
  const dilatePx = rules.dilatePx ?? Math.max(3, Math.round(0.03 * Math.min(width, height)));
  const grown = dilate(mask, width, height, dilatePx);
  const sL = new Float32Array(n);
  const sA = new Float32Array(n);
  const sB = new Float32Array(n);
  const lL = new Float32Array(n);
  const lA = new Float32Array(n);
  const lB = new Float32Array(n);
  let ns = 0;
  let nl = 0;
  let lesion = 0;
  const excluded: SkinExclusions = { dark: 0, saturated: 0, coloured: 0 };
  let outside = 0;
  const sum = [0, 0, 0];
  const cw = Math.max(1, Math.round(0.12 * width));
  const ch = Math.max(1, Math.round(0.12 * height));
  let corner = 0;
  let cornerDark = 0;
  const lab = new Float64Array(3);
  for (let y = 0; y < height; y++) {
    const inCornerRow = y < ch || y >= height - ch;
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const r = data[3 * i]!;
      const g = data[3 * i + 1]!;
      const b = data[3 * i + 2]!;
      sum[0]! += r;
      sum[1]! += g;
      sum[2]! += b;
      rgbToLabInto(r, g, b, lab);
      if (inCornerRow && (x < cw || x >= width - cw)) {
        corner++;
        if (lab[0]! < minL) cornerDark++;
      }
      if (mask[i]) {
        lesion++;
        lL[nl] = lab[0]!;
        lA[nl] = lab[1]!;
        lB[nl] = lab[2]!;
        nl++;
        continue;
      }
      if (grown[i]) continue;
      outside++;
      if (lab[0]! < minL) {
        excluded.dark++;
        continue;
      }
      if (r >= 250 || g >= 250 || b >= 250 || (r <= 5 && g <= 5 && b <= 5)) {
        excluded.saturated++;
        continue;
      }
      const chroma = Math.sqrt(lab[1]! * lab[1]! + lab[2]! * lab[2]!);
      if (chroma > maxChroma || (chroma > 25 && !hueIsSkin(lab[1]!, lab[2]!))) {
        excluded.coloured++;
        continue;
      }
      sL[ns] = lab[0]!;
      sA[ns] = lab[1]!;
      sB[ns] = lab[2]!;
      ns++;
    }
  }
  const enoughSkin = ns >= MIN_SKIN_PIXELS && ns >= 0.01 * n;
  const skinLab: Lab = enoughSkin ? [median(sL, ns), median(sA, ns), median(sB, ns)] : [NaN, NaN, NaN];
  const lesionLab: Lab = nl > 0 ? [median(lL, nl), median(lA, nl), median(lB, nl)] : [NaN, NaN, NaN];
  const itaValue = enoughSkin ? ita(skinLab[0], skinLab[2]) : NaN;
  const share = (100 * lesion) / n;
  return {
    width,
    height,
    aspect: width / height,
    resolution: resolutionBin(width, height),
    lesionSharePercent: share,
    size: sizeBin(share),
    skinLab,
    lesionLab,
    ita: itaValue,
    itaGroup: itaBin(itaValue),
    contrast: enoughSkin && nl > 0 ? ciede2000(lesionLab, skinLab) : NaN,
    skinPixels: ns,
    excluded,
    darkCornerShare: corner ? cornerDark / corner : 0,
    colouredShare: outside ? excluded.coloured / outside : 0,
    meanRgb: [sum[0]! / n, sum[1]! / n, sum[2]! / n],
  };
}

/** Tertile cut points (1/3 and 2/3 quantiles) of the finite values. */
export function tertileCuts(values: readonly number[]): [number, number] {
  const v = values.filter((x) => Number.isFinite(x));
  return [percentile(v, 100 / 3), percentile(v, 200 / 3)];
}

/** 'low' / 'mid' / 'high' contrast given tertile cuts ('unknown' when NaN). */
export function contrastBin(value: number, cuts: [number, number]): string {
  if (!Number.isFinite(value) || !Number.isFinite(cuts[0])) return 'unknown';
  if (value <= cuts[0]) return `low (dE00 <= ${cuts[0].toFixed(1)})`;
  if (value <= cuts[1]) return `mid (dE00 ${cuts[0].toFixed(1)}-${cuts[1].toFixed(1)})`;
  return `high (dE00 > ${cuts[1].toFixed(1)})`;
}

/** User groups: image id -> { column: value }. */
export type UserGroups = { columns: string[]; byId: Map<string, Record<string, string>> };

/**
 * Read `groups.csv`: a header whose first column is the image id (named `id`, `image` or `image_id`),
 * every other column a grouping (e.g. `fitzpatrick,device`). Empty cells are left out of that column.
 */
export async function readGroupsCsv(path: string): Promise<UserGroups> {
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (e) {
    throw new LesionFuseError(`cannot read the groups file: ${describeError(e)}`, { subject: path });
  }
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (lines.length < 2) throw new LesionFuseError('a groups file needs a header (id,column,...) and at least one row', { subject: path });
  const header = parseCsvLine(lines[0]!).map((h) => h.trim());
  if (!['id', 'image', 'image_id'].includes(header[0]!.toLowerCase()) || header.length < 2) {
    throw new LesionFuseError(`the first column must be the image id (id, image or image_id) followed by group columns; got '${header.join(',')}'`, { subject: path });
  }
  const columns = header.slice(1);
  const byId = new Map<string, Record<string, string>>();
  for (let k = 1; k < lines.length; k++) {
    const cells = parseCsvLine(lines[k]!);
    const id = (cells[0] ?? '').trim().replace(/\.[A-Za-z]+$/, '');
    if (!id) throw new LesionFuseError(`line ${k + 1} has no image id`, { subject: path });
    if (byId.has(id)) throw new LesionFuseError(`image id ${id} appears twice (line ${k + 1})`, { subject: path });
    const row: Record<string, string> = {};
    columns.forEach((c, j) => {
      const v = (cells[j + 1] ?? '').trim();
      if (v) row[c] = v;
    });
    byId.set(id, row);
  }
  return { columns, byId };
}
