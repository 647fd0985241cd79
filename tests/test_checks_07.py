"""The exercise checks of lesson 07 accept right answers and explain wrong ones in words."""

import torch

from course_utils import dice_score
from course_utils.checks.lesson07 import check_per_image_dice, check_pooled_dice
from conftest import fails_with


# ---- exercise 1: per-image Dice ----------------------------------------------------------

def per_image_dice(pred, target):
    p, t = pred.flatten(1), target.flatten(1)
    overlap, size = (p & t).sum(1).double(), (p.sum(1) + t.sum(1)).double()
    return torch.where(size > 0, 2 * overlap / size.clamp(min=1), torch.ones_like(size))


def test_per_image_dice_accepts_right_answers(capsys):
    check_per_image_dice(per_image_dice)
    check_per_image_dice(lambda p, t: dice_score(p, t, reduction="none"))
    check_per_image_dice(lambda p, t: per_image_dice(p, t).numpy())  # numpy is fine too
    assert capsys.readouterr().out.count("Correct:") == 3


def test_per_image_dice_names_the_usual_mistakes():
    def no_empty_rule(pred, target):
        p, t = pred.flatten(1).float(), target.flatten(1).float()
        return 2 * (p * t).sum(1) / (p.sum(1) + t.sum(1))

    def empty_is_zero(pred, target):
        return torch.nan_to_num(no_empty_rule(pred, target), nan=0.0)

    def iou(pred, target):
        p, t = pred.flatten(1), target.flatten(1)
        inter, union = (p & t).sum(1).double(), (p | t).sum(1).double()
        return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))

    def no_two(pred, target):
        return torch.where(per_image_dice(pred, target) == 1, 1.0, per_image_dice(pred, target) / 2)

    def smoothed(pred, target):
        p, t = pred.flatten(1).float(), target.flatten(1).float()
        return (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)

    assert "0/0" in fails_with(check_per_image_dice, no_empty_rule)
    assert "Dice 1" in fails_with(check_per_image_dice, empty_is_zero)
    assert "that is IoU" in fails_with(check_per_image_dice, iou)
    assert "2 * |P & T|" in fails_with(check_per_image_dice, no_two)
    assert "smoothing" in fails_with(check_per_image_dice, smoothed)
    assert "mean of the per-image" in fails_with(check_per_image_dice, lambda p, t: per_image_dice(p, t).mean())
    assert "pooled" in fails_with(check_per_image_dice, lambda p, t: dice_score(p, t, reduction="global"))
    assert "expected (4,)" in fails_with(check_per_image_dice, lambda p, t: per_image_dice(p, t)[:, None].expand(4, 2))
    assert "channel" in fails_with(check_per_image_dice, lambda p, t: per_image_dice(p, t)[:, None])

    def todo(p, t):
        raise NotImplementedError()
    assert "NotImplementedError" in fails_with(check_per_image_dice, todo)


# ---- exercise 2: pooled Dice -------------------------------------------------------------

def pooled_dice(pred, target):
    overlap, size = (pred & target).sum().item(), pred.sum().item() + target.sum().item()
    return 2 * overlap / size if size else 1.0


def test_pooled_dice_accepts_right_answers(capsys):
    check_pooled_dice(pooled_dice)
    check_pooled_dice(lambda p, t: dice_score(p, t, reduction="global"))
    assert capsys.readouterr().out.count("Correct:") == 2


def test_pooled_dice_names_the_usual_mistakes():
    assert "mean of the per-image" in fails_with(check_pooled_dice, lambda p, t: dice_score(p, t).item())
    assert "one number" in fails_with(check_pooled_dice, lambda p, t: dice_score(p, t, reduction="none"))
    no_two = lambda p, t: (p & t).sum().item() / (p.sum() + t.sum()).clamp(min=1).item()  # noqa: E731
    assert "2 * |P & T|" in fails_with(check_pooled_dice, no_two)
    iou = lambda p, t: (p & t).sum().item() / max(1, (p | t).sum().item())  # noqa: E731
    assert "pooled IoU" in fails_with(check_pooled_dice, iou)
    no_empty = lambda p, t: 2 * (p & t).sum().item() / max(1, p.sum().item() + t.sum().item())  # noqa: E731
    assert "0/0, scored 1" in fails_with(check_pooled_dice, no_empty)


def test_the_pooled_case_really_separates_pooled_from_per_image():
    from course_utils.checks.lesson07 import _dice_batch

    pred, target, _ = _dice_batch()
    per_image, pooled = dice_score(pred, target).item(), dice_score(pred, target, reduction="global").item()
    assert abs(per_image - pooled) > 0.01
