/**
 * Post-processing of a binary lesion mask, as pure functions (no I/O): keep the connected component(s)
 * that best match a lesion and fill holes. A dermoscopic image is taken of one lesion, usually near the
 * centre, so small detached blobs (a sticker's edge, a dark corner, a hair knot) are more often false
 * positives than lesion; whether that helps on real data is measured in reports/robustness/.
 *
 * Masks are row-major 0/1 Uint8Arrays of width * height (the layout of src/runtime/image.ts).
 */
import { LesionFuseError } from '../util/errors.js';

export interface Component {
  /** Label in the label image (1-based). */
  label: number;
  area: number;
  /** Centroid, pixels. */
  cx: number;
  cy: number;
}

function checkMask(mask: Uint8Array, width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || mask.length !== width * height) {
    throw new LesionFuseError(`postprocess: mask has ${mask.length} values, not ${width} x ${height}`);
  }
}

/**
 * Connected components of the foreground (8-connectivity by default, 4 on request), labelled in scan
 * order of their first pixel. Returns the label image (0 = background) and one record per component.
 */
export function connectedComponents(
  mask: Uint8Array,
  width: number,
  height: number,
  connectivity: 4 | 8 = 8,
): { labels: Int32Array; components: Component[] } {
  checkMask(mask, width, height);
  const labels = new Int32Array(mask.length);
  const components: Component[] = [];
  const stack = new Int32Array(mask.length);
  let next = 0;
  for (let start = 0; start < mask.length; start++) {
    if (!mask[start] || labels[start]) continue;
    const label = ++next;
    let top = 0;
    stack[top++] = start;
    labels[start] = label;
    let area = 0;
    let sx = 0;
    let sy = 0;
    while (top > 0) {
      const i = stack[--top]!;
      const x = i % width;
      const y = (i - x) / width;
      area++;
      sx += x;
      sy += y;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          if ((dx === 0 && dy === 0) || (connectivity === 4 && dx !== 0 && dy !== 0)) continue;
          const xx = x + dx;
          if (xx < 0 || xx >= width) continue;
          const j = yy * width + xx;
          if (mask[j] && !labels[j]) {
            labels[j] = label;
            stack[top++] = j;
          }
        }
      }
    }
    components.push({ label, area, cx: sx / area, cy: sy / area });
  }
  return { labels, components };
}

/**
 * Fill holes: background pixels not reachable from the image border through background (4-connected)
 * become foreground. A "hole" open to the border is not a hole and stays.
 */
export function fillHoles(mask: Uint8Array, width: number, height: number): Uint8Array {
  checkMask(mask, width, height);
  const outside = new Uint8Array(mask.length);
  const stack = new Int32Array(mask.length);
  let top = 0;
  const seed = (i: number): void => {
    if (!mask[i] && !outside[i]) {
      outside[i] = 1;
      stack[top++] = i;
    }
  };
  for (let x = 0; x < width; x++) {
    seed(x);
    seed((height - 1) * width + x);
  }
  for (let y = 0; y < height; y++) {
    seed(y * width);
    seed(y * width + width - 1);
  }
  while (top > 0) {
    const i = stack[--top]!;
    const x = i % width;
    if (x > 0) seed(i - 1);
    if (x < width - 1) seed(i + 1);
    if (i >= width) seed(i - width);
    if (i < mask.length - width) seed(i + width);
  }
  const out = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) out[i] = outside[i] ? 0 : 1;
  return out;
}

/** How {@link postprocessMask} chooses the component(s) to keep. */
export type ComponentRule = 'all' | 'largest' | 'central';

export interface PostprocessOptions {
  /**
   * 'largest': the largest component; 'central': the component with the highest area x centrality, where
   * centrality = 1 - distance of its centroid from the image centre / half the diagonal (so a central
   * blob beats a somewhat larger one in a corner); 'all': keep every component. Default 'central'.
   */
  components?: ComponentRule;
  /** Also keep other components at least this fraction of the kept one's area (default 0.3; 1 keeps one). */
  keepRatio?: number;
  /** Fill holes inside the kept mask (default true). */
  fillHoles?: boolean;
}

/**
 * The options used when post-processing is switched on without details: the variant chosen on the val split
 * (the most central-and-large component, plus any other of at least 30% of its area, holes filled; see
 * reports/robustness/README.md).
 */
export const DEFAULT_POSTPROCESS: Required<PostprocessOptions> = { components: 'central', keepRatio: 0.3, fillHoles: true };

/** Keep the lesion-like component(s) of a 0/1 mask and fill its holes; an empty mask stays empty. */
export function postprocessMask(mask: Uint8Array, width: number, height: number, opts: PostprocessOptions = {}): Uint8Array {
  const o = { ...DEFAULT_POSTPROCESS, ...opts };
  checkMask(mask, width, height);
  if (!(o.keepRatio > 0 && o.keepRatio <= 1)) throw new LesionFuseError(`postprocess: keepRatio must be in (0, 1], got ${o.keepRatio}`);
  let out: Uint8Array;
  if (o.components === 'all') {
    out = new Uint8Array(mask.length);
    for (let i = 0; i < mask.length; i++) out[i] = mask[i] ? 1 : 0;
  } else {
    const { labels, components } = connectedComponents(mask, width, height);
    if (components.length === 0) return new Uint8Array(mask.length);
    const cx = (width - 1) / 2;
    const cy = (height - 1) / 2;
    const half = Math.max(1e-9, Math.hypot(cx, cy));
    const score = (c: Component): number => (o.components === 'central' ? c.area * (1 - Math.hypot(c.cx - cx, c.cy - cy) / half) : c.area);
    let best = components[0]!;
    for (const c of components) if (score(c) > score(best)) best = c;
    const keep = new Uint8Array(components.length + 1);
    keep[best.label] = 1;
    if (o.keepRatio < 1) for (const c of components) if (c.area >= o.keepRatio * best.area) keep[c.label] = 1;
    out = new Uint8Array(mask.length);
    for (let i = 0; i < mask.length; i++) out[i] = keep[labels[i]!]!;
  }
  return o.fillHoles ? fillHoles(out, width, height) : out;
}

/**
 * The Segmenter's post-processing step (its `postprocess` option) for {@link postprocessMask} with `opts`
 * (default {@link DEFAULT_POSTPROCESS}); `describe` is what `segment.json` records.
 */
export function lesionPostprocess(opts: PostprocessOptions = {}): { describe: Record<string, unknown>; apply(mask: Uint8Array, width: number, height: number): Uint8Array } {
  const o = { ...DEFAULT_POSTPROCESS, ...opts };
  return { describe: { kind: 'lesion-components', ...o }, apply: (mask, width, height) => postprocessMask(mask, width, height, o) };
}
