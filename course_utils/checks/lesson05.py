"""Checks for lesson 05's exercises: reading a mask file into {0, 1}, decoding a Kaggle RLE
string by hand, and splitting image ids by car.

Each check runs the learner's function on a few cases and says in words what is wrong (which
case, what was expected and why); when all is right it prints "Correct: ...".
"""
from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._common import CheckFailed, call_answer, fail, passed

__all__ = ["check_read_mask", "check_rle_decode", "check_split_by_car"]


def _values(a: np.ndarray) -> str:
    """The distinct values of an array as '{0, 1}' (at most 6 shown)."""
    v = np.unique(a).tolist()
    return "{" + ", ".join(map(str, v[:6])) + (", ..." if len(v) > 6 else "") + "}"


# ------------------------------------------------------------- exercise 1: read a mask file

def _car_mask(height: int = 12, width: int = 18) -> np.ndarray:
    """A small non-square mask with a 'car' (a rounded block) in it: uint8 (H, W) {0, 1}."""
    y, x = np.mgrid[:height, :width]
    return (((x - 9.5) / 7) ** 2 + ((y - 6.5) / 4) ** 4 < 1).astype(np.uint8)


def _save_gif(mask: np.ndarray, path: Path) -> None:
    """Mode 'P', black/white palette, values {0, 1}: how Kaggle's masks are stored."""
    from PIL import Image

    gif = Image.frombytes("P", (mask.shape[1], mask.shape[0]), np.ascontiguousarray(mask, np.uint8).tobytes())
    gif.putpalette([0, 0, 0, 255, 255, 255])
    gif.save(path, format="GIF", optimize=False, transparency=None)


def _mask_files(folder: Path, mask: np.ndarray) -> list[tuple[Path, str, np.ndarray | None]]:
    """(file, what it is, the mask read_mask must return or None for 'must raise ValueError')."""
    from PIL import Image

    gif, png255, png01, grey = (folder / n for n in ("kaggle_mask.gif", "reexport_255.png", "reexport_01.png",
                                                      "resized_bilinear.png"))
    _save_gif(mask, gif)
    Image.fromarray(mask * 255).save(png255)
    Image.fromarray(mask).save(png01)
    soft = mask * 255
    soft[np.nonzero(np.diff(mask.astype(int), axis=1, append=0))] = 128  # grey pixels along the outline
    Image.fromarray(soft).save(grey)
    return [
        (gif, "a Kaggle GIF (mode 'P', values {0, 1})", mask),
        (png255, "a PNG re-export in {0, 255} (mode 'L')", mask),
        (png01, "a PNG saved straight from a {0, 1} array (mode 'L', it looks black in an image viewer)", mask),
        (grey, "a PNG resized with bilinear interpolation (values {0, 128, 255})", None),
    ]


def _as_mask_array(got: Any, call: str) -> np.ndarray:
    if hasattr(got, "mode") and hasattr(got, "size") and not isinstance(got, np.ndarray):
        fail(f"{call} returned a PIL image (mode {got.mode!r}); return a numpy array: np.asarray(image).")
    if not isinstance(got, np.ndarray):
        fail(f"{call} returned a {type(got).__name__}; expected a numpy array of shape (H, W).")
    return got


def check_read_mask(read_mask: Callable[[Path], np.ndarray]) -> None:
    """Exercise 1: `read_mask(path)` -> uint8 (H, W) {0, 1}; ValueError for other values. Lesson 05."""
    mask = _car_mask()
    h, w = mask.shape
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:  # a learner may leave files open
        for path, what, want in _mask_files(Path(tmp), mask):
            call = f"read_mask({path.name!r})"
            if want is None:
                _expect_value_error(read_mask, path, call, what)
                continue
            got = _as_mask_array(call_answer(read_mask, "read_mask", path), call)
            if got.shape == (h, w, 3) or got.shape == (h, w, 4):
                fail(f"{call} returned shape {got.shape} for {what}: colour channels. A mask has one channel; "
                     "read the 'P' image's indices with np.asarray(image), not convert('RGB').")
            if got.shape == (w, h):
                fail(f"{call} returned shape {got.shape}; expected {(h, w)}: height and width are swapped. "
                     "np.asarray(image) already gives (H, W); PIL's image.size is (W, H).")
            if got.shape != (h, w):
                fail(f"{call} returned shape {got.shape}; expected {(h, w)} (H, W) for {what}.")
            if got.dtype != np.uint8:
                fail(f"{call} returned dtype {got.dtype}; expected uint8, as CarvanaDataset does: "
                     "finish with .astype(np.uint8).")
            if np.array_equal(got, want):
                continue
            if np.array_equal(got, want * 255):
                fail(f"{call} returned {_values(got)} for {what}; expected {{0, 1}}. 255 is white in a grey "
                     "image (convert('L') looks the palette up and gives 0/255); map it to 1, e.g. mask // 255 "
                     "or (mask > 0).")
            if not got.any():
                fail(f"{call} returned only zeros for {what}: the car is gone. Did you divide a mask that "
                     "already holds {0, 1} by 255? Look at the values first, then convert.")
            fail(f"{call} differs from the true mask in {int((got != want).sum())} of {got.size} pixels "
                 f"for {what}; it returned values {_values(got)}. Expected 1 on the car, 0 elsewhere.")
    passed("GIF indices {0, 1}, PNG re-exports in {0, 255} or {0, 1} all become uint8 (H, W) {0, 1}; "
           "a grey mask is refused.")


