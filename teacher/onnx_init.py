"""Load a teacher's weights back from its exported ONNX file (the shipped models/teacher/teacher.onnx), so a
fine-tune can continue from the shipped weights when the PyTorch checkpoints are gone.

What the export did, and how it is undone:
- float16 storage: initializers `<name>__fp16` feed a Cast to float; read back as float32 (the same values the
  ONNX model computes with);
- named parameters keep their state_dict name with a `model.` prefix (the FinalOnly wrapper);
- constant folding fused every Conv + BatchNorm pair (eval mode) into one Conv with a bias, under an
  `onnx::Conv_*` name: the Conv node's name (`/model/cnn/layer1/layer1.0/conv1/Conv`) gives the module, the fused
  weight and bias go into the Conv, and the BatchNorm that follows it in the forward pass is set to the identity
  (weight 1, bias 0, running mean 0, running variance 1 - eps) so eval-mode outputs are reproduced; in training
  the BatchNorm re-learns its statistics from there;
- Linear layers exported as MatMul with an `onnx::MatMul_*` weight get its transpose.

    python -m teacher.onnx_init --onnx models/teacher/teacher.onnx --config teacher/configs/fused.yaml \
        --out /work/lesionfuse-runs/robust/init.pt

checks the loaded model against onnxruntime on real-looking inputs and writes a state dict that
`train.py` can start from (config key `init.onnx` does the same in place).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper


def _module_path(node_name: str) -> str:
    """`/model/cnn/layer1/layer1.0/conv1/Conv` -> `cnn.layer1.0.conv1` (the wrapper's `model` dropped)."""
    segs = [s for s in node_name.split("/") if s][:-1]
    if segs and segs[0] == "model":
        segs = segs[1:]
    out: List[str] = []
    prev = ""
    for s in segs:
        # a child of a Sequential / ModuleList appears as `<parent>.<index>`
        out.append(s[len(prev) + 1:] if prev and s.startswith(prev + ".") else s)
        prev = s
    return ".".join(out)


def _following_batchnorm(model: nn.Module, size: Tuple[int, int]) -> Dict[str, str]:
    """conv module name -> the BatchNorm2d called right after it in the forward pass (when there is one)."""
    names = {m: n for n, m in model.named_modules()}
    order: List[nn.Module] = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(mod)) for m in model.modules()]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, *size))
    model.train(was_training)
    for h in hooks:
        h.remove()
    pairs: Dict[str, str] = {}
    layers = [m for m in order if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    for a, b in zip(layers, layers[1:]):
        if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d) and b.num_features == a.out_channels:
            pairs[names[a]] = names[b]
    pairs["__ran__"] = ",".join(sorted({names[m] for m in order}))  # modules the final head uses
    return pairs


