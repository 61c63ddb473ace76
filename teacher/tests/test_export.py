import json

import numpy as np
import onnx
import onnxruntime as ort
import torch

from teacher.export import export_model
from teacher.models import build_model

SMALL = (64, 96)


def test_export_parity_fp32_and_contract(tmp_path, randomise_bn):
    torch.manual_seed(0)
    m = build_model("fused", SMALL).eval()
    randomise_bn(m)
    out = tmp_path / "t.onnx"
    rep = export_model(m, out, SMALL, "fused-teacher", val_dice=0.5, test_metrics={"dice": 0.5})
    assert rep["max_abs_logit_diff"] <= 1e-4
    mp = onnx.load(str(out))
    assert mp.opset_import[0].version == 17
    (inp,), (outp,) = mp.graph.input, mp.graph.output
    assert inp.name == "image" and outp.name == "logits"
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims[1:] == [3, *SMALL] and isinstance(dims[0], str)  # dynamic batch
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    odims = [d.dim_param or d.dim_value for d in outp.type.tensor_type.shape.dim]
    assert odims == ["N", 1, *SMALL] and dims[0] == "N"
    meta = {p.key: p.value for p in mp.metadata_props}
    assert meta["lesionfuse.input_size"] == "64x96"
    assert meta["lesionfuse.mean"] == "0.485,0.456,0.406" and meta["lesionfuse.std"] == "0.229,0.224,0.225"
    assert meta["lesionfuse.channel_order"] == "RGB" and meta["lesionfuse.threshold"] == "0.5"
    assert meta["lesionfuse.output"] == "logits" and meta["lesionfuse.model_name"] == "fused-teacher"
    assert json.loads(meta["lesionfuse.test_metrics"]) == {"dice": 0.5} and meta["lesionfuse.val_dice"] == "0.5000"
    assert "lesionfuse.training_data" in meta
    # batch of 3 runs and matches PyTorch (dynamic batch)
    x = torch.randn(3, 3, *SMALL)
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        ref = m(x).numpy()
    assert got.shape == (3, 1, *SMALL)
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_export_fp16_storage_parity_at_init(tmp_path):
    torch.manual_seed(0)
    m = build_model("fused", SMALL).eval()
    rep = export_model(m, tmp_path / "h.onnx", SMALL, fp16_storage=True)
    assert rep["max_abs_logit_diff"] <= 1e-3 and rep["max_abs_prob_diff"] <= 1e-3


def test_export_fp16_storage_parity_and_size(tmp_path, randomise_bn):
    torch.manual_seed(0)
    m = build_model("fused", SMALL).eval()
    randomise_bn(m)
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    export_model(m, a, SMALL)
    rep = export_model(m, b, SMALL, fp16_storage=True)
    # larger logits: the gate is on probabilities (what the SDK thresholds)
    assert rep["max_abs_prob_diff"] <= 1e-3 and rep["mask_agreement"] >= 0.999
    assert rep["initializers_fp16"] > 100
    assert b.stat().st_size < 0.55 * a.stat().st_size
    mp = onnx.load(str(b))
    big = [i for i in mp.graph.initializer if int(np.prod(i.dims)) >= 16]
    assert all(i.data_type == onnx.TensorProto.FLOAT16 for i in big)
    x = torch.randn(2, 3, *SMALL)
    got = ort.InferenceSession(str(b), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        ref = m(x).numpy()
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    np.testing.assert_allclose(sig(got), sig(ref), atol=1e-3)


def test_comparison_teachers_export(tmp_path):
    for name in ("cnn", "transformer"):
        m = build_model(name, SMALL).eval()
        rep = export_model(m, tmp_path / f"{name}.onnx", SMALL, f"{name}-teacher")
        assert rep["max_abs_logit_diff"] <= 1e-4 and rep["shape"] == [2, 1, *SMALL]
