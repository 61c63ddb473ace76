"""Cached arrays, synthetic data for tests, and batch augmentation on tensors (image and mask together)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .models import IMAGENET_MEAN, IMAGENET_STD


def load_cache(cache_dir: str, split: str, size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """uint8 images [N,H,W,3] and 0/1 masks [N,H,W] written by teacher.preprocess."""
    tag = f"{split}_{size[0]}x{size[1]}"
    d = Path(cache_dir)
    imgs = np.load(d / f"{tag}_images.npy")
    masks = np.load(d / f"{tag}_masks.npy")
    return imgs, masks


def synthetic_data(n: int, size: Tuple[int, int], seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Ellipse 'lesions' on noisy skin-coloured backgrounds, for tests."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    imgs = np.zeros((n, h, w, 3), np.uint8)
    masks = np.zeros((n, h, w), np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        ry, rx = rng.uniform(0.1, 0.3) * h, rng.uniform(0.1, 0.3) * w
        m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        base = np.array([200, 150, 130], np.float32) + rng.normal(0, 10, (h, w, 3))
        base[m] = np.array([90, 60, 50]) + rng.normal(0, 10, (int(m.sum()), 3))
        imgs[i] = np.clip(base, 0, 255).astype(np.uint8)
        masks[i] = m
    return imgs, masks


def to_tensors(imgs: np.ndarray, masks: np.ndarray) -> Tuple[torch.Tensor, torch.Tensor]:
    """uint8 NHWC + NHW -> float image [N,3,H,W] in 0..1 and float mask [N,1,H,W] in {0,1}."""
    x = torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float().div_(255.0)
    y = torch.from_numpy(np.ascontiguousarray(masks)).unsqueeze(1).float()
    return x, y


def normalize(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


@dataclass
class AugConfig:
    hflip: float = 0.5
    vflip: float = 0.5
    rotate_deg: float = 30.0
    scale: Tuple[float, float] = (0.8, 1.25)
    translate: float = 0.05
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    geometric_p: float = 0.8

    @classmethod
    def from_dict(cls, d: Optional[dict]) -> "AugConfig":
        d = dict(d or {})
        if "scale" in d:
            d["scale"] = tuple(d["scale"])
        return cls(**d)


def _u(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def augment(
    x: torch.Tensor, y: torch.Tensor, cfg: AugConfig, g: torch.Generator, colour: bool = True
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Random flips, rotation, scale and shift (one affine warp shared by image and mask), colour jitter.

    x: [N,3,H,W] in 0..1, y: [N,1,H,W] in {0,1}. Rotation is done in pixel space (no shear on non-square
    images). The mask goes through the same grid and is re-binarised at 0.5.
    """
    n, _, h, w = x.shape
    fx = torch.where(torch.rand(n, generator=g) < cfg.hflip, -1.0, 1.0)
    fy = torch.where(torch.rand(n, generator=g) < cfg.vflip, -1.0, 1.0)
    ang = _u(g, n, -cfg.rotate_deg, cfg.rotate_deg) * math.pi / 180.0
    s = torch.exp(_u(g, n, math.log(cfg.scale[0]), math.log(cfg.scale[1])))
    tx = _u(g, n, -cfg.translate, cfg.translate) * 2
    ty = _u(g, n, -cfg.translate, cfg.translate) * 2
    geo = torch.rand(n, generator=g) < cfg.geometric_p
    ang = torch.where(geo, ang, torch.zeros_like(ang))
    s = torch.where(geo, s, torch.ones_like(s))
    tx = torch.where(geo, tx, torch.zeros_like(tx))
    ty = torch.where(geo, ty, torch.zeros_like(ty))
    # output normalised coords -> input normalised coords: S^-1 (R^-1 / s) S, then flips, then shift
    cos, sin = torch.cos(ang), torch.sin(ang)
    half_w, half_h = w / 2.0, h / 2.0
    a = cos / s
    b = sin / s
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = a * fx
    theta[:, 0, 1] = b * half_h / half_w * fy
    theta[:, 1, 0] = -b * half_w / half_h * fx
    theta[:, 1, 1] = a * fy
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    both = torch.cat([x, y], dim=1)
    both = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    x, y = both[:, :3], (both[:, 3:] > 0.5).float()
    if colour:
        br = _u(g, n, 1 - cfg.brightness, 1 + cfg.brightness).view(n, 1, 1, 1)
        ct = _u(g, n, 1 - cfg.contrast, 1 + cfg.contrast).view(n, 1, 1, 1)
        sa = _u(g, n, 1 - cfg.saturation, 1 + cfg.saturation).view(n, 1, 1, 1)
        x = x * br
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * ct + mean
        grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        x = (x - grey) * sa + grey
        x = x.clamp_(0.0, 1.0)
    return x, y
