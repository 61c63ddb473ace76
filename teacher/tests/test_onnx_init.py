import numpy as np
import torch

from teacher.export import export_model
from teacher.models import build_model
from teacher.onnx_init import _module_path, load_onnx_weights, parity

SMALL = (64, 96)


def test_module_path_from_node_names():
    assert _module_path("/model/cnn/layer1/layer1.0/conv1/Conv") == "cnn.layer1.0.conv1"
    assert _module_path("/model/merge8/gate/psi/psi.0/Conv") == "merge8.gate.psi.0"


def test_weights_come_back_from_fp16_onnx_with_folded_batchnorm(tmp_path, randomise_bn):
    torch.manual_seed(0)
    src = build_model("fused", SMALL).eval()
    randomise_bn(src, bias=True)
    # distinct values everywhere: the exporter merges initializers with identical values (fresh biases of 0,
    # LayerNorm weights of 1) under one name, which the loader refuses rather than guesses (a trained model
    # has none)
    with torch.no_grad():
        for prm in src.parameters():
            prm.add_(torch.randn_like(prm) * 0.01)
    out = tmp_path / "t.onnx"
    export_model(src, out, SMALL, "fused-teacher", fp16_storage=True)
    torch.manual_seed(1)  # a different initialisation: everything must come from the file
    dst = build_model("fused", SMALL)
    x = np.random.default_rng(0).normal(size=(2, 3, *SMALL)).astype(np.float32)
    before = parity(dst, str(out), x)["max_abs_logit_diff"]
    info = load_onnx_weights(dst, str(out), SMALL)
    assert info["folded_batchnorms"] > 0
    assert all(k.startswith("aux") for k in info["kept_initial"])  # deep-supervision heads are not exported
    p = parity(dst, str(out), x)
    assert before > 1e-2, before  # the check can fail: fresh weights do not match
    assert p["max_abs_logit_diff"] <= 1e-4, p
    assert p["mask_agreement"] == 1.0
    # the loaded model trains: one step changes the weights and gives a finite loss
    dst.train()
    opt = torch.optim.SGD(dst.parameters(), lr=1e-3)
    y = (torch.rand(2, 1, *SMALL) > 0.5).float()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(dst(torch.from_numpy(x)), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
