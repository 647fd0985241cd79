"""What every exercise check shares: one error type and one way to say "correct"."""
from __future__ import annotations


class CheckFailed(AssertionError):
    """An exercise answer is wrong; the message says what is wrong and what to look at."""


def fail(message: str) -> None:
    """Stop the notebook with a message meant for the learner."""
    raise CheckFailed(message)


def passed(what: str) -> None:
    """Tell the learner their answer is right."""
    print(f"Correct: {what}")
