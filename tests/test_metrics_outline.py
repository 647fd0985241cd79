"""outline_band and outline_band_error (lesson 14): hand-counted masks, scipy as a second opinion."""
import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from course_utils import outline_band, outline_band_error


def box(h, w, top, bottom, left, right):
    """A (1, h, w) float mask, 1 on rows top..bottom and columns left..right (inclusive)."""
    m = torch.zeros(1, h, w)
    m[:, top:bottom + 1, left:right + 1] = 1
    return m


def test_a_thin_box_shifted_by_one_column_counted_by_hand():
    # 6 x 8 image, car on rows 2-3, columns 3-5. Width 1: the band is every pixel whose 3 x 3
    # neighbourhood holds car and background: rows 1-4 x columns 2-6 = 20 pixels (the car is 2 rows
    # high, so no car pixel has car all around). The prediction is the car one column to the right:
    # wrong at column 3 (missed) and column 6 (false), rows 2-3: 4 pixels, all in the band.
    target, pred = box(6, 8, 2, 3, 3, 5), box(6, 8, 2, 3, 4, 6)
    band = outline_band(target, width=1)[0]
    assert band.sum() == 20 and band[1:5, 2:7].all()
    assert outline_band_error(pred, target, width=1).tolist() == [4 / 20]


def test_a_square_car_all_missed_or_all_claimed():
    # 10 x 10, car rows/columns 2-7 (36 pixels). Width 1: dilated 8 x 8 = 64, eroded 4 x 4 = 16, band 48,
    # of which 36 - 16 = 20 car and 64 - 36 = 28 background. Width 2: dilated is the whole image (100),
    # eroded 2 x 2 = 4, band 96 with 32 car pixels.
    target = box(10, 10, 2, 7, 2, 7)
    nothing, everything = torch.zeros_like(target), torch.ones_like(target)
    assert outline_band(target, 1).sum() == 48 and outline_band(target, 2).sum() == 96
    assert outline_band_error(nothing, target, width=1).item() == pytest.approx(20 / 48)
    assert outline_band_error(everything, target, width=1).item() == pytest.approx(28 / 48)
    assert outline_band_error(nothing, target, width=2).item() == pytest.approx(32 / 96)


def test_errors_away_from_the_outline_do_not_count():
    target = box(10, 10, 2, 7, 2, 7)
    holed = target.clone()
    holed[:, 4:6, 4:6] = 0  # a hole in the middle of the car: 3 pixels from its outline
    assert outline_band_error(holed, target, width=2).item() == 0
    assert outline_band_error(holed, target, width=3).item() > 0


def test_the_image_edge_is_not_an_outline():
    target = torch.zeros(1, 4, 4)
    target[:, :, :2] = 1  # the left half: touches the top, bottom and left edges
    band = outline_band(target, width=1)[0]
    assert band[:, 1:3].all() and band.sum() == 8  # columns 1 and 2 only


def test_the_band_is_scipys_dilation_minus_erosion_with_a_square():
    rng = np.random.default_rng(0)
    masks = ndimage.binary_opening(rng.random((3, 40, 56)) < 0.5, np.ones((1, 3, 3)))
    for width in (1, 2, 3):
        square = np.ones((1, 2 * width + 1, 2 * width + 1), bool)
        expected = ndimage.binary_dilation(masks, square) & ~ndimage.binary_erosion(masks, square, border_value=1)
        assert np.array_equal(outline_band(torch.from_numpy(masks), width).numpy(), expected)


def test_shapes_batches_and_images_without_an_outline():
    target = torch.stack([box(6, 8, 2, 3, 3, 5), torch.zeros(1, 6, 8), torch.ones(1, 6, 8)])  # (3, 1, 6, 8)
    pred = torch.zeros_like(target)
    error = outline_band_error(pred, target, width=1)
    assert error.shape == (3,) and error.dtype == torch.float64
    assert error[0].item() == pytest.approx(6 / 20) and math.isnan(error[1]) and math.isnan(error[2])
    assert torch.equal(outline_band_error(pred[:, 0].bool(), target[:, 0].bool(), 1)[:1], error[:1])  # (N, H, W)
    assert outline_band(target, 1).shape == target.shape and outline_band(target, 1).dtype == torch.bool


def test_bad_input_says_what_is_wrong():
    target = box(6, 8, 2, 3, 3, 5)
    with pytest.raises(ValueError, match="width must be at least 1"):
        outline_band(target, width=0)
    with pytest.raises(ValueError, match="only 0 and 1"):
        outline_band_error(torch.full_like(target, 0.7), target)
    with pytest.raises(ValueError, match="same shape"):
        outline_band_error(target[:, :4], target)
    with pytest.raises(ValueError, match=r"\(N, H, W\) or \(N, 1, H, W\)"):
        outline_band(torch.zeros(2, 3, 6, 8))
