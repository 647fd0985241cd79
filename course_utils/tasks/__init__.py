"""The data sets the training engine knows, one module each, behind one small interface (lesson 06).

A task tells the engine everything that differs between data sets; the engine (course_utils.train)
holds everything that does not (optimiser, schedule, precision, checkpoints, resume, torchrun):

- `profiles`: the settings its quick and full profiles change;
- `check(cfg)`: a ValueError for settings this data set cannot take;
- `datasets(cfg)`: (train, held-out) datasets;
- `build_model(cfg)`, `loss(cfg, train_set)`;
- `scores(model)`: a held-out accumulator with update(out, target, loss) / sums() / load_sums() /
  compute(), so a process group adds its sums once before computing;
- `score`, `higher_is_better`: the held-out number best.pt is chosen by;
- `figure(model, val_set, path, device)`: the end-of-run picture, or None.

Adding a data set is one module here plus one line in `_MODULES`.

>>> get_task("carvana").score
'val_dice'
"""
from __future__ import annotations

import importlib

from .base import Task

# task name -> module of this package that defines TASK
_MODULES = {"carvana": "carvana", "nyuv2": "nyuv2", "isbi2012": "isbi2012"}
TASK_NAMES = tuple(_MODULES)


def get_task(name: str) -> Task:
    """The Task called `name` (one of TASK_NAMES). Lesson 06."""
    if name not in _MODULES:
        raise ValueError(f"task must be one of {TASK_NAMES}, got {name!r}.")
    return importlib.import_module(f".{_MODULES[name]}", __name__).TASK


def task_of_score(score: str) -> Task:
    """The task whose best.pt is chosen by history key `score` (e.g. "val_miou" -> nyuv2). Lesson 06."""
    for name in TASK_NAMES:
        if get_task(name).score == score:
            return get_task(name)
    raise ValueError(f"no task chooses best.pt by {score!r}.")


def task_for_model(model) -> Task:
    """The task a model's shape fits, for fit() and validate() called without one: class scores
    or two heads -> nyuv2; one greyscale input channel -> isbi2012; else carvana. Lesson 06."""
    config = getattr(getattr(model, "module", model), "config", {})
    if config.get("out_channels", 1) > 1 or "heads" in config:
        return get_task("nyuv2")
    return get_task("isbi2012" if config.get("in_channels", 3) == 1 else "carvana")


__all__ = ["Task", "TASK_NAMES", "get_task", "task_for_model", "task_of_score"]
