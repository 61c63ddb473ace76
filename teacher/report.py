"""Collect a run's budget and curve, the export parity and the test metrics into reports/teacher/metrics.json,
and print the Markdown tables used in reports/teacher/README.md and models/teacher/MODEL_CARD.md.

    python -m teacher.report --run /work/lesionfuse-runs/fused --export-report reports/teacher/export.json \
        --test reports/teacher/metrics_test.json --out reports/teacher/metrics.json
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Optional

import torch

from .evaluate import markdown_table


def run_summary(run: Path) -> dict:
    last = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    cfg = last["config"]
    hist = list(last["history"])
    step = int(last["scheduler"]["step"])
    total = int(last["scheduler"]["total"])
    spe = total // int(cfg["train"]["epochs"])
    best = None
    if (run / "best.pt").exists():
        b = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
        best = {"epoch": b["epoch"], "step": b["step"], "val_dice": b["val_dice"]}
    wall = float(last.get("wall_s", 0.0))
    return {
        "run_dir": str(run),
        "model": cfg["model"],
        "img_size": cfg["img_size"],
        "batch_size": cfg["train"]["batch_size"],
        "steps_done": step,
        "steps_per_epoch": spe,
        "epochs_done": round(step / spe, 3),
        "epochs_validated": int(last["epochs_validated"]),
        "planned_epochs": int(cfg["train"]["epochs"]),
        "planned_steps": total,
        "wall_s_at_last_checkpoint": round(wall, 1),
        "mean_s_per_step_incl_val": round(wall / max(1, step), 2),
        "history": hist,
        "best": best,
    }


def curve_table(hist: list) -> str:
    lines = ["| epoch | step | train loss | val Dice (192x256) | lr | s/step | wall (min) |",
             "|---|---|---|---|---|---|---|"]
    for h in hist:
        lines.append(f"| {h['epoch']} | {h['step']} | {h['train_loss']:.4f} | {h['val_dice']:.4f} | "
                     f"{h['lr']:.2e} | {h['s_per_step']:.2f} | {h['wall_s'] / 60:.1f} |")
    return "\n".join(lines)


def main(argv: Optional[list] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--export-report", default=None)
    ap.add_argument("--test", default=None, help="JSON written by teacher.evaluate")
    ap.add_argument("--out", required=True)
    ap.add_argument("--readme", default=None, help="write the run's README (Markdown) here")
    ap.add_argument("--model-card", default=None, help="write the ONNX model's MODEL_CARD.md here")
    ap.add_argument("--onnx", default="models/teacher/teacher.onnx")
    a = ap.parse_args(argv)
    res: dict = {"training": run_summary(Path(a.run))}
    if a.export_report:
        res["export"] = json.loads(Path(a.export_report).read_text())
    if a.test:
        t = json.loads(Path(a.test).read_text())
        res["test"] = {k: v for k, v in t.items() if k != "per_image"}
    out = Path(a.out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(res, indent=1))
    os.replace(tmp, out)
    print(curve_table(res["training"]["history"]))
    if a.test:
        print()
        print(markdown_table(t))
        from .report_text import model_card, readme

        if a.readme:
            _write(Path(a.readme), readme(res, t, a.onnx))
        if a.model_card:
            _write(Path(a.model_card), model_card(res, t, a.onnx))


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
