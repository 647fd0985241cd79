"""Dice, IoU and pixel accuracy on hand-computed cases, and the Kaggle per-image convention."""
import pytest
import torch

from course_utils import dice_score, iou_score, pixel_accuracy


def masks(*rows):
    return torch.tensor(rows)


def test_hand_computed_dice_iou_accuracy():
    pred = masks([1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0])
    target = masks([1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1])
    assert dice_score(pred, target, "none").tolist() == pytest.approx([2 / 3, 1.0, 0.0])
    assert dice_score(pred, target).item() == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert dice_score(pred, target, "global").item() == pytest.approx(2 * 1 / (3 + 2))
    assert iou_score(pred, target, "none").tolist() == pytest.approx([0.5, 1.0, 0.0])
    assert pixel_accuracy(pred, target, "none").tolist() == pytest.approx([0.75, 1.0, 0.5])


def test_empty_prediction_and_empty_target_score_one_but_empty_prediction_alone_scores_zero():
    empty = torch.zeros(1, 1, 4, 4)
    one = empty.clone()
    one[0, 0, 2, 3] = 1
    assert dice_score(empty, empty).item() == 1.0
    assert dice_score(empty, one).item() == 0.0
    assert dice_score(one, one).item() == 1.0
    assert iou_score(empty, empty).item() == 1.0


def test_full_masks_and_bool_input():
    full = torch.ones(2, 1, 3, 3, dtype=torch.bool)
    assert dice_score(full, full).item() == 1.0
    assert pixel_accuracy(full, ~full).item() == 0.0


def test_mean_differs_from_global_when_objects_differ_in_size():
    target = torch.zeros(2, 10, 10)
    target[0] = 1  # a big object, predicted perfectly
    target[1, 0, 0] = 1  # a one-pixel object, missed
    pred = target.clone()
    pred[1] = 0
    assert dice_score(pred, target).item() == pytest.approx(0.5)
    assert dice_score(pred, target, "global").item() == pytest.approx(200 / 201)


def test_iou_is_dice_over_two_minus_dice_per_image():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(8, 1, 16, 16, generator=g) > 0.5
    target = torch.rand(8, 1, 16, 16, generator=g) > 0.4
    d, j = dice_score(pred, target, "none"), iou_score(pred, target, "none")
    assert torch.allclose(j, d / (2 - d))


def test_mistakes_are_explained():
    with pytest.raises(ValueError, match="same shape"):
        dice_score(torch.zeros(1, 4), torch.zeros(1, 5))
    with pytest.raises(ValueError, match="threshold it first"):
        dice_score(torch.rand(1, 4), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="reduction"):
        dice_score(torch.zeros(1, 4), torch.zeros(1, 4), reduction="sum")
