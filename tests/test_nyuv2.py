"""NYU Depth V2: the mapping read from the real metadata files, the toy set in the real formats,
NYUv2Dataset's items, its lazy HDF5 handle, and its errors."""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import albumentations as A
import cv2
import h5py
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from course_utils.data import (IGNORE_INDEX, NYUv2Dataset, ensure_toy_nyuv2, label_frequencies, make_toy_nyuv2,
                               nyuv2_class_names, train_transform)
from course_utils.data.__main__ import main as cli
from course_utils.data.nyuv2 import read_class_mapping
from course_utils.data.toy_nyuv2 import CLASS_NAMES_13, CLASS_NAMES_40, RAW_IDS
from course_utils.environment import has_dataset

N_IMAGES = 12
META = ("splits.mat", "classMapping40.mat", "class13Mapping.mat")
README_13 = ["bed", "books", "ceiling", "chair", "floor", "furniture", "objects", "picture", "sofa", "table", "tv",
             "wall", "window"]  # ../shared/real_samples/README.md


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    """Twelve rooms at the default 96 x 128."""
    return make_toy_nyuv2(tmp_path_factory.mktemp("data") / "toy_nyuv2", n_images=N_IMAGES, seed=3)


@pytest.fixture()
def toy_copy(toy, tmp_path) -> Path:
    return Path(shutil.copytree(toy, tmp_path / "toy_nyuv2"))


@pytest.fixture(scope="module")
def frames(toy) -> dict[str, np.ndarray]:
    """Every toy frame as (N, H, W, ...) arrays, read with h5py and turned back to MATLAB's (H, W) order."""
    with h5py.File(toy / "nyu_depth_v2_labeled.mat", "r") as f:
        return dict(images=f["images"][:].transpose(0, 3, 2, 1), depths=f["depths"][:].transpose(0, 2, 1),
                    labels=f["labels"][:].transpose(0, 2, 1))


def write_labeled(path: Path, n: int, height: int = 6, width: int = 8, raw: int = 21) -> None:
    """A minimal labeled file in the real layout: n frames of (height, width), every pixel raw id `raw`."""
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros((n, 3, width, height), np.uint8)
        f["depths"] = np.ones((n, width, height), np.float32)
        f["labels"] = np.full((n, width, height), raw, np.uint16)


# ----------------------------------------------------------------------------- the real metadata files
def test_real_mapping_is_read_from_the_files(real_nyuv2_meta):
    meta = real_nyuv2_meta
    lut13, names13 = read_class_mapping(meta, 13)
    lut40, names40 = read_class_mapping(meta, 40)
    assert names13 == README_13 == nyuv2_class_names(meta, 13)
    assert len(names40) == 40 and names40[:2] == ["wall", "floor"] and names40[-1] == "otherprop"
    assert lut13.shape == lut40.shape == (895,) and lut13[0] == lut40[0] == 0  # raw 0 = unlabeled stays 0
    assert lut40[1:].min() >= 1 and lut40.max() == 40 and lut13[1:].min() >= 1 and lut13.max() == 13
    m40 = scipy.io.loadmat(meta / "classMapping40.mat")
    assert np.array_equal(lut40[1:], m40["mapClass"].ravel())
    labels13 = scipy.io.loadmat(meta / "class13Mapping.mat")["classMapping13"][0, 0]["labels13"].ravel()
    assert np.array_equal(lut13[1:], labels13[lut40[1:] - 1])  # raw -> 40 -> 13
    assert names40[lut40[21] - 1] == "wall" and names13[lut13[21] - 1] == "wall"  # raw 21 is "wall"
    assert names40[lut40[28] - 1] == "door" and names13[lut13[28] - 1] == "wall"  # doors are wall in 13 classes


def test_real_13_class_test_labels_fit_the_mapping(real_nyuv2_meta):
    meta = real_nyuv2_meta
    splits = scipy.io.loadmat(meta / "splits.mat")
    test = set(splits["testNdxs"].ravel().tolist())
    for png in sorted((meta / "test_labels_13").glob("new_nyu_class13_*.png")):
        with Image.open(png) as im:
            labels = np.asarray(im)
        assert im.mode == "L" and labels.shape == (480, 640) and labels.max() <= len(README_13)
        assert 0 in labels  # unlabeled pixels: they become IGNORE_INDEX
        assert int(png.stem.rsplit("_", 1)[1]) in test  # 1-indexed frames of the test split


