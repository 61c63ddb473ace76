"""Train a teacher from a YAML config. Resumable (exactly) after a kill; DDP under torchrun (WORLD_SIZE>1).

    python -m teacher.train --config teacher/configs/fused.yaml --out /work/lesionfuse-runs/fused

Re-running the same command resumes from <out>/last.pt when it exists. Files in <out>:
    last.pt         model + optimizer + scheduler + RNG + step (atomic; every `ckpt_every` steps and each epoch)
    best.pt         model weights of the best validation Dice so far (+ its epoch / Dice)
    log.jsonl       one JSON record per epoch; train.txt: the same, readable
    config.yaml     the resolved config of the first run

Determinism: the epoch's shuffle is a function of (seed, epoch), a batch's augmentation of (seed, step, rank),
so a resumed run replays exactly the batches an uninterrupted run would see.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import yaml

from .data import AugConfig, augment, load_cache, normalize, synthetic_data, to_tensors
from .robust import RobustConfig, robust_sample
from .losses import deep_supervision_loss
from .models import build_model, count_params

DEFAULTS: Dict[str, Any] = {
    "model": "fused",
    "model_args": {},
    "img_size": [192, 256],
    "pretrained": False,
    "weights": None,  # local file with ImageNet weights: {"cnn": path, "vit": path}
    "data": {"root": "/work/shared/data", "cache": "/work/lesionfuse-runs/cache", "synthetic": 0},
    "train": {
        "epochs": 30,
        "batch_size": 8,
        "lr": 5e-4,
        "lr_vit_mult": 0.5,
        "weight_decay": 0.01,
        "warmup_epochs": 1.0,
        "min_lr_ratio": 0.01,
        "clip_grad": 1.0,
        "ckpt_every": 100,
        "seed": 42,
        "num_threads": 2,
        "channels_last": False,
        "log_every": 10,
        "val_batch_size": 16,
    },
    "aug": {},
    # the robust recipe (teacher/robust.py): zoom-out / aspect crops from the compact native-aspect cache,
    # artefacts, skin tone; off by default (the shipped teacher was trained without it)
    "robust": {"enabled": False},
    # start a fresh run from an exported teacher's weights (teacher/onnx_init.py): {"onnx": path}
    "init": {},
    "loss": {"aux_weights": {"aux16": 0.2, "aux_t": 0.3, "final": 0.5}},
}


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def load_config(path: Optional[str], overrides: Optional[dict] = None) -> dict:
    cfg = copy.deepcopy(DEFAULTS)
    if path:
        cfg = merge(cfg, yaml.safe_load(Path(path).read_text()) or {})
    return merge(cfg, overrides or {})


# ----------------------------------------------------------------------------------------------------------
# checkpoints


def atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------------------------------------
# schedule, optimizer


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def make_optimizer(model: nn.Module, tc: dict) -> torch.optim.Optimizer:
    vit_ids = {id(p) for p in model.backbone_groups().get("vit", [])}
    groups: Dict[str, dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_vit = id(p) in vit_ids
        no_decay = p.ndim <= 1 or name.endswith("pos_embed") or name.endswith("cls_token")
        key = ("vit" if is_vit else "main") + ("_nd" if no_decay else "")
        if key not in groups:
            lr = tc["lr"] * (tc["lr_vit_mult"] if is_vit else 1.0)
            groups[key] = {
                "params": [],
                "lr": lr,
                "base_lr": lr,
                "weight_decay": 0.0 if no_decay else tc["weight_decay"],
                "name": key,
            }
        groups[key]["params"].append(p)
    order = [k for k in ("main", "main_nd", "vit", "vit_nd") if k in groups]
    return torch.optim.AdamW([groups[k] for k in order], lr=tc["lr"], betas=(0.9, 0.999))


# ----------------------------------------------------------------------------------------------------------
# evaluation at the training size


@torch.no_grad()
def dice_per_image(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    pred = (logits > 0).float()
    inter = (pred * mask).sum(dim=(1, 2, 3))
    s = pred.sum(dim=(1, 2, 3)) + mask.sum(dim=(1, 2, 3))
    return torch.where(s > 0, 2 * inter / s.clamp(min=1), torch.ones_like(s))


@torch.no_grad()
def validate(model: nn.Module, imgs: np.ndarray, masks: np.ndarray, bs: int, channels_last: bool) -> float:
    model.eval()
    dices = []
    for i in range(0, len(imgs), bs):
        x, y = to_tensors(imgs[i : i + bs], masks[i : i + bs])
        x = normalize(x)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        dices.append(dice_per_image(model(x), y))
    model.train()
    return float(torch.cat(dices).mean()) if dices else float("nan")


# ----------------------------------------------------------------------------------------------------------


def freeze_batchnorm(model: nn.Module) -> None:
    """BatchNorm layers use their running statistics in training too (their affine weights still learn): a
    fine-tune from the ONNX weights, whose folded BatchNorms are identities, keeps the shipped function at
    step 0 instead of re-normalising every layer with batch statistics."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _dist_info() -> tuple:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return world, rank


