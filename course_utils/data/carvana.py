"""Reading Carvana in its Kaggle layout, and splitting it by car (lesson 05).

    root/train/{car_id}_{nn}.jpg           one photo per car and angle (nn = 01..16)
    root/train_masks/{car_id}_{nn}_mask.gif  its mask: GIF, mode 'P', values {0, 1}
                                             (a {0, 255} PNG `{car_id}_{nn}_mask.png` also works)
    root/metadata.csv                        id,year,make,model,trim1,trim2 (used by by="make")

The real download and the toy set (`make_toy_carvana`) share this layout, so one loader reads
both. The 16 photos of a car are nearly the same picture, so a validation set must hold whole
cars: `split_cars` never puts one car's photos on both sides. `CarvanaDataset(..., size=(H, W))`
is the fast loader: it reads a one-time cache of every pair at the training size (cache.py).
"""
from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["CarvanaDataset", "split_cars", "split_summary", "car_id", "find_masks"]

IMAGES, MASKS = "train", "train_masks"
HOW_TO_GET = (
    "Make the toy set with `course_utils.ensure_toy_carvana()` (or run `python -m course_utils.train`, "
    "which makes it), or download the real one with `python -m course_utils.data download carvana` (lesson 05)."
)


def car_id(image_id: str) -> str:
    """The car of an image id: '0cdf5b5d0ce1_04' -> '0cdf5b5d0ce1'."""
    return image_id.rsplit("_", 1)[0]