def test_real_splits_and_mappings_drive_the_dataset(tmp_path, real_nyuv2_meta):
    """The real metadata next to a stand-in labeled file of 1449 frames: the split sizes and frames are NYU's."""
    meta = real_nyuv2_meta
    for name in META:
        shutil.copy(meta / name, tmp_path / name)
    write_labeled(tmp_path / "nyu_depth_v2_labeled.mat", 1449, raw=157)  # raw 157 is "bed"
    train, test = NYUv2Dataset(tmp_path, "train"), NYUv2Dataset(tmp_path, "test", num_classes=40)
    assert (len(train), len(test)) == (795, 654)
    assert [test.frame(i) for i in range(4)] == [1, 2, 9, 14] and train.frame(0) == 3
    assert not set(train.indices) & set(test.indices)
    assert train.class_names[int(train[0][1][0, 0])] == "bed" and test.class_names[int(test[0][1][0, 0])] == "bed"


def test_toy_raw_ids_mean_the_intended_classes_under_the_real_mapping(toy, real_nyuv2_meta):
    meta = real_nyuv2_meta
    for num_classes in (13, 40):
        real_lut, real_names = read_class_mapping(meta, num_classes)
        toy_lut, toy_names = read_class_mapping(toy, num_classes)
        assert toy_names == real_names
        for name, raw in RAW_IDS.items():
            assert toy_lut[raw] == real_lut[raw], (name, raw)
    lut40, names40 = read_class_mapping(meta, 40)
    assert {name: names40[lut40[raw] - 1] for name, raw in RAW_IDS.items()} == {n: n for n in RAW_IDS}
    assert tuple(names40) == CLASS_NAMES_40 and tuple(nyuv2_class_names(meta, 13)) == CLASS_NAMES_13
    real13 = scipy.io.loadmat(meta / "class13Mapping.mat")["classMapping13"][0, 0]["labels13"]
    assert np.array_equal(scipy.io.loadmat(toy / "class13Mapping.mat")["classMapping13"][0, 0]["labels13"], real13)


def test_toy_metadata_files_have_the_real_keys_dtypes_and_shapes(toy, real_nyuv2_meta):
    meta = real_nyuv2_meta
    for name in META:
        real, ours = scipy.io.loadmat(meta / name), scipy.io.loadmat(toy / name)
        assert ours["__version__"] == real["__version__"] == "1.0"  # MATLAB v5 files
        keys = [k for k in ours if not k.startswith("__")]
        assert keys, name
        for k in keys:
            assert ours[k].dtype == real[k].dtype, (name, k)
            if k not in ("trainNdxs", "testNdxs"):
                assert ours[k].shape == real[k].shape, (name, k)
    s_real = scipy.io.loadmat(meta / "class13Mapping.mat")["classMapping13"][0, 0]
    s_ours = scipy.io.loadmat(toy / "class13Mapping.mat")["classMapping13"][0, 0]
    assert s_ours.dtype.names == s_real.dtype.names
    assert all(s_ours[k].shape == s_real[k].shape and s_ours[k].dtype == s_real[k].dtype for k in s_real.dtype.names)


# ----------------------------------------------------------------------------- the toy labeled file
def test_toy_labeled_file_is_matlab_v73_with_reversed_axes(toy):
    path = toy / "nyu_depth_v2_labeled.mat"
    assert path.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    with pytest.raises(NotImplementedError):  # like the real file: scipy sends you to an HDF5 reader
        scipy.io.loadmat(path)
    with h5py.File(path, "r") as f:
        assert f.userblock_size == 512
        assert {k: (f[k].shape, f[k].dtype) for k in ("images", "depths", "labels")} == {
            "images": ((N_IMAGES, 3, 128, 96), np.uint8), "depths": ((N_IMAGES, 128, 96), np.float32),
            "labels": ((N_IMAGES, 128, 96), np.uint16)}  # (N, 3, W, H): MATLAB's (H, W, 3, N) reversed
        assert [f[k].attrs["MATLAB_class"] for k in ("images", "depths", "labels")] == [b"uint8", b"single", b"uint16"]


