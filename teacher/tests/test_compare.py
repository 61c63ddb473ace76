import math

import pytest

from teacher.compare import compare, markdown, paired_difference


def _rows(vals, key="dice"):
    return [{"image": f"img{i}", key: v, "iou": v, "thresholded_jaccard": v, "hd95": 10 * (1 - v)}
            for i, v in enumerate(vals)]


def test_paired_difference_by_hand():
    a = _rows([0.9, 0.8, 0.7, float("nan")])
    b = _rows([0.8, 0.8, 0.9, 0.5])
    d = paired_difference(a, b, "dice", iterations=200)
    # the NaN image is left out: (0.1 + 0.0 - 0.2) / 3
    assert d["n"] == 3 and abs(d["mean"] - (-0.1 / 3)) < 1e-12
    assert d["wins"] == 1  # only img0 is better
    lo, hi = d["ci95"]
    assert -0.2 - 1e-12 <= lo <= d["mean"] <= hi <= 0.1 + 1e-12
    h = paired_difference(a, b, "hd95", iterations=200)
    assert h["wins"] == 1  # lower HD95 is better: img0 (1.0 vs 2.0)


def test_paired_difference_matches_rows_by_image_and_refuses_other_sets():
    a = _rows([0.9, 0.1])
    b = list(reversed(_rows([0.9, 0.1])))
    assert paired_difference(a, b, "dice")["mean"] == 0.0
    with pytest.raises(ValueError, match="different images"):
        paired_difference(_rows([0.9, 0.1]), _rows([0.9]), "dice")


def test_compare_and_markdown():
    def metrics(vals):
        per = _rows(vals)
        ov = {k: {"mean": sum(r[k] for r in per) / len(per), "ci95": [0.0, 1.0], "n": len(per), "n_undefined": 0}
              for k in ("dice", "iou", "thresholded_jaccard", "hd95")}
        ov["n"] = len(per)
        return {"model": "x.onnx", "overall": ov, "per_image": per}

    entries = {"fused": {"path": "f.json", "metrics": metrics([0.9, 0.8]), "history": [], "params": 26_182_053},
               "cnn": {"path": "c.json", "metrics": metrics([0.7, 0.8]), "history": [
                   {"epoch": 1, "step": 2, "val_dice": 0.5}], "params": None}}
    res = compare(entries, "fused")
    assert "minus_reference" not in res["models"]["fused"]
    assert math.isclose(res["models"]["cnn"]["minus_reference"]["dice"]["mean"], -0.1)
    md = markdown(res)
    assert "| cnn | - | 0.5000 |" in md and "26.18M" in md and "-0.100" in md
