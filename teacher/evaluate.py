"""Evaluate a teacher on a split at the ORIGINAL image resolution, with 95% bootstrap intervals.

    python -m teacher.evaluate --model models/teacher/teacher.onnx --split test --out reports/teacher/metrics_test.json

The model (ONNX through onnxruntime, or a .pt checkpoint through PyTorch) sees the image resized to its
fixed H x W (plain bilinear resize, ImageNet normalisation); its probability map is resized back to the
image's size (bilinear) and thresholded at 0.5. Per image: Dice, IoU, thresholded Jaccard (IoU < 0.65 -> 0,
the ISIC 2018 score), HD95 in pixels. Conventions match src/runtime/metrics.ts: both masks empty -> Dice =
IoU = 1, HD95 = 0; exactly one empty -> Dice = IoU = 0, HD95 undefined (NaN, left out of its mean and
counted). Boundary = lesion pixels with a 4-neighbour that is background or outside the image; HD95 = the
95th percentile (linear interpolation) of the symmetric boundary-to-boundary distances. Intervals: percentile
bootstrap of the mean, 2000 resamples, seed 0.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .models import IMAGENET_MEAN, IMAGENET_STD
from .preprocess import load_mask, mask_path_for, read_split

METRICS = ("dice", "iou", "thresholded_jaccard", "hd95")


# ----------------------------------------------------------------------------------------------------------
# per-image metrics


def boundary(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(bool)
    p = np.pad(m, 1, constant_values=False)
    interior = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m & ~interior


def _nearest(a: np.ndarray, b: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Distance from each point of a to its nearest point of b (exact, chunked)."""
    ta = torch.from_numpy(a.astype(np.float64))
    tb = torch.from_numpy(b.astype(np.float64))
    out = []
    for i in range(0, len(ta), chunk):
        out.append(torch.cdist(ta[i : i + chunk], tb).min(dim=1).values)
    return torch.cat(out).numpy()


def hd95(pred: np.ndarray, truth: np.ndarray) -> float:
    pe, te = not pred.any(), not truth.any()
    if pe and te:
        return 0.0
    if pe or te:
        return float("nan")
    pb = np.argwhere(boundary(pred))
    tb = np.argwhere(boundary(truth))
    d = np.concatenate([_nearest(pb, tb), _nearest(tb, pb)])
    return float(np.percentile(d, 95))


def image_metrics(pred: np.ndarray, truth: np.ndarray) -> Dict[str, float]:
    p, t = pred.astype(bool), truth.astype(bool)
    tp = float(np.logical_and(p, t).sum())
    fp = float(np.logical_and(p, ~t).sum())
    fn = float(np.logical_and(~p, t).sum())
    dice = 1.0 if 2 * tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    iou = 1.0 if tp + fp + fn == 0 else tp / (tp + fp + fn)
    return {"dice": dice, "iou": iou, "thresholded_jaccard": iou if iou >= 0.65 else 0.0, "hd95": hd95(p, t)}


def bootstrap_ci(values, iterations: int = 2000, alpha: float = 0.05, seed: int = 0) -> List[float]:
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=np.float64)
    if len(v) == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(iterations, len(v)))].mean(axis=1)
    return [float(np.percentile(means, 100 * alpha / 2)), float(np.percentile(means, 100 * (1 - alpha / 2)))]


def summarise(rows: List[dict]) -> dict:
    out: dict = {"n": len(rows)}
    for k in METRICS:
        vals = [r[k] for r in rows]
        good = [x for x in vals if not math.isnan(x)]
        out[k] = {
            "mean": float(np.mean(good)) if good else float("nan"),
            "ci95": bootstrap_ci(vals),
            "n": len(good),
            "n_undefined": len(vals) - len(good),
        }
    return out


# ----------------------------------------------------------------------------------------------------------
# predictors


def _onnx_predictor(path: str, threads: int) -> tuple:
    import onnx
    import onnxruntime as ort

    meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    h, w = (int(v) for v in meta.get("lesionfuse.input_size", "192x256").split("x"))
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> np.ndarray:
        return sess.run(["logits"], {"image": x})[0]

    return run, (h, w)


def _torch_predictor(path: str) -> tuple:
    from .export import load_for_export

    model, cfg, _ = load_for_export(path)

    @torch.no_grad()
    def run(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(x)).numpy()

    return run, tuple(cfg["img_size"])


