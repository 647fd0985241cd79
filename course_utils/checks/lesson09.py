"""Checks for lesson 09's exercises: how well a feature map lines up with the mask, and a forward
pass with one skip switched off.

Each check runs the learner's function on a few cases and says in words what is wrong (which
case, what was expected and why); when all is right it prints "Correct: ...".
"""
from __future__ import annotations

from typing import Callable

from ._common import call_answer, fail, passed, tensor_shape

__all__ = ["check_mask_correlation", "check_without_skip"]


def reference_mask_correlation(features, mask):
    """Pearson r of each channel of features (C, h, w) with mask (H, W), averaged down to (h, w);
    0 for a constant channel. Lesson 09."""
    import torch
    import torch.nn.functional as F

    target = F.adaptive_avg_pool2d(mask[None, None].float(), features.shape[-2:]).flatten()
    f = features.flatten(1).float()
    f, target = f - f.mean(1, keepdim=True), target - target.mean()
    norms = f.norm(dim=1) * target.norm()
    return torch.where(norms > 0, f @ target / norms.clamp(min=1e-12), torch.zeros_like(norms))


# ------------------------------------------------------------- exercise 1: mask correlation

def check_mask_correlation(mask_correlation: Callable) -> None:
    """Exercise 1: `mask_correlation(features (C, h, w), mask (H, W) bool)` -> (C,) Pearson r. Lesson 09."""
    import torch

    gen = torch.Generator().manual_seed(8)
    mask = torch.zeros(16, 24, dtype=torch.bool)
    mask[4:12, 6:20] = True
    car = torch.nn.functional.adaptive_avg_pool2d(mask[None, None].float(), (4, 6))[0, 0]
    cases = [  # (features, mask, what the case is)
        (torch.rand(5, 16, 24, generator=gen), mask, "five random channels at the mask's own size"),
        (torch.stack([car, -car, 3 * car + 1, torch.rand(4, 6, generator=gen)]), mask,
         "a 4 x 6 map (a level four times coarser than the mask): the mask itself, its negative, a scaled copy, noise"),
        (torch.stack([torch.full((4, 6), 2.0), car]), mask, "a constant channel (no spread: r is 0 by convention)"),
    ]
    for features, m, why in cases:
        what = f"mask_correlation(features {tuple(features.shape)}, mask {tuple(m.shape)})"
        got = call_answer(mask_correlation, "mask_correlation", features.clone(), m.clone())
        want = reference_mask_correlation(features, m)
        shape = tensor_shape(got, what)
        if shape != tuple(want.shape):
            fail(f"{what} has shape {shape}; expected {tuple(want.shape)}: one number per channel ({why}).")
        got = got.double()
        if torch.isnan(got).any():
            fail(f"{what} gave NaN ({why}). A constant channel has zero spread, so r = 0 / 0: return 0 for it "
                 f"(torch.where on the product of the two norms).")
        if torch.allclose(got, want.double(), atol=1e-4):
            continue
        if torch.allclose(got, want.double().abs(), atol=1e-4):
            fail(f"{what} lost the sign ({why}): a channel that is high on the background and low on the car has "
                 f"r near -1. Keep the sign here; the lesson takes |r| later.")
        if torch.allclose(got.abs(), torch.ones_like(got)) or got.abs().max() > 1 + 1e-4:
            fail(f"{what} gave {got.tolist()}: Pearson r lies in [-1, 1]. Subtract each mean before the dot "
                 f"product and divide by both norms ({why}).")
        fail(f"{what} gave {[round(v, 3) for v in got.tolist()]}, expected "
             f"{[round(v, 3) for v in want.tolist()]} ({why}). Average the mask down to the map's size "
             f"(F.adaptive_avg_pool2d), then r = sum(f' m') / (|f'| |m'|) with f', m' minus their means.")
    passed("one Pearson r per channel, against the mask averaged down to the map's size; 0 for a flat channel.")


# ------------------------------------------------------------- exercise 2: one skip switched off

def check_without_skip(without_skip: Callable) -> None:
    """Exercise 2: `without_skip(model, x, level)` -> logits with that level's skip replaced by zeros. Lesson 09."""
    import torch

    from ..model import UNet

    torch.manual_seed(8)
    model = UNet(3, 1, base_channels=4, depth=3).eval()
    with torch.no_grad():  # BatchNorm statistics that are not 0 and 1, as in a trained net
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5), module.running_var.uniform_(0.5, 2.0)
    x = torch.rand(2, 3, 16, 24)
    with torch.no_grad():
        wants = [model.head(model.features(x, zero_skips={level})) for level in range(3)]
        full = model(x)
        for level in range(3):
            what = f"without_skip(model, x, level={level}) for a UNet of depth 3"
            got = call_answer(without_skip, "without_skip", model, x.clone(), level)
            shape = tensor_shape(got, what)
            if shape != tuple(full.shape):
                fail(f"{what} has shape {shape}; expected the logits' shape {tuple(full.shape)}. Return "
                     f"model.head(x) at the end, as UNet.forward does.")
            if torch.allclose(got, wants[level], atol=1e-5):
                continue
            if torch.allclose(got, full, atol=1e-5):
                fail(f"{what} equals the normal forward pass: the skip of level {level} still reaches its Up. "
                     f"Pass torch.zeros_like(skip) instead of skip for that level.")
            others = [k for k in range(3) if k != level and torch.allclose(got, wants[k], atol=1e-5)]
            if others:
                fail(f"{what} switched off level {others[0]}'s skip instead. Level 0 is the finest (inc's "
                     f"output, the last to be popped); the skips list pops the deepest first, so the skip "
                     f"popped when len(skips) == level is the one to zero.")
            fail(f"{what} gives other logits than the network with only that skip set to zeros. Run inc, the "
                 f"downs (keeping each input as a skip), the ups (deepest skip first, zeros for level {level}), "
                 f"then the head.")
    passed("each level's skip, and only it, is replaced by zeros; everything else is the normal forward pass.")
