"""PyTorch peer of the LesionFuse training-engine benchmark (bench/train-engine.ts).

It runs the SAME student + loss as LesionFuse: it reads the very ONNX graph the engine differentiates
(written by train-engine.ts) and executes it op by op with torch functions (F.conv2d, F.batch_norm in
training mode, F.max_pool2d, F.interpolate, ...), with the graph's initializers as the initial weights,
so architecture and initial weights are identical by construction. The backward is PyTorch autograd and
the optimizer torch.optim.AdamW with the same hyper-parameters (decay on rank >= 2 weights only), on the
same saved batches, with the same number of intra-op threads.

Writes a JSON result: per-step losses and wall times.
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper


def attrs_of(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def sym_pads(pads, name):
    if pads is None:
        return 0
    half = len(pads) // 2
    if list(pads[:half]) != list(pads[half:]):
        raise SystemExit(f"node {name}: asymmetric pads {pads} are not supported by this peer")
    return tuple(pads[:half])


class OnnxGraph(torch.nn.Module):
    """Executes an ONNX graph with torch ops; trainable initializers are nn.Parameters."""

    def __init__(self, model, trainable):
        super().__init__()
        self.nodes = list(model.graph.node)
        self.params = torch.nn.ParameterList()
        self.index = {}
        self.consts = {}
        for init in model.graph.initializer:
            arr = numpy_helper.to_array(init).copy()
            if init.name in trainable:
                self.index[init.name] = len(self.params)
                self.params.append(torch.nn.Parameter(torch.from_numpy(arr)))
            else:
                self.consts[init.name] = torch.from_numpy(arr)

    def value(self, env, name):
        if name in env:
            return env[name]
        if name in self.index:
            return self.params[self.index[name]]
        return self.consts[name]

    def forward(self, feeds, outputs):
        env = dict(feeds)
        for n in self.nodes:
            a = attrs_of(n)
            x = [self.value(env, i) if i else None for i in n.input]
            op = n.op_type
            if op == "Conv":
                y = F.conv2d(x[0], x[1], x[2] if len(x) > 2 else None, stride=tuple(a.get("strides", [1, 1])),
                             padding=sym_pads(a.get("pads"), n.name), dilation=tuple(a.get("dilations", [1, 1])),
                             groups=a.get("group", 1))
            elif op == "ConvTranspose":
                y = F.conv_transpose2d(x[0], x[1], x[2] if len(x) > 2 else None, stride=tuple(a.get("strides", [1, 1])),
                                       padding=sym_pads(a.get("pads"), n.name),
                                       output_padding=tuple(a.get("output_padding", [0, 0])), groups=a.get("group", 1),
                                       dilation=tuple(a.get("dilations", [1, 1])))
            elif op == "BatchNormalization":
                if a.get("training_mode", 0) != 1:
                    raise SystemExit(f"node {n.name}: this peer runs BatchNormalization in training mode only")
                y = F.batch_norm(x[0], None, None, x[1], x[2], training=True, eps=a.get("epsilon", 1e-5))
            elif op == "Relu":
                y = torch.relu(x[0])
            elif op == "Sigmoid":
                y = torch.sigmoid(x[0])
            elif op in ("Abs", "Neg", "Exp", "Log", "Sqrt"):
                y = getattr(torch, op.lower())(x[0])
            elif op == "Add":
                y = x[0] + x[1]
            elif op == "Sub":
                y = x[0] - x[1]
            elif op == "Mul":
                y = x[0] * x[1]
            elif op == "Div":
                y = x[0] / x[1]
            elif op == "MaxPool":
                y = F.max_pool2d(x[0], tuple(a["kernel_shape"]), tuple(a.get("strides", a["kernel_shape"])),
                                 sym_pads(a.get("pads"), n.name), ceil_mode=bool(a.get("ceil_mode", 0)))
            elif op == "Resize":
                scales = self.value(env, n.input[2]).tolist()
                mode = a.get("mode", b"nearest")
                mode = mode.decode() if isinstance(mode, bytes) else mode
                coord = a.get("coordinate_transformation_mode", b"half_pixel")
                coord = coord.decode() if isinstance(coord, bytes) else coord
                sf = (scales[2], scales[3])
                if mode == "nearest" and coord == "asymmetric":
                    y = F.interpolate(x[0], scale_factor=sf, mode="nearest")
                elif mode == "linear" and coord in ("half_pixel", "pytorch_half_pixel"):
                    y = F.interpolate(x[0], scale_factor=sf, mode="bilinear", align_corners=False)
                elif mode == "linear" and coord == "align_corners":
                    y = F.interpolate(x[0], scale_factor=sf, mode="bilinear", align_corners=True)
                else:
                    raise SystemExit(f"node {n.name}: Resize {mode}/{coord} not mapped")
            elif op == "Concat":
                y = torch.cat(x, dim=a["axis"])
            elif op in ("ReduceMean", "ReduceSum"):
                axes = a.get("axes")
                if axes is None and len(x) > 1 and x[1] is not None:
                    axes = [int(v) for v in x[1].tolist()]
                keep = bool(a.get("keepdims", 1))
                fn = torch.mean if op == "ReduceMean" else torch.sum
                y = fn(x[0], dim=tuple(axes), keepdim=keep) if axes else fn(x[0])
                if not axes and keep:
                    y = y.reshape([1] * x[0].dim())
            elif op == "Identity":
                y = x[0]
            else:
                raise SystemExit(f"node {n.name}: op {op} not mapped in the PyTorch peer")
            env[n.output[0]] = y
        return [env[o] for o in outputs]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, help="folder written by bench/train-engine.ts")
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (quick checks)")
    args = ap.parse_args()
    spec = json.load(open(f"{args.dir}/spec.json"))
    torch.set_num_threads(spec["threads"])
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    model = onnx.load(f"{args.dir}/loss_model.onnx")
    net = OnnxGraph(model, set(spec["params"]))
    decay = [p for name, i in net.index.items() for p in [net.params[i]] if p.dim() >= 2]
    no_decay = [p for name, i in net.index.items() for p in [net.params[i]] if p.dim() < 2]
    o = spec["optimizer"]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": o["weightDecay"]}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])
    batches = []
    for b in spec["batches"]:
        feeds = {}
        for name, meta in b.items():
            arr = np.fromfile(f"{args.dir}/{meta['file']}", dtype="<f4").reshape(meta["dims"])
            feeds[name] = torch.from_numpy(arr)
        batches.append(feeds)
    losses, times = [], []
    total = spec["warmup"] + spec["steps"]
    n_steps = max(total, spec["curveSteps"])
    if args.max_steps:
        n_steps = min(n_steps, args.max_steps)
    for step in range(n_steps):
        feeds = batches[step % len(batches)]
        t0 = time.perf_counter()
        loss, = net(feeds, [spec["loss"]])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append((time.perf_counter() - t0) * 1000)
        losses.append(float(loss.detach()))
        print(f"torch step {step}: loss {losses[-1]:.6f} {times[-1]:.0f} ms", file=sys.stderr, flush=True)
    timed = times[spec["warmup"]:total] or times
    json.dump({
        "losses": losses,
        "stepMs": times,
        "medianMs": statistics.median(timed),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
    }, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
