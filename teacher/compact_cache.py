"""A small training cache at native aspect ratio, for the robust recipe (zoom-out and aspect-preserving crops
need the image's real shape, which the 192 x 256 array cache of teacher.preprocess has stretched away).

Each image is resized so its shorter side is `short` pixels (default 256, aspect kept) and stored as JPEG
(quality 92); its mask as PNG. One .npz per split holds the concatenated bytes and offsets: the 1,913 training
images take about 25 MiB instead of 282 MiB as raw arrays, so the cache moves easily to another machine.

    python -m teacher.compact_cache --root /work/shared/data --out /work/lesionfuse-runs/cache-compact
"""
from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
from PIL import Image


def _encode(img: np.ndarray, fmt: str) -> bytes:
    b = io.BytesIO()
    if fmt == "JPEG":
        Image.fromarray(img).save(b, "JPEG", quality=92, subsampling=0)
    else:
        Image.fromarray(img).save(b, "PNG", compress_level=9)
    return b.getvalue()


def cache_path(out_dir: str, split: str, short: int) -> Path:
    return Path(out_dir) / f"{split}_short{short}.npz"


def build(root: str, split: str, out_dir: str, short: int = 256) -> Path:
    """Write <out_dir>/<split>_short<short>.npz from <root>/splits/<split>.txt + MANIFEST.csv."""
    import csv

    rootp = Path(root)
    listed = [l.strip() for l in (rootp / "splits" / f"{split}.txt").read_text().splitlines() if l.strip()]
    rows = {r["image"]: r for r in csv.DictReader(open(rootp / "MANIFEST.csv"))}
    ids: List[str] = []
    img_bytes: List[bytes] = []
    mask_bytes: List[bytes] = []
    for rel in listed:
        r = rows[rel]
        im = Image.open(rootp / r["image"]).convert("RGB")
        m = np.asarray(Image.open(rootp / r["mask"]).convert("L")) >= 128
        w, h = im.size
        k = short / min(w, h)
        nw, nh = max(1, round(w * k)), max(1, round(h * k))
        im_r = np.asarray(im.resize((nw, nh), Image.BILINEAR))
        m_r = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((nw, nh), Image.BILINEAR)) >= 128
        ids.append(r["id"])
        img_bytes.append(_encode(im_r, "JPEG"))
        mask_bytes.append(_encode(m_r.astype(np.uint8) * 255, "PNG"))
    out = cache_path(out_dir, split, short)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(
        tmp,
        ids=np.array(ids),
        images=np.frombuffer(b"".join(img_bytes), np.uint8),
        image_offsets=np.cumsum([0] + [len(b) for b in img_bytes]),
        masks=np.frombuffer(b"".join(mask_bytes), np.uint8),
        mask_offsets=np.cumsum([0] + [len(b) for b in mask_bytes]),
    )
    os.replace(tmp, out)
    return out


class CompactSet:
    """Decodes one sample at a time: (uint8 HWC RGB image, 0/1 HW mask) at native aspect."""

    def __init__(self, images: List[np.ndarray], masks: List[np.ndarray], ids: Optional[List[str]] = None,
                 encoded: Optional[dict] = None):
        self._images, self._masks = images, masks
        self._enc = encoded
        self.ids = ids or [str(i) for i in range(len(images) if encoded is None else len(encoded["image_offsets"]) - 1)]

    @classmethod
    def load(cls, path: Path) -> "CompactSet":
        z = np.load(path)
        enc = {k: z[k] for k in ("images", "image_offsets", "masks", "mask_offsets")}
        return cls([], [], [str(x) for x in z["ids"]], enc)

    @classmethod
    def from_arrays(cls, imgs: np.ndarray, masks: np.ndarray) -> "CompactSet":
        return cls(list(imgs), list(masks))

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, i: int) -> Tuple[np.ndarray, np.ndarray]:
        if self._enc is None:
            return self._images[i], self._masks[i]
        e = self._enc
        ib = e["images"][e["image_offsets"][i]:e["image_offsets"][i + 1]].tobytes()
        mb = e["masks"][e["mask_offsets"][i]:e["mask_offsets"][i + 1]].tobytes()
        img = np.asarray(Image.open(io.BytesIO(ib)).convert("RGB"))
        m = (np.asarray(Image.open(io.BytesIO(mb)).convert("L")) >= 128).astype(np.uint8)
        return img, m


def main(argv: Optional[list] = None) -> None:
    ap = argparse.ArgumentParser(description="Build the compact native-aspect training cache.")
    ap.add_argument("--root", default="/work/shared/data")
    ap.add_argument("--out", default="/work/lesionfuse-runs/cache-compact")
    ap.add_argument("--short", type=int, default=256)
    ap.add_argument("--splits", default="train,val")
    a = ap.parse_args(argv)
    res = {}
    for s in a.splits.split(","):
        p = build(a.root, s, a.out, a.short)
        res[s] = {"path": str(p), "MiB": round(p.stat().st_size / 2**20, 1), "images": len(CompactSet.load(p))}
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
