"""The ISBI 2012 EM segmentation challenge: the paper's own first data set (lesson 13).

Serial-section transmission electron microscopy of the Drosophila first-instar larva ventral
nerve cord (Cardona et al. 2010, PLoS Biology), 30 training slices of 512 x 512 with labels and 30 test
slices without, each stored as one multi-page 8-bit TIFF as the challenge named them:
train-volume.tif, train-labels.tif (255 = inside a cell, 0 = membrane), test-volume.tif.
The challenge and its metrics: Arganda-Carreras et al. 2015 (Frontiers in Neuroanatomy).

    volume, labels = read_isbi2012(root)          # (30, 512, 512) uint8 each
    train, held_out = held_out_split()            # slices 0-24 and 25-29
    ds = ISBI2012Dataset(root, slices=train, transform=em_train_transform(192), weight_map=True)
"""
from __future__ import annotations

import struct
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from .carvana_files import image_tensor, mask_tensor
from .transforms import GridElastic

__all__ = ["STACKS", "read_stack", "write_stack", "read_isbi2012", "check_isbi2012", "held_out_split",
           "cell_labels", "ISBI2012Dataset", "em_train_transform", "em_eval_transform"]

STACKS = {"volume": "train-volume.tif", "labels": "train-labels.tif", "test": "test-volume.tif"}
PAGES, PAGE_SIZE = 30, (512, 512)  # every stack of the challenge: 30 slices of 512 x 512
HELD_OUT = (25, 26, 27, 28, 29)  # the course's default: the last 5 training slices, never trained on
HOW_TO_GET = "`python -m course_utils.data download isbi2012` (or ensure_isbi2012() in Python; lesson 13)"
_BROKEN_TIFF = (UnidentifiedImageError, OSError, SyntaxError, EOFError, TypeError, ValueError, KeyError,
                IndexError, struct.error)  # what PIL raises on a cut-short or damaged TIFF


