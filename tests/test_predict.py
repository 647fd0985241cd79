"""Predicting masks for photos and writing the Kaggle submission (course_utils.predict): the CLI
run as a subprocess on real JPEG files, the submission decoded back, and the learner's errors."""
import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from course_utils.checkpoint import save_checkpoint
from course_utils.data.transforms import eval_transform
from course_utils.model import UNet
from course_utils.predict import (main, overlay_mask, predict_image, predict_logits, read_image, read_submission,
                                  write_submission)
from course_utils.rle import rle_decode

TRAIN_SIZE = (32, 48)  # the image_size the fake checkpoint says it was trained at
SIZES = {"c_wide.jpg": (37, 53), "a_tall.jpg": (61, 45), "b_big.png": (100, 150)}  # (H, W), not name order
REPO = Path(__file__).parents[1]


def tiny_model() -> UNet:
    torch.manual_seed(0)
    model = UNet(3, 1, base_channels=4, depth=2)
    for m in model.modules():  # non-trivial BatchNorm statistics, so eval differs from train mode
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def save_run_checkpoint(model: UNet, path: Path, image_size=TRAIN_SIZE) -> Path:
    """A checkpoint in the layout course_utils.train writes (the keys predict reads, and more)."""
    state = dict(model=model.state_dict(), model_config=dict(model.config), epoch=1, best_dice=0.5, history=[],
                 config=dict(epochs=1, lr=1e-3, image_size=list(TRAIN_SIZE)))
    if image_size is not None:
        state["image_size"] = list(image_size)
    save_checkpoint(state, path)
    return path


