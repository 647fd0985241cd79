"""Reading Carvana in its Kaggle layout, and splitting it by car (lesson 05).

    root/train/{car_id}_{nn}.jpg           one photo per car and angle (nn = 01..16)
    root/train_masks/{car_id}_{nn}_mask.gif  its mask: GIF, mode 'P', values {0, 1}
                                             (a {0, 255} PNG `{car_id}_{nn}_mask.png` also works)
    root/metadata.csv                        id,year,make,model,trim1,trim2 (used by by="make")

The real download and the toy set (`make_toy_carvana`) share this layout, so one loader reads
both. The 16 photos of a car are nearly the same picture, so a validation set must hold whole
cars: `split_cars` never puts one car's photos on both sides. `CarvanaDataset(..., size=(H, W))`
is the fast loader: it reads a one-time cache of every pair at the training size (cache.py).
The file names and readers shared with the cache and the download are in carvana_files.py.
"""
from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from .carvana_files import (IMAGES, car_id, find_masks, image_ids, image_path, image_tensor, mask_tensor,
                            read_image, read_mask, size_mismatch)

__all__ = ["CarvanaDataset", "split_cars", "split_summary", "car_id"]


class CarvanaDataset(torch.utils.data.Dataset):
    """Carvana photos and masks as tensors: image (3, H, W) float32 in [0, 1], mask (1, H, W) float32 {0, 1}.

    root: the data-set folder (data_root() / "carvana" or / "toy_carvana").
    ids: image ids such as "0cdf5b5d0ce1_04" (e.g. from `split_cars`); None = every image in train/.
    transform: albumentations-style callable, called as transform(image=uint8 (H, W, 3),
        mask=uint8 (H, W) {0, 1}) and returning a dict with "image" and "mask".
    cache: keep each decoded (image, mask) pair in memory after its first read, so later epochs
        skip JPEG/GIF decoding. Worth it for the small toy set; for the real one (~37 GB decoded)
        leave it off and use `size`. Each DataLoader worker holds its own cache.
    size: (H, W) the fast loader: read every pair already resized to (H, W) from a one-time cache
        on disk (built on first use with a progress bar, JPEGs decoded in draft mode; reused, and
        rebuilt when the files or the size change; see course_utils.data.cache). The transform
        then receives (H, W) arrays, so its own resize to (H, W) does nothing; items equal those of
        the slow path with eval_transform(size) up to the JPEG draft decoding (masks exactly).
    cache_dir: where that cache goes (default root/.cache; when root is read-only, a folder of its own
        under the work root: see course_utils.data.cache.default_cache_dir).
    cache_workers: threads that build it (default min(8, CPU count)).

    Problems a learner can run into (missing folder, a mask missing, sizes that differ, mask
    values other than {0, 1}, a damaged file) raise errors that name the files and say what to do.

    >>> ds = CarvanaDataset(ensure_toy_carvana())              # doctest: +SKIP
    >>> image, mask = ds[0]; image.shape, mask.shape            # doctest: +SKIP
    (torch.Size([3, 160, 240]), torch.Size([1, 160, 240]))

    Lesson 05.
    """

    def __init__(self, root: str | Path, ids: Sequence[str] | None = None,
                 transform: Callable[..., dict] | None = None, *, cache: bool = False,
                 size: tuple[int, int] | None = None, cache_dir: str | Path | None = None,
                 cache_workers: int | None = None) -> None:
        self.root = Path(root)
        present = image_ids(self.root)
        if ids is None:
            self.ids = present
        else:
            self.ids = [i[:-4] if i.lower().endswith(".jpg") else i for i in ids]
            missing = sorted(set(self.ids) - set(present))
            if missing:
                raise FileNotFoundError(
                    f"{len(missing)} of the requested images are not in {self.root / IMAGES}, e.g. "
                    f"{image_path(self.root, missing[0])}. Ids look like '0cdf5b5d0ce1_04' "
                    "(car id, underscore, angle); take them from split_cars(root)."
                )
        self.transform = transform
        self.cache = cache
        self._cached: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._mask_paths = find_masks(self.root, self.ids)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self._resized = None
        if self.size is not None:
            from .cache import ResizedCache

            self._resized = ResizedCache.open_or_build(self.root, self.size, cache_dir=cache_dir,
                                                       workers=cache_workers)

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, i: int) -> Path:
        """Path of the i-th image: root/train/{id}.jpg."""
        return image_path(self.root, self.ids[i])

    def mask_path(self, i: int) -> Path:
        """Path of the i-th mask: root/train_masks/{id}_mask.gif (or .png)."""
        return self._mask_paths[i]

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The i-th pair as read from disk, checked: image uint8 (H, W, 3), mask uint8 (H, W) in {0, 1}.

        With `size`, the pair comes from the resized cache, at that size.
        """
        if self._resized is not None:
            return self._resized.get(self.ids[i])
        if i in self._cached:
            return self._cached[i]
        image = read_image(self.image_path(i))
        mask = read_mask(self.mask_path(i))
        if image.shape[:2] != mask.shape:
            raise size_mismatch(self.image_path(i), (image.shape[1], image.shape[0]), self.mask_path(i), mask.shape)
        if self.cache:
            self._cached[i] = (image, mask)
        return image, mask

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.load(i)
        if self.transform is not None:
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
            _check_still_binary(mask, self.mask_path(i))
        return image_tensor(image), mask_tensor(mask)

    def __repr__(self) -> str:
        size = "" if self.size is None else f", size={self.size}"
        return f"CarvanaDataset({str(self.root)!r}, {len(self)} images, transform={self.transform is not None}{size})"


def _check_still_binary(mask, path: Path) -> None:
    """A transform that interpolated the mask (linear instead of nearest) is reported, not trained on."""
    arr = mask.numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    bad = arr.max(initial=0) > 1 if arr.dtype == np.uint8 else np.any((arr != 0) & (arr != 1))
    if bad:
        raise ValueError(
            f"After the transform the mask of {path} is no longer binary (values {np.unique(arr)[:6].tolist()}). "
            "Resize and warp masks with nearest-neighbour interpolation (mask_interpolation=cv2.INTER_NEAREST)."
        )


def car_photo(index: int = 0, root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Photo `index` of the data set and its mask: (3, H, W) float in [0, 1], (1, H, W) float in {0, 1}.

    root: default the real Carvana when it is downloaded, else the toy set (drawn on first use).
    For the lessons that look at a photo before lesson 05 opens up the loader (it is
    CarvanaDataset(root)[index]). Lesson 00.
    """
    if root is None:
        from ..environment import dataset_dir, has_dataset
        from .toy_carvana import ensure_toy_carvana

        root = dataset_dir("carvana") if has_dataset("carvana") else ensure_toy_carvana()
    return CarvanaDataset(root)[index]


