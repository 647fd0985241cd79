"""The exercise checks of lesson 14 accept right answers and explain wrong ones in words."""
import numpy as np
import pytest
import torch.nn.functional as F
from scipy import ndimage

from course_utils import outline_band
from course_utils.checks import check_outline_band, check_skip_shapes
from conftest import fails_with, todo

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


# ---- exercise 1: which stage feeds which Up block -------------------------------------------

STAGES = {"vgg11": ([64, 128, 256, 512, 512], 0), "resnet34": ([64, 64, 128, 256, 512], 1)}


def skip_shapes(encoder, height, width):
    """The solution: every stage but the bottom one is a skip, deepest first; stage i is at 1/2**(i + first)."""
    channels, first = STAGES[encoder]
    return [(channels[i], height >> (i + first), width >> (i + first)) for i in reversed(range(len(channels) - 1))]


def test_skip_shapes_accepts_right_answers(capsys):
    check_skip_shapes(skip_shapes)
    check_skip_shapes(lambda e, h, w: [list(s) for s in skip_shapes(e, h, w)])  # lists are fine too
    assert capsys.readouterr().out.count("Correct:") == 2


def top_first(e, h, w):
    return skip_shapes(e, h, w)[::-1]


def vgg_strides_for_resnet(e, h, w):
    channels, _ = STAGES[e]
    return [(channels[i], h >> i, w >> i) for i in reversed(range(len(channels) - 1))]


def with_the_bottom(e, h, w):
    channels, first = STAGES[e]
    return [(channels[i], h >> (i + first), w >> (i + first)) for i in reversed(range(len(channels)))]


def vgg_channels_everywhere(e, h, w):
    return [(c, s[1], s[2]) for c, s in zip([512, 256, 128, 64], skip_shapes(e, h, w))]


@pytest.mark.parametrize("wrong, says", [
    (top_first, "order is reversed"),
    (vgg_strides_for_resnet, "sizes"),
    (with_the_bottom, "Up blocks"),
    (vgg_channels_everywhere, "channels"),
    (lambda e, h, w: [(64, h, w)] * 4, "expected"),
    (lambda e, h, w: 4, "list of (channels, height, width)"),
    (lambda e, h, w: [("a", 1, 2)] * 4, "three whole numbers"),
    (todo, "NotImplementedError"),
])
def test_skip_shapes_names_the_usual_mistakes(wrong, says):
    assert says in fails_with(check_skip_shapes, wrong)


# ---- exercise 2: the outline band -----------------------------------------------------------

def band_by_pooling(mask, width):
    """The solution: some car nearby (max-pool) and not only car nearby (min-pool), a square window."""
    m, k = mask.float()[None, None], 2 * width + 1
    grown = F.max_pool2d(m, k, stride=1, padding=width)
    shrunk = -F.max_pool2d(-m, k, stride=1, padding=width)
    return (grown > 0.5) & (shrunk < 0.5)


def band_by_scipy(mask, width):
    square = np.ones((2 * width + 1,) * 2, bool)
    m = mask.numpy()
    return ndimage.binary_dilation(m, square) & ~ndimage.binary_erosion(m, square, border_value=1)


def test_outline_band_accepts_right_answers(capsys):
    check_outline_band(lambda m, w: band_by_pooling(m, w)[0, 0])
    check_outline_band(band_by_scipy)
    check_outline_band(lambda m, w: outline_band(m[None], w)[0])
    check_outline_band(lambda m, w: band_by_pooling(m, w).int())  # (1, 1, H, W) of 0/1 is fine
    assert capsys.readouterr().out.count("Correct:") == 4


def square(width):
    return np.ones((2 * width + 1,) * 2, bool)


@pytest.mark.parametrize("wrong, says", [
    (lambda m, w: m.numpy() & ~ndimage.binary_erosion(m.numpy(), square(w), border_value=1), "car's side"),
    (lambda m, w: ndimage.binary_dilation(m.numpy(), square(w)) & ~m.numpy(), "background's side"),
    (lambda m, w: ndimage.binary_dilation(m.numpy(), square(w)) & ~ndimage.binary_erosion(m.numpy(), square(w)),
     "image's edge"),
    (lambda m, w: ndimage.binary_dilation(m.numpy(), iterations=w)
     & ~ndimage.binary_erosion(m.numpy(), iterations=w, border_value=1), "not a cross"),
    (lambda m, w: ~band_by_scipy(m, w), "everything except the band"),
    (lambda m, w: band_by_scipy(m, w + 1), "one pixel wider"),
    (lambda m, w: band_by_scipy(m, max(w - 1, 1)) if w > 1 else band_by_scipy(m, 3), "pixels differ"),
    (lambda m, w: band_by_pooling(m, w).float() * 0.5, "values other than True/False"),
    (lambda m, w: band_by_scipy(m, w)[1:], "expected (8, 10)"),
    (lambda m, w: "band", "expected a boolean mask"),
    (todo, "NotImplementedError"),
])
def test_outline_band_names_the_usual_mistakes(wrong, says):
    assert says in fails_with(check_outline_band, wrong)


def test_a_band_narrower_than_asked_is_named():
    """Width 2 answered with width 1 (the second case of the check)."""
    answer = lambda m, w: band_by_scipy(m, 1)  # noqa: E731
    assert "one pixel narrower" in fails_with(check_outline_band, answer)
