"""Checks for lesson 04's exercises: crop-and-concat, the output size of the unpadded U-Net, and
the parameters of a DoubleConv by formula.

Each check runs the learner's function on a few cases and says in words what is wrong (which
case, what was expected and why); when all is right it prints "Correct: ...".
"""
from __future__ import annotations

import numbers
from typing import Any, Callable

from ._common import CheckFailed, call_answer, fail, passed, tensor_shape

__all__ = ["check_crop_and_concat", "check_valid_output_size", "check_double_conv_parameters"]


def whole_number(value: Any, what: str) -> int:
    """The learner's answer as an int, or a message saying why it is not one. Lesson 04."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(f"{what} returned {value!r}; expected a whole number (int).")
    if not isinstance(value, numbers.Integral):
        fail(f"{what} returned {value!r}, a float; sizes and counts are whole numbers: use // instead of /.")
    return int(value)


# ------------------------------------------------------------- exercise 1: crop and concatenate

def check_crop_and_concat(crop_and_concat: Callable) -> None:
    """Exercise 1: `crop_and_concat(skip, x)` -> torch.cat([center-cropped skip, x], dim=1). Lesson 04."""
    import torch

    from ..model import center_crop

    gen = torch.Generator().manual_seed(4)
    cases = [  # (skip, x, what the case is)
        (torch.rand(1, 4, 64, 64, generator=gen), torch.rand(1, 4, 56, 56, generator=gen),
         "the paper's deepest skip: 64 x 64 cropped to the upsampled 56 x 56"),
        (torch.rand(2, 3, 9, 12, generator=gen), torch.rand(2, 5, 4, 7, generator=gen),
         "a non-square map with an odd difference (9 - 4), different channel counts"),
        (torch.rand(2, 3, 8, 8, generator=gen), torch.rand(2, 5, 8, 8, generator=gen),
         "a same-padded net: the sizes already match, nothing to crop"),
    ]
    for skip, x, why in cases:
        what = f"crop_and_concat(skip {tuple(skip.shape)}, x {tuple(x.shape)})"
        try:
            got = crop_and_concat(skip.clone(), x.clone())
        except NotImplementedError as e:
            raise CheckFailed("crop_and_concat still raises NotImplementedError: replace that line with your "
                              "solution and run its cell again.") from e
        except RuntimeError as e:
            if "Sizes of tensors must match" in str(e):
                raise CheckFailed(f"{what}: torch.cat needs equal heights and widths; crop the skip to x's "
                                  f"size first ({why}).") from e
            raise CheckFailed(f"{what} raised RuntimeError: {e}") from e
        except Exception as e:
            raise CheckFailed(f"{what} raised {type(e).__name__}: {e}") from e
        cropped = center_crop(skip, x.shape[-2:])
        want = torch.cat([cropped, x], dim=1)
        shape = tensor_shape(got, what)
        if shape != tuple(want.shape):
            fail(f"{what} has shape {shape}; expected {tuple(want.shape)} ({why}). {_concat_shape_hint(shape, want.shape)}")
        if torch.equal(got, want):
            continue
        if torch.equal(got, torch.cat([x, cropped], dim=1)):
            fail(f"{what}: the channels are in the order [x, skip]; course_utils.Up (and the paper's figure, "
                 f"white box first) uses [skip, x]. The next conv's weights depend on that order.")
        if torch.equal(got[:, skip.shape[1]:], x):
            fail(f"{what}: the skip part is not the centre window of the skip: start at row (H - h) // 2 and "
                 f"column (W - w) // 2 ({why}).")
        fail(f"{what} has the right shape but other values: expected torch.cat([center_crop(skip, x.shape[-2:]), x], dim=1).")
    passed("the skip is center-cropped to x's height and width, then [skip, x] are stacked along the channels.")


def _concat_shape_hint(shape: tuple, want: tuple) -> str:
    if len(shape) != 4:
        return "Return one (B, C_skip + C_x, h, w) tensor."
    if shape[2:] != tuple(want[2:]):
        if shape[1] < want[1]:
            return "Concatenate along dim=1 (the channels), not along the height or width."
        return "Crop the skip to x's height and width before concatenating."
    return "The result holds the channels of both: the skip's, then x's (dim=1)."


# ------------------------------------------------------------ exercise 2: valid output size

SIZE_CASES = [(572, 4), (188, 4), (570, 4), (300, 4), (92, 3), (60, 2), (42, 2), (18, 1)]


def valid_sizes_chain(n: int, depth: int) -> tuple[list[str], int | None]:
    """The size at every step of the unpadded U-Net, as words, and the output (None if it cannot). Lesson 04."""
    steps = [str(n)]
    for level in range(depth):
        n -= 4
        steps.append(f"{n} (convs)")
        if n <= 0 or n % 2:
            steps.append(f"stop: max-pool {level + 1} meets {'an odd' if n > 0 else 'no'} size")
            return steps, None
        n //= 2
        steps.append(f"{n} (pool)")
    n -= 4
    steps.append(f"{n} (bottleneck convs)")
    if n <= 0:
        return steps, None
    for _ in range(depth):
        n = 2 * n
        steps.append(f"{n} (up-conv)")
        n -= 4
        steps.append(f"{n} (convs)")
    return steps, n if n > 0 else None


def check_valid_output_size(valid_output_size: Callable[[int, int], int | None]) -> None:
    """Exercise 2: `valid_output_size(n, depth)` -> output side of UNet(padding="valid", depth=depth)
    for an input side n, or None when a max-pool would meet an odd size. Lesson 04."""
    for n, depth in SIZE_CASES:
        what = f"valid_output_size({n}, depth={depth})"
        got = call_answer(valid_output_size, "valid_output_size", n, depth)
        chain, want = valid_sizes_chain(n, depth)
        if got is not None:
            got = whole_number(got, what)
        if got == want:
            continue
        path = " -> ".join(chain)
        if want is None:
            fail(f"{what} returned {got}; expected None: the network cannot take {n} ({path}). Check that each "
                 f"size is even before every max-pool.")
        hint = _size_hint(got, n, depth) if got is not None else "it can: every size before a pool is even."
        fail(f"{what} returned {got}; expected {want} ({path}). {hint}")
    passed("4 px per DoubleConv, halve at each pool, double at each up-conv, None where a pool meets an odd "
           "size: 572 -> 388.")


def _size_hint(got: int, n: int, depth: int) -> str:
    def run(conv: int, bottleneck: bool, up_convs: bool) -> int:
        m = n
        for _ in range(depth):
            m = (m - conv) // 2
        m -= conv if bottleneck else 0
        for _ in range(depth):
            m = 2 * m - (conv if up_convs else 0)
        return m

    if got == run(2, True, True):
        return "A DoubleConv is two 3x3 convs: 2 px each, 4 px per block."
    if got == run(4, False, True):
        return "You skipped the bottleneck: the deepest level has a DoubleConv too (-4)."
    if got == run(4, True, False):
        return "The expanding path has a DoubleConv after every up-conv: take 4 px after each doubling."
    return "Follow the sizes step by step: -4 per DoubleConv, /2 per pool, x2 per up-conv."


# ------------------------------------------------------ exercise 3: parameters of a DoubleConv

PARAM_CASES = [(1, 64, False), (64, 128, False), (512, 1024, False), (3, 64, True), (128, 64, True)]


def check_double_conv_parameters(double_conv_parameters: Callable[[int, int, bool], int]) -> None:
    """Exercise 3: `double_conv_parameters(in_channels, out_channels, batch_norm)` -> parameters of
    DoubleConv(in_channels, out_channels, batch_norm=batch_norm). Lesson 04."""
    from ..model import DoubleConv, count_parameters

    for c_in, c_out, bn in PARAM_CASES:
        what = f"double_conv_parameters({c_in}, {c_out}, batch_norm={bn})"
        got = whole_number(call_answer(double_conv_parameters, "double_conv_parameters", c_in, c_out, bn), what)
        want = count_parameters(DoubleConv(c_in, c_out, batch_norm=bn))
        if got != want:
            fail(f"{what} returned {got:,}; expected {want:,}. {_param_hint(got, c_in, c_out, bn)}")
    passed("9 x c_in x c_out + 9 x c_out x c_out weights, plus per conv either c_out biases (no BatchNorm) "
           "or BatchNorm's 2 x c_out scale and shift (and no bias).")


def _param_hint(got: int, c_in: int, c_out: int, bn: bool) -> str:
    weights = 9 * c_in * c_out + 9 * c_out * c_out
    extra = 4 * c_out if bn else 2 * c_out  # two BatchNorms (scale, shift) or two convs' biases
    if bn:
        hints = {
            weights + 6 * c_out: "With BatchNorm the convs carry no bias (BatchNorm's shift does its job); "
                                 "count only BatchNorm's scale and shift.",
            weights: "Add BatchNorm's learned scale and shift: 2 per channel, for each of the two BatchNorms.",
            weights + 2 * c_out: "There are two BatchNorms, each with a scale and a shift per channel (4 x c_out), "
                                 "and the convs have no bias.",
            weights + 8 * c_out: "BatchNorm's running mean and variance are buffers, not learned parameters: "
                                 "count scale and shift only.",
        }
    else:
        hints = {
            weights: "Add the biases: one per output channel of each conv.",
            weights + c_out: "Both convs have biases: c_out each.",
            weights + 6 * c_out: "batch_norm=False means no BatchNorm: only the two convs' biases.",
        }
    hints.setdefault(2 * 9 * c_in * c_out + extra,
                     "The second conv reads the first conv's output: c_out input channels, not c_in.")
    hints.setdefault(9 * c_in * c_out + extra // 2, "A DoubleConv has two 3x3 convs: c_in -> c_out, then c_out -> c_out.")
    hints.setdefault(c_in * c_out + c_out * c_out + extra, "A 3x3 kernel holds 9 weights per (input, output) channel pair.")
    return hints.get(got, "Count per conv: 3 x 3 x in x out weights, then biases (no BatchNorm) or 2 BatchNorm "
                          "parameters per channel (with BatchNorm, and then no bias).")