def car_photo(h: int, w: int, seed: int) -> np.ndarray:
    """A bright ellipse on a graded backdrop with noise: structure for the network to respond to."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    car = ((y - h / 2) / (h / 3)) ** 2 + ((x - w / 2) / (w / 2.5)) ** 2 < 1
    img = np.stack([60 + 80 * y / h, 70 + 0 * x, 90 + 60 * x / w], -1) + rng.normal(0, 8, (h, w, 3))
    img[car] = [200, 40, 30]
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    model = tiny_model()
    ckpt = save_run_checkpoint(model, root / "best.pt")
    paths = []
    for seed, (name, (h, w)) in enumerate(SIZES.items()):
        Image.fromarray(car_photo(h, w, seed)).save(root / name, quality=95)
        paths.append(root / name)
    # a threshold at the first photo's median probability: masks are neither empty nor full
    probs = torch.sigmoid(predict_logits(model, read_image(paths[0]), TRAIN_SIZE))
    return dict(root=root, model=model, ckpt=ckpt, paths=paths, threshold=float(probs.median()))


def run_cli(*args, timeout=120) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "course_utils.predict", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=REPO)


def test_cli_writes_full_size_masks_overlays_and_a_submission_that_decodes_back(setup):
    out, sub = setup["root"] / "out", setup["root"] / "sub.csv.gz"
    r = run_cli("--checkpoint", setup["ckpt"], *setup["paths"], "--out", out, "--submission", sub,
                "--threshold", setup["threshold"], "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "predicted 3 images (resized to 32x48)" in r.stdout
    rows = read_submission(sub)
    assert [name for name, _ in rows] == list(SIZES), "one row per image, in the order given"
    fractions = []
    for (name, rle), path in zip(rows, setup["paths"]):
        h, w = SIZES[name]
        png = Image.open(out / f"{path.stem}_mask.png")
        assert png.mode == "L" and png.size == (w, h)
        mask = np.asarray(png)
        assert set(np.unique(mask)) <= {0, 255}
        assert np.array_equal(rle_decode(rle, (h, w)), mask // 255)
        expected = predict_image(setup["model"], read_image(path), TRAIN_SIZE, setup["threshold"])
        assert np.array_equal(mask // 255, expected), "the CLI and predict_image disagree"
        overlay = Image.open(out / f"{path.stem}_overlay.png")
        assert overlay.mode == "RGB" and overlay.size == (w, h)
        fractions.append(mask.mean() / 255)
    assert 0.1 < fractions[0] < 0.9, "the test needs masks with both car and background"


def test_logits_are_resized_before_the_threshold(setup):
    model, photo, t = setup["model"], read_image(setup["paths"][2]), setup["threshold"]
    small = eval_transform(TRAIN_SIZE)(image=photo)["image"]
    x = torch.from_numpy(small.transpose(2, 0, 1).copy()).float().div(255)[None]
    with torch.no_grad():
        logits = model(x)  # (1, 1, 32, 48)
    smooth = torch.sigmoid(F.interpolate(logits, size=photo.shape[:2], mode="bilinear", align_corners=False))[0, 0]
    blocky = F.interpolate((torch.sigmoid(logits) > t).float(), size=photo.shape[:2], mode="nearest")[0, 0]
    mask = predict_image(model, photo, TRAIN_SIZE, t)
    assert mask.shape == photo.shape[:2]
    assert np.array_equal(mask, (smooth > t).numpy().astype(np.uint8))
    assert (mask != blocky.numpy()).sum() > 20, "resizing the mask instead would give other (blocky) edges"


def test_float_tensor_input_flip_averaging_and_tiles(setup):
    model, photo = setup["model"], read_image(setup["paths"][0])
    as_tensor = torch.from_numpy(photo.transpose(2, 0, 1).copy()).float() / 255
    plain = predict_logits(model, photo, TRAIN_SIZE)
    torch.testing.assert_close(predict_logits(model, as_tensor, TRAIN_SIZE), plain)
    mirrored = predict_logits(model, np.ascontiguousarray(photo[:, ::-1]), TRAIN_SIZE).flip(-1)
    torch.testing.assert_close(predict_logits(model, photo, TRAIN_SIZE, tta=True), (plain + mirrored) / 2)
    tiled = predict_logits(model, photo, tile_size=16)
    assert tiled.shape == (1, 37, 53)
    valid = UNet(3, 1, base_channels=4, depth=2, padding="valid", batch_norm=False)
    assert predict_logits(valid, photo, TRAIN_SIZE).shape == (1, 37, 53)  # mirror context fills the margin


def test_overlay_tints_the_car_and_leaves_the_background():
    image = np.full((40, 60, 3), 100, np.uint8)
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 20:40] = 1
    out = np.asarray(overlay_mask(image, mask, color=(255, 0, 0), alpha=0.5))
    assert (out[:5, :5] == 100).all()
    assert np.abs(out[20, 30].astype(int) - [178, 50, 50]).max() <= 1  # halfway to red, inside
    assert out[10, 30].tolist() == [255, 0, 0] and out[9, 30].tolist() == [255, 0, 0]  # the outline, both sides
    assert out[12, 30].tolist() != [255, 0, 0] and out[7, 30].tolist() == [100, 100, 100]


def test_write_submission_takes_pairs_generators_or_dicts_and_plain_csv(tmp_path):
    masks = {"x_01.jpg": np.eye(3, dtype=np.uint8), "x_02.jpg": np.zeros((3, 3), np.uint8)}
    assert write_submission(((k, v) for k, v in masks.items()), tmp_path / "s.csv.gz") == 2
    with gzip.open(tmp_path / "s.csv.gz", "rt") as f:
        assert f.read() == "img,rle_mask\nx_01.jpg,1 1 5 1 9 1\nx_02.jpg,\n"
    assert write_submission(masks, tmp_path / "s.csv") == 2
    assert (tmp_path / "s.csv").read_text() == "img,rle_mask\nx_01.jpg,1 1 5 1 9 1\nx_02.jpg,\n"
    assert read_submission(tmp_path / "s.csv") == read_submission(tmp_path / "s.csv.gz")
    with pytest.raises(ValueError, match="threshold"):
        write_submission([("bad.jpg", np.full((2, 2), 0.7))], tmp_path / "bad.csv.gz")
    assert not (tmp_path / "bad.csv.gz").exists(), "no half-written file after an error"


def test_real_photos_full_size_tiled_through_the_cli(tmp_path, real_carvana):
    photos = sorted((real_carvana / "train").glob("*.jpg"))[:2]
    ckpt = save_run_checkpoint(tiny_model(), tmp_path / "best.pt")
    photos = photos[::-1]  # not sorted: the rows must follow the arguments
    r = run_cli("--checkpoint", ckpt, *photos, "--out", tmp_path / "out", "--submission", tmp_path / "s.csv.gz",
                "--tiled", 128, "--batch-size", 16, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    rows = read_submission(tmp_path / "s.csv.gz")
    assert [name for name, _ in rows] == [p.name for p in photos]
    for (name, rle), photo in zip(rows, photos):
        mask = np.asarray(Image.open(tmp_path / "out" / f"{photo.stem}_mask.png"))
        assert mask.shape == (1280, 1918)
        assert np.array_equal(rle_decode(rle, (1280, 1918)), mask // 255)


# ---------------------------------------------------------------------------- learner errors


def test_missing_checkpoint_says_how_to_train_one(setup, tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "nope.pt"), str(setup["paths"][0]), "--out", str(tmp_path)]) == 1
    assert "python -m course_utils.train" in capsys.readouterr().err


def test_unreadable_image_is_named_and_leaves_no_submission(setup, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    sub = tmp_path / "s.csv.gz"
    argv = ["--checkpoint", str(setup["ckpt"]), str(setup["paths"][0]), str(broken), "--submission", str(sub)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "JPEG or PNG" in err
    assert not sub.exists()
    assert main(["--checkpoint", str(setup["ckpt"]), str(tmp_path / "missing.jpg"), "--submission", str(sub)]) == 1
    assert "no image at" in capsys.readouterr().err


def test_no_images_or_nothing_to_write_is_a_usage_error(setup, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--checkpoint", str(setup["ckpt"]), "--out", "x"])
    assert e.value.code == 2 and "no images given" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(setup["ckpt"]), str(setup["paths"][0])])
    assert "--out DIR" in capsys.readouterr().err


def test_checkpoint_without_image_size_asks_for_one(setup, tmp_path, capsys):
    ckpt = save_run_checkpoint(setup["model"], tmp_path / "old.pt", image_size=None)
    photo = str(setup["paths"][0])
    assert main(["--checkpoint", str(ckpt), photo, "--out", str(tmp_path / "o")]) == 1
    assert "--image-size H W" in capsys.readouterr().err
    assert main(["--checkpoint", str(ckpt), photo, "--out", str(tmp_path / "o"), "--image-size", "32", "48"]) == 0
    assert Image.open(tmp_path / "o" / "c_wide_mask.png").size == (53, 37)


def test_bad_tile_size_names_sizes_that_work(setup, tmp_path, capsys):
    argv = ["--checkpoint", str(setup["ckpt"]), str(setup["paths"][0]), "--out", str(tmp_path), "--tiled", "30"]
    assert main(argv) == 1
    assert "nearest tile sizes that work: 28 or 32" in capsys.readouterr().err
