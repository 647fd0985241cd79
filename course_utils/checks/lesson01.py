"""Checks for lesson 01's exercises: the conv output-size formula, the receptive field of
stacked 3x3 convs, and a DoubleConv built by hand.

Each check takes the learner's function, runs it on a few cases and says in words what is
wrong (which case, what was expected and why); when all is right it prints "Correct: ...".
"""
from __future__ import annotations

from typing import Any, Callable

from ._common import CheckFailed, call_answer, expect_int, fail, passed

__all__ = ["check_conv_output_size", "check_receptive_field", "check_double_conv"]


# (n, kernel_size, padding, stride, what this case teaches)
CONV_CASES = [
    (5, 3, 0, 1, "a 3x3 conv without padding ('valid') loses one pixel on each side"),
    (572, 3, 0, 1, "the paper's first conv: 'valid' takes 2 off the size"),
    (572, 3, 1, 1, "padding=1 gives back the pixel each side loses, so the size stays ('same')"),
    (64, 5, 2, 1, "a 5x5 kernel needs padding=2 to keep the size"),
    (1, 1, 0, 1, "a 1x1 conv (the U-Net's last layer) never changes the size"),
    (64, 3, 1, 2, "stride 2 keeps every second position"),
    (7, 3, 0, 2, "with stride 2 the division rounds down (floor)"),
    (8, 2, 0, 2, "a 2x2 window with stride 2, like max-pooling, halves an even size"),
]


def conv_output_size_reference(n: int, kernel_size: int = 3, padding: int = 0, stride: int = 1) -> int:
    """The right answer to exercise 1: the side length after a conv, floor((n + 2p - k) / s) + 1. Lesson 01."""
    return (n + 2 * padding - kernel_size) // stride + 1


def check_conv_output_size(conv_output_size: Callable[..., int]) -> None:
    """Exercise 1: `conv_output_size(n, kernel_size, padding, stride)` -> int. Lesson 01."""
    for n, k, p, s, why in CONV_CASES:
        call = f"conv_output_size({n}, kernel_size={k}, padding={p}, stride={s})"
        got = expect_int(call_answer(conv_output_size, "conv_output_size", n, kernel_size=k, padding=p, stride=s), call)
        want = conv_output_size_reference(n, k, p, s)
        if got != want:
            fail(f"{call} returned {got}; expected {want}: {why}. "
                 f"Count the positions where the kernel fits inside the padded input, every `stride` steps.")
    passed(f"out = (n + 2*padding - kernel_size) // stride + 1 matches all {len(CONV_CASES)} cases.")


def check_receptive_field(receptive_field: Callable[[int], int]) -> None:
    """Exercise 2: `receptive_field(n_convs)` -> side of the input square one output sees. Lesson 01."""
    for n in (1, 2, 3, 4, 10):
        call = f"receptive_field({n})"
        got = expect_int(call_answer(receptive_field, "receptive_field", n), call)
        want = 2 * n + 1
        if got == want:
            continue
        hint = "each stride-1 3x3 conv widens the field by 2 pixels, one on each side"
        if got == 2 * n:
            hint = "you are one short: start from the single pixel itself (1), then add 2 per conv"
        elif got == 3 * n:
            hint = "the kernels overlap: stacking adds kernel_size - 1 = 2 per conv, not 3"
        elif got == 3**n:
            hint = "the field grows by addition, not multiplication: 1 + 2 per conv"
        fail(f"{call} returned {got}; expected {want}: {hint}.")
    passed("n stacked 3x3 convs see a (2n + 1) x (2n + 1) window: 5 x 5 for a DoubleConv.")


def check_double_conv(make_double_conv: Callable[..., Any]) -> None:
    """Exercise 3: `make_double_conv(in_channels, out_channels, padding)` -> nn.Module
    doing (3x3 conv -> BatchNorm -> ReLU) twice. Lesson 01."""
    import torch
    from torch import nn

    from ..model import DoubleConv, count_parameters

    c_in, c_out, size = 3, 16, 20
    for padding, out_size in (("same", size), ("valid", size - 4)):
        call = f"make_double_conv({c_in}, {c_out}, padding={padding!r})"
        block = call_answer(make_double_conv, "make_double_conv", c_in, c_out, padding=padding)
        if not isinstance(block, nn.Module):
            fail(f"{call} returned a {type(block).__name__}; expected an nn.Module, e.g. nn.Sequential(...).")
        _check_layers(block, call, c_out)
        want = count_parameters(DoubleConv(c_in, c_out, padding))
        got = count_parameters(block)
        if got != want:
            fail(f"{call} has {got:,} parameters; expected {want:,}. {_parameter_hint(got - want, c_in, c_out)}")
        torch.manual_seed(0)
        x = torch.rand(2, c_in, size, size)
        try:
            y = block.train()(x)
        except NotImplementedError as e:
            raise CheckFailed(f"{call}: its forward raises NotImplementedError ({e}). Write it, run its cell, "
                              f"then check again.") from e
        except Exception as e:
            raise CheckFailed(f"{call} cannot run on an input of shape {tuple(x.shape)}: {type(e).__name__}: {e}") from e
        want_shape = (2, c_out, out_size, out_size)
        if not isinstance(y, torch.Tensor) or tuple(y.shape) != want_shape:
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            why = ("padding='same' means padding=1 on each 3x3 conv, so the size stays" if padding == "same"
                   else "padding='valid' means padding=0: each 3x3 conv takes 2 px off, the block 4")
            fail(f"{call} maps {tuple(x.shape)} to {shape}; expected {want_shape}: {why}.")
        if bool((y < 0).any()):
            fail(f"{call} outputs negative values: the block should end with a ReLU.")
    passed(f"your block matches course_utils.DoubleConv: {count_parameters(DoubleConv(c_in, c_out)):,} parameters "
           f"for {c_in} -> {c_out} channels; 'same' keeps {size} x {size}, 'valid' gives {size - 4} x {size - 4}.")


def _check_layers(block: Any, call: str, c_out: int) -> None:
    from torch import nn

    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    if len(convs) != 2:
        fail(f"{call} contains {len(convs)} nn.Conv2d layers; expected 2 (a DoubleConv has two 3x3 convs).")
    if any(tuple(m.kernel_size) != (3, 3) for m in convs):
        fail(f"{call} has convs with kernel sizes {[tuple(m.kernel_size) for m in convs]}; expected (3, 3) for both.")
    if len(norms) != 2:
        fail(f"{call} contains {len(norms)} nn.BatchNorm2d layers; expected 2, one after each conv.")
    if convs[1].in_channels != c_out:
        fail(f"{call}: the second conv takes {convs[1].in_channels} channels; expected {c_out}, "
             f"the output of the first conv.")


def _parameter_hint(extra: int, c_in: int, c_out: int) -> str:
    if extra == 2 * c_out:
        return (f"That is {extra} too many, exactly one bias per output channel in each conv: did you keep "
                f"bias=True with BatchNorm? BatchNorm subtracts the mean, cancelling the bias; use bias=False.")
    if extra == c_out:
        return f"That is {c_out} too many: one of the two convs still has a bias; use bias=False on both."
    if extra == -4 * c_out:
        return "That is 4 x out_channels too few: are the two BatchNorm2d layers there (weight and bias each)?"
    return (f"A 3x3 conv from a to b channels without bias has 9*a*b weights; BatchNorm2d(b) has 2*b. "
            f"Here: 9*{c_in}*{c_out} + 2*{c_out} + 9*{c_out}*{c_out} + 2*{c_out}.")
