"""Tests for course_utils.train and course_utils.viz: real training steps on a tiny toy
Carvana, the CLI as a subprocess, checkpoints, resume, and the errors a learner can meet."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from course_utils.data import make_toy_carvana
from course_utils.losses import BCEDiceLoss
from course_utils.model import UNet
from course_utils.checkpoint import atomic_write, load_checkpoint
from course_utils.config import TrainConfig
from course_utils.data.sampling import EpochShuffle, SeededAugment
from course_utils.engine import fit, NonFiniteLossError, train_one_epoch, validate
from course_utils.train import build_model, load_or_train, main, make_loaders, parse_config, run
from course_utils.viz import pick_indices, show_predictions

HISTORY_KEYS = {"epoch", "train_loss", "val_loss", "val_dice", "lr", "seconds", "images_per_s"}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory) -> Path:
    """4 toy cars x 16 angles at 64x96: 3 cars train, 1 car held out (val_fraction 0.25)."""
    return Path(make_toy_carvana(tmp_path_factory.mktemp("toy") / "toy_carvana", n_cars=4, image_size=(64, 96), seed=0))


def tiny_args(root: Path, out: Path, epochs: int = 2) -> list[str]:
    return ["--data-dir", str(root), "--out", str(out), "--epochs", str(epochs), "--image-size", "32", "48",
            "--base-channels", "4", "--batch-size", "8", "--num-workers", "0", "--val-fraction", "0.25",
            "--lr", "1e-2", "--profile", "quick"]


def tiny_config(root: Path, **kw) -> TrainConfig:
    base = dict(data_dir=str(root), image_size=(32, 48), base_channels=4, batch_size=8, num_workers=0,
                val_fraction=0.25, lr=1e-2, epochs=2, progress=False)
    return TrainConfig(**(base | kw)).check()


@pytest.fixture(scope="module")
def cli_run(toy_root, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The CLI, as a learner runs it, on the tiny set: a 2-epoch run folder."""
    out = tmp_path_factory.mktemp("cli") / "run"
    env = os.environ | {"UNET_COURSE_PROFILE": "quick"}
    proc = subprocess.run([sys.executable, "-m", "course_utils.train", *tiny_args(toy_root, out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out, proc


# ---------------------------------------------------------------------------- config


def test_config_round_trips_and_profiles():
    cfg = TrainConfig.for_profile("quick")
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    full = TrainConfig.for_profile("full")
    assert (full.image_size, full.base_channels, full.batch_size) == ((640, 960), 64, 8)
    assert cfg.base_channels < full.base_channels and cfg.image_size[0] < full.image_size[0]
    assert TrainConfig.from_dict(cfg.to_dict() | {"from_a_later_version": 1}) == cfg


@pytest.mark.parametrize("size, nearest", [((100, 150), "96x144 or 112x160"), ((64, 90), "64x80 or 64x96")])
def test_bad_image_size_names_the_nearest_that_work(size, nearest, capsys):
    with pytest.raises(ValueError, match=nearest):
        TrainConfig(image_size=size, depth=4).check()
    with pytest.raises(SystemExit) as exit_info:
        main(["--image-size", *map(str, size), "--epochs", "1"])
    assert exit_info.value.code == 2
    assert nearest in capsys.readouterr().err


def test_missing_data_dir_says_how_to_get_data(tmp_path, capsys):
    assert main(tiny_args(tmp_path / "nowhere", tmp_path / "run")) == 1
    err = capsys.readouterr().err
    assert "no Carvana data" in err and "download carvana" in err and "toy" in err


# ---------------------------------------------------------------------------- data order


def test_data_order_and_augmentation_depend_only_on_seed_and_epoch(toy_root):
    train, _ = make_loaders(tiny_config(toy_root))
    sampler, ds = train.sampler, train.dataset
    assert isinstance(sampler, EpochShuffle) and isinstance(ds, SeededAugment)
    orders = []
    for epoch in (1, 2, 1):
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
    assert orders[0] == orders[2] != orders[1] and sorted(i for _, i in orders[0]) == list(range(len(ds)))
    assert {e for e, _ in orders[1]} == {2}  # the epoch travels with each index
    items = []
    for epoch in (1, 1, 2):
        ds.set_epoch(epoch)
        items.append(torch.cat([ds[i][0] for i in range(8)]))
    assert torch.equal(items[0], items[1]) and not torch.equal(items[0], items[2])


# ---------------------------------------------------------------------------- training steps


def test_training_steps_reduce_the_loss(toy_root):
    torch.manual_seed(0)
    cfg = tiny_config(toy_root)
    train, val = make_loaders(cfg)
    model, loss_fn = build_model(cfg), BCEDiceLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = [train_one_epoch(model, train, loss_fn, optimizer, None, "cpu", epoch=e, progress=False)
              for e in range(1, 5)]
    assert losses[-1] < 0.8 * losses[0], losses
    metrics = validate(model, val, loss_fn, "cpu")
    assert set(metrics) == {"val_loss", "val_dice"} and 0.0 <= metrics["val_dice"] <= 1.0


class Stamp(torch.nn.Module):
    """A 'model' whose prediction is written in the image: logits = +-20 from channel 0."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x[:, :1] * 40 - 20 + self.w


def test_validate_averages_per_image_over_the_whole_loader():
    # three images with Dice 1, 1, 0; batches of 2 -> [1, 1], [0]. Per image: 2/3; per batch: 1/2.
    masks = torch.zeros(3, 1, 4, 4)
    masks[:, :, :2] = 1
    preds = masks.clone()
    preds[2] = 1 - masks[2]
    data = list(zip(preds.expand(3, 3, 4, 4).clone(), masks))
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    metrics = validate(Stamp(), loader, BCEDiceLoss(), "cpu")
    assert metrics["val_dice"] == pytest.approx(2 / 3)


# ---------------------------------------------------------------------------- the CLI run folder


def test_cli_writes_a_complete_run_folder(cli_run):
    out, proc = cli_run
    assert {"history.json", "last.pt", "best.pt", "predictions.png"} <= {p.name for p in out.iterdir()}
    assert not list(out.glob(".*.tmp")), "temporary checkpoint files left behind"
    history = json.loads((out / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2]
    assert all(set(r) == HISTORY_KEYS for r in history)
    assert proc.stdout.count("val_dice") == 2 and str(out) in proc.stdout
    with Image.open(out / "predictions.png") as im:
        assert im.format == "PNG" and im.width > 200 and im.height > 200


def test_best_checkpoint_loads_safely_and_rebuilds_the_model(cli_run):
    out, _ = cli_run
    ckpt = torch.load(out / "best.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "epoch", "best_dice", "config", "model_config",
            "image_size", "history", "rng"} <= set(ckpt)
    assert ckpt["best_dice"] == max(r["val_dice"] for r in ckpt["history"])
    model, _ = load_checkpoint(out / "best.pt")
    assert isinstance(model, UNet) and model.config["base_channels"] == 4
    assert torch.equal(model.state_dict()["head.weight"], ckpt["model"]["head.weight"])
    assert model(torch.rand(1, 3, *ckpt["image_size"])).shape == (1, 1, 32, 48)


def test_checkpoint_from_another_architecture_is_named(cli_run):
    out, _ = cli_run
    with pytest.raises(ValueError, match="checkpoint has base_channels=4, model has 8"):
        load_checkpoint(out / "last.pt", UNet(base_channels=8))
    with pytest.raises(ValueError, match="checkpoint has depth=4, model has 3"):
        load_checkpoint(out / "last.pt", UNet(base_channels=4, depth=3))


def test_resume_equals_a_run_never_interrupted(toy_root, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(tiny_args(toy_root, straight)) == 0
    assert main(tiny_args(toy_root, split) + ["--stop-after", "1"]) == 0
    assert torch.load(split / "last.pt", weights_only=True)["epoch"] == 1
    # options left out on resume come from the checkpoint
    assert parse_config(["--resume", str(split / "last.pt")]).to_dict() == \
        parse_config(tiny_args(toy_root, split)).to_dict() | {"resume": str(split / "last.pt")}
    assert main(tiny_args(toy_root, split) + ["--resume", str(split / "last.pt")]) == 0
    a, b = (torch.load(d / "last.pt", weights_only=True) for d in (straight, split))
    assert b["epoch"] == 2 and len(b["history"]) == 2
    for name, tensor in a["model"].items():
        assert torch.allclose(tensor.float(), b["model"][name].float(), atol=1e-6), name
    assert [r["val_dice"] for r in a["history"]] == pytest.approx([r["val_dice"] for r in b["history"]])


class NaNAfter:
    """BCE + Dice that turns NaN after `n` training steps (evaluation calls run without grad)."""

    def __init__(self, n: int):
        self.n, self.steps, self.loss = n, 0, BCEDiceLoss()

    def __call__(self, logits, target):
        self.steps += torch.is_grad_enabled()
        loss = self.loss(logits, target)
        return loss * float("nan") if self.steps > self.n else loss


def test_nan_loss_stops_with_advice_and_keeps_the_last_good_checkpoint(toy_root, tmp_path):
    cfg = tiny_config(toy_root, epochs=3)
    train, val = make_loaders(cfg)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 1 .*lower learning rate"):
        fit(build_model(cfg), train, val, epochs=3, lr=1e-2, device="cpu", out=tmp_path,
            loss_fn=NaNAfter(len(train)), progress=False, verbose=False)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and all(torch.isfinite(t.float()).all() for t in last["model"].values())
    assert len(json.loads((tmp_path / "history.json").read_text())) == 1


def test_nan_from_a_huge_learning_rate_ends_the_cli_with_a_message(toy_root, tmp_path, capsys):
    assert main(tiny_args(toy_root, tmp_path / "run", epochs=1) + ["--lr", "1e30"]) == 1
    assert "--lr" in capsys.readouterr().err


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"good")

    def broken(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, broken)
    assert path.read_bytes() == b"good" and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


# ---------------------------------------------------------------------------- viz


def test_show_predictions_draws_image_truth_prediction_per_car(toy_root):
    _, val = make_loaders(tiny_config(toy_root, val_fraction=0.5))
    rows = pick_indices(val.dataset, 2)
    cars = {val.dataset.ids[i].rsplit("_", 1)[0] for i in rows}
    assert len(cars) == 2
    fig = show_predictions(UNet(base_channels=4), val.dataset, n=2)
    assert len(fig.axes) == 6
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[1] == "ground truth" and "Dice" in titles[2]


def test_help_documents_both_profiles(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for expected in ("quick", "full", "640x960", "base_channels 64", "Dice", "--resume", "toy Carvana"):
        assert expected in text, expected


def test_resuming_with_another_architecture_is_a_clear_error(cli_run, tmp_path, capsys):
    out, _ = cli_run
    args = ["--resume", str(out / "last.pt"), "--base-channels", "8", "--out", str(tmp_path), "--epochs", "3"]
    assert main(args) == 1
    assert "checkpoint has base_channels=4, model has 8" in capsys.readouterr().err


def test_persistent_workers_augment_each_epoch_like_the_main_process(toy_root):
    """Workers that live across epochs keep stale dataset copies: the epoch must reach them anyway."""
    from dataclasses import replace

    def batches(num_workers):
        train, _ = make_loaders(replace(tiny_config(toy_root), num_workers=num_workers))
        assert train.persistent_workers == (num_workers > 0)
        out = []
        for epoch in (1, 2):
            train.sampler.set_epoch(epoch)
            train.dataset.set_epoch(epoch)
            out.append(next(iter(train))[0])
        return out

    in_process, in_workers = batches(0), batches(2)
    assert not torch.equal(in_process[0], in_process[1])
    assert all(torch.equal(a, b) for a, b in zip(in_process, in_workers))


# ---------------------------------------------------------------------------- speed options (issue 4)


def one_batch(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    train, _ = make_loaders(tiny_config(root))
    return next(iter(train))


def test_amp_choices_resolve_per_device():
    from course_utils.precision import resolve_amp

    assert resolve_amp("auto", "cpu") is None and resolve_amp("off", "cpu") is None
    assert resolve_amp("bf16", "cpu") is torch.bfloat16 and resolve_amp("fp16", "cpu") is torch.float16
    with pytest.raises(ValueError, match="amp must be one of"):
        resolve_amp("half", "cpu")
    cfg = parse_config(["--amp", "bf16", "--channels-last", "--clip-grad", "1", "--compile", "--epochs", "1"])
    assert (cfg.amp, cfg.channels_last, cfg.clip_grad, cfg.compile) == ("bf16", True, 1.0, True)
    assert parse_config(["--no-channels-last"]).channels_last is False
    assert parse_config([]).channels_last is None and parse_config([]).amp == "auto"


def test_bf16_autocast_steps_on_cpu_reduce_the_loss(toy_root):
    from course_utils.engine import train_step

    images, masks = one_batch(toy_root)
    torch.manual_seed(0)
    model = UNet(base_channels=4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = [train_step(model, images, masks, BCEDiceLoss(), optimizer, amp_dtype=torch.bfloat16).item()
              for _ in range(12)]
    assert losses[-1] < 0.8 * losses[0], losses
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast keeps float32 master weights


def test_fp16_with_grad_scaler_on_cpu_reduces_the_loss(toy_root):
    from course_utils.engine import train_step
    from course_utils.precision import make_scaler

    scaler = make_scaler("cpu", torch.float16)
    assert scaler.is_enabled() and not make_scaler("cpu", torch.bfloat16).is_enabled()
    images, masks = one_batch(toy_root)
    torch.manual_seed(0)
    model = UNet(base_channels=4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = [train_step(model, images, masks, BCEDiceLoss(), optimizer, amp_dtype=torch.float16,
                         scaler=scaler, clip_grad=1.0).item() for _ in range(12)]
    assert losses[-1] < 0.8 * losses[0], losses
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert 0 < scaler.get_scale() < float("inf")


@pytest.mark.parametrize("fp16", [False, True])
def test_gradients_are_clipped_in_true_units_even_when_scaled(toy_root, fp16):
    """SGD with lr 1 moves the weights by exactly the clipped gradient: its norm must be clip_grad,
    not clip_grad / scale (which is what clipping the scaled gradients would give)."""
    from course_utils.engine import train_step
    from course_utils.precision import make_scaler

    images, masks = one_batch(toy_root)
    torch.manual_seed(0)
    model = UNet(base_channels=4)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    dtype = torch.float16 if fp16 else None
    scaler = make_scaler("cpu", dtype)
    assert scaler.is_enabled() == fp16
    train_step(model, images, masks, BCEDiceLoss(), optimizer, amp_dtype=dtype, scaler=scaler, clip_grad=1e-3)
    moved = (torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm().item()
    assert moved == pytest.approx(1e-3, rel=1e-2)


def test_channels_last_gives_the_same_losses_as_contiguous(toy_root):
    import copy

    from course_utils.engine import train_step

    images, masks = one_batch(toy_root)
    torch.manual_seed(0)
    model = UNet(base_channels=4)
    runs = []
    for layout in (False, True):
        m = copy.deepcopy(model)
        if layout:
            m.to(memory_format=torch.channels_last)
            conv = next(c for c in m.modules() if isinstance(c, torch.nn.Conv2d))
            assert conv.weight.is_contiguous(memory_format=torch.channels_last)
            assert not conv.weight.is_contiguous()
        optimizer = torch.optim.AdamW(m.parameters(), lr=1e-2)
        runs.append([train_step(m, images, masks, BCEDiceLoss(), optimizer, channels_last=layout).item()
                     for _ in range(3)])
    assert runs[0] == pytest.approx(runs[1], rel=1e-4, abs=1e-5)
    assert runs[0][0] != runs[0][-1]  # the steps did train


def test_fp16_scaler_state_is_checkpointed_and_restored_on_resume(toy_root, tmp_path):
    cfg = tiny_config(toy_root)
    train, val = make_loaders(cfg)
    kw = dict(epochs=2, lr=1e-2, device="cpu", progress=False, verbose=False, amp="fp16", clip_grad=1.0)
    torch.manual_seed(0)
    fit(build_model(cfg), train, val, out=tmp_path / "straight", **kw)
    torch.manual_seed(0)
    fit(build_model(cfg), train, val, out=tmp_path / "split", stop_after=1, **kw)
    path = tmp_path / "split" / "last.pt"
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["scaler"]["scale"] > 0 and "_growth_tracker" in ckpt["scaler"]
    fit(build_model(cfg), train, val, out=tmp_path / "split", resume=path, **kw)
    a, b = (torch.load(tmp_path / d / "last.pt", weights_only=True) for d in ("straight", "split"))
    assert a["scaler"] == b["scaler"] and b["epoch"] == 2
    for name, tensor in a["model"].items():
        assert torch.allclose(tensor.float(), b["model"][name].float(), atol=1e-6), name
    # the restored scale is the checkpoint's, not a fresh 65536
    ckpt["scaler"]["scale"] = 1024.0
    torch.save(ckpt, path)
    fit(build_model(cfg), train, val, out=tmp_path / "split", resume=path, **kw)
    assert torch.load(path, weights_only=True)["scaler"]["scale"] <= 1024.0


def test_compiled_training_trains_the_model_it_checkpoints(toy_root, tmp_path):
    """--compile trains through torch.compile, yet last.pt holds the plain model's weights."""
    from course_utils.checkpoint import load_checkpoint

    torch.manual_seed(0)
    cfg = tiny_config(toy_root)
    train, val = make_loaders(cfg)
    model = build_model(cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = fit(model, train, val, epochs=1, lr=1e-2, device="cpu", out=tmp_path,
                  compile=True, progress=False, verbose=False)  # inductor needs a C++ compiler (gcc)
    assert torch.isfinite(torch.tensor(history[0]["train_loss"]))
    saved, _ = load_checkpoint(tmp_path / "last.pt")
    assert not any(k.startswith("_orig_mod") for k in saved.state_dict())
    assert all(torch.equal(saved.state_dict()[k], v) for k, v in model.state_dict().items())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())  # it did train


def test_load_or_train_trains_once_then_loads_resumes_or_retrains(toy_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("UNET_COURSE_DATA", str(tmp_path))
    cfg = tiny_config(toy_root, epochs=2)
    model, ckpt = load_or_train(cfg, name="toy")
    assert "training once" in capsys.readouterr().out and ckpt["epoch"] in (1, 2)
    run_dir = tmp_path / "runs" / "toy-quick"
    first = (run_dir / "best.pt").stat().st_mtime_ns
    again, _ = load_or_train(dataclasses.replace(cfg, num_workers=0, progress=True), name="toy")
    assert "loaded" in capsys.readouterr().out and (run_dir / "best.pt").stat().st_mtime_ns == first
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    # an interrupted run with the same settings is carried on from its last epoch, not restarted
    shutil.rmtree(run_dir)
    run(dataclasses.replace(cfg, out=str(run_dir), stop_after=1, progress=False))
    resumed, _ = load_or_train(cfg, name="toy")
    assert "resum" in capsys.readouterr().out.lower()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), resumed.state_dict().values()))
    # other settings: trained again from scratch
    _, other = load_or_train(dataclasses.replace(cfg, base_channels=8), name="toy")
    assert "training once" in capsys.readouterr().out and other["model_config"]["base_channels"] == 8
