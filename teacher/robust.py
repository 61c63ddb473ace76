"""Robustness augmentations for the teacher's training (the same transforms as src/distill/robust.ts):

- zoom_out: shrink image + mask so the lesion covers a chosen share of the frame, fill the rest with skin
  mirrored from a band along the image's border (lesion pixels in the band replaced by nearby skin first);
- aspect_crop: a random crop with the output's aspect ratio, resized (never stretched);
- add_artefacts: calibration-sticker discs, ruler ticks, dark vignette corners, hair strokes; stickers, rulers
  and the dark corners are placed off the (dilated) lesion, and the mask is never changed;
- shift_skin_tone: one global CIELAB map towards a lower ITA (L' = Lt + (L - Ls) * Lt / Ls, b' = b + bt - bs).

Images are uint8 HWC RGB numpy arrays, masks 0/1 uint8 HW. Randomness from a numpy Generator: a seed fixes the
result. `robust_sample` combines them for one training sample behind the flags of RobustConfig.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

STICKER_COLOURS = np.array(
    [[240, 130, 40], [60, 170, 80], [50, 110, 200], [235, 210, 60], [210, 50, 50], [245, 245, 240]], np.float32
)
ARTEFACT_CODE = {"sticker": 1, "ruler": 2, "vignette": 3, "hair": 4}
FALLBACK_SKIN = np.array([205, 160, 145], np.uint8)


def resize_image(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Pillow bilinear (what the runtime's resizeBilinearU8 reproduces)."""
    if img.shape[1] == w and img.shape[0] == h:
        return img.copy()
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))


