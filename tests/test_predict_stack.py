"""Inference on EM stacks (lesson 13): predict_tiled's averaging over the 8 rotations and flips,
predict_stack, and `python -m course_utils.predict` in stack mode, run as a subprocess on a
3-page stack cut from the real ISBI 2012 test-volume.tif, with its learner errors."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from course_utils.checkpoint import save_checkpoint
from course_utils.data.isbi2012 import read_stack, write_stack
from course_utils.inference import predict_stack, predict_tiled
from course_utils.tiling import context_margin, covering_tile_size
from course_utils.model import UNet
from course_utils.predict import main

REPO = Path(__file__).parents[1]
PAGES = [0, 10, 20]  # cut from the real test stack: three different slices, in this order
VALID_TILE = 188  # the valid network's training tile (depth 2: output 148)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny convolutions, shared cores


@pytest.fixture(scope="module")
def real_test_volume() -> Path:
    """The real ISBI 2012 test-volume.tif of ../shared/real_samples (skips when absent); module-scoped,
    unlike conftest's real_isbi2012, so that the checkpoints and the cut stack are made once."""
    from conftest import _real_samples

    return _real_samples("isbi2012", "test-volume.tif") / "test-volume.tif"


def lively(net: UNet, seed: int) -> UNet:
    """He-initialised weights, random biases and BatchNorm statistics: outputs that vary over the
    image (PyTorch's default init makes a narrow U-Net's output nearly constant, hiding mistakes)."""
    torch.manual_seed(seed)
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.uniform_(m.bias, -0.1, 0.1)
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def same_net(in_channels: int = 1) -> UNet:
    return lively(UNet(in_channels, 1, base_channels=4, depth=2), seed=1)


def valid_net() -> UNet:
    return lively(UNet(1, 1, base_channels=4, depth=2, padding="valid", batch_norm=False), seed=2)


def save_isbi_checkpoint(model: UNet, path: Path, image_size: int) -> Path:
    """A checkpoint in the layout `course_utils.train --task isbi2012` writes (the keys predict reads)."""
    c = model.config
    config = dict(task="isbi2012", image_size=[image_size, image_size], padding=c["padding"], depth=c["depth"],
                  base_channels=c["base_channels"], epochs=1)
    save_checkpoint(dict(model=model.state_dict(), model_config=dict(c), epoch=1, history=[], config=config,
                         image_size=[image_size, image_size]), path)
    return path


def whole_pass(net: UNet, page: np.ndarray) -> np.ndarray:
    """Logits (H, W) of ONE forward pass over the page, mirror-padded by numpy to a size the net takes
    (for a valid network, by its context margin on every side), cropped back."""
    h, w = page.shape
    m = context_margin(net.config["depth"]) if net.config["padding"] == "valid" else 0
    th, tw = covering_tile_size(net, h, w)
    padded = np.pad(page, ((m, th - m - h), (m, tw - m - w)), mode="reflect")
    with torch.no_grad():
        return net(torch.from_numpy(padded.astype(np.float32) / 255)[None, None])[0, 0, :h, :w].numpy()


def turned_average(predict, page: np.ndarray) -> np.ndarray:
    """The mean over the 8 rotations and flips of `predict` (page -> map) on the turned page, turned back."""
    maps = []
    for flip in (False, True):
        for k in range(4):
            view = np.rot90(page[:, ::-1] if flip else page, k)
            back = np.rot90(predict(np.ascontiguousarray(view)), -k)
            maps.append(back[:, ::-1] if flip else back)
    return np.mean(maps, axis=0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def run_cli(*args, timeout=120) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "course_utils.predict", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=REPO)


def read_probabilities(path: Path) -> tuple[np.ndarray, set[str]]:
    """The pages of a probabilities TIFF as float32 (N, H, W), and the set of the pages' PIL modes."""
    pages, modes = [], set()
    with Image.open(path) as im:
        for k in range(im.n_frames):
            im.seek(k)
            modes.add(im.mode)
            pages.append(np.array(im))
    return np.stack(pages), modes


@pytest.fixture(scope="module")
def setup(tmp_path_factory, real_test_volume):
    root = tmp_path_factory.mktemp("stack")
    stack = read_stack(real_test_volume)[PAGES]
    write_stack(root / "cut.tif", stack)
    same, valid = same_net(), valid_net()
    threshold = float(np.median(sigmoid(whole_pass(same, stack[0]))))  # masks neither empty nor full
    return dict(root=root, stack=stack, tif=root / "cut.tif", same=same, valid=valid, threshold=threshold,
                same_ckpt=save_isbi_checkpoint(same, root / "same.pt", 64),
                valid_ckpt=save_isbi_checkpoint(valid, root / "valid.pt", VALID_TILE))