def split_cars(root: str | Path, val_fraction: float = 0.2, by: str = "car",
               seed: int = 0, verbose: bool = False) -> tuple[list[str], list[str]]:
    """Split the image ids of root/train into (train ids, val ids), keeping each car's 16 photos together.

    by="car": about val_fraction of the cars (at least one, never all) go to validation.
    by="make": whole makes (from metadata.csv) go to validation, about val_fraction of the cars,
    a harder test: the network never saw that body shape. Deterministic for a seed; both lists
    sorted; only reads file names and metadata.csv, never moves or deletes a file.
    verbose: print one line saying how many cars and images each side got (split_summary has
    the same numbers as a dict). Lesson 05.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}.")
    if by not in ("car", "make"):
        raise ValueError(f"by must be 'car' or 'make', got {by!r}.")
    ids = image_ids(Path(root))
    cars = sorted({car_id(i) for i in ids})
    if len(cars) < 2:
        raise ValueError(f"{root} holds {len(cars)} car(s); a split needs at least 2 (one for each side).")
    rng = np.random.default_rng(seed)
    if by == "car":
        n_val = min(max(1, round(val_fraction * len(cars))), len(cars) - 1)
        val_cars = {cars[k] for k in rng.permutation(len(cars))[:n_val]}
    else:
        val_cars = _held_out_makes(Path(root), cars, val_fraction, rng)
    train = [i for i in ids if car_id(i) not in val_cars]
    val = [i for i in ids if car_id(i) in val_cars]
    if verbose:
        print(_describe(split_summary(train, val), by, seed))
    return train, val


def split_summary(train_ids: Sequence[str], val_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """How many cars and images each side of a split holds, and how many cars both share (0 is right).

    >>> split_summary(*split_cars(root))            # doctest: +SKIP
    {'train': {'cars': 32, 'images': 512}, 'val': {'cars': 8, 'images': 128}, 'shared_cars': 0}

    Lesson 05.
    """
    train_cars, val_cars = {car_id(i) for i in train_ids}, {car_id(i) for i in val_ids}
    return {"train": {"cars": len(train_cars), "images": len(train_ids)},
            "val": {"cars": len(val_cars), "images": len(val_ids)},
            "shared_cars": len(train_cars & val_cars)}


def split_by_image(ids: Sequence[str], val_fraction: float = 0.2, seed: int = 0) -> tuple[list[str], list[str]]:
    """The wrong split, kept to measure its leak: photos drawn at random, whatever car they show, so
    nearly every validation car is also a training car seen from the next angles. Lessons 05 and 06.
    """
    val = set(np.random.default_rng(seed).permutation(sorted(ids))[: round(val_fraction * len(ids))])
    return [i for i in ids if i not in val], [i for i in ids if i in val]


def _describe(summary: dict, by: str, seed: int) -> str:
    t, v = summary["train"], summary["val"]
    share = v["cars"] / max(1, t["cars"] + v["cars"])
    def side(d: dict) -> str:
        return f"{d['cars']} car{'s' * (d['cars'] != 1)} / {d['images']} images"

    return f"split_cars(by={by!r}, seed={seed}): train {side(t)}, val {side(v)} ({share:.0%} of the cars)"


def _held_out_makes(root: Path, cars: list[str], val_fraction: float, rng: np.random.Generator) -> set[str]:
    """Cars of whole makes, taken in random order while each brings the count closer to val_fraction."""
    path = root / "metadata.csv"
    if not path.is_file():
        raise FileNotFoundError(f"split_cars(by='make') needs {path} (id,year,make,...); use by='car' without it.")
    with open(path, newline="") as f:
        make_of = {row["id"]: (row.get("make") or "unknown").strip() or "unknown" for row in csv.DictReader(f)}
    by_make: dict[str, list[str]] = {}
    for c in cars:
        by_make.setdefault(make_of.get(c, "unknown"), []).append(c)
    makes = sorted(by_make)
    if len(makes) < 2:
        raise ValueError(f"split_cars(by='make') needs cars of at least 2 makes; {root} has {makes}.")
    target, val = val_fraction * len(cars), set()
    for k in rng.permutation(len(makes)):
        group = by_make[makes[k]]
        if len(val) + len(group) >= len(cars):  # never hold out every car
            continue
        if not val or abs(len(val) + len(group) - target) < abs(len(val) - target):
            val.update(group)
    return val