def load_onnx_weights(model: nn.Module, onnx_path: str, size: Tuple[int, int]) -> dict:
    """Copy the ONNX file's weights into `model` (in place). Returns what was done; raises when a model
    parameter is left without a value or an ONNX weight finds no place."""
    m = onnx.load(onnx_path)
    g = m.graph
    inits = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in g.initializer}
    # a float16 initializer is used through a Cast: the Cast's output stands for it
    value: Dict[str, np.ndarray] = {}
    source: Dict[str, str] = {}
    for n in g.node:
        if n.op_type == "Cast" and n.input[0] in inits:
            value[n.output[0]] = inits[n.input[0]]
            source[n.output[0]] = n.input[0]
    for k, v in inits.items():
        value.setdefault(k, v)
        source.setdefault(k, k)

    sd = model.state_dict()
    assigned: Dict[str, torch.Tensor] = {}

    def put(key: str, arr: np.ndarray, what: str) -> None:
        if key not in sd:
            raise KeyError(f"{onnx_path}: {what} maps to '{key}', which the model does not have")
        t = torch.from_numpy(np.ascontiguousarray(arr))
        if tuple(t.shape) != tuple(sd[key].shape):
            raise ValueError(f"{onnx_path}: {what} has shape {tuple(t.shape)}, '{key}' has {tuple(sd[key].shape)}")
        assigned[key] = t.to(sd[key].dtype)

    # 1. named parameters / buffers
    for name in value:
        src = source[name]
        base = src[: -len("__fp16")] if src.endswith("__fp16") else src
        if base.startswith("model."):
            put(base[len("model."):], value[name], base)

    # 2. folded Conv (+ BatchNorm) and MatMul weights
    bn_after = _following_batchnorm(model, size)
    ran = set(bn_after.pop("__ran__").split(","))
    modules = [n for n, _ in model.named_modules() if n]

    def resolve(path: str, node: str) -> str:
        # the export's scopes may skip a wrapper level (`vit.blocks.0` for the module `vit.vit.blocks.0`):
        # take the one module with the same first and last segments
        if path in dict.fromkeys(modules):
            return path
        first, _, rest = path.partition(".")
        hits = [n for n in modules if n.startswith(first + ".") and n.endswith("." + rest)]
        if len(hits) != 1:
            raise KeyError(f"{onnx_path}: node {node} matches {len(hits)} modules ({hits[:4]})")
        return hits[0]

    folded_bn: List[str] = []
    for n in g.node:
        if n.op_type not in ("Conv", "MatMul", "Gemm"):
            continue
        for slot, x in enumerate(n.input[1:], start=1):
            if x not in value or not source[x].startswith("onnx::"):
                continue
            mod = resolve(_module_path(n.name), n.name)
            if n.op_type == "Conv":
                bn = bn_after.get(mod)
                if slot == 1:
                    put(f"{mod}.weight", value[x], n.name)
                elif bn is not None:
                    # the folded bias goes where it is used: the Conv's own bias when it has one (the
                    # BatchNorm's bias is then 0), else the BatchNorm's bias
                    if f"{mod}.bias" in sd:
                        put(f"{mod}.bias", value[x], n.name)
                        put(f"{bn}.bias", np.zeros(sd[f"{bn}.bias"].shape, np.float32), "identity BatchNorm")
                    else:
                        put(f"{bn}.bias", value[x], n.name)
                    folded_bn.append(bn)
                else:
                    put(f"{mod}.bias", value[x], n.name)
            else:  # MatMul x @ W with W = Linear.weight^T
                put(f"{mod}.weight", value[x].T, n.name)
    for bn in folded_bn:
        mod = dict(model.named_modules())[bn]
        put(f"{bn}.weight", np.ones(mod.num_features, np.float32), "identity BatchNorm")
        put(f"{bn}.running_mean", np.zeros(mod.num_features, np.float32), "identity BatchNorm")
        put(f"{bn}.running_var", np.full(mod.num_features, 1.0 - mod.eps, np.float32), "identity BatchNorm")
    missing = [k for k in sd if k not in assigned and not k.endswith("num_batches_tracked")]
    # parameters of modules the exported (final-head) forward never runs, e.g. the deep-supervision heads,
    # are not in the ONNX file: they keep their initial values
    unused = [k for k in missing if k.rsplit(".", 1)[0] not in ran]
    missing = [k for k in missing if k not in unused]
    if missing:
        raise KeyError(f"{onnx_path}: no ONNX weight for {len(missing)} parameter(s): {missing[:8]}")
    sd.update(assigned)
    model.load_state_dict(sd)
    return {"assigned": len(assigned), "folded_batchnorms": len(folded_bn), "kept_initial": unused, "onnx": str(onnx_path)}


def parity(model: nn.Module, onnx_path: str, x: np.ndarray) -> dict:
    """Max |logit| difference between the PyTorch model (eval) and onnxruntime (1 thread) on x [N,3,H,W]."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]
    model.eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(x.astype(np.float32))).numpy()
    return {
        "max_abs_logit_diff": float(np.abs(got - ref).max()),
        "max_abs_logit": float(np.abs(ref).max()),
        "mask_agreement": float(((got > 0) == (ref > 0)).mean()),
    }


def main(argv: Optional[list] = None) -> None:
    from .data import normalize
    from .train import build_from_config, load_config

    ap = argparse.ArgumentParser(description="Load a teacher's ONNX weights into the PyTorch model and check parity.")
    ap.add_argument("--onnx", default="models/teacher/teacher.onnx")
    ap.add_argument("--config", default="teacher/configs/fused.yaml")
    ap.add_argument("--image", action="append", default=[], help="image(s) for the parity check (default: noise)")
    ap.add_argument("--out", default=None, help="write the state dict here (torch.save)")
    a = ap.parse_args(argv)
    cfg = load_config(a.config)
    size = tuple(cfg["img_size"])
    model = build_from_config(cfg)
    info = load_onnx_weights(model, a.onnx, size)
    if a.image:
        from PIL import Image

        arrs = [np.asarray(Image.open(p).convert("RGB").resize((size[1], size[0]), Image.BILINEAR)) for p in a.image]
        x = normalize(torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float() / 255.0).numpy()
    else:
        x = np.random.default_rng(0).normal(size=(2, 3, *size)).astype(np.float32)
    info["parity"] = parity(model, a.onnx, x)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), a.out)
        info["out"] = a.out
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
