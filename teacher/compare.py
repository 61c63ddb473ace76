"""Compare teachers evaluated on the same split: one table with Dice, IoU, thresholded Jaccard and HD95 (95%
bootstrap intervals), and the paired difference of each model against a reference on the same images.

    python -m teacher.compare --ref fused \\
        --model fused=reports/teacher/metrics_test.json --history fused=reports/teacher/metrics.json \\
        --config fused=teacher/configs/fused.yaml \\
        --model cnn=reports/teacher/comparison/cnn_test.json --history cnn=/work/lesionfuse-runs/cnn/log.jsonl \\
        --config cnn=teacher/configs/cnn.yaml \\
        --out reports/teacher/comparison/results.json --markdown reports/teacher/comparison/table.md

--model LABEL=TEST_METRICS is `python -m teacher.evaluate` output; --history LABEL=PATH (the val curve) is a
run's log.jsonl or a teacher.report metrics.json; --config LABEL=YAML counts the model's parameters. A paired difference resamples images
(2000 resamples, seed 0), so the interval reflects that both models saw the same images; the per-model
intervals alone overlap more than the models actually differ.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .evaluate import METRICS, bootstrap_ci


def paired_difference(a: List[dict], b: List[dict], metric: str, iterations: int = 2000,
                      seed: int = 0) -> dict:
    """Mean of (a - b) over the images both define, with a percentile bootstrap interval. Rows are matched by
    their `image` key; an image missing from either side is an error (the comparison must be on one set)."""
    ia = {r["image"]: r for r in a}
    ib = {r["image"]: r for r in b}
    if set(ia) != set(ib):
        only = sorted(set(ia) ^ set(ib))[:3]
        raise ValueError(f"the two evaluations are on different images (e.g. {only})")
    d = [ia[k][metric] - ib[k][metric] for k in sorted(ia)
         if not (math.isnan(ia[k][metric]) or math.isnan(ib[k][metric]))]
    if not d:
        return {"mean": float("nan"), "ci95": [float("nan"), float("nan")], "n": 0, "wins": 0}
    lower_is_better = metric == "hd95"
    wins = sum(1 for x in d if (x < 0 if lower_is_better else x > 0))
    return {"mean": float(np.mean(d)), "ci95": bootstrap_ci(d, iterations=iterations, seed=seed), "n": len(d),
            "wins": wins}


def load_history(path: Optional[str]) -> List[dict]:
    if not path:
        return []
    p = Path(path)
    if p.suffix == ".jsonl":
        return [json.loads(x) for x in p.read_text().splitlines() if x.strip()]
    d = json.loads(p.read_text())
    return list(d.get("training", {}).get("history") or d.get("history") or [])


def params_from_config(config_path: Optional[str]) -> Optional[int]:
    """Trainable parameters of the model a training config builds (from scratch; nothing is downloaded)."""
    if not config_path:
        return None
    from .models import count_params
    from .train import build_from_config, load_config

    return count_params(build_from_config(load_config(config_path, {"pretrained": False, "weights": None})))


def compare(entries: Dict[str, dict], ref: str) -> dict:
    out: dict = {"reference": ref, "models": {}}
    for label, e in entries.items():
        m = e["metrics"]
        rec = {
            "test_metrics": e["path"],
            "model": m.get("model"),
            "n": m["overall"]["n"],
            "overall": {k: m["overall"][k] for k in METRICS},
            "val_curve": [{"epoch": h["epoch"], "step": h["step"], "val_dice": h["val_dice"]}
                          for h in e["history"]],
            "params": e.get("params"),
        }
        if label != ref:
            rec["minus_reference"] = {k: paired_difference(m["per_image"], entries[ref]["metrics"]["per_image"], k)
                                      for k in METRICS}
        out["models"][label] = rec
    return out


def _ci(s: dict, digits: int = 3) -> str:
    return f"{s['mean']:.{digits}f} [{s['ci95'][0]:.{digits}f}, {s['ci95'][1]:.{digits}f}]"


def markdown(res: dict) -> str:
    ref = res["reference"]
    lines = ["| teacher | params | val Dice by epoch (192x256) | test Dice | IoU | thresholded Jaccard | HD95 (px) |",
             "|---|---|---|---|---|---|---|"]
    for label, r in res["models"].items():
        o = r["overall"]
        curve = " / ".join(f"{h['val_dice']:.4f}" for h in r["val_curve"]) or "-"
        params = f"{r['params'] / 1e6:.2f}M" if r.get("params") else "-"
        lines.append(f"| {label} | {params} | {curve} | {_ci(o['dice'])} | {_ci(o['iou'])} | "
                     f"{_ci(o['thresholded_jaccard'])} | {_ci(o['hd95'], 1)} |")
    lines += ["", f"Paired differences against `{ref}` on the same {res['models'][ref]['n']} images "
              "(model minus reference; 95% bootstrap interval; images where the model is better):", "",
              "| teacher | Dice | IoU | thresholded Jaccard | HD95 (px, lower is better) |", "|---|---|---|---|---|"]
    for label, r in res["models"].items():
        if label == ref:
            continue
        d = r["minus_reference"]
        cells = [f"{d[k]['mean']:+.3f} [{d[k]['ci95'][0]:+.3f}, {d[k]['ci95'][1]:+.3f}], better on {d[k]['wins']}"
                 for k in ("dice", "iou", "thresholded_jaccard")]
        h = d["hd95"]
        cells.append(f"{h['mean']:+.1f} [{h['ci95'][0]:+.1f}, {h['ci95'][1]:+.1f}], better on {h['wins']}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _atomic_write(path: str, text: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, p)


def main(argv: Optional[list] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="LABEL=TEST_METRICS")
    ap.add_argument("--history", action="append", default=[], help="LABEL=log.jsonl or metrics.json")
    ap.add_argument("--config", action="append", default=[], help="LABEL=training config (parameter count)")
    ap.add_argument("--ref", required=True, help="the label the others are compared with")
    ap.add_argument("--out", required=True)
    ap.add_argument("--markdown", default=None)
    a = ap.parse_args(argv)
    def pairs(flag: str, specs: List[str]) -> Dict[str, str]:
        out = {}
        for spec in specs:
            if "=" not in spec:
                ap.error(f"--{flag} {spec}: expected LABEL=PATH")
            k, v = spec.split("=", 1)
            out[k] = v
        return out

    hists, cfgs = pairs("history", a.history), pairs("config", a.config)
    entries: Dict[str, dict] = {}
    for label, path in pairs("model", a.model).items():
        try:
            metrics = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            ap.error(f"{path}: cannot read the test metrics ({e})")
        entries[label] = {"path": path, "metrics": metrics, "history": load_history(hists.get(label)),
                          "params": params_from_config(cfgs.get(label))}
    if a.ref not in entries:
        ap.error(f"--ref {a.ref}: no --model has that label")
    res = compare(entries, a.ref)
    _atomic_write(a.out, json.dumps(res, indent=1) + "\n")
    md = markdown(res)
    if a.markdown:
        _atomic_write(a.markdown, md)
    print(md)


if __name__ == "__main__":
    main()