# ---------------------------------------------------------------------------- rotations and flips


def test_tta_is_the_average_of_the_8_turned_and_flipped_passes_put_back():
    net = same_net()
    page = np.random.default_rng(0).integers(0, 256, (37, 53), dtype=np.uint8)  # not square: turns swap sides
    plain = predict_tiled(net, page, 16)
    tta = predict_tiled(net, page, 16, tta=True)
    assert plain.shape == tta.shape == (1, 37, 53) and tta.dtype == torch.float32
    expected = turned_average(lambda v: predict_tiled(net, v, 16)[0].numpy(), page)
    np.testing.assert_allclose(tta[0].numpy(), expected, rtol=0, atol=1e-5)
    assert (tta - plain).abs().max() > 1e-2, "the turned copies must change the answer"


def test_tta_of_the_valid_network_averages_whole_passes_over_the_mirror_padded_turned_page():
    net = valid_net()
    page = np.random.default_rng(1).integers(0, 256, (61, 45), dtype=np.uint8)
    tta = predict_tiled(net, page, (52, 60), tta=True)  # several tiles, not square: (60, 52) when turned
    expected = turned_average(lambda v: whole_pass(net, v), page)
    assert np.std(expected) > 0.05, "the test needs an output that varies"
    np.testing.assert_allclose(tta[0].numpy(), expected, rtol=0, atol=1e-4)


