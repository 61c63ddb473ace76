import pytest
import timm
import torch

from teacher.models import DeiTEncoder, ResNet34Encoder, build_model, count_params

SMALL = (64, 96)


@pytest.mark.parametrize("name", ["fused", "cnn", "transformer"])
def test_shapes_small(name):
    torch.manual_seed(0)
    m = build_model(name, SMALL)
    x = torch.randn(2, 3, *SMALL)
    m.train()
    outs = m(x, with_aux=True)
    assert outs["final"].shape == (2, 1, *SMALL)
    if name == "fused":
        assert set(outs) == {"final", "aux16", "aux_t"}
        assert all(v.shape == (2, 1, *SMALL) for v in outs.values())
    m.eval()
    with torch.no_grad():
        y = m(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 1, *SMALL)


def test_fused_internal_levels():
    m = build_model("fused", SMALL).eval()
    x = torch.randn(1, 3, *SMALL)
    with torch.no_grad():
        g4, g8, g16 = m.cnn(x)
        t16, t8, t4 = m.pup(m.vit(x))
    h, w = SMALL
    assert g4.shape == (1, 64, h // 4, w // 4) and g8.shape == (1, 128, h // 8, w // 8)
    assert g16.shape == (1, 256, h // 16, w // 16)
    assert t16.shape == (1, 384, h // 16, w // 16) and t8.shape == (1, 128, h // 8, w // 8)
    assert t4.shape == (1, 64, h // 4, w // 4)
    assert len(m.vit.vit.blocks) == 8
    assert m.cnn.layer4 is None


def test_param_count_fused_default_size():
    n = count_params(build_model("fused", (192, 256)))
    assert abs(n - 26.2e6) / 26.2e6 < 0.03, n


def test_size_must_be_multiple_of_32():
    with pytest.raises(ValueError, match="multiples of 32"):
        build_model("fused", (100, 96))


def test_unknown_model_refused():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("unet3000", SMALL)


def test_local_weight_files_load_without_network(tmp_path):
    """--weights FILE: ImageNet-style state dicts (DeiT at 224, 12 blocks) load, pos-embeds resampled once."""
    torch.manual_seed(1)
    r = timm.create_model("resnet34", pretrained=False)
    d = timm.create_model("deit_small_patch16_224", pretrained=False)
    torch.save(r.state_dict(), tmp_path / "r34.pth")
    torch.save({"model": d.state_dict()}, tmp_path / "deit.pth")
    cnn = ResNet34Encoder(weights=str(tmp_path / "r34.pth"))
    assert torch.equal(cnn.layer3[0].conv1.weight, r.layer3[0].conv1.weight)
    vit = DeiTEncoder(SMALL, depth=8, weights=str(tmp_path / "deit.pth"))
    assert torch.equal(vit.vit.blocks[7].attn.qkv.weight, d.blocks[7].attn.qkv.weight)
    assert vit.vit.pos_embed.shape == (1, 1 + (SMALL[0] // 16) * (SMALL[1] // 16), 384)
    assert torch.equal(vit.vit.pos_embed[:, 0], d.pos_embed[:, 0])  # class token position kept