def _image_ids(root: Path) -> list[str]:
    """Every image id in root/train (file names without .jpg), sorted; clear errors when absent."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"No Carvana data set at {root}. {HOW_TO_GET}")
    folder = root / IMAGES
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{root} has no {IMAGES}/ folder, so it is not a Carvana data set in the Kaggle layout "
            f"({IMAGES}/, {MASKS}/, train_masks.csv). {HOW_TO_GET}"
        )
    ids = sorted(name[:-4] for name in os.listdir(folder) if name.lower().endswith(".jpg"))
    if not ids:
        raise FileNotFoundError(f"{folder} holds no .jpg images. {HOW_TO_GET}")
    return ids


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
    cache_dir: where that cache goes (default root/.cache), e.g. when root is read-only.
    cache_workers: threads that build it (default min(8, CPU count)).

    Problems a learner can run into (missing folder, a mask missing, sizes that differ, mask
    values other than {0, 1}, a damaged file) raise errors that name the files and say what to do.

    >>> ds = CarvanaDataset(ensure_toy_carvana())              # doctest: +SKIP
    >>> image, mask = ds[0]; image.shape, mask.shape            # doctest: +SKIP
    (torch.Size([3, 160, 240]), torch.Size([1, 160, 240]))
    """

    def __init__(self, root: str | Path, ids: Sequence[str] | None = None,
                 transform: Callable[..., dict] | None = None, *, cache: bool = False,
                 size: tuple[int, int] | None = None, cache_dir: str | Path | None = None,
                 cache_workers: int | None = None) -> None:
        self.root = Path(root)
        present = _image_ids(self.root)
        if ids is None:
            self.ids = present
        else:
            self.ids = [i[:-4] if i.lower().endswith(".jpg") else i for i in ids]
            missing = sorted(set(self.ids) - set(present))
            if missing:
                raise FileNotFoundError(
                    f"{len(missing)} of the requested images are not in {self.root / IMAGES}, e.g. "
                    f"{self.root / IMAGES / (missing[0] + '.jpg')}. Ids look like '0cdf5b5d0ce1_04' "
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
        return self.root / IMAGES / f"{self.ids[i]}.jpg"

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
        image = _read_image(self.image_path(i))
        mask = _read_mask(self.mask_path(i))
        if image.shape[:2] != mask.shape:
            raise _size_mismatch(self.image_path(i), (image.shape[1], image.shape[0]), self.mask_path(i), mask.shape)
        if self.cache:
            self._cached[i] = (image, mask)
        return image, mask

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.load(i)
        if self.transform is not None:
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
            _check_still_binary(mask, self.mask_path(i))
        return _image_tensor(image), _mask_tensor(mask)

    def __repr__(self) -> str:
        size = "" if self.size is None else f", size={self.size}"
        return f"CarvanaDataset({str(self.root)!r}, {len(self)} images, transform={self.transform is not None}{size})"


def find_masks(root: Path, ids: Sequence[str]) -> list[Path]:
    """The mask of each image id: root/train_masks/{id}_mask.gif, or .png; an error names any missing one."""
    folder = Path(root) / MASKS
    names = set(os.listdir(folder)) if folder.is_dir() else set()
    paths = []
    for image_id in ids:
        gif, png = f"{image_id}_mask.gif", f"{image_id}_mask.png"
        if gif not in names and png not in names:
            raise FileNotFoundError(
                f"The image {Path(root) / IMAGES / (image_id + '.jpg')} has no mask: expected {folder / gif} "
                f"(or {png}). The data set is incomplete; download it again, or delete the folder "
                "and let ensure_toy_carvana() redraw the toy set."
            )
        paths.append(folder / (gif if gif in names else png))
    return paths


def _size_mismatch(image_path: Path, image_wh: tuple[int, int], mask_path: Path,
                   mask_hw: tuple[int, ...]) -> ValueError:
    """The error for an image and a mask of different sizes, naming both files and both sizes."""
    return ValueError(
        f"Image and mask sizes differ: {image_path} is {image_wh[0]}x{image_wh[1]} "
        f"but {mask_path} is {mask_hw[1]}x{mask_hw[0]} (width x height). "
        "A mask must have exactly its image's size; re-create or re-download the pair."
    )


def _read_image(path: Path) -> np.ndarray:
    """Decode a JPEG into uint8 (H, W, 3), turning PIL's errors into one that names the file."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, SyntaxError) as err:
        raise OSError(
            f"Could not read the image {path}: {err}. The file is damaged or not a JPEG; "
            "download the data set again (or delete the toy set's folder and let it be redrawn)."
        ) from err


def _read_mask(path: Path) -> np.ndarray:
    """Decode a GIF ({0, 1}) or PNG ({0, 1} or {0, 255}) mask into uint8 (H, W) {0, 1}, checked."""
    try:
        with Image.open(path) as im:
            if im.mode == "1":
                im = im.convert("L").point(lambda v: v // 255)
            mask = np.asarray(im)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, SyntaxError) as err:
        raise OSError(
            f"Could not read the mask {path}: {err}. The file is damaged or not a GIF/PNG; "
            "download the data set again (or delete the toy set's folder and let it be redrawn)."
        ) from err
    if mask.ndim != 2:
        raise ValueError(f"The mask {path} has shape {mask.shape}; a mask has one channel, (H, W).")
    if mask.max(initial=0) <= 1:  # the cheap common case: {0, 1}
        return mask.astype(np.uint8, copy=False)
    is_png = path.suffix.lower() == ".png"
    if is_png and not np.any((mask != 0) & (mask != 255)):
        return (mask // 255).astype(np.uint8)
    allowed = "{0, 1} or {0, 255}" if is_png else "{0, 1}"
    raise ValueError(
        f"The mask {path} holds values {np.unique(mask)[:10].tolist()}, but a Carvana mask must hold only "
        f"{allowed} (0 background, 1 car). Re-create the mask, or re-download the data set."
    )


def _image_tensor(image) -> torch.Tensor:
    """uint8 (H, W, 3) array -> float32 (3, H, W) in [0, 1]; float arrays and tensors pass through."""
    if isinstance(image, torch.Tensor):  # e.g. from albumentations' ToTensorV2: already (C, H, W)
        return image.float().div_(255) if image.dtype == torch.uint8 else image.float()
    arr = np.asarray(image)
    arr = arr[..., None] if arr.ndim == 2 else arr
    if arr.dtype != np.uint8:
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32))
    # one pass (transpose, convert, scale), in numpy: several times faster than three torch ops
    out = np.empty((arr.shape[2], arr.shape[0], arr.shape[1]), np.float32)
    np.divide(arr.transpose(2, 0, 1), np.float32(255), out=out)
    return torch.from_numpy(out)


def _mask_tensor(mask) -> torch.Tensor:
    """(H, W) {0, 1} array or tensor -> float32 (1, H, W)."""
    t = mask.float() if isinstance(mask, torch.Tensor) else torch.from_numpy(np.array(mask, dtype=np.float32))
    return t[None] if t.ndim == 2 else t


def _check_still_binary(mask, path: Path) -> None:
    """A transform that interpolated the mask (linear instead of nearest) is reported, not trained on."""
    arr = mask.numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    bad = arr.max(initial=0) > 1 if arr.dtype == np.uint8 else np.any((arr != 0) & (arr != 1))
    if bad:
        raise ValueError(
            f"After the transform the mask of {path} is no longer binary (values {np.unique(arr)[:6].tolist()}). "
            "Resize and warp masks with nearest-neighbour interpolation (mask_interpolation=cv2.INTER_NEAREST)."
        )


def split_cars(root: str | Path, val_fraction: float = 0.2, by: str = "car",
               seed: int = 0, verbose: bool = False) -> tuple[list[str], list[str]]:
    """Split the image ids of root/train into (train ids, val ids), keeping each car's 16 photos together.

    by="car": about val_fraction of the cars (at least one, never all) go to validation.
    by="make": whole makes (from metadata.csv) go to validation, about val_fraction of the cars,
    a harder test: the network never saw that body shape. Deterministic for a seed; both lists
    sorted; only reads file names and metadata.csv, never moves or deletes a file.
    verbose: print one line saying how many cars and images each side got (split_summary has
    the same numbers as a dict).
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}.")
    if by not in ("car", "make"):
        raise ValueError(f"by must be 'car' or 'make', got {by!r}.")
    ids = _image_ids(Path(root))
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
    """
    train_cars, val_cars = {car_id(i) for i in train_ids}, {car_id(i) for i in val_ids}
    return {"train": {"cars": len(train_cars), "images": len(train_ids)},
            "val": {"cars": len(val_cars), "images": len(val_ids)},
            "shared_cars": len(train_cars & val_cars)}


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
