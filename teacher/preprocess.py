"""Decode and resize a split once into uint8 .npy caches (images N,H,W,3 RGB; masks N,H,W in {0,1}).

Plain resize to W x H (no crop, no letterbox), the same as the SDK runtime does.
Usage: python -m teacher.preprocess --data /work/shared/data --out /work/lesionfuse-runs/cache --size 192x256
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image


def mask_path_for(data_root: Path, rel_image: str) -> Path:
    """Map `<source>/images/<ID>.jpg` to its mask file (ISIC/HAM: _segmentation.png, PH2: _lesion.png)."""
    p = Path(rel_image)
    src = p.parts[0]
    stem = p.stem
    mdir = data_root / src / "masks"
    for suffix in ("_segmentation.png", "_lesion.png"):
        cand = mdir / f"{stem}{suffix}"
        if cand.exists():
            return cand
    raise FileNotFoundError(f"no mask for {rel_image} in {mdir}")


def load_mask(path: Path) -> np.ndarray:
    """Read a mask as 0/1 uint8. Palette PNGs are converted through the palette (never raw indices)."""
    im = Image.open(path)
    if im.mode == "P":
        im = im.convert("L")
    elif im.mode != "L":
        im = im.convert("L")
    return (np.asarray(im) > 127).astype(np.uint8)


def read_split(data_root: Path, split: str) -> list[str]:
    lines = (data_root / "splits" / f"{split}.txt").read_text().split()
    return [ln.strip() for ln in lines if ln.strip()]


def parse_size(s: str) -> tuple[int, int]:
    h, w = s.lower().split("x")
    return int(h), int(w)


def build_cache(data_root: Path, out_dir: Path, split: str, size: tuple[int, int]) -> Path:
    h, w = size
    rels = read_split(data_root, split)
    imgs = np.zeros((len(rels), h, w, 3), dtype=np.uint8)
    masks = np.zeros((len(rels), h, w), dtype=np.uint8)
    for i, rel in enumerate(rels):
        im = Image.open(data_root / rel).convert("RGB").resize((w, h), Image.BILINEAR)
        imgs[i] = np.asarray(im)
        m = load_mask(mask_path_for(data_root, rel))
        mi = Image.fromarray(m * 255).resize((w, h), Image.BILINEAR)
        masks[i] = (np.asarray(mi) > 127).astype(np.uint8)
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = f"{split}_{h}x{w}"
    for name, arr in (("images", imgs), ("masks", masks)):
        tmp = out_dir / f"{tag}_{name}.tmp.npy"
        np.save(tmp, arr)
        os.replace(tmp, out_dir / f"{tag}_{name}.npy")
    (out_dir / f"{tag}_index.json").write_text(json.dumps(rels))
    return out_dir / tag


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--out", default="/work/lesionfuse-runs/cache")
    ap.add_argument("--size", default="192x256", help="H x W")
    ap.add_argument("--splits", default="train,val")
    a = ap.parse_args()
    for split in a.splits.split(","):
        p = build_cache(Path(a.data), Path(a.out), split, parse_size(a.size))
        print("wrote", p)


if __name__ == "__main__":
    main()
