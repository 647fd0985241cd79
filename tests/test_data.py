"""The Carvana data layer: the toy set on disk, CarvanaDataset on toy and real files, split_cars, transforms."""
from __future__ import annotations

import csv
import filecmp
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_utils import (CarvanaDataset, ensure_toy_carvana, eval_transform, make_toy_carvana, rle_decode,
                          split_cars, train_transform)
from course_utils.data import GridElastic, split_summary
from course_utils.data.toy_carvana import MAKES
from course_utils.data.transforms import paper_sigma

SIZE = (64, 96)  # small pictures keep these tests fast


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    """Six cars (one per make) x 16 angles at 64 x 96."""
    return make_toy_carvana(tmp_path_factory.mktemp("data") / "toy_carvana", n_cars=6, image_size=SIZE, seed=3)


@pytest.fixture()
def toy_copy(toy, tmp_path) -> Path:
    """A private copy of the toy set that a test may damage."""
    return Path(shutil.copytree(toy, tmp_path / "toy_carvana"))


def metadata(root: Path) -> list[dict]:
    with open(root / "metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- the toy set on disk
def test_toy_layout_is_kaggles(toy):
    images = sorted(p.name for p in (toy / "train").iterdir())
    masks = sorted(p.name for p in (toy / "train_masks").iterdir())
    assert len(images) == len(masks) == 6 * 16
    assert all(re.fullmatch(r"[0-9a-f]{12}_(0[1-9]|1[0-6])\.jpg", n) for n in images)
    assert masks == sorted(n[:-4] + "_mask.gif" for n in images)
    cars = {n[:12] for n in images}
    assert len(cars) == 6 and all(sum(n.startswith(c) for n in images) == 16 for c in cars)
    assert (toy / ".complete").is_file()


def test_toy_files_have_the_real_formats(toy):
    name = sorted((toy / "train").iterdir())[5].stem
    with Image.open(toy / "train" / f"{name}.jpg") as im:
        assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (SIZE[1], SIZE[0]))
    with Image.open(toy / "train_masks" / f"{name}_mask.gif") as gif:
        assert (gif.format, gif.mode, gif.size) == ("GIF", "P", (SIZE[1], SIZE[0]))
        assert gif.getpalette()[:6] == [0, 0, 0, 255, 255, 255]  # index 0 black, 1 white
        assert set(np.unique(np.asarray(gif)).tolist()) == {0, 1}