def test_toy_splits_are_1_indexed_disjoint_and_cover_every_frame(toy):
    s = scipy.io.loadmat(toy / "splits.mat")
    train, test = s["trainNdxs"], s["testNdxs"]
    assert train.dtype == test.dtype == np.uint16 and train.shape[1] == test.shape[1] == 1
    assert sorted(np.concatenate([train.ravel(), test.ravel()]).tolist()) == list(range(1, N_IMAGES + 1))
    assert len(train) == round(N_IMAGES * 795 / 1449)  # the real train fraction


def test_toy_labels_are_raw_ids_with_a_few_unlabeled_pixels(frames):
    labels, depths = frames["labels"], frames["depths"]
    assert set(np.unique(labels).tolist()) <= {0, *RAW_IDS.values()}
    assert 0.005 < (labels == 0).mean() < 0.15
    assert {RAW_IDS[k] for k in ("wall", "floor", "ceiling", "window", "picture")} <= set(np.unique(labels).tolist())
    assert 0.002 < (depths == 0).mean() < 0.2 and 0.5 < depths[depths > 0].min() and depths.max() < 10
    assert frames["images"].std() > 20  # not a blank picture


def test_floor_is_below_the_ceiling_and_recedes_upward(frames):
    labels, depths = frames["labels"], frames["depths"]
    rows = np.arange(labels.shape[1])[:, None]
    for lab, dep in zip(labels, depths):
        floor, ceiling = lab == RAW_IDS["floor"], lab == RAW_IDS["ceiling"]
        if floor.any() and ceiling.any():
            assert (rows * floor).sum() / floor.sum() > (rows * ceiling).sum() / ceiling.sum()
        pair = floor[:-1] & floor[1:] & (dep[:-1] > 0) & (dep[1:] > 0)  # floor pixels above floor pixels
        assert pair.sum() > 50 and (dep[:-1][pair] > dep[1:][pair]).mean() > 0.99


def test_furniture_stands_in_front_of_the_walls(frames):
    wall = RAW_IDS["wall"]
    furniture = [RAW_IDS[k] for k in ("bed", "sofa", "table", "chair", "cabinet", "night stand")]
    nearer = []
    for lab, dep in zip(frames["labels"], frames["depths"]):
        a, b = lab[:, :-1], lab[:, 1:]  # horizontal neighbours where a wall meets furniture
        da, db = dep[:, :-1], dep[:, 1:]
        ok = (da > 0) & (db > 0)
        left = (a == wall) & np.isin(b, furniture) & ok
        right = np.isin(a, furniture) & (b == wall) & ok
        nearer += list(db[left] <= da[left] + 0.02) + list(da[right] <= db[right] + 0.02)
    assert len(nearer) > 20 and np.mean(nearer) > 0.95


def test_same_seed_same_frames(tmp_path):
    a = make_toy_nyuv2(tmp_path / "a", n_images=3, seed=5, image_size=(32, 48))
    b = make_toy_nyuv2(tmp_path / "b", n_images=3, seed=5, image_size=(32, 48))
    c = make_toy_nyuv2(tmp_path / "c", n_images=3, seed=6, image_size=(32, 48))
    read = lambda root: h5py.File(root / "nyu_depth_v2_labeled.mat", "r")["images"][:]  # noqa: E731
    assert np.array_equal(read(a), read(b)) and not np.array_equal(read(a), read(c))
    assert (a / "splits.mat").read_bytes()[128:] == (b / "splits.mat").read_bytes()[128:]  # past the dated header


# ----------------------------------------------------------------------------- NYUv2Dataset
def test_segmentation_items(toy):
    for num_classes in (13, 40):
        ds = NYUv2Dataset(toy, "train", num_classes=num_classes)
        image, seg = ds[0]
        assert image.shape == (3, 96, 128) and image.dtype == torch.float32 and 0 <= image.min() < image.max() <= 1
        assert seg.shape == (96, 128) and seg.dtype == torch.int64
        values = set(seg.unique().tolist())
        assert IGNORE_INDEX in values and values - {IGNORE_INDEX} <= set(range(num_classes))
        assert len(ds.class_names) == num_classes and len(ds) == round(N_IMAGES * 795 / 1449)
    test = NYUv2Dataset(toy, "test")
    assert len(test) + len(ds) == N_IMAGES and not set(test.indices) & set(ds.indices)


