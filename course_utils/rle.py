"""Run-length encoding of binary masks in the Kaggle Carvana format (lesson 05).

The competition's `train_masks.csv` and submissions store each mask as
"start length start length ...": the mask is read row by row (numpy C order), pixels are
numbered from 1, and each pair says where a run of 1s starts and how long it is.
An empty mask is the empty string.

>>> import numpy as np
>>> m = np.array([[0, 1, 1], [1, 0, 0]], dtype=np.uint8)
>>> rle_encode(m)
'2 3'
>>> rle_decode('2 3', (2, 3)).tolist()
[[0, 1, 1], [1, 0, 0]]
"""
from __future__ import annotations

import numpy as np

__all__ = ["rle_encode", "rle_decode"]


def rle_encode(mask: np.ndarray) -> str:
    """Encode a 2-D binary mask (values {0, 1} or bool, shape (H, W)) as a Kaggle RLE string.

    Runs are found in row-major order with 1-indexed starts; an all-zero mask gives "".
    Probabilities or {0, 255} masks are refused with a hint, so a wrong mask is never
    silently turned into a plausible-looking string. Lessons 05 and 07.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(
            f"rle_encode expects one 2-D mask of shape (H, W), got shape {m.shape}; "
            "squeeze channel dimensions and encode one image at a time."
        )
    if m.dtype != np.bool_:
        bad = (m != 0) & (m != 1)
        if bad.any():
            found = np.unique(m[bad])[:5].tolist()
            raise ValueError(
                f"rle_encode expects a binary mask with values {{0, 1}}, found other values such as "
                f"{found}; threshold probabilities first (prob > 0.5) or divide a {{0, 255}} mask by 255."
            )
    flat = np.zeros(m.size + 2, dtype=np.int8)
    flat[1:-1] = m.reshape(-1) != 0
    edges = np.flatnonzero(flat[1:] != flat[:-1])  # 0-indexed starts and ends (exclusive) of runs
    if edges.size == 0:
        return ""
    starts, ends = edges[0::2], edges[1::2]
    pairs = np.empty(edges.size, dtype=np.int64)
    pairs[0::2] = starts + 1  # Kaggle counts pixels from 1
    pairs[1::2] = ends - starts
    return " ".join(map(str, pairs.tolist()))


def _parse_numbers(rle: str) -> np.ndarray:
    numbers = []
    for token in rle.split():
        try:
            numbers.append(int(token))
        except ValueError:
            raise ValueError(
                f"malformed RLE: {token!r} is not a whole number; an RLE is 'start length start length ...'."
            ) from None
    return np.array(numbers, dtype=np.int64)


def rle_decode(rle: str, shape: tuple[int, int]) -> np.ndarray:
    """Decode a Kaggle RLE string into a uint8 mask of `shape` (H, W) with values {0, 1}.

    Raises a ValueError naming the problem for malformed strings: an odd count of numbers,
    a start below 1, a length below 1, runs out of order or overlapping, a run past the end.
    NaN or None (pandas' empty cell) decode to an empty mask, like "". Lesson 05.
    """
    if len(shape) != 2:
        raise ValueError(f"rle_decode needs a 2-D shape (H, W), got {shape!r}.")
    h, w = int(shape[0]), int(shape[1])
    n = h * w
    if rle is None or (isinstance(rle, float) and np.isnan(rle)):
        rle = ""
    if not isinstance(rle, str):
        raise TypeError(f"rle_decode expects a string such as '1 3 10 2', got {type(rle).__name__}.")
    nums = _parse_numbers(rle)
    if nums.size % 2:
        raise ValueError(
            f"malformed RLE: {nums.size} numbers is an odd count; it must be 'start length' pairs."
        )
    starts, lengths = nums[0::2] - 1, nums[1::2]
    _check_runs(starts, lengths, n, (h, w))
    # +1 where a run starts, -1 just after it ends; the running sum is the mask (0 or 1).
    delta = np.zeros(n + 1, dtype=np.int8)
    delta[starts] += 1  # starts are distinct (checked), and so are ends
    delta[starts + lengths] -= 1
    return np.cumsum(delta[:-1], dtype=np.int8).view(np.uint8).reshape(h, w)


def _check_runs(starts: np.ndarray, lengths: np.ndarray, n: int, shape: tuple[int, int]) -> None:
    """Raise a ValueError naming the first run that cannot belong to a mask of n pixels."""
    if starts.size == 0:
        return
    problems = [
        (starts < 0, "starts below 1 (starts are 1-indexed)"),
        (lengths < 1, "has a length below 1"),
        (starts + lengths > n, f"runs past the end of a {shape[0]}x{shape[1]} mask ({n} pixels)"),
    ]
    for bad, what in problems:
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"malformed RLE: run {i} (start {starts[i] + 1}, length {lengths[i]}) {what}."
            )
    overlap = starts[1:] < starts[:-1] + lengths[:-1]
    if overlap.any():
        i = int(np.argmax(overlap)) + 1
        raise ValueError(
            f"malformed RLE: run {i} (start {starts[i] + 1}) begins before run {i - 1} ends; "
            "runs must be in increasing order and must not overlap."
        )
