import json

import torch

from teacher.train import load_checkpoint, load_config, lr_factor, train


def _cfg(**train_over):
    t = {"batch_size": 2, "epochs": 2, "ckpt_every": 2, "log_every": 1, "warmup_epochs": 0.5, "num_threads": 1}
    t.update(train_over)
    return load_config("teacher/configs/fused.yaml",
                       {"img_size": [64, 96], "data": {"synthetic": 4}, "train": t})


def test_resume_after_kill_is_exact(tmp_path):
    cfg = _cfg()  # 4 images, batch 2: 2 steps per epoch, 4 steps in all
    straight = train(cfg, str(tmp_path / "a"), quiet=True)
    assert straight["step"] == 4
    # "kill" after step 3 (checkpoint from step 2 on disk, nothing written after), then resume to the end
    train(cfg, str(tmp_path / "b"), stop_after_steps=3, quiet=True)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["scheduler"]["step"] == 2
    resumed = train(cfg, str(tmp_path / "b"), quiet=True)
    assert resumed["step"] == 4
    sa, sb = straight["model"].state_dict(), resumed["model"].state_dict()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    ca, cb = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert ca["history"] == [dict(h, wall_s=h["wall_s"]) for h in ca["history"]]
    for ha, hb in zip(ca["history"], cb["history"]):
        assert ha["train_loss"] == hb["train_loss"] and ha["val_dice"] == hb["val_dice"]
    st_a, st_b = ca["optimizer"]["state"], cb["optimizer"]["state"]
    assert all(torch.equal(st_a[i]["exp_avg"], st_b[i]["exp_avg"]) for i in st_a)
    # logs and best checkpoint exist, checkpoint has no tmp file left behind
    lines = (tmp_path / "b" / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    assert (tmp_path / "b" / "best.pt").exists() and not (tmp_path / "b" / "last.pt.tmp").exists()


def test_lr_schedule_warmup_then_cosine():
    assert lr_factor(0, 10, 100, 0.01) == 0.1
    assert lr_factor(9, 10, 100, 0.01) == 1.0
    assert abs(lr_factor(100, 10, 100, 0.01) - 0.01) < 1e-9
    assert lr_factor(50, 10, 100, 0.01) < lr_factor(20, 10, 100, 0.01)


def test_comparison_teachers_train_from_their_configs(tmp_path):
    for name in ("cnn", "transformer"):
        cfg = load_config(f"teacher/configs/{name}.yaml",
                          {"img_size": [64, 96], "data": {"synthetic": 2},
                           "train": {"batch_size": 2, "epochs": 1, "num_threads": 1, "log_every": 1}})
        assert cfg["model"] == name
        res = train(cfg, str(tmp_path / name), quiet=True)
        assert res["step"] == 1 and len(res["history"]) == 1


def test_until_epoch_stops_on_the_planned_schedule_and_resumes_exactly(tmp_path):
    cfg = _cfg()  # 2 epochs planned, cosine over 4 steps
    straight = train(cfg, str(tmp_path / "a"), quiet=True)
    first = train(cfg, str(tmp_path / "b"), quiet=True, until_epoch=1)
    ck = load_checkpoint(tmp_path / "b" / "last.pt")
    assert first["step"] == 2 and ck["epochs_validated"] == 1
    assert ck["scheduler"]["total"] == 4  # the schedule was not shortened to the budget
    again = train(cfg, str(tmp_path / "b"), quiet=True, until_epoch=1)  # already there: no step taken
    assert again["step"] == 2
    resumed = train(cfg, str(tmp_path / "b"), quiet=True)
    assert resumed["step"] == 4
    sa, sb = straight["model"].state_dict(), resumed["model"].state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