# ---------------------------------------------------------------------------- reading and writing stacks
def read_stack(path: str | Path) -> np.ndarray:
    """All pages of a multi-page greyscale TIFF as uint8 (N, H, W); a clear error for a file
    that is missing, not a TIFF, cut short, or not 8-bit greyscale. Lesson 13."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist. Get the ISBI 2012 stacks with {HOW_TO_GET}.")
    try:
        with warnings.catch_warnings(), Image.open(path) as im:
            warnings.simplefilter("ignore")  # PIL warns "Corrupt EXIF data" before failing on a cut file
            pages = []
            for k in range(im.n_frames):
                im.seek(k)
                pages.append((im.mode, np.array(im)))
    except _BROKEN_TIFF as e:
        raise ValueError(f"{path} is not a readable TIFF stack ({type(e).__name__}: {e}); it may be cut short "
                         f"(a download that stopped early?). Delete it and download it again.") from None
    for k, (mode, _) in enumerate(pages):
        if mode != "L":
            raise ValueError(f"{path}, page {k}: mode {mode!r}; the ISBI 2012 stacks are 8-bit "
                             f"greyscale (mode 'L'). Is this the right file?")
    shapes = sorted({p.shape for _, p in pages})
    if len(shapes) != 1:
        raise ValueError(f"{path}: pages of different sizes {shapes}; every page of a stack must have the same size.")
    return np.stack([p for _, p in pages])


def write_stack(path: str | Path, pages: np.ndarray) -> Path:
    """Write (N, H, W) pages as one uncompressed multi-page TIFF: uint8 as 8-bit greyscale,
    float as 32-bit float (mode 'F', the challenge's probability maps). Lesson 13."""
    pages = np.asarray(pages)
    if pages.ndim != 3:
        raise ValueError(f"a stack is (N, H, W) pages, got shape {pages.shape}.")
    if pages.dtype != np.uint8:
        pages = pages.astype(np.float32)
    images = [Image.fromarray(p) for p in pages]
    path = Path(path)
    images[0].save(path, format="TIFF", save_all=True, append_images=images[1:])
    return path


def _label_problem(labels: np.ndarray, path: Path) -> str | None:
    """Why a labels stack is not the challenge's 0/255 convention (the first page that breaks it), or None."""
    bad = (labels != 0) & (labels != 255)
    pages = np.flatnonzero(bad.any(axis=(1, 2)))
    if pages.size == 0:
        return None
    k = int(pages[0])
    values = np.unique(labels[k][bad[k]]).tolist()
    hint = " Labels saved as 0/1 must be multiplied by 255." if set(values) == {1} else ""
    return (f"{path.name}, page {k}, holds the values {values[:10]} (and {pages.size} of its {len(labels)} pages "
            f"hold values other than 0 and 255); ISBI 2012 labels hold only 0 (membrane) and 255 (cell).{hint}")


def read_isbi2012(root: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The training stacks of root: (volume, labels), uint8 (N, H, W) each, (30, 512, 512) for the
    challenge's files; labels 255 = cell, 0 = membrane. Errors name the file and what is wrong:
    a missing labels file, a labels stack whose pages differ from the images', values other than
    0/255, a file cut short. Lesson 13."""
    root = Path(root)
    volume = read_stack(root / STACKS["volume"])
    labels_path = root / STACKS["labels"]
    if not labels_path.is_file():
        raise FileNotFoundError(
            f"{labels_path} is missing: the training labels belong next to {root / STACKS['volume']}. "
            f"Get the three stacks with `python -m course_utils.data download isbi2012 --root {root}` "
            "(lesson 13), or copy the challenge's train-labels.tif there by hand.")
    labels = read_stack(labels_path)
    if labels.shape != volume.shape:
        raise ValueError(
            f"{labels_path} holds {labels.shape[0]} pages of {labels.shape[1]} x {labels.shape[2]}, but "
            f"{root / STACKS['volume']} holds {volume.shape[0]} pages of {volume.shape[1]} x {volume.shape[2]}: "
            "every image page needs its label page of the same size. Are both files from the same data set?")
    problem = _label_problem(labels, labels_path)
    if problem:
        raise ValueError(f"{root}: {problem}")
    return volume, labels


def stack_problem(path: Path, labels: bool = False) -> str | None:
    """Why path is not one of the challenge's stacks (30 pages, 512 x 512, 8-bit; labels 0/255), or None. Lesson 13."""
    try:
        stack = read_stack(path)
    except FileNotFoundError:
        return "missing"
    except ValueError as err:
        return str(err)
    if stack.shape != (PAGES, *PAGE_SIZE):
        return (f"{stack.shape[0]} pages of {stack.shape[1]} x {stack.shape[2]}; the challenge's stacks hold "
                f"{PAGES} pages of {PAGE_SIZE[0]} x {PAGE_SIZE[1]}")
    return _label_problem(stack, path) if labels else None


def check_isbi2012(root: str | Path) -> None:
    """The content check after a download (no checksum of the files was ever published): the three
    stacks are there, each 30 pages of 512 x 512 in 8 bits, the labels only 0 and 255. Raises
    ValueError naming each file that is wrong and why. Lesson 13."""
    root = Path(root)
    problems = {name: stack_problem(root / name, labels=key == "labels") for key, name in STACKS.items()}
    wrong = {name: why for name, why in problems.items() if why}
    if wrong:
        listing = "".join(f"\n  {root / name}: {why}" for name, why in wrong.items())
        raise ValueError(f"{root} does not hold the ISBI 2012 stacks as the challenge published them:{listing}\n"
                         f"Delete the wrong files and get them again with {HOW_TO_GET}.")


# ---------------------------------------------------------------------------- slices and cells
def held_out_split(n_slices: int = PAGES, held_out: Sequence[int] = HELD_OUT) -> tuple[list[int], list[int]]:
    """(train slices, held-out slices) of a stack of n_slices pages; by default slices 25-29 of 30
    are held out, never trained on, and score the model (the organisers' test labels are secret).

    >>> held_out_split(30, (0, 29))[1]
    [0, 29]

    Lesson 13.
    """
    held = [int(k) for k in held_out]
    outside = [k for k in held if not 0 <= k < n_slices]
    if outside:
        raise ValueError(f"held-out slices {outside} are not page indices of a {n_slices}-page stack (0 to "
                         f"{n_slices - 1}).")
    if len(set(held)) != len(held):
        twice = sorted({k for k in held if held.count(k) > 1})
        raise ValueError(f"held-out slices {twice} are listed twice; name each slice once.")
    train = [k for k in range(n_slices) if k not in set(held)]
    if not train:
        raise ValueError(f"all {n_slices} slices are held out, so none is left to train on; hold out fewer.")
    return train, sorted(held)


def cell_labels(mask: np.ndarray) -> np.ndarray:
    """int32 (H, W): the cells of a label page, numbered 1..K, 0 = membrane. A cell is a connected
    component (4-connectivity, scipy.ndimage.label's default) of the cell pixels: 255 in the
    challenge's labels, or 1 / True in a binary mask. The Rand error and the weight map count
    cells this way. Lesson 13."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"cell_labels takes one label page (H, W), got shape {mask.shape}.")
    if mask.dtype != bool:
        values = set(np.unique(mask).tolist())
        if not (values <= {0, 1} or values <= {0, 255}):
            raise ValueError(f"cell_labels takes a binary mask (0/255 or 0/1), got the values {sorted(values)[:8]}; "
                             "threshold a probability map first (e.g. prob > 0.5).")
    labels, _ = ndimage.label(mask > 0)
    return labels.astype(np.int32, copy=False)


# ---------------------------------------------------------------------------- the dataset
class ISBI2012Dataset(torch.utils.data.Dataset):
    """Slices of the ISBI 2012 stacks as tensors.

    split="train": items (image, mask): image float32 (1, H, W) in [0, 1], mask float32 (1, H, W),
    1 = cell, 0 = membrane. With weight_map=True: (image, {"mask": ..., "weight": (1, H, W)}), the
    paper's weights (course_utils.paper.weight_map of the slice's cells, w0, sigma), computed once
    for every slice when the dataset is made. split="test": items are the image alone.
    slices: page indices (default all), e.g. from held_out_split(). transform: albumentations
    Compose called as transform(image=uint8 (H, W), mask=uint8 (H, W) {0, 1}, masks=[weight float32
    (H, W)]); the weight rides along as an extra mask, so it is warped with the mask (nearest
    neighbour). Attributes: ids ("train-volume_07"), slices, images (N, H, W) uint8, labels
    (N, H, W) uint8 {0, 255} (None for test), weights (N, H, W) float32 or None.

    >>> ds = ISBI2012Dataset(root, slices=held_out_split()[0], transform=em_train_transform(192))  # doctest: +SKIP
    >>> image, mask = ds[0]; image.shape                                                             # doctest: +SKIP
    torch.Size([1, 192, 192])

    Lesson 13.
    """

    def __init__(self, root: str | Path, split: str = "train", slices: Sequence[int] | None = None,
                 transform: Callable[..., dict] | None = None, weight_map: bool = False,
                 w0: float = 10.0, sigma: float = 5.0) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split is 'train' (slices with labels) or 'test' (no labels exist), got {split!r}.")
        if split == "test" and weight_map:
            raise ValueError("The test slices have no labels, so they have no weight map; use split='train'.")
        self.root, self.split, self.transform = Path(root), split, transform
        if split == "train":
            volume, labels = read_isbi2012(self.root)
        else:
            volume, labels = read_stack(self.root / STACKS["test"]), None
        self.slices = _check_slices(slices, len(volume))
        self.images = volume[self.slices]
        self.labels = None if labels is None else labels[self.slices]
        stem = STACKS["volume" if split == "train" else "test"].removesuffix(".tif")
        self.ids = [f"{stem}_{k:02d}" for k in self.slices]
        self.weights = None
        if weight_map:
            from ..paper import weight_map as paper_weight_map

            self.weights = np.stack([paper_weight_map(cell_labels(page), w0, sigma) for page in self.labels])

    def __len__(self) -> int:
        return len(self.slices)

    def __getitem__(self, i: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | dict[str, torch.Tensor]]:
        image = self.images[i]
        mask = None if self.labels is None else (self.labels[i] // 255)
        weight = None if self.weights is None else self.weights[i]
        if self.transform is not None:
            image, mask, weight = self._transformed(i, image, mask, weight)
        if mask is None:
            return image_tensor(image)
        if weight is None:
            return image_tensor(image), mask_tensor(mask)
        return image_tensor(image), {"mask": mask_tensor(mask), "weight": mask_tensor(weight)}

    def _transformed(self, i: int, image: np.ndarray, mask, weight):
        """The transform applied to the slice and its targets, checked: same sizes, mask still {0, 1}."""
        targets = {"image": image}
        if mask is not None:
            targets["mask"] = mask
        if weight is not None:
            targets["masks"] = [weight]
        out = self.transform(**targets)
        image = out["image"]
        mask = None if mask is None else out["mask"]
        weight = None if weight is None else out["masks"][0]
        sizes = {name: tuple(a.shape[-2:]) if a.ndim == 2 or isinstance(a, torch.Tensor) else tuple(a.shape[:2])
                 for name, a in (("image", image), ("mask", mask), ("weight", weight)) if a is not None}
        if len(set(sizes.values())) > 1:
            said = ", ".join(f"{name} {h} x {w}" for name, (h, w) in sizes.items())
            raise ValueError(f"The transform gave {self.ids[i]} different sizes: {said}. Geometric transforms "
                             "must move image and mask together: use albumentations' transforms inside one "
                             "A.Compose called with image= and mask=, not a crop or resize of the image alone.")
        if mask is not None and np.any((np.asarray(mask) != 0) & (np.asarray(mask) != 1)):
            raise ValueError(f"After the transform the mask of {self.ids[i]} is no longer binary (values "
                             f"{np.unique(np.asarray(mask))[:6].tolist()}). Warp masks with nearest-neighbour "
                             "interpolation (mask_interpolation=cv2.INTER_NEAREST).")
        return image, mask, weight

    def __repr__(self) -> str:
        extra = ", weight_map=True" if self.weights is not None else ""
        return (f"ISBI2012Dataset({str(self.root)!r}, split={self.split!r}, {len(self)} slices, "
                f"transform={self.transform is not None}{extra})")


def _check_slices(slices: Sequence[int] | None, n: int) -> list[int]:
    if slices is None:
        return list(range(n))
    slices = [int(k) for k in slices]
    outside = [k for k in slices if not 0 <= k < n]
    if outside or not slices:
        raise ValueError(f"slices {outside or '[]'}: give page indices of the {n}-page stack, from 0 to {n - 1} "
                         "(e.g. the lists held_out_split() returns).")
    return slices


# ---------------------------------------------------------------------------- augmentation
def em_train_transform(crop: int | tuple[int, int], seed: int | None = None,
                       elastic_sigma: float = 10.0) -> A.Compose:
    """Training augmentation for EM slices, as the paper: on the whole slice its elastic deformation
    (GridElastic, 3 x 3 grid, sigma 10 px as on the paper's 512 x 512), 90-degree rotations and
    flips; then a random crop of `crop` (one side or (H, W); mirror-padded when larger than the
    slice, as for the valid network's 572 tiles) and a mild brightness/contrast change. Items come
    out exactly crop-sized. seed: repeatable draws. Lesson 13."""
    height, width = (crop, crop) if np.isscalar(crop) else crop
    return A.Compose([
        GridElastic(grid=3, sigma=elastic_sigma, p=1.0),  # Section 3.1: every sample deformed
        A.RandomRotate90(p=1.0),  # 0, 90, 180 or 270 degrees: EM sections have no "up"
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.RandomCrop(int(height), int(width), pad_if_needed=True, border_mode=cv2.BORDER_REFLECT_101),
        A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.5),
    ], seed=seed)


def em_eval_transform() -> None:
    """No transform for held-out and test slices: the whole slice as it is (tiling happens at
    inference). Returns None, which ISBI2012Dataset reads as "unchanged". Lesson 13."""
    return None
