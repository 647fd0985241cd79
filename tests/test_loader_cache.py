"""The fast loader: CarvanaDataset(..., size=(H, W)) reads a one-time resized cache, returning what the slow path does."""
from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_utils import CarvanaDataset, eval_transform, make_toy_carvana, train_transform
from course_utils.data import build_cache, cache as cache_module
from course_utils.data.cache import ResizedCache, cache_folder

SOURCE, SIZE = (128, 192), (32, 48)  # 4x larger sources: JPEG draft mode decodes them at 1/4 scale


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return make_toy_carvana(tmp_path_factory.mktemp("data") / "toy_carvana", n_cars=2, image_size=SOURCE, seed=4)


@pytest.fixture()
def toy_copy(toy, tmp_path) -> Path:
    """A private copy (without any cache) that a test may change."""
    return Path(shutil.copytree(toy, tmp_path / "toy_carvana", ignore=shutil.ignore_patterns(".cache")))


def caches(root: Path) -> list[str]:
    return sorted(p.name for p in (root / ".cache").iterdir())


def test_cached_items_equal_the_slow_path_up_to_the_resize_method(toy_copy, capsys):
    ids = sorted(p.stem for p in (toy_copy / "train").iterdir())[3:20]
    slow = CarvanaDataset(toy_copy, ids, transform=eval_transform(SIZE))
    fast = CarvanaDataset(toy_copy, ids, transform=eval_transform(SIZE), size=SIZE)
    assert "Caching 32 Carvana images at 32x48" in capsys.readouterr().err  # the progress bar, once
    assert fast.ids == ids and len(fast) == len(slow) and fast.size == SIZE
    diffs = []
    for i in range(len(fast)):
        (a, ma), (b, mb) = slow[i], fast[i]
        assert b.shape == (3, *SIZE) and b.dtype == torch.float32 and 0 <= b.min() and b.max() <= 1
        assert mb.shape == (1, *SIZE) and mb.dtype == torch.float32
        assert torch.equal(ma, mb)  # masks: the same nearest-neighbour resize of the same GIF
        diffs.append((a - b).abs().mean().item())
    assert 0 < np.mean(diffs) < 0.02  # images: draft-mode decoding differs a little, not more


def test_cache_is_reused_and_holds_every_image_of_the_root(toy_copy, monkeypatch, capsys):
    CarvanaDataset(toy_copy, size=SIZE)
    [name] = caches(toy_copy)
    index = json.loads((toy_copy / ".cache" / name / "index.json").read_text())
    assert name.startswith("32x48-") and len(index["ids"]) == 32 and index["size"] == [32, 48]
    capsys.readouterr()

    def no_decoding(*args):
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(cache_module, "load_resized", no_decoding)
    ids = sorted(p.stem for p in (toy_copy / "train").iterdir())
    val = CarvanaDataset(toy_copy, ids[16:], size=SIZE)  # another subset: the same cache
    assert caches(toy_copy) == [name] and capsys.readouterr().err == ""
    image, mask = val.load(0)
    assert image.shape == (*SIZE, 3) and image.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    image[:] = 0  # a copy: the cache itself is read-only and unchanged
    assert val.load(0)[0].any()


def test_cache_is_rebuilt_when_a_file_or_the_size_changes(toy_copy):
    ds = CarvanaDataset(toy_copy, size=SIZE)
    [old] = caches(toy_copy)
    before = ds[5][0]
    picture = np.asarray(Image.open(ds.image_path(5))).copy()
    picture[:] = 255 - picture[:]  # a different photo under the same name
    Image.fromarray(picture).save(ds.image_path(5), quality=95)
    again = CarvanaDataset(toy_copy, size=SIZE)
    [new] = caches(toy_copy)
    assert new != old  # rebuilt, and the outdated cache of this size deleted
    assert (again[5][0] - (1 - before)).abs().mean() < 0.05
    other = CarvanaDataset(toy_copy, size=(16, 24))
    assert other[0][0].shape == (3, 16, 24)
    assert len(caches(toy_copy)) == 2 and cache_folder(toy_copy, (16, 24)).name in caches(toy_copy)


def test_train_transform_runs_on_cached_arrays(toy):
    ds = CarvanaDataset(toy, transform=train_transform(SIZE, seed=0), size=SIZE)
    for i in range(0, len(ds), 5):
        image, mask = ds[i]
        assert image.shape == (3, *SIZE) and mask.shape == (1, *SIZE)
        assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_dataset_pickles_without_the_arrays_and_works_in_loader_workers(toy):
    ds = CarvanaDataset(toy, transform=eval_transform(SIZE), size=SIZE)
    ds[0]  # opens the memory maps in this process
    assert len(pickle.dumps(ds)) < 50_000  # 32 images x 32 x 48 x 4 bytes would be ~200 kB
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2)
    batches = list(loader)
    assert len(batches) == 4 and batches[0][0].shape == (8, 3, *SIZE)
    assert torch.equal(batches[1][1][3], ds[11][1])


