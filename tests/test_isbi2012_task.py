"""The ISBI 2012 task through the training engine and CLI (lesson 13), on the real stacks."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_utils.checkpoint import read_checkpoint
from course_utils.inference import predict_tiled
from course_utils.model import UNet
from course_utils.tasks import get_task, task_for_model
from course_utils.tasks.isbi2012 import EMLoss, crop_to, valid_padding
from course_utils.checkpoint import best_of
from course_utils.config import TrainConfig
from course_utils.engine import fit
from course_utils.train import make_loaders, parse_config

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def tiny(root: Path, **kw) -> TrainConfig:
    """Two training slices (0, 1), one held out (29): seconds on a CPU."""
    base = dict(task="isbi2012", data_dir=str(root), image_size=(64, 64), base_channels=4, depth=2, batch_size=2,
                epochs=2, lr=1e-2, crops_per_slice=2, held_out=tuple(range(2, 30)), progress=False)
    return TrainConfig(**(base | kw)).check()


def test_profiles_quick_same_full_the_papers_set_up():
    quick, full = TrainConfig.for_profile("quick", "isbi2012"), TrainConfig.for_profile("full", "isbi2012")
    assert quick.padding == "same" and quick.held_out == (25, 26, 27, 28, 29)
    assert (full.padding, full.image_size, full.base_channels, full.weight_map) == ("valid", (572, 572), 64, True)
    assert TrainConfig.from_dict(json.loads(json.dumps(full.to_dict()))) == full.check()


def test_bad_settings_say_what_to_change():
    with pytest.raises(ValueError, match="572"):
        TrainConfig(task="isbi2012", padding="valid", image_size=(570, 570)).check()
    with pytest.raises(ValueError, match="0 to 29|0-29|30"):
        TrainConfig(task="isbi2012", held_out=(25, 30)).check()
    with pytest.raises(SystemExit):
        parse_config(["--task", "isbi2012", "--held-out", *map(str, range(30))])


def test_a_missing_data_dir_names_the_download(tmp_path):
    cfg = tiny(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="download isbi2012"):
        make_loaders(cfg)


def test_valid_tiles_target_the_centre_and_held_out_slices_are_whole(real_isbi2012):
    cfg = tiny(real_isbi2012, padding="valid", image_size=(92, 92), weight_map=True)
    train, val = make_loaders(cfg)
    image, target = train.dataset[0]
    assert image.shape == (1, 92, 92) and target["mask"].shape == target["weight"].shape == (1, 52, 52)
    image, target = val.dataset[0]
    before, after = valid_padding(512, 2)
    assert image.shape == (1, 512 + before + after, 512 + before + after) and target["mask"].shape == (1, 512, 512)
    net = get_task("isbi2012").build_model(cfg)
    assert net(image[None]).shape[-1] >= 512


def test_one_pass_over_the_padded_slice_equals_overlap_tile(real_isbi2012):
    """The held-out pass of a valid network is the paper's overlap-tile prediction of the slice."""
    cfg = tiny(real_isbi2012, padding="valid", image_size=(92, 92))
    _, val = make_loaders(cfg)
    torch.manual_seed(0)
    net = UNet(1, 1, base_channels=4, depth=2, padding="valid").eval()
    image, mask = val.dataset[0]
    with torch.no_grad():
        one_pass = crop_to(net(image[None]), mask[None])[0]
    slice_only = val.dataset.slices[0][0]
    tiled = predict_tiled(net, slice_only, tile_size=92)
    assert torch.allclose(one_pass, tiled, atol=1e-4)


def test_weighted_loss_weighs_each_pixel():
    logits, mask = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
    plain = EMLoss()(logits, mask)
    weight = torch.full_like(mask, 3.0)
    assert torch.isclose(EMLoss()(logits, {"mask": mask, "weight": weight}), 3 * plain)


def test_fit_chooses_best_by_the_lowest_rand_error(real_isbi2012, tmp_path):
    cfg = tiny(real_isbi2012, epochs=3)
    train, val = make_loaders(cfg)
    model = get_task("isbi2012").build_model(cfg)
    assert task_for_model(model).name == "isbi2012"
    history = fit(model, train, val, cfg, epochs=3, lr=1e-2, device="cpu", out=tmp_path, progress=False,
                  verbose=False, loss_fn=EMLoss())
    assert {"val_pixel_error", "val_rand_error", "val_dice", "val_loss"} <= set(history[0])
    best = read_checkpoint(tmp_path / "best.pt")
    assert best["score"] == "val_rand_error_best" and "best_dice" not in best
    assert best["best_score"] == min(r["val_rand_error_best"] for r in history)
    for r in history:  # the best threshold is at least as good as 0.5
        assert r["val_rand_error_best"] <= r["val_rand_error"] and r["val_pixel_error_best"] <= r["val_pixel_error"]
        assert r["val_rand_threshold"] in [round(0.1 * k, 1) for k in range(1, 10)]
    assert best_of(best).startswith("Rand error ")


def test_resumed_run_equals_one_never_interrupted(real_isbi2012, tmp_path):
    from course_utils.train import run

    cfg = tiny(real_isbi2012, weight_map=True)
    run(dataclasses.replace(cfg, out=str(tmp_path / "straight")))
    run(dataclasses.replace(cfg, out=str(tmp_path / "split"), stop_after=1))
    run(dataclasses.replace(cfg, out=str(tmp_path / "split"), resume=str(tmp_path / "split" / "last.pt")))
    a, b = (read_checkpoint(tmp_path / name / "last.pt")["model"] for name in ("straight", "split"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_trains_on_the_real_stacks(real_isbi2012, tmp_path):
    out = tmp_path / "run"
    args = ["--task", "isbi2012", "--data-dir", str(real_isbi2012), "--out", str(out), "--epochs", "2",
            "--image-size", "64", "64", "--base-channels", "4", "--depth", "2", "--crops-per-slice", "1",
            "--held-out", *map(str, range(3, 30)), "--weight-map"]
    proc = subprocess.run([sys.executable, "-m", "course_utils.train", *args], capture_output=True, text=True,
                          env=os.environ | {"UNET_COURSE_PROFILE": "quick"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "held out: slices 3, 4" in proc.stdout and "best held-out Rand error" in proc.stdout
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 2 and all(0 <= r["val_rand_error"] <= 1 for r in history)
    best = read_checkpoint(out / "best.pt")
    assert best["config"]["weight_map"] is True

    # predicting a stack with that checkpoint cuts at the threshold training chose on the held-out slices
    from course_utils.data.isbi2012 import read_stack, write_stack
    from course_utils.predict import chosen_threshold

    chosen = chosen_threshold(best)
    assert chosen == history[best["epoch"] - 1]["val_rand_threshold"]
    stack = write_stack(tmp_path / "two.tif", read_stack(real_isbi2012 / "test-volume.tif")[:2])
    proc = subprocess.run([sys.executable, "-m", "course_utils.predict", "--checkpoint", str(out / "best.pt"),
                           str(stack), "--out", str(tmp_path / "preds")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"threshold {chosen:g}" in proc.stdout
    probs = read_probabilities(tmp_path / "preds" / "two_probabilities.tif")
    mask = np.array(Image.open(tmp_path / "preds" / "two_01_mask.png"))
    assert np.array_equal(mask == 255, probs[1] > chosen)


def read_probabilities(path: Path) -> np.ndarray:
    with Image.open(path) as tif:
        pages = []
        for k in range(tif.n_frames):
            tif.seek(k)
            pages.append(np.array(tif, dtype=np.float32))
    return np.stack(pages)
