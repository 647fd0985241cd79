"""Checks for lesson 02's exercises: the sizes down the contracting path, an encoder built
from Down blocks, and which input sizes the paper's network can take.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Iterable

from ._common import CheckFailed, call_answer, fail, passed

__all__ = ["check_contracting_sizes", "check_encoder", "check_valid_sizes"]

PAPER_SIZES = [572, 570, 568, 284, 282, 280, 140, 138, 136, 68, 66, 64, 32, 30, 28]  # Figure 1, left side


def contracting_sizes_reference(n: int, depth: int = 4) -> list[int]:
    """Side length after every step of the unpadded contracting path: the input, then two 3x3
    convs (-2 each) per level, with a 2x2 max-pool (/2) before each level below the first. Lesson 02."""
    sizes = [n]
    for level in range(depth + 1):
        if level > 0:
            if n % 2:
                raise ValueError(f"{n} is odd before pool {level}")
            n //= 2
            sizes.append(n)
        for _ in range(2):
            n -= 2
            if n <= 0:
                raise ValueError(f"the size reaches {n} at level {level}")
            sizes.append(n)
    return sizes


def _step_name(i: int) -> str:
    if i == 0:
        return "the input size itself"
    level = i // 3
    return {0: f"after the max-pool into level {level} (halve)",
            1: f"after the first 3x3 conv of level {level} (-2)",
            2: f"after the second 3x3 conv of level {level} (-2)"}[i % 3]


def _trace(n: int, depth: int) -> str:
    """'572 -> 570 -> ... ' as far as the unpadded path gets, for messages."""
    sizes, steps = [n], 0
    while steps < 3 * depth + 2:
        level, kind = (steps + 1) // 3, (steps + 1) % 3
        if kind == 0:
            if n % 2:
                return " -> ".join(map(str, sizes)) + f": {n} is odd before pool {level}, so the pool would drop a row"
            n //= 2
        else:
            n -= 2
            if n <= 0:
                return " -> ".join(map(str, sizes + [n])) + ": the size is no longer positive"
        sizes.append(n)
        steps += 1
    return " -> ".join(map(str, sizes))


def check_contracting_sizes(contracting_sizes: Callable[..., list[int]]) -> None:
    """Exercise 1: `contracting_sizes(n, depth=4)` -> list of side lengths; ValueError
    when an odd size would meet a max-pool or a size stops being positive. Lesson 02."""
    cases = [(572, 4), (188, 4), (572, 2), (64, 1)]
    for n, depth in cases:
        call = f"contracting_sizes({n}, depth={depth})"
        got = call_answer(contracting_sizes, "contracting_sizes", n, depth=depth)
        want = contracting_sizes_reference(n, depth)
        if not isinstance(got, (list, tuple)) or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in got
        ):
            fail(f"{call} returned {got!r}; expected a list of ints, like {want[:4]} ...")
        got = [int(s) for s in got]
        if len(got) != len(want):
            fail(f"{call} returned {len(got)} sizes; expected {len(want)}: the input, then 3 per level "
                 f"(pool, conv, conv; the first level has no pool) for depth + 1 = {depth + 1} levels.\n"
                 f"  expected {want}\n  got      {got}")
        for i, (g, w) in enumerate(zip(got, want)):
            if g != w:
                fail(f"{call}: position {i} ({_step_name(i)}) is {g}; expected {w}.\n"
                     f"  expected {want}\n  got      {got}")
    for n, depth in [(570, 4), (574, 4), (20, 4)]:
        call = f"contracting_sizes({n}, depth={depth})"
        try:
            got = contracting_sizes(n, depth=depth)
        except ValueError:
            continue
        except NotImplementedError as e:
            raise CheckFailed("contracting_sizes still raises NotImplementedError: write your solution first.") from e
        except Exception as e:
            raise CheckFailed(f"{call} raised {type(e).__name__}: {e}; expected a ValueError, "
                              f"the error Python uses for a value the function cannot take.") from e
        fail(f"{call} returned {got!r}; it should raise ValueError, because {_trace(n, depth)}.")
    passed(f"572 -> {' -> '.join(map(str, PAPER_SIZES[1:]))} as in Figure 1, and impossible sizes raise ValueError.")


def check_encoder(Encoder: Callable[..., Any]) -> None:
    """Exercise 3: `Encoder(in_channels, base_channels, depth, padding)`, whose forward
    returns the depth + 1 feature maps: the output of the first DoubleConv and of every Down. Lesson 02."""
    import torch
    from torch import nn

    from ..model import UNet, count_parameters

    cases = [(3, 4, 3, "same", 32), (1, 4, 4, "valid", 188)]
    for c_in, base, depth, padding, size in cases:
        call = f"Encoder({c_in}, base_channels={base}, depth={depth}, padding={padding!r})"
        enc = call_answer(Encoder, "Encoder", c_in, base_channels=base, depth=depth, padding=padding)
        if not isinstance(enc, nn.Module):
            fail(f"{call} gave a {type(enc).__name__}; expected an nn.Module.")
        unet = UNet(c_in, 1, base_channels=base, depth=depth, padding=padding)
        want_keys = [k for k in unet.state_dict() if k.startswith(("inc.", "downs."))]
        missing = [k for k in want_keys if k not in enc.state_dict()]
        if missing and count_parameters(enc) == count_parameters(unet.inc) + count_parameters(unet.downs):
            fail(f"{call} has the right number of parameters but not UNet's names (e.g. {missing[0]!r} is "
                 f"missing): call the first DoubleConv self.inc and the nn.ModuleList of Down blocks "
                 f"self.downs, so that UNet's weights load into your encoder.")
        want_params = count_parameters(unet.inc) + count_parameters(unet.downs)
        got_params = count_parameters(enc)
        if got_params != want_params:
            fail(f"{call} has {got_params:,} parameters; expected {want_params:,} (UNet's .inc plus its {depth} "
                 f".downs). Levels should have {[base * 2**i for i in range(depth + 1)]} channels: one DoubleConv "
                 f"from {c_in} to {base}, then one Down per level that doubles the channels.")
        x = torch.rand(2, c_in, size, size)
        try:
            with torch.no_grad():
                feats = enc.train()(x)
        except NotImplementedError as e:
            raise CheckFailed(f"{call}: forward raises NotImplementedError ({e}). Write forward, "
                              f"run its cell, then check again.") from e
        except Exception as e:
            raise CheckFailed(f"{call} cannot run on an input of shape {tuple(x.shape)}: "
                              f"{type(e).__name__}: {e}") from e
        _check_features(feats, call, x, unet)
    passed("your encoder returns one feature map per level, with the shapes of UNet's .inc and .downs.")


def _check_features(feats: Any, call: str, x: Any, unet: Any) -> None:
    import torch

    depth = unet.config["depth"]
    with torch.no_grad():  # the shapes of UNet's own contracting path on the same input
        want = [unet.inc(x)]
        for down in unet.downs:
            want.append(down(want[-1]))
    want = [tuple(w.shape) for w in want]
    if isinstance(feats, torch.Tensor):
        fail(f"{call} returned one tensor of shape {tuple(feats.shape)}; expected a list of {depth + 1} tensors: "
             f"the output of the first DoubleConv and of each Down (the skips the decoder will need).")
    if not isinstance(feats, (list, tuple)) or not all(isinstance(f, torch.Tensor) for f in feats):
        fail(f"{call} returned a {type(feats).__name__}; expected a list of {depth + 1} tensors.")
    if len(feats) != depth + 1:
        fail(f"{call} returned {len(feats)} feature maps; expected depth + 1 = {depth + 1}: the output of the "
             f"first DoubleConv, then of each of the {depth} Down blocks.")
    for i, (f, w) in enumerate(zip(feats, want)):
        got = tuple(f.shape)
        if got == w:
            continue
        if got[1] != w[1]:
            why = f"level {i} has base_channels * 2**{i} = {w[1]} channels"
        elif unet.config["padding"] == "same":
            why = f"with 'same' padding only the {i} pools change the size: {x.shape[-1]} / 2**{i} = {w[-1]}"
        else:
            why = "with 'valid' padding each DoubleConv takes 4 px off and each pool halves"
        fail(f"{call}: feature map {i} has shape {got}; expected {w}: {why}.\n"
             f"  expected {want}\n  got      {[tuple(f.shape) for f in feats]}")


def check_valid_sizes(answer: Iterable[int], candidates: Iterable[int], depth: int = 4) -> None:
    """Exercise 2: `answer` holds exactly those `candidates` the unpadded U-Net of
    `depth` levels can take. Lesson 02."""
    from ..model import output_length, valid_input_sizes

    step = 2**depth
    remainder = valid_input_sizes(depth, "valid", limit=4 * step * 16)[0] % step
    candidates = sorted(set(candidates))
    if isinstance(answer, (str, bytes)) or not isinstance(answer, Iterable):
        fail(f"answer should be a set of sizes such as {{{candidates[0]}, ...}}, got {type(answer).__name__}.")
    answer = list(answer)
    if not all(isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in answer):
        fail(f"answer should hold whole numbers (sizes), got {answer!r}.")
    answer = {int(a) for a in answer}
    strangers = sorted(answer - set(candidates))
    if strangers:
        fail(f"{strangers} are not among the candidates {candidates}; choose from those.")
    truth = {n for n in candidates if output_length(n, depth, "valid") is not None}
    for n in sorted(answer - truth):
        fail(f"{n} does not work: {_trace(n, depth)}.")
    for n in sorted(truth - answer):
        fail(f"{n} works but is missing from your answer: {_trace(n, depth)}; every size before a pool is even. "
             f"(It is {n % step} mod {step}.)")
    passed(f"of {candidates}, the paper's network takes {sorted(truth)}: exactly the sizes that are {remainder} mod {step}.")
