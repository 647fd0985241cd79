"""Kaggle Notebooks (issue 16): the competition's attached zips are found under the input folder and
unpacked once into the work root, without a network, a token or the kaggle package; attached data
sets are read where they lie. The input folder is a fake one built from the real Carvana samples."""
from __future__ import annotations

import csv
import io
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import course_utils
from course_utils import CarvanaDataset, split_cars
from course_utils.data import download_carvana, ensure_isbi2012, rle_encode
from course_utils.data.carvana_files import read_mask
from course_utils.data.kaggle_input import attached_dataset, find_attached
from course_utils.environment import dataset_dir, has_dataset, profile


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def kaggle_input(real_carvana, tmp_path) -> Path:
    """/kaggle/input/carvana-image-masking-challenge/ as a notebook sees it: the competition's zips
    (the four the course reads, and one it does not), made from the real samples."""
    images = sorted((real_carvana / "train").glob("*.jpg"))
    masks = sorted((real_carvana / "train_masks").glob("*.gif"))
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["img", "rle_mask"])
    writer.writerows([m.name.replace("_mask.gif", ".jpg"), rle_encode(read_mask(m))] for m in masks)
    cars = sorted({p.stem.split("_")[0] for p in images})
    metadata = "id,year,make,model,trim1,trim2\n" + "".join(f"{c},2016,Make{k % 2},Model,a,b\n"
                                                               for k, c in enumerate(cars))
    folder = tmp_path / "input" / "carvana-image-masking-challenge"
    folder.mkdir(parents=True)
    zips = {"train.zip": {f"train/{p.name}": p.read_bytes() for p in images},
            "train_masks.zip": {f"train_masks/{p.name}": p.read_bytes() for p in masks},
            "train_masks.csv.zip": {"train_masks.csv": rows.getvalue().encode()},
            "metadata.csv.zip": {"metadata.csv": metadata.encode()},
            "sample_submission.csv.zip": {"sample_submission.csv": b"img,rle_mask\n"}}
    for name, members in zips.items():
        (folder / name).write_bytes(zip_of(members))
    return tmp_path / "input"


@pytest.fixture
def on_kaggle(kaggle_input, tmp_path, monkeypatch) -> Path:
    """A Kaggle-like session: the input folder above, an empty data root, a private work root, and
    no kaggle package (so nothing can be downloaded)."""
    monkeypatch.setenv("UNET_COURSE_KAGGLE_INPUT", str(kaggle_input))
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.setenv("UNET_COURSE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("UNET_COURSE_WORK", str(tmp_path / "work"))
    monkeypatch.delenv("UNET_COURSE_PROFILE")
    monkeypatch.setitem(sys.modules, "kaggle", None)
    return tmp_path / "work"


def test_attached_competition_is_found_and_unpacked_once(on_kaggle, kaggle_input, real_carvana, capsys, monkeypatch):
    before = snapshot(kaggle_input)
    competition = kaggle_input / "carvana-image-masking-challenge"
    assert attached_dataset("carvana") == competition and has_dataset("carvana")
    report = course_utils.doctor()
    assert report["kaggle"] and report["attached"] == {"carvana": str(competition)}
    assert f"attached at {competition}" in capsys.readouterr().out
    monkeypatch.setattr("course_utils.environment.has_gpu", lambda: True)
    assert profile() == "full"  # a GPU and the real data: the notebook's GPU runs the full profile

    root = dataset_dir("carvana")
    assert root == on_kaggle / "carvana" and "Unpacking Carvana" in capsys.readouterr().out
    ds = CarvanaDataset(root)
    assert len(ds) == 4
    for i, image_id in enumerate(ds.ids):
        assert ds.image_path(i).read_bytes() == (real_carvana / "train" / f"{image_id}.jpg").read_bytes()
    image, mask = ds.load(0)
    assert image.shape == (1280, 1918, 3) and set(np.unique(mask)) == {0, 1}
    assert split_cars(root, val_fraction=0.34)[1]  # metadata and ids as the loader wants them
    assert not (root / "sample_submission.csv").exists()  # only what the course reads is unpacked

    assert dataset_dir("carvana") == root and download_carvana() == root  # no second unpack, no download
    assert "Unpacking" not in capsys.readouterr().out
    assert snapshot(kaggle_input) == before  # the input folder is only read


def test_a_data_set_attached_deeper_is_read_where_it_lies(on_kaggle, kaggle_input, tmp_path):
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "real_samples"
    real = Path(os.environ.get("UNET_COURSE_REAL_SAMPLES") or default) / "isbi2012"
    if not (real / "train-labels.tif").is_file():
        pytest.skip(f"real ISBI 2012 stacks not found at {real}")
    nested = kaggle_input / "datasets" / "someone" / "isbi-2012"
    nested.parent.mkdir(parents=True)
    nested.symlink_to(real, target_is_directory=True)
    assert find_attached(("train-volume.tif", "train-labels.tif")) == nested
    assert ensure_isbi2012() == nested and not (on_kaggle / "isbi2012").exists()


def test_no_input_folder_means_nothing_attached(tmp_path, monkeypatch):
    monkeypatch.setenv("UNET_COURSE_KAGGLE_INPUT", str(tmp_path / "absent"))
    assert attached_dataset("carvana") is None and attached_dataset("toy_carvana") is None
