"""Cross-check `lesionfuse eval` against the teacher's independent Python evaluation (teacher/evaluate.py:
Pillow resize, PyTorch bilinear upsampling, NumPy metrics) on the same model and images, image by image.

    npx tsc -p .
    teacher/.venv/bin/python bench/eval-crosscheck.py --model MODEL.onnx --source ham10000 --n 16

The Python evaluator takes the first N lines of splits/test.txt; the TypeScript one is asked for the same
images (--sources SOURCE --limit N: both lists are sorted by id within a source). Prints the largest
per-image difference of each metric; exit status 1 when any exceeds 1e-6.
"""
import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--data", default="../shared/data")
ap.add_argument("--source", required=True, help="isic2018, ham10000 or ph2")
ap.add_argument("--n", type=int, default=10)
a = ap.parse_args()

lines = [l.strip() for l in open(os.path.join(a.data, "splits", "test.txt")) if l.strip()]
first = next(i for i, l in enumerate(lines) if l.startswith(a.source + "/"))
wanted = [os.path.basename(l).rsplit(".", 1)[0] for l in lines[first:first + a.n]]
tmp = tempfile.mkdtemp(prefix="lf-xcheck-")
py_out = os.path.join(tmp, "py.json")
subprocess.run([sys.executable, "-m", "teacher.evaluate", "--model", a.model, "--data", a.data, "--split", "test",
                "--limit", str(first + a.n), "--out", py_out], check=True)
subprocess.run(["node", "dist/src/cli/index.js", "eval", a.model, "--data", a.data, "--split", "test", "--sources", a.source,
                "--limit", str(a.n), "--profile", "cpu-1t", "--out", os.path.join(tmp, "ts")], check=True,
               env={**os.environ, "LESIONFUSE_PROGRESS": "0"})
py = {os.path.basename(r.get("id") or r.get("image")).rsplit(".", 1)[0]: r for r in json.load(open(py_out))["per_image"]}
ts = {r["id"]: r for r in csv.DictReader(open(os.path.join(tmp, "ts", "per_image.csv")))}
worst = {}
for i in wanted:
    for k in ("dice", "iou", "thresholded_jaccard", "hd95"):
        x = py[i][k]
        x = float("nan") if x is None else float(x)
        y = float(ts[i][k])
        d = 0.0 if (math.isnan(x) and math.isnan(y)) else abs(x - y)
        worst[k] = max(worst.get(k, 0.0), d)
print(f"{len(wanted)} images ({a.source}): largest per-image difference {worst}")
shutil.rmtree(tmp, ignore_errors=True)
sys.exit(1 if any(v > 1e-6 or math.isnan(v) for v in worst.values()) else 0)