def test_a_greyscale_page_may_be_a_2d_array_for_a_one_channel_model():
    page = np.random.default_rng(2).integers(0, 256, (40, 56), dtype=np.uint8)
    as_tensor = torch.from_numpy(page).float()[None] / 255  # (1, H, W)
    torch.testing.assert_close(predict_tiled(same_net(), page, 32), predict_tiled(same_net(), as_tensor, 32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        predict_tiled(same_net(in_channels=3), page, 32)


# ---------------------------------------------------------------------------- predict_stack


def test_predict_stack_gives_probabilities_per_slice_in_order():
    net = same_net()
    stack = np.random.default_rng(3).integers(0, 256, (3, 40, 56), dtype=np.uint8)
    probs = predict_stack(net, stack, tile_size=32, progress=False)  # overlapping tiles
    assert probs.shape == (3, 40, 56) and probs.dtype == np.float32
    assert 0 <= probs.min() and probs.max() <= 1
    for page, p in zip(stack, probs):
        np.testing.assert_allclose(p, torch.sigmoid(predict_tiled(net, page, 32))[0].numpy(), rtol=0, atol=1e-6)
    assert np.abs(probs[0] - probs[1]).max() > 0.01


def test_a_tile_that_covers_the_slice_is_one_pass_without_overlap():
    net = same_net()
    stack = np.random.default_rng(4).integers(0, 256, (2, 40, 56), dtype=np.uint8)
    probs = predict_stack(net, stack, tile_size=(40, 56), progress=False)
    for page, p in zip(stack, probs):  # the default overlap would instead pad each side with mirrored context
        np.testing.assert_allclose(p, sigmoid(whole_pass(net, page)), rtol=0, atol=1e-5)


def test_predict_stack_refuses_colour_models_and_single_slices():
    stack = np.zeros((2, 32, 32), np.uint8)
    with pytest.raises(ValueError, match="1 input channel.*isbi2012.*3 in"):
        predict_stack(same_net(in_channels=3), stack, tile_size=32)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        predict_stack(same_net(), stack[0], tile_size=32)


# ---------------------------------------------------------------------------- the CLI


def check_outputs(out: Path, stem: str, threshold: float) -> np.ndarray:
    """The written probabilities (N, H, W); checks pages, types, range and that masks match them."""
    probs, modes = read_probabilities(out / f"{stem}_probabilities.tif")
    assert probs.shape == (len(PAGES), 512, 512) and modes == {"F"} and probs.dtype == np.float32
    assert 0 <= probs.min() and probs.max() <= 1
    for k, page in enumerate(probs):
        png = Image.open(out / f"{stem}_{k:02d}_mask.png")
        assert png.mode == "L" and png.size == (512, 512)
        mask = np.asarray(png)
        assert set(np.unique(mask)) <= {0, 255}
        assert np.array_equal(mask, (page > threshold).astype(np.uint8) * 255)
    assert not (out / f"{stem}_{len(PAGES):02d}_mask.png").exists()
    return probs


def test_cli_same_padded_network_predicts_each_whole_slice_in_one_pass(setup):
    out, t = setup["root"] / "same", setup["threshold"]
    r = run_cli("--checkpoint", setup["same_ckpt"], setup["tif"], "--out", out, "--threshold", t, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "predicted 3 slices of cut.tif (512x512, tile 512x512)" in r.stdout and "cut_02_mask.png" in r.stdout
    probs = check_outputs(out, "cut", t)
    for page, p in zip(setup["stack"], probs):  # same order as the input pages
        np.testing.assert_allclose(p, sigmoid(whole_pass(setup["same"], page)), rtol=0, atol=1e-5)
    first = np.asarray(Image.open(out / "cut_00_mask.png"))
    assert 0.2 < (first == 255).mean() < 0.8, "the test needs masks with both cell and membrane"


def test_cli_valid_network_tiles_at_its_training_size_and_averages_8_views(setup):
    out = setup["root"] / "valid"
    r = run_cli("--checkpoint", setup["valid_ckpt"], setup["tif"], "--out", out, "--tta", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert f"tile {VALID_TILE}x{VALID_TILE}, averaged over 8 rotations and flips" in r.stdout
    probs = check_outputs(out, "cut", 0.5)
    expected = sigmoid(turned_average(lambda v: whole_pass(setup["valid"], v), setup["stack"][1]))  # one page: time
    np.testing.assert_allclose(probs[1], expected, rtol=0, atol=1e-5)


def test_tile_size_option_and_tiff_suffix(setup, capsys):
    tiff = setup["root"] / "other.tiff"
    write_stack(tiff, setup["stack"])
    out = setup["root"] / "tiled"
    assert main(["--checkpoint", str(setup["same_ckpt"]), str(tiff), "--out", str(out), "--tile-size", "128"]) == 0
    assert "tile 128x128" in capsys.readouterr().out
    probs = check_outputs(out, "other", 0.5)
    np.testing.assert_allclose(probs, predict_stack(setup["same"], setup["stack"], tile_size=128, progress=False),
                               rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------- learner errors


def test_colour_checkpoint_given_a_stack_is_one_clear_line(setup):
    ckpt = save_isbi_checkpoint(same_net(in_channels=3), setup["root"] / "carvana.pt", 64)
    r = run_cli("--checkpoint", ckpt, setup["tif"], "--out", setup["root"] / "nope")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "--task isbi2012" in r.stderr, r.stderr
    assert not (setup["root"] / "nope").exists()


def test_greyscale_checkpoint_given_photos_says_to_give_a_stack(setup, capsys):
    photo = setup["root"] / "photo.jpg"
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(photo)
    assert main(["--checkpoint", str(setup["same_ckpt"]), str(photo), "--out", str(setup["root"] / "p")]) == 1
    assert ".tif stack" in capsys.readouterr().err
    assert main(["--checkpoint", str(setup["same_ckpt"]), str(photo), str(setup["tif"]), "--out", "x"]) == 1
    assert "not both" in capsys.readouterr().err


def test_a_stack_that_is_not_8_bit_or_is_cut_short_is_named(setup, capsys):
    floats = write_stack(setup["root"] / "floats.tif", setup["stack"].astype(np.float32) / 255)
    out = setup["root"] / "bad"
    assert main(["--checkpoint", str(setup["same_ckpt"]), str(floats), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "floats.tif" in err and "8-bit" in err
    data = setup["tif"].read_bytes()
    cut = setup["root"] / "cut_short.tif"
    for fraction in (0.5, 0.9):  # pages missing; the last page's pixels missing
        cut.write_bytes(data[:int(len(data) * fraction)])
        assert main(["--checkpoint", str(setup["same_ckpt"]), str(cut), "--out", str(out)]) == 1
        assert "cut short" in capsys.readouterr().err
    assert not out.exists(), "no outputs for a stack that could not be read"


def test_submission_with_a_stack_says_it_is_for_carvana(setup, capsys):
    argv = ["--checkpoint", str(setup["same_ckpt"]), str(setup["tif"]), "--submission", "s.csv.gz"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Carvana" in err and "_probabilities.tif" in err


def test_help_says_what_stack_mode_does(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("Stack mode", "--tile-size", "_probabilities.tif (32-bit float, one page per slice",
                   "255 = cell, 0 = membrane", "8 rotations and flips"):
        assert phrase in text, phrase
