"""Tests for course_utils.losses: values on hand-computed cases, limits, gradients."""
from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from course_utils.losses import BCEDiceLoss, DiceLoss, SegDepthLoss, class_weights, masked_l1, silog_loss, soft_dice


def test_soft_dice_hand_computed():
    # probabilities 0.5 on 4 pixels, target 1 on 2 of them: 2*1 / (2 + 2) with smooth 0
    probs = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    assert soft_dice(probs, target, smooth=0.0).item() == pytest.approx(0.5)
    # with smooth 1: (2*1 + 1) / (4 + 1)
    assert soft_dice(probs, target, smooth=1.0).item() == pytest.approx(3 / 5)


def test_dice_loss_is_per_image_then_averaged():
    # image 0: logits 0 -> p = 0.5 everywhere, target half ones -> Dice 2*1/(2+2) = 0.5
    # image 1: target empty, prediction 0.5 -> Dice 0 / (2 + 0) = 0
    logits = torch.zeros(2, 1, 2, 2)
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]).view(2, 1, 2, 2)
    loss = DiceLoss(smooth=0.0)(logits, target)
    assert loss.item() == pytest.approx(1 - (0.5 + 0.0) / 2)
    # a pooled Dice would give 2*1 / (4 + 2) = 1/3 -> loss 2/3: make sure we are not that
    assert loss.item() != pytest.approx(2 / 3)


def test_perfect_prediction_gives_near_zero_dice_loss():
    target = torch.zeros(3, 1, 16, 24)
    target[:, :, 4:12, 6:18] = 1
    target[2] = 0  # an empty mask predicted empty also counts as perfect
    logits = target * 40 - 20
    assert DiceLoss()(logits, target).item() < 1e-6
    assert BCEDiceLoss()(logits, target).item() < 1e-6


def test_wrong_prediction_gives_dice_loss_near_one():
    target = torch.zeros(1, 1, 8, 8)
    target[..., :4, :] = 1
    logits = (1 - target) * 40 - 20  # exactly the opposite
    assert DiceLoss()(logits, target).item() > 0.95


def test_bce_dice_combines_both_terms():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 8, 8)
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    bce = F.binary_cross_entropy_with_logits(logits, target).item()
    dice = DiceLoss()(logits, target).item()
    assert BCEDiceLoss(0.5)(logits, target).item() == pytest.approx(0.5 * bce + 0.5 * dice)
    assert BCEDiceLoss(1.0)(logits, target).item() == pytest.approx(bce)
    assert BCEDiceLoss(0.0)(logits, target).item() == pytest.approx(dice)
    # hand check of BCE on one pixel: logit 0, target 1 -> -log(0.5)
    one = BCEDiceLoss(1.0)(torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1))
    assert one.item() == pytest.approx(math.log(2))


def test_target_dtype_does_not_matter():
    logits = torch.randn(2, 1, 4, 4)
    target = torch.rand(2, 1, 4, 4) > 0.5
    assert BCEDiceLoss()(logits, target).item() == pytest.approx(BCEDiceLoss()(logits, target.float()).item())


@pytest.mark.parametrize("loss_fn", [DiceLoss(), BCEDiceLoss()])
def test_gradients_flow_and_point_downhill(loss_fn):
    torch.manual_seed(0)
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:6, 2:6] = 1
    logits = torch.zeros(2, 1, 8, 8, requires_grad=True)
    loss = loss_fn(logits, target)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    # raising a logit inside the mask and lowering one outside must both reduce the loss
    assert (logits.grad[target.bool()] < 0).all()
    assert (logits.grad[~target.bool()] > 0).all()
    with torch.no_grad():
        assert loss_fn(logits - 0.5 * logits.grad.sign(), target) < loss


def test_bad_bce_weight_is_rejected():
    with pytest.raises(ValueError, match="between 0 and 1"):
        BCEDiceLoss(bce_weight=1.5)


# ---------------------------------------------------------------------------- lesson 10


def test_median_frequency_weights_by_hand():
    w = class_weights(torch.tensor([600, 300, 100, 0]))  # freq 0.6, 0.3, 0.1; median 0.3
    assert torch.allclose(w, torch.tensor([0.5, 1.0, 3.0, 0.0]))
    soft = class_weights(torch.tensor([600, 300, 100, 0]), "inverse_sqrt")
    assert soft[2] > soft[1] > soft[0] > 0 and soft[3] == 0 and soft[:3].mean().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="count the labels"):
        class_weights(torch.zeros(3))


def test_depth_losses_use_only_valid_pixels():
    target = torch.tensor([[[[2.0, 0.0], [4.0, 0.0]]]])  # zeros: no depth measured there
    pred = torch.tensor([[[[3.0, 100.0], [4.0, -50.0]]]])
    assert masked_l1(pred, target).item() == pytest.approx(0.5)  # |3-2| and |4-4| only
    # a pure scale error costs sqrt(1 - 0.85) * log(scale) under silog, nothing when fully scale-invariant
    assert silog_loss(2 * target.clamp(min=1), target).item() == pytest.approx(math.sqrt(0.15) * math.log(2), rel=1e-5)
    assert silog_loss(2 * target.clamp(min=1), target, variance_focus=1.0).item() == pytest.approx(0, abs=1e-3)
    empty = masked_l1(pred.requires_grad_(), torch.zeros_like(target))
    empty.backward()
    assert empty.item() == 0 and torch.equal(pred.grad, torch.zeros_like(pred))


def test_seg_depth_loss_ignores_unlabelled_pixels_and_weighs_tasks():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 3, 3)
    labels = torch.randint(0, 4, (2, 3, 3))
    labels[0, 0] = 255
    depth_true = torch.rand(2, 1, 3, 3) + 1
    out = {"seg": logits, "depth": depth_true + 0.5}
    target = {"seg": labels, "depth": depth_true}
    keep = labels != 255
    ce = F.cross_entropy(logits.permute(0, 2, 3, 1)[keep], labels[keep])
    loss = SegDepthLoss(ignore_index=255, seg_weight=2.0, depth_weight=3.0)
    assert loss.parts(out, target)["seg"].item() == pytest.approx(ce.item(), rel=1e-5)
    assert loss(out, target).item() == pytest.approx(2 * ce.item() + 3 * 0.5, rel=1e-5)
    assert SegDepthLoss()(logits, labels).item() == pytest.approx(ce.item(), rel=1e-5)  # plain UNet logits
    with pytest.raises(ValueError, match="depth_loss"):
        SegDepthLoss(depth_loss="l2")


def test_seg_depth_loss_class_weights_follow_the_logits_whatever_their_type():
    """Weights counted on the CPU (numpy, float64) are moved to the logits' device and dtype."""
    import numpy as np

    torch.manual_seed(0)
    logits, labels = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    weights = np.array([0.5, 1.0, 3.0])
    want = F.cross_entropy(logits, labels, weight=torch.tensor(weights, dtype=torch.float32))
    assert SegDepthLoss(class_weights=weights)(logits, labels).item() == pytest.approx(want.item(), rel=1e-6)
