"""Checks for lesson 06's exercises: one training step written by hand, the soft Dice loss, and
the warm-up + cosine learning rate at step t.

Each check runs the learner's function on a few cases, compares it with the course's own
(course_utils.losses, course_utils.train) and says in words what differs; "Correct: ..." when right.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Callable

from ._common import call_answer, fail, passed, tensor_shape

__all__ = ["check_soft_dice_loss", "check_train_step", "check_lr_at"]


def _dice_cases():
    import torch

    torch.manual_seed(0)
    target = torch.zeros(3, 1, 8, 8)
    target[0, :, 2:6, 2:6] = 1  # a square
    target[1, :, :, :2] = 1  # a thin strip
    # image 2: empty mask (no car): only `smooth` keeps its Dice defined
    return [("random logits", torch.randn(3, 1, 8, 8) * 2, target),
            ("confident, right logits", target * 20 - 10, target),
            ("all-zero logits (p = 0.5 everywhere)", torch.zeros(3, 1, 8, 8), target)]


def check_soft_dice_loss(soft_dice_loss: Callable[..., Any]) -> None:
    """Exercise 2: `soft_dice_loss(logits, target, smooth=1.0)` -> scalar tensor,
    1 - soft Dice of sigmoid(logits), per image, averaged over the batch. Lesson 06."""
    import torch

    from ..losses import DiceLoss, soft_dice

    for what, logits, target in _dice_cases():
        logits = logits.clone().requires_grad_(True)
        call = f"soft_dice_loss(<{what}, shape {tuple(logits.shape)}>, target)"
        got = call_answer(soft_dice_loss, "soft_dice_loss", logits, target)
        if tensor_shape(got, call) != ():
            fail(f"{call} returned shape {tuple(got.shape)}; expected a scalar (shape ()): average the "
                 f"per-image losses over the batch with .mean().")
        want = DiceLoss(smooth=1.0)(logits, target)
        if not torch.isfinite(got):
            fail(f"{call} returned {got.item()}: an empty mask with an empty prediction gives 0/0. Add "
                 f"`smooth` to the numerator and the denominator.")
        if torch.allclose(got, want, atol=1e-5):
            if not got.requires_grad:
                fail(f"{call} gives the right value but carries no gradient: keep it a torch computation "
                     f"(no .item(), .detach() or numpy), or backward() cannot reach the weights.")
            continue
        probs, flat = torch.sigmoid(logits), target
        hints = [
            (1 - want, "you returned the Dice score; the loss is 1 - Dice (lower is better)"),
            (1 - soft_dice(logits, flat).mean(), "apply torch.sigmoid to the logits first: Dice is defined on "
                                                 "probabilities in [0, 1]"),
            (1 - soft_dice(probs.reshape(1, -1), flat.reshape(1, -1)).mean(),
             "you pooled the whole batch into one Dice; compute it per image (sum over dims 1, 2, 3, or "
             "flatten(1)) and then average"),
            (1 - soft_dice(probs, flat, smooth=0.0).mean(), "use smooth=1.0 in both numerator and denominator"),
        ]
        for value, hint in hints:
            if torch.isfinite(value) and torch.allclose(got, value, atol=1e-5):
                fail(f"{call} returned {got.item():.4f}; expected {want.item():.4f}: {hint}.")
        fail(f"{call} returned {got.item():.4f}; expected {want.item():.4f}. Per image: "
             f"Dice = (2 * sum(p * t) + smooth) / (sum(p) + sum(t) + smooth), p = sigmoid(logits); "
             f"loss = 1 - mean over images.")
    passed("1 - soft Dice of sigmoid(logits), per image, averaged; matches course_utils.losses.DiceLoss.")


def _tiny_setup():
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 1))
    images, masks = torch.rand(2, 3, 8, 8), (torch.rand(2, 1, 8, 8) > 0.5).float()
    return model, images, masks


def check_train_step(train_step: Callable[..., Any]) -> None:
    """Exercise 1: `train_step(model, images, masks, loss_fn, optimizer)` -> the loss
    (before the step); zero the gradients, forward, loss, backward, optimizer step. Lesson 06."""
    import torch

    from ..losses import BCEDiceLoss
    from ..engine import train_step as reference

    model, images, masks = _tiny_setup()
    theirs, ours = copy.deepcopy(model), copy.deepcopy(model)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.1)
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.1)
    loss_fn = BCEDiceLoss()
    for step in (1, 2):
        before = [p.detach().clone() for p in theirs.parameters()]
        call = f"train_step(model, images, masks, loss_fn, optimizer) (step {step})"
        got = call_answer(train_step, "train_step", theirs, images, masks, loss_fn, opt_theirs)
        want = reference(ours, images, masks, loss_fn, opt_ours)
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            fail(f"{call} returned {type(got).__name__}; expected the loss, a scalar tensor.")
        moved = any(not torch.equal(b, p) for b, p in zip(before, theirs.parameters()))
        if not moved:
            fail(f"{call} left every weight unchanged: after loss.backward() call optimizer.step().")
        if all(p.grad is None for p in theirs.parameters()):
            fail(f"{call}: the weights have no gradients; call loss.backward() before optimizer.step().")
        same = all(torch.allclose(a, b, atol=1e-6) for a, b in zip(theirs.parameters(), ours.parameters()))
        if not same:
            why = ("the second step differs: call optimizer.zero_grad() before backward(), or the gradients "
                   "of the previous step are added to this one's" if step == 2 else
                   "compute loss_fn(model(images), masks), call loss.backward(), then optimizer.step()")
            fail(f"{call} moved the weights differently from course_utils.engine.train_step: {why}.")
        if not torch.allclose(got.detach().float(), want, atol=1e-6):
            fail(f"{call} returned {got.item():.5f}; expected {want.item():.5f}: return the loss computed "
                 f"in this step's forward pass (before the weights change).")
    passed("zero_grad, forward, loss, backward, step: two steps match course_utils.engine.train_step.")


def _lr_reference(step: int, total_steps: int, warmup_steps: int, peak_lr: float) -> float:
    from ..engine import warmup_cosine

    return peak_lr * warmup_cosine(step, total_steps, warmup_steps)


def check_lr_at(lr_at: Callable[..., float]) -> None:
    """Exercise 3: `lr_at(step, total_steps, warmup_steps, peak_lr)` -> the learning rate
    at batch `step` (0-based): linear warm-up to peak_lr, then cosine decay to 0. Lesson 06."""
    total, warm, peak = 100, 10, 3e-3
    cases = [(0, "the first step of the warm-up is (0 + 1) / warmup_steps of the peak, not 0 (a zero lr "
                 "would waste the step)"),
             (4, "during warm-up the lr grows linearly: peak_lr * (step + 1) / warmup_steps"),
             (9, "the last warm-up step reaches the peak"),
             (10, "right after warm-up the cosine starts at its top: the peak"),
             (55, "halfway through the decay the cosine factor is 0.5 * (1 + cos(pi / 2)) = 0.5"),
             (80, "progress = (step - warmup_steps) / (total_steps - warmup_steps); factor = "
                  "0.5 * (1 + cos(pi * progress))"),
             (100, "at the end the lr has decayed to 0")]
    for step, why in cases:
        call = f"lr_at({step}, total_steps={total}, warmup_steps={warm}, peak_lr={peak})"
        got = call_answer(lr_at, "lr_at", step, total, warm, peak)
        try:
            got = float(got)
        except (TypeError, ValueError):
            fail(f"{call} returned {got!r}; expected a number (float).")
        want = _lr_reference(step, total, warm, peak)
        if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
            hint = why
            if math.isclose(got, want / peak, rel_tol=1e-6, abs_tol=1e-9):
                hint = "you returned the factor; multiply it by peak_lr"
            fail(f"{call} returned {got:.6g}; expected {want:.6g}: {hint}.")
    passed("linear warm-up to peak_lr, then cosine to 0: matches course_utils.engine.warmup_cosine.")
