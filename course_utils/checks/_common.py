"""What every exercise check shares: one error type and one way to say "correct"."""
from __future__ import annotations

import numbers
from typing import Any


class CheckFailed(AssertionError):
    """An exercise answer is wrong; the message says what is wrong and what to look at. Lessons 01-14."""


def fail(message: str) -> None:
    """Stop the notebook with a message meant for the learner. Lessons 01-14."""
    raise CheckFailed(message)


def passed(what: str) -> None:
    """Tell the learner their answer is right. Lessons 01-14."""
    print(f"Correct: {what}")


def call_answer(fn: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's `fn`; a missing solution or a crash becomes a sentence (traceback chained). Lessons 01-14."""
    if not callable(fn):
        fail(f"{name} should be a function (or class), got {type(fn).__name__}. "
             f"Pass it without calling it, e.g. check(...)(my_function) not my_function().")
    shown = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as e:
        raise CheckFailed(f"{name} still raises NotImplementedError: replace that line with your "
                          f"solution and run its cell again.") from e
    except Exception as e:  # the learner's code crashed: say where, keep the traceback below
        raise CheckFailed(f"{name}({shown}) raised {type(e).__name__}: {e}") from e


def expect_int(value: Any, call: str) -> int:
    """The learner's answer as an int, or a message saying why it is not one. Lessons 01-14."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(f"{call} returned {value!r} ({type(value).__name__}); expected a whole number (int).")
    if not isinstance(value, numbers.Integral):
        fail(f"{call} returned {value!r}, a float; sizes are whole numbers: use // (floor division) "
             f"or int(...), not /.")
    return int(value)


def tensor_shape(value: Any, what: str) -> tuple[int, ...]:
    """The shape of a tensor answer, or a message saying it is not a tensor. Lessons 01-14."""
    import torch

    if not isinstance(value, torch.Tensor):
        fail(f"{what} returned a {type(value).__name__}; expected a torch.Tensor.")
    return tuple(value.shape)


def one_number(value: Any, call: str, *, of: str = "", meaning: str = "") -> float:
    """The learner's answer (a float, a 0-d tensor or array, a numpy scalar) as a float, or a sentence
    saying what came back instead; `of` names the entry of a dict answer, `meaning` what the number is.
    Lessons 10, 11 and 13."""
    import torch

    where = f" for {of}" if of else ""
    if value is None:
        fail(f"{call} returned None{where}; expected one number: is the `return` missing?")
    if isinstance(value, bool):
        fail(f"{call} returned {value}{where}; expected one number (a float), not a bool.")
    try:
        t = torch.as_tensor(value.detach().cpu() if hasattr(value, "detach") else value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        fail(f"{call} returned a {type(value).__name__}{where}; expected one number (a float).")
    if t.numel() != 1:
        fail(f"{call} returned shape {tuple(t.shape)}{where}; expected one number"
             f"{': ' + meaning if meaning else ''}.")
    return float(t.reshape(()))