def resize_mask(mask: np.ndarray, w: int, h: int) -> np.ndarray:
    """0/255 bilinear, threshold at 128 (as the loaders do)."""
    if mask.shape[1] == w and mask.shape[0] == h:
        return mask.copy()
    m = np.asarray(Image.fromarray((mask > 0).astype(np.uint8) * 255).resize((w, h), Image.BILINEAR))
    return (m >= 128).astype(np.uint8)


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Dilation with a (2r+1) square window."""
    m = mask.astype(bool)
    h, w = m.shape
    p = np.pad(m, r)
    out = np.zeros_like(m)
    # separable: rows then columns
    rows = np.zeros((h + 2 * r, w), bool)
    for d in range(2 * r + 1):
        rows |= p[:, d:d + w]
    for d in range(2 * r + 1):
        out |= rows[d:d + h, :]
    return out


def _bounce(d: np.ndarray, band: int) -> np.ndarray:
    m = (d - 1) % (2 * band)
    return np.where(m < band, m, 2 * band - 1 - m)


def skin_only(img: np.ndarray, lesion: np.ndarray) -> np.ndarray:
    """Lesion pixels replaced by the nearest skin pixel of their row (rows without skin: nearest such row)."""
    h, w = lesion.shape
    out = img.copy()
    xs = np.arange(w)
    has = (~lesion.astype(bool)).any(axis=1)
    for y in np.nonzero(has)[0]:
        skin_x = np.nonzero(~lesion[y].astype(bool))[0]
        if len(skin_x) == w:
            continue
        k = np.searchsorted(skin_x, xs)
        left = skin_x[np.clip(k - 1, 0, len(skin_x) - 1)]
        right = skin_x[np.clip(k, 0, len(skin_x) - 1)]
        src = np.where(np.abs(xs - left) <= np.abs(right - xs), left, right)
        out[y] = img[y, src]
    good = np.nonzero(has)[0]
    for y in np.nonzero(~has)[0]:
        if len(good):
            out[y] = out[good[np.argmin(np.abs(good - y))]]
        else:
            out[y] = FALLBACK_SKIN
    return out


def zoom_out(img: np.ndarray, mask: np.ndarray, frame: Tuple[int, int], target_share: float,
             rng: np.random.Generator, band: float = 0.15, max_scale: float = 1.5) -> Dict[str, object]:
    """Shrink so the lesion covers `target_share` of a frame (H, W), place at random, fill with mirrored skin."""
    FH, FW = frame
    H, W = mask.shape
    lesion = int(mask.astype(bool).sum())
    fit = min(FW / W, FH / H, max_scale)
    k = np.sqrt(target_share * FW * FH / lesion) if lesion > 0 else 0.5 * FH / H
    k = min(k, fit)
    sw, sh = max(1, int(round(W * k))), max(1, int(round(H * k)))
    im = resize_image(img, sw, sh)
    ms = resize_mask(mask, sw, sh)
    x0 = int(rng.integers(0, FW - sw + 1))
    y0 = int(rng.integers(0, FH - sh + 1))
    b = max(1, min(sw, sh, int(round(band * min(sw, sh)))))
    u = np.arange(FW) - x0
    cols = np.where(u < 0, _bounce(-u, b), np.where(u >= sw, sw - 1 - _bounce(u - sw + 1, b), u))
    v = np.arange(FH) - y0
    rows = np.where(v < 0, _bounce(-v, b), np.where(v >= sh, sh - 1 - _bounce(v - sh + 1, b), v))
    skin = skin_only(im, dilate(ms, 2))
    out = skin[rows[:, None], cols[None, :]]
    out[y0:y0 + sh, x0:x0 + sw] = im
    m = np.zeros((FH, FW), np.uint8)
    m[y0:y0 + sh, x0:x0 + sw] = ms
    return {"image": out, "mask": m, "scale": k, "placed": (x0, y0, sw, sh), "share": float(m.mean())}


def aspect_crop(img: np.ndarray, mask: np.ndarray, out_size: Tuple[int, int], rng: np.random.Generator,
                min_area: float = 0.5) -> Tuple[np.ndarray, np.ndarray]:
    """Random crop with the aspect of out_size (H, W), area in [min_area, 1] of the largest, resized."""
    oh, ow = out_size
    H, W = mask.shape
    aspect = ow / oh
    cw, ch = W, int(round(W / aspect))
    if ch > H:
        ch, cw = H, int(round(H * aspect))
    f = np.sqrt(min_area + (1 - min_area) * rng.random())
    cw = max(1, min(W, int(round(cw * f))))
    ch = max(1, min(H, int(round(ch * f))))
    x = int(rng.integers(0, W - cw + 1))
    y = int(rng.integers(0, H - ch + 1))
    return resize_image(img[y:y + ch, x:x + cw], ow, oh), resize_mask(mask[y:y + ch, x:x + cw], ow, oh)


def _blend(img: np.ndarray, sel: np.ndarray, colour, alpha: np.ndarray) -> None:
    a = alpha[..., None]
    img[sel] = np.round(img[sel] * (1 - a) + np.asarray(colour, np.float32) * a)


def add_artefacts(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator, p_sticker: float = 0.5,
                  p_ruler: float = 0.3, p_vignette: float = 0.3, p_hair: float = 0.3,
                  max_stickers: int = 2) -> Dict[str, object]:
    """Draw artefacts on a float copy; returns image (uint8), the unchanged mask, the artefact map and records."""
    H, W = mask.shape
    out = img.astype(np.float32)
    amap = np.zeros((H, W), np.uint8)
    records: List[dict] = []
    side = min(W, H)
    keep_out = dilate(mask, max(2, int(round(0.02 * side))))
    want = {"vignette": rng.random() < p_vignette, "ruler": rng.random() < p_ruler,
            "sticker": rng.random() < p_sticker, "hair": rng.random() < p_hair}
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    # painted bottom to top: hair, dark corners, ruler, stickers
    if want["hair"]:
        for _ in range(int(rng.integers(3, 13))):
            p0 = np.array([rng.random() * W, rng.random() * H])
            ang = rng.random() * 2 * np.pi
            L = (0.2 + 0.4 * rng.random()) * side
            p2 = p0 + L * np.array([np.cos(ang), np.sin(ang)])
            p1 = (p0 + p2) / 2 + (rng.random(2) - 0.5) * 0.3 * L
            thick = 0.6 + rng.random() * max(0.6, 0.004 * side)
            col = [25 + 30 * rng.random(), 18 + 20 * rng.random(), 12 + 15 * rng.random()]
            t = np.linspace(0, 1, int(np.ceil(L * 2)) + 1)[:, None]
            pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2
            alpha = np.zeros((H, W), np.float32)
            r = int(np.ceil(thick))
            for x, y in pts:
                x0, x1 = max(0, int(x) - r), min(W, int(x) + r + 1)
                y0, y1 = max(0, int(y) - r), min(H, int(y) + r + 1)
                if x0 >= x1 or y0 >= y1:
                    continue
                d = np.hypot(xx[y0:y1, x0:x1] - x, yy[y0:y1, x0:x1] - y)
                alpha[y0:y1, x0:x1] = np.maximum(alpha[y0:y1, x0:x1], np.clip(thick - d, 0, 1))
            sel = alpha > 0
            _blend(out, sel, col, 0.85 * alpha[sel])
            amap[alpha >= 0.5] = ARTEFACT_CODE["hair"]
        records.append({"kind": "hair"})
    if want["vignette"]:
        cx, cy = (W - 1) / 2, (H - 1) / 2
        half = np.hypot(cx, cy)
        dist = np.hypot(xx - cx, yy - cy)
        far = float(dist[keep_out].max()) if keep_out.any() else 0.0
        r0 = max(far + 1, half * (0.75 + 0.2 * rng.random()))
        strength = 0.75 + 0.2 * rng.random()
        if r0 < half:
            a = strength * np.clip((dist - r0) / (0.12 * half), 0, 1)
            a[keep_out] = 0
            sel = a > 0
            _blend(out, sel, [8, 6, 6], a[sel])
            amap[a >= 0.5] = ARTEFACT_CODE["vignette"]
            records.append({"kind": "vignette"})
    if want["ruler"]:
        edge = int(rng.integers(0, 4))
        horizontal = edge < 2
        length = W if horizontal else H
        depth = max(6, int(round(0.06 * side)))
        pitch = max(3, int(round((0.012 + 0.01 * rng.random()) * side)))
        offset = int(round(rng.random() * 0.04 * side))
        start = int(rng.random() * 0.3 * length)
        end = min(length, start + int(round((0.4 + 0.5 * rng.random()) * length)))
        t = np.arange(start, end)
        dd = np.arange(depth)
        T, D = np.meshgrid(t, dd + offset, indexing="ij")
        if horizontal:
            X, Y = T, (D if edge == 0 else H - 1 - D)
        else:
            X, Y = (D if edge == 2 else W - 1 - D), T
        ok = (X >= 0) & (Y >= 0) & (X < W) & (Y < H)
        X, Y, T, Dd = X[ok], Y[ok], T[ok] - start, (D - offset)[ok]
        if len(X) and not keep_out[Y, X].any():
            long = (T // pitch) % 5 == 0
            tick = (T % pitch == 0) & (Dd < np.where(long, depth, int(round(depth * 0.55))))
            for sel_t, col, a in ((tick, [30, 30, 35], 0.9), (~tick, [225, 222, 210], 0.55)):
                out[Y[sel_t], X[sel_t]] = np.round(out[Y[sel_t], X[sel_t]] * (1 - a) + np.array(col, np.float32) * a)
            amap[Y, X] = ARTEFACT_CODE["ruler"]
            records.append({"kind": "ruler", "box": [int(X.min()), int(Y.min()), int(X.max() - X.min() + 1), int(Y.max() - Y.min() + 1)]})
    if want["sticker"]:
        for _ in range(1 + int(rng.integers(0, max_stickers))):
            r = max(3, int(round((0.03 + 0.05 * rng.random()) * side)))
            colour = STICKER_COLOURS[int(rng.integers(0, len(STICKER_COLOURS)))]
            blocked = keep_out | ((amap > 0) & (amap != ARTEFACT_CODE["hair"]))
            spot = None
            for _try in range(30):
                x = r + int(rng.integers(0, max(1, W - 2 * r)))
                y = r + int(rng.integers(0, max(1, H - 2 * r)))
                disc = np.hypot(xx - x, yy - y) <= r + 1
                if not (blocked & disc).any():
                    spot = (x, y)
                    break
            if spot is None:
                continue
            x, y = spot
            d = np.hypot(xx - x, yy - y)
            a = np.clip(r + 0.5 - d, 0, 1)
            shade = np.where(d > r - max(1, r * 0.12), 0.8, 1 - 0.1 * (yy - y) / r)
            sel = a > 0
            col = np.minimum(255, colour[None, :] * shade[sel][:, None])
            out[sel] = np.round(out[sel] * (1 - 0.95 * a[sel][:, None]) + col * 0.95 * a[sel][:, None])
            amap[a >= 0.5] = ARTEFACT_CODE["sticker"]
            records.append({"kind": "sticker", "box": [x - r, y - r, 2 * r + 1, 2 * r + 1], "colour": colour.tolist()})
    return {"image": np.clip(out, 0, 255).astype(np.uint8), "mask": mask, "artefact_map": amap, "artefacts": records}


# ---- CIELAB (sRGB, D65) ----
_M = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.072175], [0.0193339, 0.119192, 0.9503041]])
_MI = np.array([[3.2404542, -1.5371385, -0.4985314], [-0.969266, 1.8760108, 0.041556], [0.0556434, -0.2040259, 1.0572252]])
_WHITE = np.array([0.95047, 1.0, 1.08883])
_EPS, _KAPPA = 216 / 24389, 24389 / 27


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    c = rgb.astype(np.float64) / 255
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = lin @ _M.T / _WHITE
    f = np.where(xyz > _EPS, np.cbrt(xyz), (_KAPPA * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    t = f ** 3
    xyz = np.where(t > _EPS, t, (116 * f - 16) / _KAPPA) * _WHITE
    lin = np.maximum(xyz @ _MI.T, 0)
    c = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.clip(np.round(c * 255), 0, 255).astype(np.uint8)


def ita(L: float, b: float) -> float:
    return float(np.degrees(np.arctan2(L - 50, b)))


def shift_skin_tone(img: np.ndarray, mask: np.ndarray, target_ita: float,
                    target_b: Optional[float] = None) -> Tuple[np.ndarray, float, float]:
    """Global CIELAB map of the skin (median L*, b* of mask = 0) towards target_ita; returns image, ITA before/after."""
    lab = rgb_to_lab(img)
    skin = ~mask.astype(bool)
    sel = lab[skin] if skin.any() else lab.reshape(-1, 3)
    Ls, bs = float(np.median(sel[:, 0])), float(np.median(sel[:, 2]))
    bt = target_b if target_b is not None else max(12.0, bs * 1.2)
    Lt = float(np.clip(50 + bt * np.tan(np.radians(target_ita)), 5, 95))
    c = Lt / Ls if Ls > 0 else 1.0
    out = lab.copy()
    out[..., 0] = np.clip(Lt + (lab[..., 0] - Ls) * c, 0, 100)
    out[..., 2] = lab[..., 2] + (bt - bs)
    return lab_to_rgb(out), ita(Ls, bs), ita(Lt, bt)


@dataclass
class RobustConfig:
    """Flags of the robust recipe (config key `robust`); everything off by default."""
    enabled: bool = False
    p_zoom_out: float = 0.5          # else an aspect-preserving crop
    share: Tuple[float, float] = (0.02, 0.15)  # lesion share of the frame after zoom-out
    crop_min_area: float = 0.5
    p_artefacts: float = 0.5
    p_sticker: float = 0.6
    p_ruler: float = 0.3
    p_vignette: float = 0.3
    p_hair: float = 0.3
    p_skin_tone: float = 0.3
    ita_range: Tuple[float, float] = (-45.0, 25.0)  # target skin ITA (tan, brown, dark)

    @classmethod
    def from_dict(cls, d: Optional[dict]) -> "RobustConfig":
        d = dict(d or {})
        for k in ("share", "ita_range"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


def robust_sample(img: np.ndarray, mask: np.ndarray, size: Tuple[int, int], cfg: RobustConfig,
                  rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """One training sample at `size` (H, W) from a native-aspect image: zoom-out or aspect crop, then
    artefacts and skin tone, each with its probability. Draw order is fixed, so a seed fixes the sample."""
    u = rng.random(4)
    if u[0] < cfg.p_zoom_out:
        z = zoom_out(img, mask, size, float(rng.uniform(*cfg.share)), rng)
        im, m = z["image"], z["mask"]
    else:
        im, m = aspect_crop(img, mask, size, rng, cfg.crop_min_area)
    if u[1] < cfg.p_artefacts:
        im = add_artefacts(im, m, rng, cfg.p_sticker, cfg.p_ruler, cfg.p_vignette, cfg.p_hair)["image"]
    if u[2] < cfg.p_skin_tone:
        im = shift_skin_tone(im, m, float(rng.uniform(*cfg.ita_range)))[0]
    return im, m