def test_csv_files_have_kaggles_headers_and_rows(toy):
    with open(toy / "train_masks.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["img", "rle_mask"]
    assert sorted(r[0] for r in rows[1:]) == sorted(p.name for p in (toy / "train").iterdir())
    meta = metadata(toy)
    assert list(meta[0]) == ["id", "year", "make", "model", "trim1", "trim2"]
    assert sorted(r["id"] for r in meta) == sorted({r[0][:12] for r in rows[1:]})
    assert {r["make"] for r in meta} == set(MAKES)  # six cars: one of each make
    assert all(r["model"] in MAKES[r["make"]]["models"] and 2000 < int(r["year"]) < 2030 for r in meta)


def test_csv_rle_matches_every_gif(toy):
    with open(toy / "train_masks.csv", newline="") as f:
        for row in csv.DictReader(f):
            gif = np.asarray(Image.open(toy / "train_masks" / row["img"].replace(".jpg", "_mask.gif")))
            np.testing.assert_array_equal(rle_decode(row["rle_mask"], gif.shape), gif)


def _bbox(mask: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(mask)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def test_views_and_makes_have_car_proportions(toy):
    """Side views are long and low, front views short and tall; vans are taller than coupes."""
    ds = CarvanaDataset(toy)
    side_ratio = {}
    for row in metadata(toy):
        front = ds.load(ds.ids.index(f"{row['id']}_01"))[1]
        side = ds.load(ds.ids.index(f"{row['id']}_05"))[1]
        (hf, wf), (hs, ws) = _bbox(front), _bbox(side)
        assert ws / hs > 1.4 * (wf / hf), row
        side_ratio[MAKES[row["make"]]["style"]] = hs / ws
    assert side_ratio["van"] > 1.05 * side_ratio["coupe"]
    assert side_ratio["suv"] > side_ratio["sedan"]


def test_masks_cover_a_car_not_the_studio(toy):
    """Every mask covers a car-sized part of the picture and none of the wall's corner."""
    ds = CarvanaDataset(toy)
    for i in range(0, len(ds), 7):
        image, mask = ds.load(i)
        grey = image.astype(float).mean(2)
        top_left = grey[: SIZE[0] // 5, : SIZE[1] // 5]  # a corner of bare wall, never the car
        assert mask[: SIZE[0] // 5, : SIZE[1] // 5].sum() == 0
        assert top_left.mean() > 150
        assert 0.05 < mask.mean() < 0.45, (ds.ids[i], mask.mean())


def test_same_seed_same_bytes(tmp_path):
    a = make_toy_carvana(tmp_path / "a", n_cars=2, image_size=(40, 60), seed=7)
    b = make_toy_carvana(tmp_path / "b", n_cars=2, image_size=(40, 60), seed=7)
    c = make_toy_carvana(tmp_path / "c", n_cars=2, image_size=(40, 60), seed=8)
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert len(files) == 2 * 16 * 2 + 4
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert mismatch == [] and errors == []
    assert sorted(p.name for p in (c / "train").iterdir()) != sorted(p.name for p in (a / "train").iterdir())


def best_global_threshold_dice(root: Path) -> float:
    """Mean per-image Dice of the best single grey-level threshold for the whole set, either polarity."""
    fg, bg = [], []
    for image_path in sorted((root / "train").glob("*.jpg")):
        grey = np.asarray(Image.open(image_path).convert("L"))
        mask = np.asarray(Image.open(root / "train_masks" / f"{image_path.stem}_mask.gif")).astype(bool)
        fg.append(np.bincount(grey[mask], minlength=256))
        bg.append(np.bincount(grey[~mask], minlength=256))
    fg, bg = np.array(fg, float), np.array(bg, float)  # (images, 256) grey-level histograms
    pos = fg.sum(1, keepdims=True)
    dark = np.cumsum(fg, 1), np.cumsum(bg, 1)  # predict "car" where grey <= t: (TP, FP) per t
    bright = pos - dark[0], bg.sum(1, keepdims=True) - dark[1]  # predict "car" where grey > t
    return max(float((2 * tp / (tp + fp + pos)).mean(0).max()) for tp, fp in (dark, bright))


def test_no_single_brightness_threshold_finds_the_cars(tmp_path):
    """White cars are as bright as the wall and black ones as dark as tyres, shadow and lettering."""
    root = make_toy_carvana(tmp_path / "toy", n_cars=12, image_size=(160, 240), seed=0)
    dice = best_global_threshold_dice(root)
    assert 0.3 < dice < 0.75, f"a global threshold reaches Dice {dice:.3f}; a U-Net should be needed"
    coverage = [np.asarray(Image.open(p)).mean() for p in (root / "train_masks").iterdir()]
    assert 0.1 < np.mean(coverage) < 0.35 and min(coverage) > 0.05 and max(coverage) < 0.45


def test_ensure_makes_once_and_remakes_incomplete_sets(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UNET_COURSE_DATA", str(tmp_path / "data"))
    root = ensure_toy_carvana(n_cars=2, image_size=(32, 48))
    assert root == tmp_path / "data" / "toy_carvana"
    out = capsys.readouterr().out
    assert "Generating the toy Carvana" in out and str(root) in out and out.count("\n") == 1
    assert ensure_toy_carvana(n_cars=2, image_size=(32, 48)) == root
    assert capsys.readouterr().out == ""  # present and whole: nothing to do
    (root / ".complete").unlink()  # as if a run had been killed half-way
    next((root / "train").iterdir()).unlink()
    ensure_toy_carvana(n_cars=2, image_size=(32, 48))
    assert "Generating" in capsys.readouterr().out
    assert len(list((root / "train").iterdir())) == 32 and (root / ".complete").is_file()
    ensure_toy_carvana(n_cars=3, image_size=(32, 48))  # other settings: redrawn
    assert len(list((root / "train").iterdir())) == 48
    assert not [p for p in root.parent.iterdir() if "partial" in p.name]


def test_toy_maker_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "carvana" / "train").mkdir(parents=True)
    (tmp_path / "carvana" / "train" / "precious.jpg").write_bytes(b"not ours")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        make_toy_carvana(tmp_path / "carvana", n_cars=1, image_size=(32, 48))
    assert (tmp_path / "carvana" / "train" / "precious.jpg").read_bytes() == b"not ours"


# ----------------------------------------------------------------------------- CarvanaDataset
def test_dataset_items_are_float_tensors(toy):
    ds = CarvanaDataset(toy)
    assert len(ds) == 96 and ds.root == toy and ds.ids == sorted(ds.ids)
    image, mask = ds[3]
    assert image.shape == (3, *SIZE) and image.dtype == torch.float32
    assert mask.shape == (1, *SIZE) and mask.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1 and image.max() > 0.5
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    gif = np.asarray(Image.open(ds.mask_path(3)))
    np.testing.assert_array_equal(mask[0].numpy(), gif)
    assert ds.image_path(3) == toy / "train" / f"{ds.ids[3]}.jpg"
    assert ds.mask_path(3) == toy / "train_masks" / f"{ds.ids[3]}_mask.gif"


def test_dataset_takes_ids_and_transform(toy):
    ids = sorted(p.stem for p in (toy / "train").iterdir())[:5]
    seen = []

    def transform(image, mask):
        seen.append((image.dtype, image.shape, mask.dtype, set(np.unique(mask).tolist()) <= {0, 1}))
        return {"image": image[::2, ::2], "mask": mask[::2, ::2]}

    ds = CarvanaDataset(toy, ids=ids, transform=transform)
    assert ds.ids == ids
    image, mask = ds[0]
    assert image.shape == (3, SIZE[0] // 2, SIZE[1] // 2) and mask.shape == (1, SIZE[0] // 2, SIZE[1] // 2)
    assert seen == [(np.uint8, (*SIZE, 3), np.uint8, True)]


def test_cache_keeps_decoded_arrays(toy_copy):
    ds = CarvanaDataset(toy_copy, cache=True)
    first = ds[0]
    ds.image_path(0).unlink()  # a cached item no longer needs its file
    again = ds[0]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    with pytest.raises(FileNotFoundError):
        CarvanaDataset(toy_copy, ids=ds.ids[:1])


def test_png_masks_in_0_255_are_read_as_0_1(toy_copy):
    ds = CarvanaDataset(toy_copy)
    gif_path = ds.mask_path(0)
    mask = np.asarray(Image.open(gif_path))
    Image.fromarray(mask * 255).save(gif_path.with_suffix(".png"))
    gif_path.unlink()
    ds = CarvanaDataset(toy_copy)
    assert ds.mask_path(0).suffix == ".png"
    np.testing.assert_array_equal(ds[0][1][0].numpy(), mask)


def test_missing_folder_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        CarvanaDataset(tmp_path / "nowhere")
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message
    assert "ensure_toy_carvana()" in message and "python -m course_utils.data download carvana" in message
    with pytest.raises(FileNotFoundError, match="ensure_toy_carvana"):
        split_cars(tmp_path / "nowhere")


def test_missing_mask_names_both_files(toy_copy):
    name = sorted((toy_copy / "train").iterdir())[4].stem
    (toy_copy / "train_masks" / f"{name}_mask.gif").unlink()
    with pytest.raises(FileNotFoundError) as err:
        CarvanaDataset(toy_copy)
    assert str(toy_copy / "train" / f"{name}.jpg") in str(err.value)
    assert str(toy_copy / "train_masks" / f"{name}_mask.gif") in str(err.value)


def test_size_mismatch_names_files_and_sizes(toy_copy):
    ds = CarvanaDataset(toy_copy)
    Image.open(ds.image_path(2)).resize((50, 30)).save(ds.image_path(2))
    with pytest.raises(ValueError) as err:
        ds[2]
    message = str(err.value)
    assert str(ds.image_path(2)) in message and str(ds.mask_path(2)) in message
    assert "50x30" in message and f"{SIZE[1]}x{SIZE[0]}" in message


def test_bad_mask_values_are_named(toy_copy):
    ds = CarvanaDataset(toy_copy)
    bad = np.asarray(Image.open(ds.mask_path(1))) * 255  # a {0, 255} GIF: not Kaggle's {0, 1}
    gif = Image.frombytes("P", (bad.shape[1], bad.shape[0]), bad.tobytes())
    gif.putpalette([0, 0, 0] * 255 + [255, 255, 255])
    gif.save(ds.mask_path(1), optimize=False)
    with pytest.raises(ValueError) as err:
        ds[1]
    assert str(ds.mask_path(1)) in str(err.value) and "[0, 255]" in str(err.value)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_jpeg_is_named(toy_copy, damage):
    ds = CarvanaDataset(toy_copy)
    data = ds.image_path(0).read_bytes()
    ds.image_path(0).write_bytes(b"this is not a jpeg" if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(OSError) as err:
        ds[0]
    assert str(ds.image_path(0)) in str(err.value) and "damaged" in str(err.value)


def test_corrupt_gif_is_named(toy_copy):
    ds = CarvanaDataset(toy_copy)
    ds.mask_path(0).write_bytes(b"GIF89a broken")
    with pytest.raises(OSError) as err:
        ds[0]
    assert str(ds.mask_path(0)) in str(err.value)


def test_real_samples_load_at_full_size(real_carvana):
    ds = CarvanaDataset(real_carvana)
    assert len(ds) == 4 and "0cdf5b5d0ce1_04" in ds.ids
    for i in range(len(ds)):
        image, mask = ds[i]
        assert image.shape == (3, 1280, 1918) and mask.shape == (1, 1280, 1918)
        assert set(mask.unique().tolist()) == {0.0, 1.0}
        assert 0.1 < mask.mean() < 0.45  # a car fills a sixth to a quarter of a Carvana photo
        inside, outside = image[:, mask[0] > 0].mean(), image[:, mask[0] == 0].mean()
        assert abs(inside - outside) > 0.01 and image.max() <= 1


def test_real_samples_through_eval_transform(real_carvana):
    ds = CarvanaDataset(real_carvana, transform=eval_transform((320, 480)))
    image, mask = ds[1]
    assert image.shape == (3, 320, 480) and set(mask.unique().tolist()) == {0.0, 1.0}
    full = np.asarray(Image.open(ds.mask_path(1)))
    assert abs(mask.mean().item() - full.mean()) < 0.01


# ----------------------------------------------------------------------------- split_cars
def test_split_keeps_cars_whole_and_is_deterministic(toy):
    train, val = split_cars(toy, val_fraction=0.34, seed=1)
    cars_train, cars_val = {i[:12] for i in train}, {i[:12] for i in val}
    assert cars_train.isdisjoint(cars_val) and len(cars_val) == 2 and len(cars_train) == 4
    assert len(val) == 2 * 16 and sorted(train + val) == CarvanaDataset(toy).ids
    assert train == sorted(train) and val == sorted(val)
    assert split_cars(toy, val_fraction=0.34, seed=1) == (train, val)
    others = {tuple(split_cars(toy, val_fraction=0.34, seed=s)[1]) for s in range(6)}
    assert len(others) > 1  # the seed matters
    assert len(split_cars(toy, val_fraction=0.01)[1]) == 16  # at least one car on each side
    assert len(split_cars(toy, val_fraction=0.99)[0]) == 16


def test_split_by_make_holds_out_whole_makes(tmp_path):
    root = make_toy_carvana(tmp_path / "toy", n_cars=12, image_size=(32, 48), seed=5)
    make_of = {r["id"]: r["make"] for r in metadata(root)}
    train, val = split_cars(root, val_fraction=0.3, by="make", seed=2)
    makes_train, makes_val = {make_of[i[:12]] for i in train}, {make_of[i[:12]] for i in val}
    assert makes_val and makes_train and makes_train.isdisjoint(makes_val)
    assert {i[:12] for i in train}.isdisjoint({i[:12] for i in val})
    assert split_cars(root, val_fraction=0.3, by="make", seed=2) == (train, val)


@pytest.mark.parametrize("kwargs,words", [
    (dict(val_fraction=0), "between 0 and 1"),
    (dict(val_fraction=1.5), "between 0 and 1"),
    (dict(by="image"), "'car' or 'make'"),
])
def test_split_rejects_bad_arguments(toy, kwargs, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        split_cars(toy, **kwargs)


def test_split_needs_two_cars(tmp_path):
    root = make_toy_carvana(tmp_path / "one", n_cars=1, image_size=(32, 48))
    with pytest.raises(ValueError, match="at least 2"):
        split_cars(root)


# ----------------------------------------------------------------------------- transforms
def _striped_pair(rng) -> tuple[np.ndarray, np.ndarray]:
    """A mask with an asymmetric shape, and an image that shows the mask in every channel."""
    mask = np.zeros((90, 130), np.uint8)
    mask[20:70, 10:60] = 1
    mask[40:50, 60:120] = 1
    image = np.repeat(mask[..., None] * 200 + 30, 3, axis=2).astype(np.uint8)
    return image + rng.integers(0, 10, image.shape, dtype=np.uint8), mask


def test_train_transform_keeps_masks_binary_and_aligned():
    rng = np.random.default_rng(0)
    t = train_transform((64, 96), seed=0)
    flipped = 0
    for _ in range(40):
        image, mask = _striped_pair(rng)
        out = t(image=image, mask=mask)
        assert out["image"].shape == (64, 96, 3) and out["image"].dtype == np.uint8
        assert out["mask"].shape == (64, 96) and set(np.unique(out["mask"]).tolist()) <= {0, 1}
        grey = out["image"].astype(float).mean(2)
        seen = grey > (grey.max() + grey.min()) / 2
        agree = (seen == out["mask"].astype(bool)).mean()
        assert agree > 0.95, agree  # the same geometry moved image and mask (edges may differ)
        flipped += out["mask"][:, :48].sum() < out["mask"][:, 48:].sum()  # the wide part went left
    assert 5 < flipped < 35  # horizontal flips happen about half the time


def test_eval_transform_only_resizes():
    image, mask = _striped_pair(np.random.default_rng(1))
    a, b = eval_transform((45, 65))(image=image, mask=mask), eval_transform((45, 65))(image=image, mask=mask)
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["mask"], b["mask"])
    assert a["mask"].shape == (45, 65) and set(np.unique(a["mask"]).tolist()) == {0, 1}
    np.testing.assert_array_equal(a["mask"], mask[::2, ::2][:45, :65])


def test_dataset_with_train_transform(toy):
    ds = CarvanaDataset(toy, transform=train_transform((32, 48), seed=0))
    for i in range(0, len(ds), 10):
        image, mask = ds[i]
        assert image.shape == (3, 32, 48) and mask.shape == (1, 32, 48)
        assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_a_blurring_transform_is_reported(toy):
    def linear(image, mask):
        return {"image": image, "mask": mask * 0.5}

    with pytest.raises(ValueError, match="nearest-neighbour"):
        CarvanaDataset(toy, transform=linear)[0]


# ----------------------------------------------------------------------------- split report
def test_split_reports_cars_and_images_per_side(toy, capsys):
    train, val = split_cars(toy, val_fraction=0.34, seed=1, verbose=True)
    line = capsys.readouterr().out.strip()
    assert line.count("\n") == 0
    assert "train 4 cars / 64 images" in line and "val 2 cars / 32 images" in line and "33% of the cars" in line
    assert split_summary(train, val) == {"train": {"cars": 4, "images": 64}, "val": {"cars": 2, "images": 32},
                                         "shared_cars": 0}
    assert split_cars(toy, val_fraction=0.34, seed=1) == (train, val)  # the report changes nothing
    assert capsys.readouterr().out == ""
    leaky = split_summary(train[:40], train[30:] + val)  # an image-level split shares cars
    assert leaky["shared_cars"] >= 1


# ----------------------------------------------------------------------------- the paper's elastic deformation
def _blobs(rng, shape=(64, 96)) -> tuple[np.ndarray, np.ndarray]:
    """A mask of a few rectangles, and an image that shows the mask (bright on dark) plus a gradient."""
    mask = np.zeros(shape, np.uint8)
    for _ in range(4):
        y, x = rng.integers(0, shape[0] - 20), rng.integers(0, shape[1] - 30)
        mask[y:y + rng.integers(8, 20), x:x + rng.integers(10, 30)] = 1
    ramp = np.linspace(0, 40, shape[1], dtype=np.float32)[None, :]
    image = np.repeat((mask * 180 + 20 + ramp)[..., None], 3, axis=2).astype(np.uint8)
    return image, mask


def test_grid_elastic_moves_image_and_mask_together_and_keeps_masks_binary():
    rng = np.random.default_rng(0)
    t = GridElastic(grid=3, sigma=10.0, p=1.0)
    t.set_random_seed(1)
    moved = []
    for _ in range(20):
        image, mask = _blobs(rng)
        out = t(image=image, mask=mask)
        assert out["mask"].dtype == np.uint8 and set(np.unique(out["mask"]).tolist()) <= {0, 1}
        assert out["image"].shape == image.shape and out["mask"].shape == mask.shape
        seen = out["image"][..., 0].astype(float) > 110 + 20  # the bright blobs, wherever they went
        assert (seen == out["mask"].astype(bool)).mean() > 0.99  # same field for both (edges may differ)
        moved.append((out["mask"] != mask).mean())
    assert np.mean(moved) > 0.03  # and the field did move things: this test could fail


def test_grid_elastic_with_sigma_zero_changes_nothing():
    image, mask = _blobs(np.random.default_rng(2))
    out = GridElastic(sigma=0.0, p=1.0)(image=image, mask=mask)
    np.testing.assert_array_equal(out["image"], image)
    np.testing.assert_array_equal(out["mask"], mask)


def test_grid_elastic_field_has_sigma_at_the_control_points_and_is_smooth():
    t = GridElastic(grid=3, sigma=10.0, p=1.0)
    t.set_random_seed(0)
    h, w = 33, 41  # control points on pixels (0, 16, 32) x (0, 20, 40)
    fields = np.array([t.displacement(h, w) for _ in range(800)])  # (draws, 2, h, w)
    at_points = fields[:, :, ::16, ::20]  # (draws, 2, 3, 3)
    assert np.allclose(at_points.std(0), 10.0, rtol=0.12), at_points.std(0)
    assert abs(at_points.mean()) < 1.0
    assert fields[:, :, 8, 10].std() < 0.8 * 10.0  # between control points the field averages them
    step = np.abs(np.diff(fields, axis=3)).max()
    assert step < 10.0 * 10 / (w / 2)  # smooth: no jumps from pixel to pixel


def test_grid_elastic_displaces_in_the_stated_direction():
    """A constant field (every control point +3 px in x) shows input pixel x + 3 at output x."""
    t = GridElastic(grid=3, sigma=1.0, p=1.0)
    t.random_generator = type("Fixed", (), {"normal": lambda self, loc, scale, size: np.stack(
        [np.full(size[1:], 3.0), np.zeros(size[1:])])})()
    image = np.tile(np.arange(96, dtype=np.uint8)[None, :, None], (64, 1, 3))
    out = t(image=image, mask=(image[..., 0] % 2).astype(np.uint8))
    np.testing.assert_array_equal(out["image"][:, :90, 0], image[:, 3:93, 0])
    np.testing.assert_array_equal(out["mask"][:, :90], image[:, 3:93, 0] % 2)


def test_train_transform_has_the_elastic_deformation_and_is_seeded():
    t = train_transform((64, 96), seed=3)
    elastic = [tr for tr in t.transforms if isinstance(tr, GridElastic)]
    assert len(elastic) == 1 and elastic[0].grid == 3 and elastic[0].sigma == paper_sigma((64, 96)) == 1.25
    assert paper_sigma((512, 512)) == 10.0
    image, mask = _blobs(np.random.default_rng(4))
    again = train_transform((64, 96), seed=3)
    for _ in range(5):
        a, b = t(image=image, mask=mask), again(image=image, mask=mask)
        assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["mask"], b["mask"])
    with pytest.raises(ValueError, match="grid of at least 2"):
        GridElastic(grid=1)


def test_car_photo_is_the_datasets_item_and_defaults_to_the_toy_set(toy, tmp_path, monkeypatch):
    """Lessons 00-03 look at a photo with car_photo before lesson 05 teaches CarvanaDataset."""
    from course_utils import car_photo

    image, mask = car_photo(3, toy)
    want_image, want_mask = CarvanaDataset(toy)[3]
    assert torch.equal(image, want_image) and torch.equal(mask, want_mask)
    assert image.shape == (3, *SIZE) and set(mask.unique().tolist()) <= {0.0, 1.0}
    monkeypatch.setenv("UNET_COURSE_DATA", str(tmp_path))  # no real Carvana there: the toy set is drawn
    image, mask = car_photo(0)
    assert image.shape[0] == 3 and (tmp_path / "toy_carvana" / "train").is_dir()


def test_split_by_image_shares_nearly_every_car(toy):
    """The wrong split lessons 05 and 06 measure: photos at random, so cars land on both sides."""
    from course_utils import split_by_image

    ids = sorted(p.stem for p in (toy / "train").glob("*.jpg"))
    train, val = split_by_image(list(reversed(ids)), 0.25, seed=1)
    assert sorted(train + val) == ids and len(val) == round(0.25 * len(ids))
    assert sorted(split_by_image(ids, 0.25, seed=1)[1]) == sorted(val)  # the same split in any order of the ids
    assert split_summary(train, val)["shared_cars"] == 6  # all six cars on both sides