def build_from_config(cfg: dict) -> nn.Module:
    margs = dict(cfg.get("model_args") or {})
    w = cfg.get("weights") or {}
    if isinstance(w, str):
        w = {"cnn": w, "vit": w}
    return build_model(
        cfg["model"],
        tuple(cfg["img_size"]),
        pretrained=bool(cfg.get("pretrained", False)),
        cnn_weights=w.get("cnn"),
        vit_weights=w.get("vit"),
        **margs,
    )


def train(cfg: dict, out_dir: str, stop_after_steps: Optional[int] = None, quiet: bool = False,
          until_epoch: Optional[int] = None) -> dict:
    """Run (or resume) training. `stop_after_steps` ends the process-equivalent abruptly after that many
    global steps without writing anything (used by the tests to simulate a kill)."""
    tc = cfg["train"]
    world, rank = _dist_info()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    is_main = rank == 0
    torch.set_num_threads(int(tc["num_threads"]))
    out = Path(out_dir)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        if is_main and not quiet:
            print(msg, flush=True)

    # data
    size = tuple(cfg["img_size"])
    dc = cfg["data"]
    rcfg = RobustConfig.from_dict(cfg.get("robust"))
    compact = None
    if dc.get("synthetic"):
        tr_imgs, tr_masks = synthetic_data(int(dc["synthetic"]), size, seed=1)
        va_imgs, va_masks = synthetic_data(max(2, int(dc["synthetic"]) // 2), size, seed=2)
        if rcfg.enabled:
            from .compact_cache import CompactSet

            compact = CompactSet.from_arrays(tr_imgs, tr_masks)
    else:
        if rcfg.enabled:
            from .compact_cache import CompactSet, build, cache_path

            from .robust import resize_image, resize_mask

            short = int(dc.get("compact_short", 256))
            for sp in ("train", "val"):
                cp = cache_path(dc["compact_cache"], sp, short)
                if not cp.exists() and is_main:
                    log(f"building the compact cache {cp}")
                    build(dc["root"], sp, dc["compact_cache"], short)
            if world > 1:
                dist.barrier()
            compact = CompactSet.load(cache_path(dc["compact_cache"], "train", short))
            tr_imgs, tr_masks = None, None
            # validation as the runtime sees images: the whole image resized (stretched) to the model size
            val = CompactSet.load(cache_path(dc["compact_cache"], "val", short))
            pairs = [val.get(i) for i in range(len(val))]
            va_imgs = np.stack([resize_image(im, size[1], size[0]) for im, _ in pairs])
            va_masks = np.stack([resize_mask(m, size[1], size[0]) for _, m in pairs])
        else:
            tr_imgs, tr_masks = load_cache(dc["cache"], "train", size)
            va_imgs, va_masks = load_cache(dc["cache"], "val", size)
    bs = int(tc["batch_size"])
    n_train = len(compact) if compact is not None else len(tr_imgs)
    steps_per_epoch = n_train // (bs * world)
    total_steps = steps_per_epoch * int(tc["epochs"])
    warmup = int(round(float(tc["warmup_epochs"]) * steps_per_epoch))
    seed = int(tc["seed"])
    aug_cfg = AugConfig.from_dict(cfg.get("aug"))
    channels_last = bool(tc.get("channels_last", False))

    # model + optimizer
    torch.manual_seed(seed)
    random.seed(seed)
    model = build_from_config(cfg)
    init_onnx = (cfg.get("init") or {}).get("onnx")
    if init_onnx and not (out / "last.pt").exists():
        from .onnx_init import load_onnx_weights

        info = load_onnx_weights(model, init_onnx, size)
        log(f"weights from {init_onnx}: {info['assigned']} tensors, {info['folded_batchnorms']} folded BatchNorms "
            f"set to identity, kept initial: {info['kept_initial']}")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, tc)
    log(f"model {cfg['model']}: {count_params(model)/1e6:.3f}M params; {n_train} train / {len(va_imgs)} val; "
        f"{steps_per_epoch} steps/epoch x {tc['epochs']} epochs = {total_steps} steps, warm-up {warmup}")

    step = 0
    epochs_validated = 0
    best_dice = -1.0
    history: list = []
    ep_loss_sum, ep_loss_n = 0.0, 0
    wall_before = 0.0
    last = out / "last.pt"
    if last.exists():
        ck = load_checkpoint(last)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step = int(ck["scheduler"]["step"])
        epochs_validated = int(ck["epochs_validated"])
        best_dice = float(ck["best_dice"])
        history = list(ck["history"])
        ep_loss_sum, ep_loss_n = float(ck["ep_loss_sum"]), int(ck["ep_loss_n"])
        wall_before = float(ck.get("wall_s", 0.0))
        torch.set_rng_state(ck["rng"]["torch"])
        random.setstate(ck["rng"]["python"])
        log(f"resumed from {last} at step {step} (epochs validated {epochs_validated}, best val Dice {best_dice:.4f})")
    elif is_main:
        (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    ddp_model: nn.Module = model
    if world > 1:
        ddp_model = nn.parallel.DistributedDataParallel(model)

    def checkpoint() -> None:
        if not is_main:
            return
        atomic_save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": {"step": step, "warmup": warmup, "total": total_steps,
                              "min_lr_ratio": float(tc["min_lr_ratio"])},
                "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
                "epochs_validated": epochs_validated,
                "best_dice": best_dice,
                "history": history,
                "ep_loss_sum": ep_loss_sum,
                "ep_loss_n": ep_loss_n,
                "wall_s": wall_before + (time.time() - t_start),
                "config": cfg,
            },
            last,
        )

    def end_of_epoch(epoch: int) -> None:
        nonlocal epochs_validated, best_dice, ep_loss_sum, ep_loss_n
        if is_main:
            t0 = time.time()
            vd = validate(model, va_imgs, va_masks, int(tc["val_batch_size"]), channels_last)
            rec = {
                "epoch": epoch,
                "step": step,
                "train_loss": ep_loss_sum / max(1, ep_loss_n),
                "val_dice": vd,
                "lr": opt.param_groups[0]["lr"],
                "wall_s": round(wall_before + time.time() - t_start, 1),
                "s_per_step": round(step_times_sum / max(1, step_times_n), 3),
                "val_s": round(time.time() - t0, 1),
            }
            history.append(rec)
            if vd > best_dice:
                best_dice = vd
                atomic_save({"model": model.state_dict(), "epoch": epoch, "step": step, "val_dice": vd,
                             "config": cfg}, out / "best.pt")
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
            line = (f"epoch {epoch:3d} | step {step:6d} | train loss {rec['train_loss']:.4f} | "
                    f"val Dice {vd:.4f} (best {best_dice:.4f}) | lr {rec['lr']:.2e} | "
                    f"{rec['s_per_step']:.2f} s/step | wall {rec['wall_s']/60:.1f} min")
            with open(out / "train.txt", "a") as f:
                f.write(line + "\n")
            log(line)
        epochs_validated = epoch
        ep_loss_sum, ep_loss_n = 0.0, 0
        checkpoint()
        if world > 1:
            dist.barrier()

    t_start = time.time()
    step_times_sum, step_times_n = 0.0, 0
    # a kill between the epoch's last step and its validation: validate first
    if step > 0 and step % steps_per_epoch == 0 and step // steps_per_epoch > epochs_validated:
        end_of_epoch(step // steps_per_epoch)
    model.train()
    while step < total_steps and not (until_epoch is not None and epochs_validated >= until_epoch):
        epoch = step // steps_per_epoch  # 0-based epoch being trained
        perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed * 1000 + epoch)).numpy()
        k = step % steps_per_epoch
        gb = bs * world
        idx = np.sort(perm[k * gb + rank * bs : k * gb + rank * bs + bs])
        t0 = time.time()
        if compact is not None:
            # one numpy stream per (seed, step, rank, slot): a resumed run redraws the same samples
            pairs = [robust_sample(*compact.get(int(i)), size, rcfg,
                                   np.random.default_rng([seed, step, rank, j])) for j, i in enumerate(idx)]
            x, y = to_tensors(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))
        else:
            x, y = to_tensors(tr_imgs[idx], tr_masks[idx])
        g = torch.Generator().manual_seed(((seed * 1_000_003 + step) * 64 + rank) % (2**63))
        x, y = augment(x, y, aug_cfg, g)
        x = normalize(x)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        f = lr_factor(step, warmup, total_steps, float(tc["min_lr_ratio"]))
        for grp in opt.param_groups:
            grp["lr"] = grp["base_lr"] * f
        if tc.get("freeze_bn"):
            freeze_batchnorm(model)
        outs = ddp_model(x, with_aux=True)
        loss = deep_supervision_loss(outs, y, cfg["loss"]["aux_weights"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tc.get("clip_grad"):
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(tc["clip_grad"]))
        opt.step()
        step += 1
        lv = float(loss.detach())
        if world > 1:
            lt = torch.tensor([lv])
            dist.all_reduce(lt)
            lv = float(lt) / world
        ep_loss_sum += lv
        ep_loss_n += 1
        dt = time.time() - t0
        step_times_sum += dt
        step_times_n += 1
        if step % int(tc["log_every"]) == 0:
            log(f"step {step}/{total_steps} epoch {epoch + 1} loss {lv:.4f} lr {opt.param_groups[0]['lr']:.2e} "
                f"{dt:.2f} s/step (mean {step_times_sum / step_times_n:.2f})")
        if stop_after_steps is not None and step >= stop_after_steps:
            return {"step": step, "model": model}
        if step % steps_per_epoch == 0:
            end_of_epoch(step // steps_per_epoch)
            if until_epoch is not None and step // steps_per_epoch >= until_epoch:
                log(f"stopping after epoch {until_epoch} (--until-epoch); the schedule still spans "
                    f"{tc['epochs']} epochs, so a later run resumes on the same curve")
                break
        elif step % int(tc["ckpt_every"]) == 0:
            checkpoint()
    return {"step": step, "model": model, "best_dice": best_dice, "history": history}


def main(argv: Optional[list] = None) -> None:
    ap = argparse.ArgumentParser(description="Train a LesionFuse teacher (resumes from <out>/last.pt).")
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--pretrained", action="store_true",
                    help="ImageNet weights from the timm hub (needs internet; off by default)")
    ap.add_argument("--weights", default=None,
                    help="local ImageNet weight file(s): FILE, or cnn=FILE,vit=FILE")
    ap.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    ap.add_argument("--until-epoch", type=int, default=None,
                    help="stop cleanly after validating this epoch, keeping the schedule of train.epochs "
                         "(a budget-matched comparison run; resume later to go on)")
    ap.add_argument("--threads", type=int, default=None,
                    help="override train.num_threads (1 is faster than 2 when other work shares the 2 cores)")
    ap.add_argument("--stop-after-steps", type=int, default=None,
                    help="end after this many global steps without a checkpoint (a smoke test of the recipe)")
    a = ap.parse_args(argv)
    over: dict = {}
    if a.pretrained:
        over["pretrained"] = True
    if a.weights:
        if "=" in a.weights:
            over["weights"] = dict(kv.split("=", 1) for kv in a.weights.split(","))
        else:
            over["weights"] = a.weights
    if a.epochs:
        over.setdefault("train", {})["epochs"] = a.epochs
    if a.threads:
        over.setdefault("train", {})["num_threads"] = a.threads
    cfg = load_config(a.config, over)
    res = train(cfg, a.out, until_epoch=a.until_epoch, stop_after_steps=a.stop_after_steps)
    if _dist_info()[1] == 0:  # only rank 0 validates
        print(json.dumps({"done_steps": res["step"], "best_val_dice": res.get("best_dice")}), flush=True)
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
