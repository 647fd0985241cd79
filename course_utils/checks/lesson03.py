"""Checks for lesson 03's exercises: an up-convolution computed by hand, the parameters of an
upsampling layer, and a center crop.

Each check runs the learner's function on a few cases and says in words what is wrong (which
case, what was expected and why); when all is right it prints "Correct: ...".
"""
from __future__ import annotations

import numbers
from typing import Callable

from ._common import call_answer, fail, passed, tensor_shape

__all__ = ["check_up_conv_by_hand", "check_upsampling_parameters", "check_center_crop"]


# ------------------------------------------------------------------ exercise 1: up-conv by hand

def check_up_conv_by_hand(up_conv_by_hand: Callable) -> None:
    """Exercise 1: `up_conv_by_hand(x, weight, bias)`, x (C_in, h, w), weight (C_in, C_out, 2, 2),
    bias (C_out,) -> (C_out, 2h, 2w), equal to nn.ConvTranspose2d(C_in, C_out, 2, stride=2). Lesson 03."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 2, 3, generator=gen)  # C_in=3, h=2, w=3: every axis a different length
    weight = torch.randn(3, 2, 2, 2, generator=gen)  # C_out=2
    bias = torch.randn(2, generator=gen)
    want = F.conv_transpose2d(x[None], weight, bias, stride=2)[0]  # (2, 4, 6)
    got = call_answer(up_conv_by_hand, "up_conv_by_hand", x.clone(), weight.clone(), bias.clone())
    shape = tensor_shape(got, f"up_conv_by_hand(x {tuple(x.shape)}, weight {tuple(weight.shape)}, bias)")
    if shape != tuple(want.shape):
        fail(f"for x of shape {tuple(x.shape)} (C_in, h, w) and weight {tuple(weight.shape)} (C_in, C_out, 2, 2) "
             f"the output should be (C_out, 2h, 2w) = {tuple(want.shape)}; got {shape}. "
             f"{_shape_hint(shape, x.shape, weight.shape)}")
    got = got.detach().float()
    if torch.allclose(got, want, atol=1e-5):
        passed("each input pixel paints weight (summed over input channels) into its own 2x2 patch, "
               "plus the bias: the same numbers as nn.ConvTranspose2d(kernel_size=2, stride=2).")
        return
    fail(_value_hint(got, want, x, weight, bias))


def _shape_hint(shape: tuple, x_shape, w_shape) -> str:
    c_in, h, w = x_shape
    c_out = w_shape[1]
    if shape == (c_in, 2 * h, 2 * w):
        return "The output has one channel per *output* channel: weight.shape[1], not weight.shape[0]."
    if len(shape) == 3 and shape[1:] == (h + 1, w + 1):
        return "That is a stride-1 transposed conv (patches overlapping); here each pixel gets its own 2x2 patch."
    if shape == (c_out, h, w):
        return "The size must double: pixel (i, j) fills rows 2i, 2i+1 and columns 2j, 2j+1."
    return "Start from torch.zeros(C_out, 2 * h, 2 * w) and fill one 2x2 patch per input pixel."


def _value_hint(got, want, x, weight, bias) -> str:
    import torch
    import torch.nn.functional as F

    def same(a) -> bool:
        return torch.allclose(got, a, atol=1e-5)

    if same(want - bias[:, None, None]):
        return "every value is off by the bias: add bias[o] to every pixel of output channel o."
    if same(F.conv_transpose2d(x[None], weight.flip(-1, -2), bias, stride=2)[0]):
        return ("the 2x2 patches are upside down and mirrored: weight[c, o, 0, 0] belongs at the top-left "
                "(row 2i, column 2j) of pixel (i, j)'s patch; a transposed conv does not flip the kernel.")
    if same(F.conv_transpose2d(x[None], weight.transpose(-1, -2), bias, stride=2)[0]):
        return ("rows and columns of the kernel are swapped: output (2i + a, 2j + b) uses weight[c, o, a, b], "
                "a for the row and b for the column.")
    if same(F.conv_transpose2d(x[None, :1], weight[:1], bias, stride=2)[0]):
        return "only input channel 0 contributes: sum the patches over all input channels c."
    o, i, j = (int(v) for v in torch.nonzero(~torch.isclose(got, want, atol=1e-5))[0])
    return (f"output[{o}, {i}, {j}] is {got[o, i, j]:.4f}; nn.ConvTranspose2d gives {want[o, i, j]:.4f}. It should be "
            f"sum over c of x[c, {i // 2}, {j // 2}] * weight[c, {o}, {i % 2}, {j % 2}], plus bias[{o}].")


# ------------------------------------------------------- exercise 2: parameters of an upsampling

UP_CASES = [(1024, "transpose"), (1024, "bilinear"), (128, "transpose"), (64, "bilinear")]


def check_upsampling_parameters(upsampling_parameters: Callable[[int, str], int]) -> None:
    """Exercise 2: `upsampling_parameters(in_channels, upsampling)` -> parameters of the layer that
    doubles the size and halves the channels (course_utils.Up(...).up). Lesson 03."""
    from ..model import Up, count_parameters

    for c, mode in UP_CASES:
        what = f"upsampling_parameters({c}, {mode!r})"
        got = call_answer(upsampling_parameters, "upsampling_parameters", c, mode)
        if isinstance(got, bool) or not isinstance(got, numbers.Integral):
            fail(f"{what} returned {got!r}; expected a whole number (int).")
        want = count_parameters(Up(c, c // 2, upsampling=mode).up)
        if got != want:
            fail(f"{what} returned {got:,}; expected {want:,}. {_up_hint(int(got), c, mode)}")
    passed("2x2 up-conv: C * C/2 * 4 weights + C/2 biases; bilinear + 1x1 conv: C * C/2 + C/2 "
           "(4 times fewer weights; the resize itself learns nothing).")


def _up_hint(got: int, c: int, mode: str) -> str:
    half = c // 2
    kernel = 4 if mode == "transpose" else 1
    if got == c * half * kernel:
        return f"You left out the biases: one per output channel, {half} here."
    if got == c * c * kernel + c:
        return f"The upsampling halves the channels: {c} in, {half} out."
    if mode == "bilinear" and got == 0:
        return (f"The bilinear resize has no parameters, but the 1x1 conv after it has {c} x {half} weights "
                f"and {half} biases.")
    if mode == "bilinear" and got == c * half * 4 + half:
        return "With bilinear resizing the learned layer is a 1x1 conv: one weight per (input, output) pair, not 4."
    if mode == "transpose" and got == c * half + half:
        return "A 2x2 kernel holds 2 x 2 = 4 weights for each (input, output) channel pair."
    if mode == "transpose" and got == c * half * 9 + half:
        return "The up-convolution's kernel is 2x2 (4 weights per pair), not 3x3."
    layer = "ConvTranspose2d(C, C//2, 2, stride=2)" if mode == "transpose" else "Upsample + Conv2d(C, C//2, 1)"
    return (f"Count weights (in_channels x out_channels x kernel height x kernel width) plus one bias per output "
            f"channel; the layer is {layer}.")


# ---------------------------------------------------------------------- exercise 3: center crop

CROP_CASES = [
    ((1, 2, 64, 64), (56, 56), "the paper's deepest skip: 64 -> 56, 4 pixels off each side"),
    ((1, 1, 568, 568), (392, 392), "the paper's top skip: 568 -> 392, 88 pixels off each side"),
    ((2, 3, 9, 12), (4, 7), "an odd difference (9 - 4 = 5) and a non-square map: round the offset down"),
    ((1, 1, 6, 6), (6, 6), "the same size (a same-padded net): nothing to crop"),
]


def check_center_crop(crop_center: Callable) -> None:
    """Exercise 3: `crop_center(x, (h, w))` -> the central h x w window of x (..., H, W),
    starting at row (H - h) // 2 and column (W - w) // 2. Lesson 03."""
    import torch

    for shape, size, why in CROP_CASES:
        x = torch.arange(torch.Size(shape).numel()).reshape(shape)  # every value tells where it came from
        what = f"crop_center(x of shape {shape}, {size})"
        got = call_answer(crop_center, "crop_center", x, size)
        want_shape = shape[:-2] + size
        got_shape = tensor_shape(got, what)
        if got_shape != want_shape:
            hint = "keep the leading (batch, channel) axes and cut only the last two"
            if size[0] != size[1] and got_shape == shape[:-2] + size[::-1]:
                hint = "height and width are swapped: size is (h, w), rows first"
            fail(f"{what} has shape {got_shape}; expected {want_shape} ({why}): {hint}.")
        top, left = (shape[-2] - size[0]) // 2, (shape[-1] - size[1]) // 2
        if torch.equal(got, x[..., top : top + size[0], left : left + size[1]]):
            continue
        start = _window_start(x, got, size)
        where = (f"your window starts at row {start[0]}, column {start[1]}" if start
                 else "your values are not one window of x")
        fail(f"{what}: {where}; the centre window starts at row {top}, column {left} = "
             f"((H - h) // 2, (W - w) // 2) ({why}).")
    passed("the crop keeps the middle (h, w) window, offset (H - h) // 2 and (W - w) // 2, on every case.")


def _window_start(x, got, size) -> tuple[int, int] | None:
    """(row, column) where `got` sits inside x, if it is a window of x."""
    import torch

    for t in range(x.shape[-2] - size[0] + 1):
        for s in range(x.shape[-1] - size[1] + 1):
            if torch.equal(got, x[..., t : t + size[0], s : s + size[1]]):
                return t, s
    return None
