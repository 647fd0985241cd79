"""NYU Depth V2 through the Carvana engine (lesson 10): real training steps on the toy rooms,
the CLI as a subprocess, held-out scores equal to an independent count, resume, errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils.checkpoint import load_checkpoint
from course_utils.data import IGNORE_INDEX, label_frequencies, make_toy_nyuv2
from course_utils.metrics import ConfusionMatrix, DepthMetrics
from course_utils.model import TwoHeadUNet, UNet
from course_utils.segdepth import nyuv2_loss
from course_utils.config import TrainConfig
from course_utils.engine import fit, validate
from course_utils.train import build_model, make_loaders, parse_config


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def rooms(tmp_path_factory) -> Path:
    """100 toy rooms at 48x64: 55 official train frames (44 train + 11 held out), 45 test."""
    return make_toy_nyuv2(tmp_path_factory.mktemp("nyu") / "toy_nyuv2", n_images=100, seed=0, image_size=(48, 64))


def config(root: Path, **kw) -> TrainConfig:
    base = dict(task="nyuv2", data_dir=str(root), image_size=(48, 64), base_channels=8, batch_size=8, epochs=2,
                lr=3e-3, val_fraction=0.2, progress=False)
    return TrainConfig(**(base | kw)).check()


def test_models_and_loaders_follow_the_tasks(rooms):
    cfg = config(rooms, tasks="seg+depth")
    train, val = make_loaders(cfg)
    assert isinstance(build_model(cfg), TwoHeadUNet) and type(build_model(config(rooms))) is UNet
    assert build_model(config(rooms, num_classes=40)).config["out_channels"] == 40
    images, target = next(iter(train))
    assert images.shape == (8, 3, 48, 64) and target["seg"].dtype == torch.int64 and target["depth"].shape == (8, 1, 48, 64)
    # held-out frames are the last block of the official train split, never trained on
    assert set(train.dataset.indices.tolist()).isdisjoint(val.dataset.indices.tolist())
    assert val.dataset.indices.min() > train.dataset.indices.max()
    _, seg_only = next(iter(make_loaders(config(rooms))[0]))
    assert seg_only.shape == (8, 48, 64)


def test_training_beats_the_majority_class_and_scores_match_an_independent_count(rooms):
    cfg = config(rooms, tasks="seg+depth", epochs=10, batch_size=4)
    train, val = make_loaders(cfg)
    torch.manual_seed(0)
    model = build_model(cfg)
    loss_fn = nyuv2_loss(cfg, train.dataset)
    history = fit(model, train, val, epochs=cfg.epochs, lr=cfg.lr, device="cpu", loss_fn=loss_fn, progress=False,
                  verbose=False)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    labels = torch.cat([t["seg"].flatten() for _, t in val])
    labels = labels[labels != IGNORE_INDEX]
    majority = torch.bincount(labels).max().item() / len(labels)  # always answering "wall"
    assert history[-1]["val_pixel_acc"] > majority + 0.05
    assert history[-1]["val_delta1"] > 0.5
    # the engine's held-out numbers equal a plain confusion matrix and depth count of the same predictions
    cm, depth = ConfusionMatrix(cfg.num_classes, IGNORE_INDEX), DepthMetrics()
    model.eval()
    with torch.no_grad():
        for images, target in val:
            out = model(images)
            cm.update(out["seg"].argmax(1), target["seg"])
            depth.update(out["depth"], target["depth"])
    scores = validate(model, val, loss_fn, "cpu")
    assert scores["val_miou"] == pytest.approx(cm.mean_iou(), abs=1e-9)
    assert scores["val_pixel_acc"] == pytest.approx(cm.pixel_accuracy(), abs=1e-9)
    assert scores["val_abs_rel"] == pytest.approx(depth.compute()["abs_rel"], rel=1e-6)


def test_class_weights_come_from_training_label_frequencies(rooms):
    cfg = config(rooms, class_weighting="median")
    train, _ = make_loaders(cfg)
    weights = nyuv2_loss(cfg, train.dataset).class_weights
    counts = torch.as_tensor(label_frequencies(train.dataset), dtype=torch.float64)
    seen = counts > 0
    assert weights.shape == (13,) and torch.equal(weights == 0, ~seen)
    rarest, commonest = counts.masked_fill(~seen, np.inf).argmin(), counts.argmax()
    assert weights[rarest] > 1 > weights[commonest]
    assert nyuv2_loss(config(rooms), train.dataset).class_weights is None


def test_cli_trains_seg_and_depth_and_the_checkpoint_rebuilds_the_two_headed_model(rooms, tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "course_utils.train", "--task", "nyuv2", "--tasks", "seg+depth", "--data-dir",
            str(rooms), "--out", str(out), "--epochs", "2", "--image-size", "48", "64", "--base-channels", "4",
            "--profile", "quick", "--depth-loss", "silog"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "val_miou" in proc.stdout and "val_abs_rel" in proc.stdout and "best held-out mIoU" in proc.stdout
    history = json.loads((out / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2] and {"val_miou", "val_delta1", "val_rmse"} <= set(history[0])
    model, ckpt = load_checkpoint(out / "best.pt")
    assert isinstance(model, TwoHeadUNet) and ckpt["score"] == "val_miou" and "best_dice" not in ckpt
    assert ckpt["best_score"] == max(r["val_miou"] for r in history)
    assert ckpt["config"]["depth_loss"] == "silog"


def test_resumed_nyuv2_run_equals_a_run_never_interrupted(rooms, tmp_path):
    cfg = config(rooms, tasks="seg+depth", base_channels=4)

    def weights(**kw):
        train, val = make_loaders(cfg)
        torch.manual_seed(0)
        model = build_model(cfg)
        fit(model, train, val, epochs=2, lr=cfg.lr, device="cpu", loss_fn=nyuv2_loss(cfg, train.dataset),
            progress=False, verbose=False, **kw)
        return model.state_dict()

    straight = weights()
    weights(out=tmp_path, stop_after=1)
    resumed = weights(resume=tmp_path / "last.pt")
    assert all(torch.equal(a, b) for a, b in zip(straight.values(), resumed.values()))


def test_bad_nyuv2_settings_say_what_to_change(tmp_path, capsys):
    with pytest.raises(ValueError, match="13 or 40"):
        TrainConfig(task="nyuv2", num_classes=20).check()
    with pytest.raises(ValueError, match="tasks must be one of"):
        TrainConfig(task="nyuv2", tasks="depth").check()
    with pytest.raises(FileNotFoundError, match="download nyuv2"):
        make_loaders(TrainConfig(task="nyuv2", profile="full", data_dir=str(tmp_path)))
    with pytest.raises(SystemExit):
        parse_config(["--task", "nyuv2", "--num-classes", "20"])
    assert "--num-classes" in capsys.readouterr().err
    cfg = parse_config(["--task", "nyuv2", "--profile", "quick"])
    assert cfg.image_size == (96, 128) and cfg.task == "nyuv2"


def test_two_processes_report_the_held_out_scores_of_one(rooms, tmp_path):
    """torchrun with 2 CPU processes: 11 held-out frames (uneven shards); the confusion matrix and
    depth sums added over processes give the scores one process computes from last.pt."""
    import os
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {"UNET_COURSE_PROFILE": "quick", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "-m", "course_utils.train", "--task", "nyuv2", "--tasks", "seg+depth", "--data-dir", str(rooms), "--out",
           str(tmp_path / "run"), "--epochs", "1", "--image-size", "48", "64", "--base-channels", "4",
           "--batch-size", "4", "--profile", "quick", "--threads", "1", "--no-progress", "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads((tmp_path / "run" / "history.json").read_text())[-1]
    model, ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    cfg = TrainConfig.from_dict(ckpt["config"])
    train, val = make_loaders(cfg)
    assert len(val.dataset) == 11
    scores = validate(model, val, nyuv2_loss(cfg, train.dataset), "cpu")
    for key in ("val_miou", "val_pixel_acc", "val_abs_rel", "val_rmse", "val_delta1"):
        assert record[key] == pytest.approx(scores[key], abs=1e-6), key
