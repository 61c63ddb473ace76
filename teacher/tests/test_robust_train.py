import numpy as np
import torch

from teacher.compact_cache import CompactSet, build
from teacher.train import load_checkpoint, load_config, train


def _cfg(tmp_path=None, **over):
    t = {"batch_size": 2, "epochs": 2, "ckpt_every": 2, "log_every": 1, "warmup_epochs": 0.5, "num_threads": 1}
    cfg = {"img_size": [64, 96], "data": {"synthetic": 4}, "train": t, "init": {"onnx": None}}
    cfg.update(over)
    return load_config("teacher/configs/robust-finetune.yaml", cfg)


def test_robust_recipe_trains_and_resumes_exactly(tmp_path):
    cfg = _cfg()
    assert cfg["robust"]["enabled"]
    straight = train(cfg, str(tmp_path / "a"), quiet=True)
    assert straight["step"] == 4
    train(cfg, str(tmp_path / "b"), stop_after_steps=3, quiet=True)
    resumed = train(cfg, str(tmp_path / "b"), quiet=True)
    sa, sb = straight["model"].state_dict(), resumed["model"].state_dict()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    # the recipe changes what the model sees: a run without it ends elsewhere
    plain = train(_cfg(robust={"enabled": False}), str(tmp_path / "c"), quiet=True)
    assert any(not torch.equal(sa[k], plain["model"].state_dict()[k]) for k in sa)


def test_compact_cache_round_trip(tmp_path):
    from PIL import Image

    root = tmp_path / "data"
    (root / "splits").mkdir(parents=True)
    (root / "im").mkdir()
    rows = ["id,source,split,image,mask"]
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(120, 90), (100, 100)]):
        img = rng.integers(0, 255, (h, w, 3)).astype(np.uint8)
        m = np.zeros((h, w), np.uint8)
        m[h // 4: h // 2, w // 4: w // 2] = 255
        Image.fromarray(img).save(root / "im" / f"x{i}.jpg")
        Image.fromarray(m).save(root / "im" / f"x{i}_m.png")
        rows.append(f"x{i},s,train,im/x{i}.jpg,im/x{i}_m.png")
    (root / "MANIFEST.csv").write_text("\n".join(rows) + "\n")
    (root / "splits" / "train.txt").write_text("im/x0.jpg\nim/x1.jpg\n")
    p = build(str(root), "train", str(tmp_path / "cache"), short=48)
    cs = CompactSet.load(p)
    assert cs.ids == ["x0", "x1"]
    im0, m0 = cs.get(0)
    assert im0.shape == (48, 64, 3) and m0.shape == (48, 64)  # aspect kept, shorter side 48
    assert abs(m0.mean() - 0.25 * 0.25) < 0.02
    assert cs.get(1)[0].shape == (48, 48, 3)


def test_freeze_batchnorm_keeps_the_eval_function_in_training_mode():
    from teacher.models import build_model
    from teacher.train import freeze_batchnorm

    torch.manual_seed(0)
    m = build_model("fused", (64, 96))
    x = torch.randn(2, 3, 64, 96)
    m.eval()
    with torch.no_grad():
        ref = m(x)
    import copy

    other = copy.deepcopy(m).train()  # (a training-mode forward also moves the running statistics)
    with torch.no_grad():
        moving = other(x)
    m.train()
    freeze_batchnorm(m)
    with torch.no_grad():
        frozen = m(x)
    assert (moving - ref).abs().max() > 1e-3  # batch statistics change the output...
    assert torch.allclose(frozen, ref, atol=1e-5)  # ...frozen ones do not
