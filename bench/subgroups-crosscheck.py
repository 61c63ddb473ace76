"""Cross-check LesionFuse's skin-tone features against an independent implementation.

Reads the per_image.csv that `lesionfuse eval` wrote (ita, ita_group, contrast_de00 per image), recomputes
them from the images and truth masks with scikit-image's rgb2lab / deltaE_ciede2000 and scipy's Euclidean
distance transform, applying the skin rules of src/runtime/subgroups.ts (re-implemented here in numpy),
and reports the agreement.

    teacher/.venv/bin/pip install scikit-image   # not among the teacher's own requirements (0.26.0 was used)
    teacher/.venv/bin/python bench/subgroups-crosscheck.py \
        --data ../shared/data --per-image reports/subgroups/teacher-test/per_image.csv \
        --out reports/subgroups/crosscheck.json

Tolerance: |ITA difference| <= 0.1 degree and |contrast difference| <= 0.1 dE00 per image; bins must
agree except where the reference ITA lies within 0.1 degree of a bin edge.
"""
import argparse
import csv
import json
import math
import os

import numpy as np
from PIL import Image
from scipy.ndimage import distance_transform_edt
from skimage.color import deltaE_ciede2000, rgb2lab

EDGES = [55, 41, 28, 10, -30]


def ita_bin(v):
    if not math.isfinite(v):
        return "unknown"
    if v > 55:
        return "very light"
    if v > 41:
        return "light"
    if v > 28:
        return "intermediate"
    if v > 10:
        return "tan"
    if v >= -30:
        return "brown"
    return "dark"


def features(rgb, mask):
    h, w, _ = rgb.shape
    lab = rgb2lab(rgb.astype(np.float64) / 255.0)
    L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    radius = max(3, int(math.floor(0.03 * min(w, h) + 0.5)))
    if mask.any():
        # Distance from every pixel to the nearest lesion pixel.
        grown = distance_transform_edt(~mask) <= radius
    else:
        grown = np.zeros_like(mask)
    outside = ~grown
    dark = L < 25
    sat = (rgb >= 250).any(-1) | (rgb <= 5).all(-1)
    chroma = np.hypot(a, b)
    hue = np.degrees(np.arctan2(b, a))
    coloured = (chroma > 60) | ((chroma > 25) & ((hue < -20) | (hue > 110)))
    skin = outside & ~dark & ~sat & ~coloured
    ns = int(skin.sum())
    if ns >= 200 and ns >= 0.01 * h * w:
        skin_lab = np.array([np.median(L[skin]), np.median(a[skin]), np.median(b[skin])])
        ita = math.degrees(math.atan2(skin_lab[0] - 50, skin_lab[2]))
    else:
        skin_lab = None
        ita = float("nan")
    if mask.any() and skin_lab is not None:
        les = np.array([np.median(L[mask]), np.median(a[mask]), np.median(b[mask])])
        contrast = float(deltaE_ciede2000(les, skin_lab))
    else:
        contrast = float("nan")
    return ita, contrast


def read_mask(path):
    m = np.array(Image.open(path).convert("L"))
    return m > 0 if m.max() <= 1 else m >= 128


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--per-image", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    manifest = {}
    with open(os.path.join(args.data, "MANIFEST.csv")) as f:
        for r in csv.DictReader(f):
            manifest[r["id"]] = r
    rows = list(csv.DictReader(open(args.per_image)))
    diffs, cdiffs, disagree, near_edge, n = [], [], [], 0, 0
    counts = {}
    for r in rows:
        m = manifest[r["id"]]
        rgb = np.array(Image.open(os.path.join(args.data, m["image"])).convert("RGB"))
        mask = read_mask(os.path.join(args.data, m["mask"]))
        ita, contrast = features(rgb, mask)
        ours = float(r["ita"]) if r["ita"] not in ("", "NaN") else float("nan")
        ours_c = float(r["contrast_de00"]) if r["contrast_de00"] not in ("", "NaN") else float("nan")
        n += 1
        if math.isfinite(ita) and math.isfinite(ours):
            diffs.append(abs(ita - ours))
        elif math.isfinite(ita) != math.isfinite(ours):
            diffs.append(float("inf"))
        if math.isfinite(contrast) and math.isfinite(ours_c):
            cdiffs.append(abs(contrast - ours_c))
        ref_bin = ita_bin(ita)
        counts[ref_bin] = counts.get(ref_bin, 0) + 1
        if ref_bin != r["ita_group"]:
            edge = math.isfinite(ita) and min(abs(ita - e) for e in EDGES) <= 0.1
            near_edge += edge
            disagree.append({"id": r["id"], "ours": r["ita_group"], "reference": ref_bin, "reference_ita": ita, "ours_ita": ours, "near_edge": bool(edge)})
    result = {
        "images": n,
        "reference": "scikit-image rgb2lab (D65) + deltaE_ciede2000, scipy distance_transform_edt; skin rules of src/runtime/subgroups.ts re-implemented in numpy",
        "ita_abs_diff_max_deg": max(diffs) if diffs else None,
        "ita_abs_diff_mean_deg": float(np.mean(diffs)) if diffs else None,
        "contrast_abs_diff_max_de00": max(cdiffs) if cdiffs else None,
        "bins_agree": n - len(disagree),
        "bins_disagree": disagree,
        "bins_disagree_not_near_edge": len(disagree) - near_edge,
        "reference_bin_counts": counts,
        "tolerance": {"ita_deg": 0.1, "contrast_de00": 0.1},
        "within_tolerance": bool(diffs and max(diffs) <= 0.1 and (not cdiffs or max(cdiffs) <= 0.1) and len(disagree) == near_edge),
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, args.out)
    print(json.dumps({k: v for k, v in result.items() if k != "bins_disagree"}, indent=2))


if __name__ == "__main__":
    main()