def preprocess_image(img: Image.Image, size: tuple) -> np.ndarray:
    h, w = size
    a = np.asarray(img.convert("RGB").resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0
    a = (a - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    return a.transpose(2, 0, 1)[None]


def predict_mask(run: Callable, size: tuple, img: Image.Image, threshold: float = 0.5) -> np.ndarray:
    logits = run(preprocess_image(img, size))
    prob = torch.sigmoid(torch.from_numpy(logits).float())
    prob = F.interpolate(prob, size=(img.height, img.width), mode="bilinear", align_corners=False)
    return (prob[0, 0] > threshold).numpy()


def evaluate(model_path: str, data_root: str, split: str, threads: int = 1, limit: Optional[int] = None) -> dict:
    if model_path.endswith(".onnx"):
        run, size = _onnx_predictor(model_path, threads)
    else:
        run, size = _torch_predictor(model_path)
    root = Path(data_root)
    rels = read_split(root, split)[: limit or None]
    rows = []
    t0 = time.time()
    for rel in rels:
        img = Image.open(root / rel)
        img.load()
        truth = load_mask(mask_path_for(root, rel)).astype(bool)
        if truth.shape != (img.height, img.width):
            raise ValueError(f"{rel}: mask {truth.shape} differs from image {(img.height, img.width)}")
        pred = predict_mask(run, size, img)
        r = {"image": rel, "source": rel.split("/")[0], "height": img.height, "width": img.width}
        r.update(image_metrics(pred, truth))
        rows.append(r)
    secs = time.time() - t0
    sources = sorted({r["source"] for r in rows})
    return {
        "model": model_path,
        "split": split,
        "resolution": "original image size (probability map resized back, threshold 0.5)",
        "input_size": f"{size[0]}x{size[1]}",
        "overall": summarise(rows),
        "per_source": {s: summarise([r for r in rows if r["source"] == s]) for s in sources},
        "bootstrap": {"iterations": 2000, "alpha": 0.05, "seed": 0, "method": "percentile"},
        "seconds": round(secs, 1),
        "per_image": rows,
    }


def _fmt(s: dict, k: str) -> str:
    m = s[k]
    return f"{m['mean']:.4f} [{m['ci95'][0]:.4f}, {m['ci95'][1]:.4f}]"


def markdown_table(res: dict) -> str:
    lines = ["| subset | n | Dice | IoU | thresholded Jaccard | HD95 (px) |", "|---|---|---|---|---|---|"]
    for name, s in [("all", res["overall"])] + list(res["per_source"].items()):
        hd = _fmt(s, "hd95") + (f" ({s['hd95']['n_undefined']} undefined)" if s["hd95"]["n_undefined"] else "")
        lines.append(f"| {name} | {s['n']} | {_fmt(s, 'dice')} | {_fmt(s, 'iou')} | "
                     f"{_fmt(s, 'thresholded_jaccard')} | {hd} |")
    return "\n".join(lines)


def main(argv: Optional[list] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help=".onnx (onnxruntime) or .pt checkpoint (PyTorch)")
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", required=True, help="JSON with summaries and per-image rows")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--write-metadata", action="store_true",
                    help="also store the summary in the ONNX file's lesionfuse.test_metrics")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    res = evaluate(a.model, a.data, a.split, a.threads, a.limit)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(res, indent=1))
    os.replace(tmp, out)
    print(markdown_table(res))
    if a.write_metadata and a.model.endswith(".onnx"):
        import onnx

        from .export import save_atomic, set_metadata

        def brief(s: dict) -> dict:
            return {k: {"mean": round(s[k]["mean"], 4), "ci95": [round(c, 4) for c in s[k]["ci95"]]}
                    for k in METRICS} | {"n": s["n"]}

        summary = {"split": a.split, "resolution": "original", "overall": brief(res["overall"]),
                   "per_source": {k: brief(v) for k, v in res["per_source"].items()}}
        m = onnx.load(a.model)
        set_metadata(m, {"lesionfuse.test_metrics": json.dumps(summary, sort_keys=True)})
        save_atomic(m, Path(a.model))
        print("wrote lesionfuse.test_metrics into", a.model)


if __name__ == "__main__":
    main()