def _expect_value_error(read_mask: Callable, path: Path, call: str, what: str) -> None:
    try:
        got = read_mask(path)
    except ValueError:
        return
    except NotImplementedError as e:
        raise CheckFailed("read_mask still raises NotImplementedError: replace that line with your "
                          "solution and run its cell again.") from e
    except Exception as e:
        raise CheckFailed(f"{call} on {what} raised {type(e).__name__}: {e}. Raise a ValueError that "
                          "names the values found instead.") from e
    shown = _values(np.asarray(got)) if got is not None else "None"
    fail(f"{call} returned values {shown} for {what}. 128 is neither car nor background, so there is no right "
         "answer to guess: raise a ValueError that names the values found (the course's loader does the same).")


# ------------------------------------------------------------- exercise 2: decode an RLE by hand

def _decode_reference(rle: str, shape: tuple[int, int], order: str = "C", offset: int = 1) -> np.ndarray:
    flat = np.zeros(shape[0] * shape[1], np.uint8)
    nums = [int(t) for t in rle.split()]
    for start, length in zip(nums[0::2], nums[1::2]):
        flat[max(0, start - offset): start - offset + length] = 1
    return flat.reshape(shape, order=order)


def _rle_cases() -> list[tuple[str, tuple[int, int], str]]:
    from ..rle import rle_encode

    rng = np.random.default_rng(5)
    blobs = (rng.random((9, 13)) < 0.4).astype(np.uint8)
    blobs[0, 0] = blobs[-1, -1] = 1  # runs touching the first and the last pixel
    return [
        ("2 3", (2, 3), "a run of 3 that wraps from the end of row 0 into row 1"),
        ("1 1 6 1", (2, 3), "the first and the last pixel (starts count from 1)"),
        ("", (3, 4), "an empty mask: the empty string"),
        ("5 4 17 2", (4, 5), "two runs in a 4 x 5 mask"),
        (rle_encode(blobs), blobs.shape, "a random 9 x 13 mask with many runs"),
    ]


def check_rle_decode(rle_decode_by_hand: Callable[[str, tuple[int, int]], np.ndarray]) -> None:
    """Exercise 2: `rle_decode_by_hand(rle, shape)` -> (H, W) mask of {0, 1}. Lesson 05."""
    for rle, shape, why in _rle_cases():
        shown = rle if len(rle) <= 20 else rle[:17] + "..."
        call = f"rle_decode_by_hand({shown!r}, {shape})"
        try:
            got = call_answer(rle_decode_by_hand, "rle_decode_by_hand", rle, shape)
        except CheckFailed as e:
            if rle == "" and "NotImplementedError" not in str(e):
                raise CheckFailed(f"{e}. An empty mask is the empty string: rle.split() with no argument "
                                  "gives [] for it (split(' ') gives [''], which int() refuses).") from e
            raise
        got = np.asarray(got)
        want = _decode_reference(rle, shape)
        if got.shape != shape:
            hint = (" Reshape the flat array to (H, W) at the end." if got.ndim == 1 else "")
            fail(f"{call} returned shape {got.shape}; expected {shape}.{hint}")
        if np.array_equal(got.astype(np.int64), want):
            continue
        if np.array_equal(got.astype(np.int64), _decode_reference(rle, shape, order="F")):
            fail(f"{call} filled the mask column by column ({why}). Kaggle's RLE runs row by row, numpy's "
                 "default C order: fill a flat array, then reshape(H, W) (not order='F', not a transpose).")
        if np.array_equal(got.astype(np.int64), _decode_reference(rle, shape, offset=0)):
            fail(f"{call} is shifted by one pixel ({why}). Kaggle counts pixels from 1: pixel `start` is "
                 "flat[start - 1].")
        fail(f"{call} returned\n{got}\nexpected\n{want}\n({why}). Each pair is (start, length): "
             "flat[start - 1 : start - 1 + length] = 1.")
    passed("row-major, 1-indexed 'start length' pairs decoded right, the empty mask included.")


# ------------------------------------------------------------- exercise 3: split by car

def _toy_ids(n_cars: int = 20, angles: int = 16, seed: int = 11) -> list[str]:
    rng = np.random.default_rng(seed)
    cars = sorted({"".join(rng.choice(list("0123456789abcdef"), 12)) for _ in range(n_cars)})
    return [f"{c}_{a:02d}" for c in cars for a in range(1, angles + 1)]