def test_targets_follow_the_mapping_files(toy, frames):
    ds = NYUv2Dataset(toy, "test", num_classes=13)
    _, seg = ds[1]
    raw = frames["labels"][ds.frame(1) - 1]
    names = np.array(ds.class_names + ["unlabeled"])
    got = names[np.where(seg.numpy() == IGNORE_INDEX, len(ds.class_names), seg.numpy())]
    assert (got[raw == RAW_IDS["wall"]] == "wall").all() and (got[raw == RAW_IDS["door"]] == "wall").all()
    assert (got[raw == 0] == "unlabeled").all() and (got[raw == RAW_IDS["television"]] == "tv").all()


def test_depth_and_both_tasks(toy, frames):
    depth_ds = NYUv2Dataset(toy, "train", tasks="depth")
    image, depth = depth_ds[2]
    assert depth.shape == (1, 96, 128) and depth.dtype == torch.float32
    assert np.array_equal(depth[0].numpy(), frames["depths"][depth_ds.frame(2) - 1])  # metres, 0 = invalid
    both = NYUv2Dataset(toy, "train", tasks=("seg", "depth"))
    image2, target = both[2]
    assert set(target) == {"seg", "depth"} and torch.equal(target["depth"], depth) and torch.equal(image, image2)
    assert torch.equal(target["seg"], NYUv2Dataset(toy, "train")[2][1])
    batch = next(iter(torch.utils.data.DataLoader(both, batch_size=3)))
    assert batch[0].shape == (3, 3, 96, 128) and batch[1]["seg"].shape == (3, 96, 128)
    assert batch[1]["depth"].shape == (3, 1, 96, 128)


def test_transform_moves_image_labels_and_depth_together(toy):
    plain = NYUv2Dataset(toy, "train", tasks=("seg", "depth"))
    flipped = NYUv2Dataset(toy, "train", tasks=("seg", "depth"), transform=A.Compose([A.HorizontalFlip(p=1)]))
    (x, t), (fx, ft) = plain[0], flipped[0]
    assert torch.equal(fx, x.flip(-1)) and torch.equal(ft["seg"], t["seg"].flip(-1))
    assert torch.equal(ft["depth"], t["depth"].flip(-1))
    pad = A.Compose([A.PadIfNeeded(112, 128, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0)])
    px, pt = NYUv2Dataset(toy, "train", tasks=("seg", "depth"), transform=pad)[0]
    padded = (px == 0).all(0).all(1)  # the 16 rows the transform added
    assert px.shape == (3, 112, 128) and padded.sum() == 16
    assert (pt["seg"][padded] == IGNORE_INDEX).all() and (pt["depth"][:, padded] == 0).all()  # unlabeled, invalid
    image, aug = NYUv2Dataset(toy, "train", tasks=("seg", "depth"), transform=train_transform((64, 96), seed=0))[0]
    assert image.shape == (3, 64, 96) and aug["seg"].shape == (64, 96) and aug["depth"].shape == (1, 64, 96)
    assert set(aug["seg"].unique().tolist()) <= set(t["seg"].unique().tolist())  # nearest: no invented classes


def test_size_resizes_labels_and_depth_by_nearest(toy):
    full = NYUv2Dataset(toy, "train", tasks=("seg", "depth"))
    small = NYUv2Dataset(toy, "train", tasks=("seg", "depth"), size=(48, 64))
    (_, t), (sx, st) = full[0], small[0]
    assert sx.shape == (3, 48, 64) and st["seg"].shape == (48, 64) and st["depth"].shape == (1, 48, 64)
    assert set(st["seg"].unique().tolist()) <= set(t["seg"].unique().tolist())
    assert set(st["depth"].unique().tolist()) <= set(t["depth"].unique().tolist())


