// LesionFuse web bundle: the pre- and post-processing of the Segmenter, in plain JavaScript (no imports), so
// the page gives the masks the Node.js runtime gives. Each function mirrors one in LesionFuse's
// src/runtime/image.ts; the repository's tests compare them value for value.

const PRECISION_BITS = 22;
const ONE = 2 ** PRECISION_BITS;

// Triangle-filter weights for one axis, support widened by the scale when downscaling, as fixed-point
// integers with 22 fractional bits (Pillow's BILINEAR).
function resampleWeights(inSize, outSize) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale;
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
      total += w[k];
    }
    for (let k = 0; k < n; k++) weights[i * taps + k] = Math.trunc(0.5 + (total !== 0 ? w[k] / total : w[k]) * ONE);
    start[i] = lo;
    count[i] = n;
  }
  return { start, count, weights, taps };
}

function clip8(acc) {
  const v = Math.floor(acc / ONE);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Bilinear resize of 8-bit interleaved pixels (horizontal pass, then vertical, each rounded to 8 bits). */
export function resizeBilinearU8(src, inW, inH, C, outW, outH) {
  let cur = src;
  let curW = inW;
  if (outW !== inW) {
    const { start, count, weights, taps } = resampleWeights(inW, outW);
    const tmp = new Uint8Array(outW * inH * C);
    const acc = new Float64Array(C);
    for (let y = 0; y < inH; y++) {
      const rowIn = y * inW * C;
      const rowOut = y * outW * C;
      for (let x = 0; x < outW; x++) {
        acc.fill(ONE / 2);
        let p = rowIn + start[x] * C;
        for (let k = 0; k < count[x]; k++, p += C) {
          const wk = weights[x * taps + k];
          for (let c = 0; c < C; c++) acc[c] += cur[p + c] * wk;
        }
        for (let c = 0; c < C; c++) tmp[rowOut + x * C + c] = clip8(acc[c]);
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
    for (let k = 0; k < vy.count[y]; k++) {
      const wk = vy.weights[y * vy.taps + k];
      const off = (vy.start[y] + k) * rowLen;
      for (let i = 0; i < rowLen; i++) acc[i] += cur[off + i] * wk;
    }
    const o = y * rowLen;
    for (let i = 0; i < rowLen; i++) out[o + i] = clip8(acc[i]);
  }
  return out;
}

/**
 * One RGB image (width * height * 3 bytes) as the model's NCHW float32 input: resized to H x W, scaled to
 * 0..1, minus mean, over std, per channel, in the model's channel order (pre = manifest.preprocessing).
 */
export function toModelInput(rgb, width, height, pre) {
  const H = pre.size.height;
  const W = pre.size.width;
  const plane = H * W;
  const out = new Float32Array(3 * plane);
  const order = pre.channelOrder === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  const px = resizeBilinearU8(rgb, width, height, 3, W, H);
  for (let c = 0; c < 3; c++) {
    const s = order[c];
    const mean = pre.mean[s];
    const std = pre.std[s];
    const base = c * plane;
    for (let i = 0; i < plane; i++) out[base + i] = (px[i * 3 + s] / 255 - mean) / std;
  }
  return out;
}

/** Bilinear resize of a float map, half-pixel centres, edges clamped (the probability map back to the image). */
export function resizeProbability(prob, fromH, fromW, toH, toW) {
  if (fromH === toH && fromW === toW) return new Float32Array(prob);
  const out = new Float32Array(toH * toW);
  const sy = fromH / toH;
  const sx = fromW / toW;
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
  const row = (r) => {
    const out = new Float32Array(toW);
    const base = r * fromW;
    for (let x = 0; x < toW; x++) {
      const a = prob[base + x0[x]];
      out[x] = a + (prob[base + x1[x]] - a) * lx[x];
    }
    return out;
  };
  let cacheKey = -1;
  let cacheRow = null;
  let cacheKey2 = -1;
  let cacheRow2 = null;
  const horizontal = (r) => {
    if (r === cacheKey) return cacheRow;
    if (r === cacheKey2) return cacheRow2;
    cacheKey2 = cacheKey;
    cacheRow2 = cacheRow;
    cacheKey = r;
    cacheRow = row(r);
    return cacheRow;
  };
  for (let y = 0; y < toH; y++) {
    const fy = Math.max(0, (y + 0.5) * sy - 0.5);
    const y0 = Math.min(Math.floor(fy), fromH - 1);
    const y1 = Math.min(y0 + 1, fromH - 1);
    const ly = fy - y0;
    const a = horizontal(y0);
    const b = horizontal(y1);
    const o = y * toW;
    for (let x = 0; x < toW; x++) out[o + x] = a[x] * (1 - ly) + b[x] * ly;
  }
  return out;
}

/**
 * The model's output map (oh x ow) as a probability map at the image's size: sigmoid when the model gives
 * logits (post = manifest.postprocessing), then the bilinear resize back.
 */
export function toProbability(output, oh, ow, width, height, post) {
  const map = new Float32Array(oh * ow);
  if (post.output === 'logits') for (let i = 0; i < map.length; i++) map[i] = 1 / (1 + Math.exp(-output[i]));
  else map.set(output.subarray(0, map.length));
  return resizeProbability(map, oh, ow, height, width);
}

/** lesion = probability > threshold, as 0/1 bytes. */
export function toMask(probability, threshold) {
  const mask = new Uint8Array(probability.length);
  for (let i = 0; i < mask.length; i++) mask[i] = probability[i] > threshold ? 1 : 0;
  return mask;
}

/** The share of pixels on which two 0/1 masks of the same size agree. */
export function maskAgreement(a, b) {
  if (a.length !== b.length) return 0;
  let same = 0;
  for (let i = 0; i < a.length; i++) if ((a[i] ? 1 : 0) === (b[i] ? 1 : 0)) same++;
  return same / a.length;
}
