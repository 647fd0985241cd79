"""The exercise checks of lesson 06 accept right answers and explain wrong ones in words."""
import ast
import copy
import math
from pathlib import Path

import nbformat
import pytest
import torch

from course_utils import (BCEDiceLoss, dice_score, make_optimizer, make_scheduler, train_one_epoch, train_step,
                          validate)
from course_utils.checks import (check_epoch_loop, check_lr_at, check_soft_dice_loss,
                                 check_train_step, lesson06)
from course_utils.losses import DiceLoss, soft_dice
from course_utils.engine import train_step as course_train_step
from course_utils.run_course import execute
from course_utils.student import make_student_copy
from conftest import fails_with

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny convolutions: one thread, as the lesson runs them


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


# ---- exercise 4: the epoch loop ------------------------------------------------------------

LESSON = Path(__file__).parents[1] / "notebooks" / "06_training.ipynb"


def lesson_cell(nb, text: str) -> int:
    """Index of the one code cell of lesson 06 whose source contains `text`."""
    found = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and text in c.source]
    assert len(found) == 1, f"{LESSON.name}: {len(found)} code cells contain {text!r}"
    return found[0]


def lesson_function(nb, name: str):
    """`name` as the lesson defines it: its imports cell's import lines run, then the cell defining it."""
    imports = ast.parse(nb.cells[lesson_cell(nb, "from course_utils.checks import")].source)
    imports.body = [node for node in imports.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    namespace = {}
    exec(compile(imports, "imports", "exec"), namespace)
    exec(nb.cells[lesson_cell(nb, f"def {name}(")].source, namespace)
    return namespace[name]


def loop(*, eval_mode=True, no_grad=True, train_mode=True, schedule="batch", keep="dice", deepcopy=True,
         dice="image", train_mean="image", val_mean="image", adamw_defaults=False, optimizer_per_epoch=False,
         loss_fn=None):
    """An epoch loop written out by hand, right by default; each keyword makes one mistake learners make."""
    def my_fit(model, train_loader, val_loader, epochs, lr):
        criterion = loss_fn or BCEDiceLoss()

        def new_optimizer():
            opt = torch.optim.AdamW(model.parameters(), lr=lr) if adamw_defaults else make_optimizer(model, lr)
            return opt, make_scheduler(opt, epochs * len(train_loader))
        optimizer, scheduler = new_optimizer()
        history, best, best_state = [], -math.inf, None
        for epoch in range(1, epochs + 1):
            if optimizer_per_epoch and epoch > 1:
                optimizer, scheduler = new_optimizer()
            if train_mode:
                model.train()
            losses = []
            for images, masks in train_loader:
                if schedule == "before":
                    scheduler.step()
                losses.append((train_step(model, images, masks, criterion, optimizer).item(), len(images)))
                if schedule == "batch":
                    scheduler.step()
            if schedule == "epoch":
                scheduler.step()
            if eval_mode:
                model.eval()
            val_losses, dices = [], []
            with torch.set_grad_enabled(not no_grad):
                for images, masks in val_loader:
                    logits = model(images)
                    val_losses.append((criterion(logits, masks).item(), len(images)))
                    if dice == "soft":
                        dices.append(soft_dice(torch.sigmoid(logits), masks))
                    else:
                        dices.append(dice_score(torch.sigmoid(logits) > 0.5, masks, reduction="none"))
            per_batch = torch.stack([d.mean() for d in dices]).mean()
            row = dict(epoch=epoch, train_loss=mean(losses, train_mean), val_loss=mean(val_losses, val_mean),
                       val_dice=(per_batch if dice == "batch" else torch.cat(dices).mean()).item())
            history.append(row)
            score = -row["val_loss"] if keep == "loss" else row["val_dice"]
            if score > best or keep == "last":
                best = score
                best_state = copy.deepcopy(model.state_dict()) if deepcopy else model.state_dict()
        return history, best_state
    return my_fit


def mean(values, how):
    """The mean per image of (batch mean, images) pairs, or ("batch") the mean of the batch means."""
    if how == "batch":
        return sum(v for v, _ in values) / len(values)
    return sum(v * n for v, n in values) / sum(n for _, n in values)


def engine_loop(path: Path):
    """The loop from the engine's own parts, train_one_epoch and validate; the best weights kept in `path`."""
    def my_fit(model, train_loader, val_loader, epochs, lr):
        loss_fn, optimizer = BCEDiceLoss(), make_optimizer(model, lr)
        scheduler = make_scheduler(optimizer, epochs * len(train_loader))
        history, best = [], None
        for epoch in range(1, epochs + 1):
            train_loss = train_one_epoch(model, train_loader, loss_fn, optimizer, scheduler, "cpu", epoch,
                                         progress=False)
            history.append(dict(epoch=epoch, train_loss=train_loss, **validate(model, val_loader, loss_fn, "cpu")))
            if best is None or history[-1]["val_dice"] > best:
                best = history[-1]["val_dice"]
                torch.save(model.state_dict(), path)
        return history, path
    return my_fit


def test_epoch_loop_accepts_the_lesson_solution_a_hand_written_loop_and_one_from_the_engine(capsys, tmp_path):
    check_epoch_loop(lesson_function(nbformat.read(LESSON, as_version=4), "my_fit"))
    check_epoch_loop(loop())
    check_epoch_loop(engine_loop(tmp_path / "best.pt"))
    assert capsys.readouterr().out.count("Correct:") == 3


def test_the_check_run_tells_the_best_dice_epoch_from_the_last_and_the_lowest_loss():
    """The wrong ways of keeping the best can only be caught if they pick another epoch."""
    history = lesson06._reference()["history"]
    dice, loss = [r["val_dice"] for r in history], [r["val_loss"] for r in history]
    best = dice.index(max(dice))
    assert best not in (len(dice) - 1, loss.index(min(loss))), (dice, loss)
    assert max(dice) - max(d for i, d in enumerate(dice) if i != best) > 0.02, dice  # not a rounding matter
    model, train, val = lesson06._loop_setup()
    assert [len(x) for x, _ in train][-1] < train.batch_size and [len(x) for x, _ in val][-1] < val.batch_size


@pytest.mark.parametrize("mistake, says", [
    pytest.param(dict(eval_mode=False), "call model.eval() before it", id="no-eval"),
    pytest.param(dict(no_grad=False), "torch.no_grad()", id="no-no_grad"),
    pytest.param(dict(train_mode=False), "call model.train() at the start of every epoch", id="no-train"),
    pytest.param(dict(schedule="epoch"), "changed only between epochs", id="schedule-per-epoch"),
    pytest.param(dict(schedule="never"), "stayed at", id="schedule-never-stepped"),
    pytest.param(dict(schedule="before"), "call scheduler.step() after the optimizer's step", id="schedule-first",
                 marks=pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")),
    pytest.param(dict(keep="loss"), "the lowest held-out loss), but the best held-out Dice was at", id="best-by-loss"),
    pytest.param(dict(keep="last"), "holds the weights after epoch 4 (the last epoch", id="best-is-last"),
    pytest.param(dict(deepcopy=False), "model.state_dict() is not a copy", id="best-not-copied"),
    pytest.param(dict(dice="batch"), "that is the mean of the batch means", id="dice-per-batch"),
    pytest.param(dict(dice="soft"), "that is the soft Dice of the probabilities", id="dice-soft"),
    pytest.param(dict(train_mean="batch"), ("epoch 1: train_loss", "that is the mean of the batch losses"),
                 id="train-loss-per-batch"),
    pytest.param(dict(val_mean="batch"), ("epoch 1: val_loss", "that is the mean of the batch losses"),
                 id="val-loss-per-batch"),
    pytest.param(dict(adamw_defaults=True), "weight_decay=0.01; fit's make_optimizer(model, lr) has "
                 "weight_decay=0.0001", id="adamw-defaults"),
    pytest.param(dict(optimizer_per_epoch=True), "stepped 4 different optimizers", id="optimizer-per-epoch"),
    pytest.param(dict(loss_fn=torch.nn.BCEWithLogitsLoss()), "after epoch 1 the weights differ from fit's",
                 id="bce-only"),
])
def test_epoch_loop_names_each_mistake(mistake, says):
    said = fails_with(check_epoch_loop, loop(**mistake))
    assert all(part in said for part in ([says] if isinstance(says, str) else says)), said


def test_epoch_loop_names_what_it_returned_and_where_it_crashed():
    right = loop()
    assert "expected (history, best_state)" in fails_with(check_epoch_loop, lambda *a: right(*a)[0])
    assert "lack val_dice" in fails_with(check_epoch_loop, lambda *a: (
        [{k: v for k, v in r.items() if k != "val_dice"} for r in right(*a)[0]], None))
    assert "should be a copy of model.state_dict()" in fails_with(check_epoch_loop, lambda *a: (right(*a)[0], None))

    def todo(model, train_loader, val_loader, epochs, lr):
        raise NotImplementedError()
    assert "still raises NotImplementedError" in fails_with(check_epoch_loop, todo)
    said = fails_with(check_epoch_loop, lambda model, *a: model(torch.zeros(1, 3, 5, 5)))
    assert said.startswith("my_fit(model, train_loader, val_loader, 4, 0.01) raised ValueError")


def test_student_copy_of_lesson_06_stops_at_the_epoch_loop_exercise(tmp_path):
    """The student copy's imports, then exercise 4 and its check, run in a kernel: the exercise (or
    its check) stops with NotImplementedError, and the copy holds no line of the solution."""
    nb = nbformat.read(LESSON, as_version=4)
    student = make_student_copy(nb, LESSON.name)
    keep = [lesson_cell(nb, "from course_utils.checks import"), lesson_cell(nb, "def my_fit("),
            lesson_cell(nb, "check_epoch_loop(my_fit)")]
    assert "copy.deepcopy(model.state_dict())" not in student.cells[keep[1]].source
    assert "raise NotImplementedError()" in student.cells[keep[1]].source
    mini = nbformat.v4.new_notebook(metadata=student.metadata)
    mini.cells = [student.cells[i] for i in keep]
    run = execute(mini, LESSON.parent, profile="quick", timeout=300)
    said = f"cell {run.error_cell} raised {run.error_name}: {(run.error_message or '')[:300]}"
    assert run.error_cell in (1, 2), said
    assert run.error_name == "NotImplementedError" or (
        run.error_name == "CheckFailed" and "my_fit still raises NotImplementedError" in run.error_message), said
