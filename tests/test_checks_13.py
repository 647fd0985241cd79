"""The exercise checks of lesson 13 accept right answers and explain wrong ones in words."""
import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.measure import label as sk_label

from course_utils.checks.lesson13 import check_cells, check_pixel_error
from course_utils.data.isbi2012 import cell_labels, read_stack
from course_utils.em_metrics import pixel_error
from conftest import fails_with, todo


# ---- exercise 1: pixel error --------------------------------------------------------------

def test_pixel_error_accepts_right_answers(capsys):
    check_pixel_error(lambda p, t: (p != t).mean())
    check_pixel_error(pixel_error)
    check_pixel_error(lambda p, t: 1 - (p == t).sum() / p.size)
    check_pixel_error(lambda p, t: np.abs(p.astype(int) - t.astype(int)).mean() / 255)
    check_pixel_error(lambda p, t: (torch.from_numpy(p) != torch.from_numpy(t)).float().mean())  # a 0-d tensor
    assert capsys.readouterr().out.count("Correct:") == 5


@pytest.mark.parametrize("wrong, says", [
    (lambda p, t: (p == t).mean(), "pixel accuracy"),
    (lambda p, t: int((p != t).sum()), "number of wrong pixels"),
    (lambda p, t: np.abs(p - t).mean(), "wraps around"),
    (lambda p, t: np.abs(p - t).mean() / 255, "wraps around"),
    (lambda p, t: np.abs(p.astype(int) - t.astype(int)).mean(), "255 times"),
    (lambda p, t: ((p > 0) & (t == 0)).mean(), "only pixels predicted cell"),
    (lambda p, t: ((p == 0) & (t > 0)).mean(), "only true cell pixels"),
    (lambda p, t: (p != t).sum() / (t > 0).sum(), "number of cell pixels"),
    (lambda p, t: (p != t).sum() / (t == 0).sum(), "number of membrane pixels"),
    (lambda p, t: (p != t).mean(axis=0), "one number: the error over the whole slice"),
    (lambda p, t: None, "is the `return` missing?"),
    (lambda p, t: bool((p != t).any()), "not a bool"),
    (lambda p, t: "0.1", "one number"),
    (lambda p, t: (p != t).mean() + 0.01, "wrong pixels /"),
    (todo, "NotImplementedError"),
])
def test_pixel_error_names_the_usual_mistakes(wrong, says):
    assert says in fails_with(check_pixel_error, wrong)


def test_pixel_error_check_agrees_with_the_real_labels(real_isbi2012):
    """The reference the check trusts: on real label pages, pixel_error is the share of differing pixels."""
    labels = read_stack(real_isbi2012 / "train-labels.tif")
    assert pixel_error(labels[0], labels[1]) == pytest.approx((labels[0] != labels[1]).mean())
    assert pixel_error(np.full_like(labels[0], 255), labels[0]) == pytest.approx((labels[0] == 0).mean())


# ---- exercise 2: cells by 4-connectivity ----------------------------------------------------

def test_cells_accepts_right_answers(capsys):
    check_cells(lambda m: ndimage.label(m > 0)[0])
    check_cells(lambda m: ndimage.label(m == 255)[0])
    check_cells(cell_labels)
    check_cells(lambda m: sk_label(m > 0, connectivity=1))
    check_cells(lambda m: torch.from_numpy(ndimage.label(m > 0)[0]))
    assert capsys.readouterr().out.count("Correct:") == 5


def renumbered(m):
    """Right cells, but numbered 2, 4, 6, ... instead of 1..K."""
    return ndimage.label(m > 0)[0] * 2


@pytest.mark.parametrize("wrong, says", [
    (lambda m: ndimage.label(m > 0, structure=np.ones((3, 3)))[0], "8-connectivity"),
    (lambda m: sk_label(m > 0), "8-connectivity"),  # skimage's default connectivity is the full one
    (lambda m: ndimage.label(m == 0)[0], "labels the membrane"),
    (lambda m: ndimage.label(m > 0), "return the labels only"),
    (lambda m: (m > 0).astype(int), "same label"),
    (lambda m: m, "same label"),
    (lambda m: ndimage.label(m > 0)[0] + 1, "membrane pixels must be 0"),
    (renumbered, "numbered"),
    (lambda m: ndimage.label(m > 0)[0][:-1], "shape"),
    (lambda m: ndimage.label(m > 0)[0] / 2, "fractional"),
    (lambda m: ndimage.label((m > 0)[:, ::-1])[0][:, ::-1] * (np.arange(m.shape[1]) % 2 == 0), "expected"),
    (todo, "NotImplementedError"),
])
def test_cells_names_the_usual_mistakes(wrong, says):
    assert says in fails_with(check_cells, wrong)


def test_eight_connectivity_really_merges_cells_on_a_real_slice(real_isbi2012):
    """What the check's message claims, on the real labels: 8-connectivity finds fewer cells on some page."""
    labels = read_stack(real_isbi2012 / "train-labels.tif")
    four = [ndimage.label(p > 0)[1] for p in labels]
    eight = [ndimage.label(p > 0, structure=np.ones((3, 3)))[1] for p in labels]
    assert all(e <= f for e, f in zip(eight, four)) and any(e < f for e, f in zip(eight, four))
    assert four == [int(cell_labels(p).max()) for p in labels]
