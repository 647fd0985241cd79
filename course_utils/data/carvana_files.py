"""Carvana's files in the Kaggle layout: where they are, how to read them, and the checks (lesson 05).

    root/train/{car_id}_{nn}.jpg             one photo per car and angle (nn = 01..16)
    root/train_masks/{car_id}_{nn}_mask.gif  its mask: GIF, mode 'P', values {0, 1}
                                             (a {0, 255} PNG `{car_id}_{nn}_mask.png` also works)

The dataset (carvana.py), its resized cache (cache.py) and the download's final check all read
the files through these functions, so they agree on names, values and error messages.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["IMAGES", "MASKS", "HOW_TO_GET", "car_id", "image_ids", "image_path", "find_masks", "read_image",
           "read_mask", "image_error", "size_mismatch", "image_tensor", "mask_tensor"]

IMAGES, MASKS = "train", "train_masks"
HOW_TO_GET = (
    "Make the toy set with `course_utils.ensure_toy_carvana()` (or run `python -m course_utils.train`, "
    "which makes it), or download the real one with `python -m course_utils.data download carvana` (lesson 05)."
)


def car_id(image_id: str) -> str:
    """The car of an image id: '0cdf5b5d0ce1_04' -> '0cdf5b5d0ce1'. Lesson 05."""
    return image_id.rsplit("_", 1)[0]


def image_ids(root: Path) -> list[str]:
    """Every image id in root/train (file names without .jpg), sorted; clear errors when absent. Lesson 05."""
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


def image_path(root: Path, image_id: str) -> Path:
    """The photo of an image id: root/train/{id}.jpg. Lesson 05."""
    return Path(root) / IMAGES / f"{image_id}.jpg"


def find_masks(root: Path, ids: Sequence[str]) -> list[Path]:
    """The mask of each image id: root/train_masks/{id}_mask.gif, or .png; an error names any missing one.
    Lesson 05."""
    folder = Path(root) / MASKS
    names = set(os.listdir(folder)) if folder.is_dir() else set()
    paths = []
    for image_id in ids:
        gif, png = f"{image_id}_mask.gif", f"{image_id}_mask.png"
        if gif not in names and png not in names:
            raise FileNotFoundError(
                f"The image {image_path(root, image_id)} has no mask: expected {folder / gif} "
                f"(or {png}). The data set is incomplete; download it again, or delete the folder "
                "and let ensure_toy_carvana() redraw the toy set."
            )
        paths.append(folder / (gif if gif in names else png))
    return paths


def size_mismatch(image_path: Path, image_wh: tuple[int, int], mask_path: Path,
                  mask_hw: tuple[int, ...]) -> ValueError:
    """The error for an image and a mask of different sizes, naming both files and both sizes. Lesson 05."""
    return ValueError(
        f"Image and mask sizes differ: {image_path} is {image_wh[0]}x{image_wh[1]} "
        f"but {mask_path} is {mask_hw[1]}x{mask_hw[0]} (width x height). "
        "A mask must have exactly its image's size; re-create or re-download the pair."
    )


def image_error(path: Path, err: BaseException) -> OSError:
    """The error for a photo PIL cannot decode, naming the file and what to do. Lesson 05."""
    return OSError(
        f"Could not read the image {path}: {err}. The file is damaged or not a JPEG; "
        "download the data set again (or delete the toy set's folder and let it be redrawn)."
    )


def read_image(path: Path) -> np.ndarray:
    """Decode a JPEG into uint8 (H, W, 3), turning PIL's errors into one that names the file. Lesson 05."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, SyntaxError) as err:
        raise image_error(path, err) from err


def read_mask(path: Path) -> np.ndarray:
    """Decode a GIF ({0, 1}) or PNG ({0, 1} or {0, 255}) mask into uint8 (H, W) {0, 1}, checked. Lesson 05."""
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


def image_tensor(image) -> torch.Tensor:
    """uint8 (H, W, 3) array -> float32 (3, H, W) in [0, 1]; float arrays and tensors pass through.
    The network's input format, shared by every dataset of the course. Lesson 05."""
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


def mask_tensor(mask) -> torch.Tensor:
    """(H, W) {0, 1} array or tensor -> float32 (1, H, W), the loss's target format. Lesson 05."""
    t = mask.float() if isinstance(mask, torch.Tensor) else torch.from_numpy(np.array(mask, dtype=np.float32))
    return t[None] if t.ndim == 2 else t