def _car(image_id: str) -> str:
    return image_id.rsplit("_", 1)[0]


def _run_split(split_by_car: Callable, ids: list[str], val_fraction: float, seed: int) -> tuple[list, list]:
    call = f"split_by_car(ids, val_fraction={val_fraction}, seed={seed})"
    if not callable(split_by_car):
        call_answer(split_by_car, "split_by_car")  # says it should be a function
    try:  # not call_answer: its message would spell out all 320 ids
        out = split_by_car(list(ids), val_fraction=val_fraction, seed=seed)
    except NotImplementedError as e:
        raise CheckFailed("split_by_car still raises NotImplementedError: replace that line with your "
                          "solution and run its cell again.") from e
    except Exception as e:
        raise CheckFailed(f"{call} raised {type(e).__name__}: {e}") from e
    if not isinstance(out, Sequence) or isinstance(out, str) or len(out) != 2:
        fail(f"{call} returned {type(out).__name__}; expected a pair (train_ids, val_ids).")
    train, val = out
    for name, side in (("train_ids", train), ("val_ids", val)):
        if isinstance(side, str) or not hasattr(side, "__iter__"):
            fail(f"{call}: {name} is a {type(side).__name__}; expected a list of image ids.")
    return list(train), list(val)


def _check_partition(train: list, val: list, ids: list[str], call: str) -> None:
    everything = set(ids)
    unknown = [i for i in train + val if i not in everything]
    if unknown:
        fail(f"{call} returned {unknown[0]!r}, which is not one of the ids given; return image ids "
             "('<car>_<angle>'), not car ids.")
    if not train or not val:
        fail(f"{call} left {'train' if not train else 'val'}_ids empty; both sides need cars.")
    both = set(train) & set(val)
    if both:
        fail(f"{call}: {len(both)} images are on both sides, e.g. {sorted(both)[0]!r}; each image goes to one side.")
    if len(train) + len(val) != len(set(train) | set(val)):
        fail(f"{call} lists some images twice; each image should appear once.")
    missing = everything - set(train) - set(val)
    if missing:
        fail(f"{call}: {len(missing)} of the {len(ids)} images are on neither side, e.g. {sorted(missing)[0]!r}; "
             "every image goes to train or to val.")
    shared = sorted({_car(i) for i in train} & {_car(i) for i in val})
    if shared:
        c = shared[0]
        angles = lambda side: ", ".join(i.rsplit("_", 1)[1] for i in sorted(side) if _car(i) == c)  # noqa: E731
        fail(f"{call}: {len(shared)} cars have photos on both sides, e.g. car {c}: angles {angles(train)} in "
             f"training, {angles(val)} in validation. That is a split by image, and it leaks: pick the "
             "validation *cars* first, then give every photo of a car to its car's side.")


def check_split_by_car(split_by_car: Callable[..., tuple[list[str], list[str]]]) -> None:
    """Exercise 3: `split_by_car(ids, val_fraction=0.2, seed=0)` -> (train_ids, val_ids). Lesson 05."""
    ids = _toy_ids()
    n_cars = len({_car(i) for i in ids})
    for fraction, seed in ((0.2, 0), (0.25, 1), (0.5, 2)):
        call = f"split_by_car(ids, val_fraction={fraction}, seed={seed})"
        train, val = _run_split(split_by_car, ids, fraction, seed)
        _check_partition(train, val, ids, call)
        n_val = len({_car(i) for i in val})
        if abs(n_val - fraction * n_cars) > 1:
            fail(f"{call} put {n_val} of {n_cars} cars ({n_val / n_cars:.0%}) in validation; val_fraction="
                 f"{fraction} asks for about {fraction * n_cars:g}. The fraction counts cars.")
        again = _run_split(split_by_car, ids, fraction, seed)
        if set(again[1]) != set(val):
            fail(f"{call} gave a different split when called again with the same seed. Draw from a generator "
                 "made from the seed (np.random.default_rng(seed)), not from the global random state.")
        shuffled = list(reversed(ids))
        other_order = _run_split(split_by_car, shuffled, fraction, seed)
        if set(other_order[1]) != set(val):
            fail(f"{call} changed when the same ids came in another order. os.listdir returns files in an "
                 "order that differs between machines, so sort the car ids before drawing from them.")
    vals = {frozenset(_run_split(split_by_car, ids, 0.2, s)[1]) for s in range(5)}
    if len(vals) == 1:
        fail("split_by_car(ids, val_fraction=0.2, seed=s) holds out the same cars for seeds 0 to 4: the seed "
             "should choose which cars (e.g. rng.permutation of the sorted car ids).")
    passed(f"whole cars on each side ({round(0.2 * n_cars)} of {n_cars} cars held out at val_fraction=0.2), the "
           "same split for the same seed in any order of the ids, another split for another seed.")
