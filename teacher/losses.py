"""Boundary-weighted BCE + weighted IoU ("structure loss"), and the deep-supervision sum."""
from __future__ import annotations

from typing import Dict, Mapping

import torch
import torch.nn.functional as F


def boundary_weights(mask: torch.Tensor, kernel: int = 31, alpha: float = 5.0) -> torch.Tensor:
    """1 + alpha * |local mean of mask - mask|: large near the lesion border, 1 far from it."""
    local = F.avg_pool2d(mask, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    return 1.0 + alpha * (local - mask).abs()


def structure_loss(logits: torch.Tensor, mask: torch.Tensor, kernel: int = 31, alpha: float = 5.0) -> torch.Tensor:
    """Boundary-weighted BCE plus weighted IoU, both averaged over the batch. logits, mask: [N,1,H,W]."""
    w = boundary_weights(mask, kernel, alpha)
    bce = F.binary_cross_entropy_with_logits(logits, mask, reduction="none")
    wbce = (w * bce).sum(dim=(2, 3)) / w.sum(dim=(2, 3))
    prob = torch.sigmoid(logits)
    inter = (prob * mask * w).sum(dim=(2, 3))
    union = ((prob + mask) * w).sum(dim=(2, 3))
    wiou = 1.0 - (inter + 1.0) / (union - inter + 1.0)
    return (wbce + wiou).mean()


DEFAULT_AUX_WEIGHTS = {"aux16": 0.2, "aux_t": 0.3, "final": 0.5}


def deep_supervision_loss(
    outputs: Dict[str, torch.Tensor], mask: torch.Tensor, weights: Mapping[str, float] = DEFAULT_AUX_WEIGHTS
) -> torch.Tensor:
    """Weighted sum over the heads present in `outputs`; a model with only `final` gets weight 1 on it."""
    present = {k: float(weights.get(k, 0.0)) for k in outputs}
    if set(outputs) == {"final"}:
        present = {"final": 1.0}
    total = sum(present.values())
    return sum(present[k] / total * structure_loss(outputs[k], mask) for k in outputs if present[k] > 0)