def test_label_frequencies_count_each_class(toy):
    ds = NYUv2Dataset(toy, "train", num_classes=13)
    counts = label_frequencies(ds, chunk=4)
    segs = torch.stack([ds[i][1] for i in range(len(ds))])
    expected = torch.bincount(segs[segs != IGNORE_INDEX], minlength=13).numpy()
    assert counts.dtype == np.int64 and np.array_equal(counts, expected)
    assert counts[ds.class_names.index("wall")] == counts.max()


def test_the_file_is_opened_lazily_once_per_process(toy):
    ds = NYUv2Dataset(toy, "train", tasks=("seg", "depth"))
    assert ds._h5 is None  # nothing open until the first item (so forked workers open their own)
    first = ds[0]
    assert ds._h5 is not None and ds._h5.id.valid
    copy = pickle.loads(pickle.dumps(ds))  # what a spawned worker receives: no handle inside
    assert copy._h5 is None and torch.equal(copy[0][1]["seg"], first[1]["seg"])
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    together = [b[1]["seg"] for b in loader]
    assert torch.equal(torch.cat(together), torch.stack([ds[i][1]["seg"] for i in range(len(ds))]))
    ds.close()
    assert ds._h5 is None and torch.equal(ds[0][0], first[0])


# ----------------------------------------------------------------------------- errors a learner meets
def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        NYUv2Dataset(tmp_path / "nyuv2")
    message = str(err.value)
    assert "nyu_depth_v2_labeled.mat" in message and "python -m course_utils.data toy nyuv2" in message
    assert "python -m course_utils.data download nyuv2" in message


def test_a_missing_metadata_file_is_named(toy_copy):
    (toy_copy / "class13Mapping.mat").unlink()
    with pytest.raises(FileNotFoundError, match="class13Mapping.mat"):
        NYUv2Dataset(toy_copy)
    assert len(NYUv2Dataset(toy_copy, num_classes=40)) > 0  # 40 classes need only classMapping40.mat


@pytest.mark.parametrize("kwargs,words", [
    (dict(num_classes=20), "num_classes=20"), (dict(split="val"), "'train'"), (dict(tasks="normals"), "'depth'"),
    (dict(tasks=()), "'seg'")])
def test_bad_arguments_are_explained(toy, kwargs, words):
    with pytest.raises(ValueError, match=words):
        NYUv2Dataset(toy, **kwargs)


def test_a_damaged_or_mismatched_labeled_file_is_explained(toy_copy):
    path = toy_copy / "nyu_depth_v2_labeled.mat"
    path.write_bytes(path.read_bytes()[:5000])  # a download cut short
    with pytest.raises(OSError, match="Delete it and run the download again"):
        NYUv2Dataset(toy_copy)
    write_labeled(path, N_IMAGES - 2)  # fewer frames than splits.mat lists
    with pytest.raises(OSError, match="do not belong together"):
        NYUv2Dataset(toy_copy)


# ----------------------------------------------------------------------------- making the toy set
def test_ensure_makes_once_then_reuses_and_refuses_foreign_folders(tmp_path, capsys):
    root = ensure_toy_nyuv2(tmp_path / "toy_nyuv2", n_images=3, image_size=(32, 48))
    assert "Generating" in capsys.readouterr().out and has_dataset("toy_nyuv2", tmp_path)
    stamp = (root / "nyu_depth_v2_labeled.mat").stat().st_mtime_ns
    assert ensure_toy_nyuv2(root, n_images=3, image_size=(32, 48)) == root
    assert (root / "nyu_depth_v2_labeled.mat").stat().st_mtime_ns == stamp and capsys.readouterr().out == ""
    assert not list(tmp_path.glob(".toy_nyuv2.partial-*"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not made by make_toy_nyuv2"):
        ensure_toy_nyuv2(tmp_path / "mine", n_images=3)
    with pytest.raises(ValueError, match="n_images >= 2"):
        make_toy_nyuv2(tmp_path / "one", n_images=1)


def test_cli_draws_the_toy_nyuv2(tmp_path, capsys):
    assert cli(["toy", "nyuv2", "--root", str(tmp_path / "t"), "--n-images", "3", "--size", "32", "48"]) == 0
    assert "Toy NYUv2 ready" in capsys.readouterr().out
    assert NYUv2Dataset(tmp_path / "t", "test")[0][0].shape == (3, 32, 48)