def test_an_interrupted_build_leaves_no_cache_that_looks_finished(toy_copy, monkeypatch):
    real, calls = cache_module.load_resized, []

    def fails_at_ten(*args):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(cache_module, "load_resized", fails_at_ten)
    with pytest.raises(KeyboardInterrupt):
        build_cache(toy_copy, SIZE, workers=1, progress=False)
    assert caches(toy_copy) == []  # neither a finished-looking folder nor a partial one
    monkeypatch.setattr(cache_module, "load_resized", real)
    folder = build_cache(toy_copy, SIZE, workers=2, progress=False)
    assert len(ResizedCache(folder)) == 32


def test_a_damaged_jpeg_is_named_while_building(toy_copy):
    victim = sorted((toy_copy / "train").iterdir())[7]
    victim.write_bytes(victim.read_bytes()[:300])
    with pytest.raises(OSError) as err:
        CarvanaDataset(toy_copy, size=SIZE, cache_workers=2)
    assert str(victim) in str(err.value) and "damaged" in str(err.value)
    assert caches(toy_copy) == []


def test_mismatched_sizes_are_named_while_building(toy_copy):
    victim = sorted((toy_copy / "train").iterdir())[2]
    Image.open(victim).resize((100, 60)).save(victim)
    with pytest.raises(ValueError) as err:
        CarvanaDataset(toy_copy, size=SIZE)
    assert str(victim) in str(err.value) and "100x60" in str(err.value) and "192x128" in str(err.value)


def test_an_unwritable_cache_folder_says_what_to_pass(toy, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(PermissionError, match="cache_dir="):
        CarvanaDataset(toy, size=SIZE, cache_dir=blocker / "cache")
    ds = CarvanaDataset(toy, size=SIZE, cache_dir=tmp_path / "elsewhere")
    assert ds._resized.folder.parent == tmp_path / "elsewhere"


def test_cli_builds_the_cache(toy_copy):
    out = subprocess.run([sys.executable, "-m", "course_utils.data", "cache", "toy_carvana", "--root", str(toy_copy),
                          "--size", "16", "24", "--workers", "1"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Cache ready in" in out.stdout and caches(toy_copy) == [cache_folder(toy_copy, (16, 24)).name]


def test_real_samples_through_the_cache_match_the_slow_path(tmp_path, real_carvana):
    """Kaggle's own 1918 x 1280 JPEGs and GIFs: draft mode decodes them at half size, the result barely differs."""
    real = real_carvana
    size = (320, 480)
    slow = CarvanaDataset(real, transform=eval_transform(size))
    fast = CarvanaDataset(real, transform=eval_transform(size), size=size, cache_dir=tmp_path)  # never write there
    for i in range(len(slow)):
        (a, ma), (b, mb) = slow[i], fast[i]
        assert torch.equal(ma, mb)
        assert 0 < (a - b).abs().mean() < 0.005 and (a - b).abs().max() < 0.25


def test_real_samples_too_large_for_draft_mode_are_decoded_by_torchvision_exactly(tmp_path, real_carvana, monkeypatch):
    """At 640 x 960 draft mode cannot shrink Kaggle's 1280 x 1918 JPEGs (half is 959 wide): the cache
    decodes them whole with torchvision.io.decode_jpeg, which gives PIL's very pixels."""
    from course_utils.data import cache

    decoded, decode = [], cache.decode_whole_jpeg
    monkeypatch.setattr(cache, "decode_whole_jpeg", lambda path: decoded.append(path) or decode(path))
    size = (640, 960)
    slow = CarvanaDataset(real_carvana, transform=eval_transform(size))
    fast = CarvanaDataset(real_carvana, transform=eval_transform(size), size=size, cache_dir=tmp_path)
    assert len(decoded) == len(slow) > 0  # every photo went through torchvision
    for i in range(len(slow)):
        assert torch.equal(slow[i][0], fast[i][0]) and torch.equal(slow[i][1], fast[i][1])
    decoded.clear()
    CarvanaDataset(real_carvana, transform=eval_transform((320, 480)), size=(320, 480), cache_dir=tmp_path)
    assert decoded == []  # where draft mode can shrink, PIL decodes


def test_without_torchvision_decoding_the_whole_jpeg_comes_from_pil(real_carvana, monkeypatch):
    """torchvision 0.29 deprecates its image decoding; where it is gone, PIL decodes the same pixels."""
    import sys

    from course_utils.data.cache import decode_whole_jpeg

    photo = sorted((real_carvana / "train").glob("*.jpg"))[0]
    with_torchvision = decode_whole_jpeg(photo)
    monkeypatch.setitem(sys.modules, "torchvision.io", None)  # `from torchvision.io import ...` now fails
    without = decode_whole_jpeg(photo)
    assert without.shape == with_torchvision.shape == (1280, 1918, 3) and np.array_equal(without, with_torchvision)
