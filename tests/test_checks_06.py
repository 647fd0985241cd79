"""The exercise checks of lesson 06 accept right answers and explain wrong ones in words."""
import math

import pytest
import torch

from course_utils.checks import CheckFailed, check_lr_at, check_soft_dice_loss, check_train_step
from course_utils.losses import DiceLoss
from course_utils.engine import train_step as course_train_step


def fails_with(check, *args) -> str:
    with pytest.raises(CheckFailed) as info:
        check(*args)
    return str(info.value)


def soft_dice_loss(logits, target, smooth=1.0):
    p, t = torch.sigmoid(logits).flatten(1), target.flatten(1)
    return 1 - ((2 * (p * t).sum(1) + smooth) / (p.sum(1) + t.sum(1) + smooth)).mean()


def test_soft_dice_accepts_right_answers(capsys):
    check_soft_dice_loss(soft_dice_loss)
    check_soft_dice_loss(DiceLoss())
    assert capsys.readouterr().out.count("Correct:") == 2


def test_soft_dice_names_the_usual_mistakes():
    def no_sigmoid(logits, target, smooth=1.0):
        p, t = logits.flatten(1), target.flatten(1)
        return 1 - ((2 * (p * t).sum(1) + smooth) / (p.sum(1) + t.sum(1) + smooth)).mean()
    assert "sigmoid" in fails_with(check_soft_dice_loss, no_sigmoid)
    assert "1 - Dice" in fails_with(check_soft_dice_loss, lambda l, t: 1 - soft_dice_loss(l, t))
    pooled = lambda l, t: soft_dice_loss(l.reshape(1, -1), t.reshape(1, -1))  # noqa: E731
    assert "per image" in fails_with(check_soft_dice_loss, pooled)
    assert "smooth" in fails_with(check_soft_dice_loss, lambda l, t: soft_dice_loss(l, t, smooth=0.0))
    assert "scalar" in fails_with(check_soft_dice_loss, lambda l, t: soft_dice_loss(l, t).expand(3))
    assert "gradient" in fails_with(check_soft_dice_loss, lambda l, t: soft_dice_loss(l, t).detach())

    def todo(l, t):
        raise NotImplementedError()
    assert "NotImplementedError" in fails_with(check_soft_dice_loss, todo)


def test_train_step_accepts_a_hand_written_step_and_the_course_one(capsys):
    def step(model, images, masks, loss_fn, optimizer):
        optimizer.zero_grad()
        loss = loss_fn(model(images), masks)
        loss.backward()
        optimizer.step()
        return loss.detach()

    check_train_step(step)
    check_train_step(course_train_step)
    assert capsys.readouterr().out.count("Correct:") == 2


def test_train_step_names_the_usual_mistakes():
    def no_step(model, images, masks, loss_fn, optimizer):
        optimizer.zero_grad()
        loss = loss_fn(model(images), masks)
        loss.backward()
        return loss

    def no_zero_grad(model, images, masks, loss_fn, optimizer):
        loss = loss_fn(model(images), masks)
        loss.backward()
        optimizer.step()
        return loss

    def loss_after(model, images, masks, loss_fn, optimizer):
        optimizer.zero_grad()
        loss_fn(model(images), masks).backward()
        optimizer.step()
        return loss_fn(model(images), masks)

    assert "optimizer.step()" in fails_with(check_train_step, no_step)
    assert "zero_grad" in fails_with(check_train_step, no_zero_grad)
    assert "before the weights change" in fails_with(check_train_step, loss_after)


def lr_at(step, total_steps, warmup_steps, peak_lr):
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return peak_lr * 0.5 * (1 + math.cos(math.pi * progress))


def test_lr_at_accepts_a_right_answer_and_names_mistakes(capsys):
    check_lr_at(lr_at)
    assert "Correct:" in capsys.readouterr().out
    assert "not 0" in fails_with(check_lr_at, lambda s, n, w, p: p * s / w if s < w else lr_at(s, n, w, p))
    assert "factor" in fails_with(check_lr_at, lambda s, n, w, p: lr_at(s, n, w, p) / p)
    linear = lambda s, n, w, p: lr_at(s, n, w, p) if s < w else p * (1 - (s - w) / (n - w))  # noqa: E731
    assert "cos" in fails_with(check_lr_at, linear)
