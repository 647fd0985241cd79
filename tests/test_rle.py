"""Kaggle Carvana run-length encoding: format, round trips, malformed strings, the real masks."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from course_utils import rle_decode, rle_encode


def naive_rle(mask: np.ndarray) -> str:
    """Reference: walk the pixels one by one in row-major order, counting from 1."""
    out, run_start = [], None
    flat = mask.reshape(-1).tolist() + [0]
    for k, v in enumerate(flat):
        if v and run_start is None:
            run_start = k
        elif not v and run_start is not None:
            out += [run_start + 1, k - run_start]
            run_start = None
    return " ".join(map(str, out))


def test_small_example_is_row_major_and_one_indexed():
    m = np.array([[0, 1, 1], [1, 0, 0]], dtype=np.uint8)
    assert rle_encode(m) == "2 3"  # pixels 2,3 (row 0) and 4 (row 1) form one run in C order
    assert rle_decode("2 3", (2, 3)).tolist() == m.tolist()
    assert rle_encode(m.T.copy()) == "2 2 5 1"  # reading the columns instead gives another string


@pytest.mark.parametrize("shape,density", [((1, 1), 0.5), ((7, 5), 0.3), ((64, 96), 0.5), ((33, 17), 0.9)])
def test_random_round_trip_matches_reference(shape, density):
    rng = np.random.default_rng(sum(shape))
    for _ in range(5):
        m = (rng.random(shape) < density).astype(np.uint8)
        s = rle_encode(m)
        assert s == naive_rle(m)
        back = rle_decode(s, shape)
        assert back.dtype == np.uint8 and back.shape == shape
        np.testing.assert_array_equal(back, m)


def test_edge_cases_empty_full_first_last():
    h, w = 4, 6
    empty, full = np.zeros((h, w), np.uint8), np.ones((h, w), np.uint8)
    assert rle_encode(empty) == ""
    assert rle_decode("", (h, w)).sum() == 0
    assert rle_encode(full) == f"1 {h * w}"
    first, last = empty.copy(), empty.copy()
    first[0, 0], last[-1, -1] = 1, 1
    assert rle_encode(first) == "1 1"
    assert rle_encode(last) == f"{h * w} 1"
    for m in (full, first, last):
        np.testing.assert_array_equal(rle_decode(rle_encode(m), (h, w)), m)


def test_accepts_bool_and_float_binary_masks():
    m = np.zeros((3, 4), bool)
    m[1, 1:3] = True
    assert rle_encode(m) == rle_encode(m.astype(np.float32)) == "6 2"


@pytest.mark.parametrize("bad,words", [
    (np.full((2, 2), 255, np.uint8), "divide a {0, 255} mask by 255"),
    (np.full((2, 2), 0.7), "threshold probabilities"),
    (np.zeros((1, 2, 2)), "2-D mask"),
])
def test_encode_refuses_non_binary_or_wrong_shape(bad, words):
    with pytest.raises(ValueError) as err:
        rle_encode(bad)
    assert words in str(err.value)


@pytest.mark.parametrize("rle,words", [
    ("1 2 3", "odd count"),
    ("5 3", "past the end"),
    ("0 2", "below 1"),
    ("2 0", "length below 1"),
    ("1 3 2 1", "overlap"),
    ("4 1 1 1", "increasing order"),
    ("1 x", "'x' is not a whole number"),
])
def test_decode_names_the_problem(rle, words):
    with pytest.raises(ValueError) as err:
        rle_decode(rle, (2, 3))
    assert words in str(err.value)


def test_kaggle_first_row_decodes_to_a_car_roof():
    # The first row of Kaggle's train_masks.csv begins like this (1280 x 1918 images): two runs in
    # consecutive image rows around the middle column, the top of a car's roof.
    m = rle_decode("879386 40 881253 141", (1280, 1918))
    rows, cols = np.nonzero(m)
    assert sorted(set(rows.tolist())) == [458, 459]
    assert 900 < cols.mean() < 1000 and m.sum() == 181


def test_real_masks_round_trip(real_carvana):
    folder = real_carvana / "train_masks"
    gifs = sorted(folder.glob("*_mask.gif"))
    assert gifs
    for path in gifs:
        m = np.asarray(Image.open(path))
        s = rle_encode(m)
        assert s.split()[0] != "1" and len(s.split()) % 2 == 0
        np.testing.assert_array_equal(rle_decode(s, m.shape), m)
