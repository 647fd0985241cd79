"""Checks for lesson 06's exercises: one training step written by hand, the soft Dice loss, the
warm-up + cosine learning rate at step t, and the epoch loop with its held-out pass.

Each check runs the learner's function on a few cases, compares it with the course's own
(course_utils.losses, course_utils.engine) and says in words what differs; "Correct: ..." when right.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Callable

from ._common import call_answer, fail, passed, tensor_shape

__all__ = ["check_soft_dice_loss", "check_train_step", "check_lr_at", "check_epoch_loop"]


def _dice_cases():
    import torch

    torch.manual_seed(0)
    target = torch.zeros(3, 1, 8, 8)
    target[0, :, 2:6, 2:6] = 1  # a square
    target[1, :, :, :2] = 1  # a thin strip
    # image 2: empty mask (no car): only `smooth` keeps its Dice defined
    return [("random logits", torch.randn(3, 1, 8, 8) * 2, target),
            ("confident, right logits", target * 20 - 10, target),
            ("all-zero logits (p = 0.5 everywhere)", torch.zeros(3, 1, 8, 8), target)]


def check_soft_dice_loss(soft_dice_loss: Callable[..., Any]) -> None:
    """Exercise 2: `soft_dice_loss(logits, target, smooth=1.0)` -> scalar tensor,
    1 - soft Dice of sigmoid(logits), per image, averaged over the batch. Lesson 06."""
    import torch

    from ..losses import DiceLoss, soft_dice

    for what, logits, target in _dice_cases():
        logits = logits.clone().requires_grad_(True)
        call = f"soft_dice_loss(<{what}, shape {tuple(logits.shape)}>, target)"
        got = call_answer(soft_dice_loss, "soft_dice_loss", logits, target)
        if tensor_shape(got, call) != ():
            fail(f"{call} returned shape {tuple(got.shape)}; expected a scalar (shape ()): average the "
                 f"per-image losses over the batch with .mean().")
        want = DiceLoss(smooth=1.0)(logits, target)
        if not torch.isfinite(got):
            fail(f"{call} returned {got.item()}: an empty mask with an empty prediction gives 0/0. Add "
                 f"`smooth` to the numerator and the denominator.")
        if torch.allclose(got, want, atol=1e-5):
            if not got.requires_grad:
                fail(f"{call} gives the right value but carries no gradient: keep it a torch computation "
                     f"(no .item(), .detach() or numpy), or backward() cannot reach the weights.")
            continue
        probs, flat = torch.sigmoid(logits), target
        hints = [
            (1 - want, "you returned the Dice score; the loss is 1 - Dice (lower is better)"),
            (1 - soft_dice(logits, flat).mean(), "apply torch.sigmoid to the logits first: Dice is defined on "
                                                 "probabilities in [0, 1]"),
            (1 - soft_dice(probs.reshape(1, -1), flat.reshape(1, -1)).mean(),
             "you pooled the whole batch into one Dice; compute it per image (sum over dims 1, 2, 3, or "
             "flatten(1)) and then average"),
            (1 - soft_dice(probs, flat, smooth=0.0).mean(), "use smooth=1.0 in both numerator and denominator"),
        ]
        for value, hint in hints:
            if torch.isfinite(value) and torch.allclose(got, value, atol=1e-5):
                fail(f"{call} returned {got.item():.4f}; expected {want.item():.4f}: {hint}.")
        fail(f"{call} returned {got.item():.4f}; expected {want.item():.4f}. Per image: "
             f"Dice = (2 * sum(p * t) + smooth) / (sum(p) + sum(t) + smooth), p = sigmoid(logits); "
             f"loss = 1 - mean over images.")
    passed("1 - soft Dice of sigmoid(logits), per image, averaged; matches course_utils.losses.DiceLoss.")


def _tiny_setup():
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 1))
    images, masks = torch.rand(2, 3, 8, 8), (torch.rand(2, 1, 8, 8) > 0.5).float()
    return model, images, masks


def check_train_step(train_step: Callable[..., Any]) -> None:
    """Exercise 1: `train_step(model, images, masks, loss_fn, optimizer)` -> the loss
    (before the step); zero the gradients, forward, loss, backward, optimizer step. Lesson 06."""
    import torch

    from ..losses import BCEDiceLoss
    from ..engine import train_step as reference

    model, images, masks = _tiny_setup()
    theirs, ours = copy.deepcopy(model), copy.deepcopy(model)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.1)
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.1)
    loss_fn = BCEDiceLoss()
    for step in (1, 2):
        before = [p.detach().clone() for p in theirs.parameters()]
        call = f"train_step(model, images, masks, loss_fn, optimizer) (step {step})"
        got = call_answer(train_step, "train_step", theirs, images, masks, loss_fn, opt_theirs)
        want = reference(ours, images, masks, loss_fn, opt_ours)
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            fail(f"{call} returned {type(got).__name__}; expected the loss, a scalar tensor.")
        moved = any(not torch.equal(b, p) for b, p in zip(before, theirs.parameters()))
        if not moved:
            fail(f"{call} left every weight unchanged: after loss.backward() call optimizer.step().")
        if all(p.grad is None for p in theirs.parameters()):
            fail(f"{call}: the weights have no gradients; call loss.backward() before optimizer.step().")
        same = all(torch.allclose(a, b, atol=1e-6) for a, b in zip(theirs.parameters(), ours.parameters()))
        if not same:
            why = ("the second step differs: call optimizer.zero_grad() before backward(), or the gradients "
                   "of the previous step are added to this one's" if step == 2 else
                   "compute loss_fn(model(images), masks), call loss.backward(), then optimizer.step()")
            fail(f"{call} moved the weights differently from course_utils.engine.train_step: {why}.")
        if not torch.allclose(got.detach().float(), want, atol=1e-6):
            fail(f"{call} returned {got.item():.5f}; expected {want.item():.5f}: return the loss computed "
                 f"in this step's forward pass (before the weights change).")
    passed("zero_grad, forward, loss, backward, step: two steps match course_utils.engine.train_step.")


def check_lr_at(lr_at: Callable[..., float]) -> None:
    """Exercise 3: `lr_at(step, total_steps, warmup_steps, peak_lr)` -> the learning rate
    at batch `step` (0-based): linear warm-up to peak_lr, then cosine decay to 0. Lesson 06."""
    from ..engine import warmup_cosine

    total, warm, peak = 100, 10, 3e-3
    cases = [(0, "the first step of the warm-up is (0 + 1) / warmup_steps of the peak, not 0 (a zero lr "
                 "would waste the step)"),
             (4, "during warm-up the lr grows linearly: peak_lr * (step + 1) / warmup_steps"),
             (9, "the last warm-up step reaches the peak"),
             (10, "right after warm-up the cosine starts at its top: the peak"),
             (55, "halfway through the decay the cosine factor is 0.5 * (1 + cos(pi / 2)) = 0.5"),
             (80, "progress = (step - warmup_steps) / (total_steps - warmup_steps); factor = "
                  "0.5 * (1 + cos(pi * progress))"),
             (100, "at the end the lr has decayed to 0")]
    for step, why in cases:
        call = f"lr_at({step}, total_steps={total}, warmup_steps={warm}, peak_lr={peak})"
        got = call_answer(lr_at, "lr_at", step, total, warm, peak)
        try:
            got = float(got)
        except (TypeError, ValueError):
            fail(f"{call} returned {got!r}; expected a number (float).")
        want = peak * warmup_cosine(step, total, warm)
        if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
            hint = why
            if math.isclose(got, want / peak, rel_tol=1e-6, abs_tol=1e-9):
                hint = "you returned the factor; multiply it by peak_lr"
            fail(f"{call} returned {got:.6g}; expected {want:.6g}: {hint}.")
    passed("linear warm-up to peak_lr, then cosine to 0: matches course_utils.engine.warmup_cosine.")


# ---------------------------------------------------------------------------- exercise 4: the epoch loop

# The check's run: noisy squares of 16 x 24 (H x W), 30 to train on, 5 held out, batches of 4 (both loaders end
# with a smaller batch), a U-Net of width 4 and depth 2, 4 epochs of 8 batches. With seed 11 the held-out Dice
# peaks at epoch 2, the held-out loss is lowest at epoch 4: the last or lowest-loss weights are not best.pt.
_LOOP = dict(seed=11, n_train=30, n_val=5, size=(16, 24), batch_size=4, epochs=4, lr=1e-2)
_CALL = "my_fit(model, train_loader, val_loader, 4, 0.01)"
_TOL = dict(rel_tol=1e-5, abs_tol=1e-6)
_REFERENCE: dict[int, dict[str, Any]] = {}  # fit's run, per torch thread count (float sums depend on it)


def _squares(n: int, size: tuple[int, int], g: Any) -> tuple[Any, Any]:
    """n noisy images (n, 3, H, W), each with one brighter square, and the squares' masks (n, 1, H, W)."""
    import torch

    images, masks = torch.rand(n, 3, *size, generator=g) * 0.3, torch.zeros(n, 1, *size)
    for i in range(n):
        s = int(torch.randint(3, size[0] // 2 + 1, (1,), generator=g))
        y, x = (int(torch.randint(0, side - s + 1, (1,), generator=g)) for side in size)
        masks[i, :, y:y + s, x:x + s] = 1
        images[i, :, y:y + s, x:x + s] += 0.5
    return images, masks


def _named(obj: Any, name: str) -> Any:
    """`obj`, printed as `name` (call_answer shows the arguments of a call that crashed)."""
    cls = type(obj)
    obj.__class__ = type(cls.__name__, (cls,), {"__repr__": lambda self: name, "__module__": cls.__module__})
    return obj


def _loop_setup() -> tuple[Any, Any, Any]:
    """The check's model (in eval mode: a loop sets the mode itself) and loaders, the same at every call."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from ..model import UNet

    g = torch.Generator().manual_seed(_LOOP["seed"])
    train, val = (DataLoader(TensorDataset(*_squares(_LOOP[n], _LOOP["size"], g)), batch_size=_LOOP["batch_size"])
                  for n in ("n_train", "n_val"))
    torch.manual_seed(_LOOP["seed"])
    return UNet(3, 1, base_channels=4, depth=2).eval(), train, val


def _state(model: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: Any, b: dict[str, Any]) -> bool:
    import torch

    return isinstance(a, dict) and a.keys() == b.keys() and all(
        isinstance(a[k], torch.Tensor) and a[k].shape == b[k].shape
        and torch.allclose(a[k].detach().cpu().double(), b[k].double(), rtol=1e-5, atol=1e-6) for k in a)


def _reference() -> dict[str, Any]:
    """fit's run on the check's set: history, the weights after each epoch (best.pt holds those of the best
    val_dice), and per epoch each training batch's (loss, images) and each held-out batch's logits."""
    import torch

    from ..engine import fit
    from ..losses import BCEDiceLoss

    threads = torch.get_num_threads()
    if threads not in _REFERENCE:
        model, train, val = _loop_setup()
        bce_dice, losses, logits, after = BCEDiceLoss(), [], [], []

        def loss_fn(out, masks):  # fit's default loss, watched
            loss = bce_dice(out, masks)
            if torch.is_grad_enabled():
                losses.append((loss.item(), len(masks)))
            return loss

        def held_out(module, args, out):
            if not module.training:
                after.extend([_state(module)] if len(logits) % len(val) == 0 else [])
                logits.append(out.detach().clone())

        model.register_forward_hook(held_out)
        history = fit(model, train, val, epochs=_LOOP["epochs"], lr=_LOOP["lr"], device="cpu", loss_fn=loss_fn,
                      progress=False, verbose=False)
        n, b, epochs = len(train), len(val), range(_LOOP["epochs"])
        _REFERENCE[threads] = dict(history=history, after=after, masks=[m for _, m in val],
                                   losses=[losses[e * n:(e + 1) * n] for e in epochs],
                                   logits=[logits[e * b:(e + 1) * b] for e in epochs])
    return _REFERENCE[threads]


class _Watch:
    """What the learner's loop does: each forward pass (whose batch, train mode, gradients on), the
    weights when each held-out pass starts, and each optimizer step (the optimizer, its learning rate)."""
    _key = staticmethod(lambda x: (tuple(x.shape), round(x.detach().double().sum().item(), 4)))  # a batch's

    def __init__(self, train: Any, val: Any) -> None:
        self.kind = {self._key(x): "train" for x, _ in train} | {self._key(x): "val" for x, _ in val}
        self.calls, self.after, self.steps = [], [], []  # (kind, training, grad on); states; (optimizer, lr)

    def forward(self, module: Any, args: tuple) -> None:
        import torch

        x = args[0] if args else None
        kind = self.kind.get(self._key(x), "other") if isinstance(x, torch.Tensor) else "other"
        if kind == "val" and (not self.calls or self.calls[-1][0] != "val"):
            self.after.append(_state(module))
        self.calls.append((kind, module.training, torch.is_grad_enabled()))

    def step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.steps.append((optimizer, optimizer.param_groups[0]["lr"]))


def _check_optimizer(watch: _Watch, n_batches: int) -> None:
    import torch

    from ..engine import make_optimizer

    if len(watch.steps) != _LOOP["epochs"] * n_batches:
        fail(f"{_CALL} took {len(watch.steps)} optimizer steps; fit takes one per batch: {_LOOP['epochs']} epochs x "
             f"{n_batches} batches = {_LOOP['epochs'] * n_batches}. Call train_step on every batch, every epoch.")
    optimizers = list({id(o): o for o, _ in watch.steps}.values())
    if len(optimizers) > 1:
        fail(f"{_CALL} stepped {len(optimizers)} different optimizers: make the optimizer and the schedule once, "
             f"before the epoch loop. A new AdamW forgets its running averages; a new schedule warms up again.")
    opt, want = optimizers[0], make_optimizer(torch.nn.Linear(1, 1), _LOOP["lr"])
    g, w = opt.param_groups[0], want.param_groups[0]
    if type(opt) is not type(want):
        fail(f"your optimizer is {type(opt).__name__}; fit's is make_optimizer(model, lr): AdamW, weight_decay 1e-4.")
    differ = [k for k in ("weight_decay", "betas", "eps", "amsgrad") if g.get(k) != w.get(k)]
    if differ:
        fail(f"your AdamW has {', '.join(f'{k}={g.get(k)}' for k in differ)}; fit's make_optimizer(model, lr) has "
             f"{', '.join(f'{k}={w.get(k)}' for k in differ)} (torch's AdamW alone defaults to weight_decay 0.01).")


def _check_schedule(lrs: list[float], n_batches: int) -> None:
    from ..engine import warmup_cosine

    total = len(lrs)
    want = [_LOOP["lr"] * warmup_cosine(k, total, max(1, round(0.05 * total))) for k in range(total)]
    close = lambda a, b: math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)  # noqa: E731
    if all(map(close, lrs, want)):
        return
    if len(set(lrs)) == 1:
        fail(f"the learning rate stayed at {lrs[0]:.4g} for every step: make the schedule once, scheduler = "
             f"make_scheduler(optimizer, epochs * len(train_loader)), and call scheduler.step() after every batch.")
    if all(len(set(lrs[i:i + n_batches])) == 1 for i in range(0, total, n_batches)):
        fail("the learning rate changed only between epochs: call scheduler.step() after every batch (inside "
             "the batch loop), not once per epoch. The schedule counts batches: epochs * len(train_loader).")
    if all(map(close, lrs[:-1], want[1:])):
        fail("each step used the learning rate of the step after it: call scheduler.step() after the "
             "optimizer's step (after train_step), not before.")
    k = next(i for i, (a, b) in enumerate(zip(lrs, want)) if not close(a, b))
    fail(f"step {k} (epoch {k // n_batches + 1}, batch {k % n_batches + 1}) used learning rate {lrs[k]:.4g}; fit's "
         f"is {want[k]:.4g}. Make the schedule once, make_scheduler(optimizer, epochs * len(train_loader)) (warm-up "
         f"over the first 5% of the steps, then a cosine down to 0), and step it after every batch.")


def _check_modes(watch: _Watch, n_val: int) -> None:
    """Train batches in training mode; after each epoch's, one held-out pass in eval mode, without gradients."""
    calls = [c for c in watch.calls if c[0] != "other"]
    if not any(kind == "val" for kind, _, _ in calls):
        fail(f"{_CALL} never ran the model on val_loader: after each epoch's training, score the held-out loader.")
    if calls[0][0] == "val":
        fail("the held-out pass came before any training: each epoch trains first, then scores val_loader.")
    epoch, passes = 1, [0]
    for kind, training, grad in calls:
        if kind == "train" and passes[-1]:
            epoch, passes = epoch + 1, passes + [0]
        if kind == "train" and not training:
            left = f"the held-out pass of epoch {epoch - 1} left it" if epoch > 1 else "the model may come"
            fail(f"epoch {epoch} trained with the model in eval mode: call model.train() at the start of every "
                 f"epoch's training ({left} in eval mode). In eval mode BatchNorm normalises with its running "
                 f"averages instead of the batch's statistics, and stops updating them.")
        passes[-1] += kind == "val"
        if kind == "val" and training:
            fail(f"the held-out pass of epoch {epoch} ran in training mode: call model.eval() before it. In training "
                 f"mode BatchNorm normalises each batch with its own statistics (so a score depends on the batch) "
                 f"and updates its running averages with held-out images.")
        if kind == "val" and grad:
            fail(f"the held-out pass of epoch {epoch} recorded gradients: run it inside `with torch.no_grad():`. "
                 f"Nothing is learnt from held-out images, and the graph kept for backward costs memory.")
    if passes != [n_val] * _LOOP["epochs"]:
        fail(f"{_CALL} ran {passes} held-out batches in its {len(passes)} epochs; fit runs all {n_val} batches of "
             f"val_loader once after each of the {_LOOP['epochs']} epochs' training.")


def _check_history(history: list, ref: dict[str, Any], watch: _Watch) -> None:
    """Weights after each epoch, then train_loss, val_loss and val_dice, compared with fit's."""
    import torch

    from ..losses import BCEDiceLoss, soft_dice
    from ..metrics import dice_score

    masks, fewer = ref["masks"], "but the last batch holds fewer images"
    for e, (row, want) in enumerate(zip(history, ref["history"]), 1):
        if not _same(watch.after[e - 1], ref["after"][e - 1]):
            fail(f"after epoch {e} the weights differ from fit's, though optimizer, schedule and modes match: train "
                 f"each batch with train_step(model, images, masks, loss_fn, optimizer), loss_fn = BCEDiceLoss().")
        losses, logits = ref["losses"][e - 1], ref["logits"][e - 1]
        per_batch = [BCEDiceLoss()(x, m).item() for x, m in zip(logits, masks)]
        dice = [dice_score(torch.sigmoid(x) > 0.5, m, reduction="none") for x, m in zip(logits, masks)]
        pooled = [torch.cat([t.flatten() for t in ts])[None] for ts in (logits, masks)]
        for key, variants, rule in (
                ("train_loss", [(sum(v for v, _ in losses) / len(losses), f"the mean of the batch losses, {fewer}"),
                                (losses[-1][0], "the last batch's loss"),
                                (sum(v * n for v, n in losses), "a sum; divide it by the number of images")],
                 "the epoch's mean loss per image: add loss.item() * len(images), divide by the number of images"),
                ("val_loss", [(sum(per_batch) / len(per_batch), f"the mean of the batch losses, {fewer}")],
                 "the mean held-out loss per image: add loss.item() * len(images), divide by the number of images"),
                ("val_dice", [
                    (torch.stack([d.mean() for d in dice]).mean().item(), "the mean of the batch means: the last "
                     "batch's 1 image then weighs as much as the first batch's 4"),
                    (dice_score(torch.sigmoid(pooled[0]) > 0.5, pooled[1]).item(), "one Dice of all held-out "
                     "pixels pooled; Kaggle scores each image, then averages"),
                    (torch.cat([soft_dice(torch.sigmoid(x), m) for x, m in zip(logits, masks)]).mean().item(),
                     "the soft Dice of the probabilities; score the mask sigmoid(logits) > 0.5"),
                    (torch.cat([dice_score(x > 0.5, m, reduction="none") for x, m in zip(logits, masks)]).mean().item(),
                     "the logits thresholded at 0.5; threshold the probabilities, sigmoid(logits) > 0.5")],
                 "the Dice of each held-out image's mask, sigmoid(logits) > 0.5, with its true mask "
                 "(dice_score(pred, masks, reduction='none')), summed over all images, divided by their number")):
            try:
                got = float(row[key])
            except (TypeError, ValueError, RuntimeError):
                fail(f"history row {e}'s {key} is {row[key]!r}; expected a number (.item() of a one-value tensor).")
            if not math.isclose(got, want[key], **_TOL):
                hint = next((f": that is {why}" for v, why in variants if math.isclose(got, v, **_TOL)), "")
                fail(f"epoch {e}: {key} {got:.5f}, fit's {want[key]:.5f}{hint}. {key} is {rule}.")


def _check_best(best: Any, model: Any, ref: dict[str, Any], watch: _Watch) -> None:
    """The weights after the epoch of the best held-out Dice (fit's best.pt), as a copy (or in a file)."""
    import torch

    if isinstance(best, str) or hasattr(best, "__fspath__"):  # a path
        try:
            best = torch.load(best, map_location="cpu", weights_only=True)
        except Exception as e:  # a path to nothing, or not a torch file
            fail(f"best_state is the path {str(best)!r}, which torch.load cannot read ({type(e).__name__}: {e}).")
    best = best["model"] if isinstance(best, dict) and isinstance(best.get("model"), dict) else best  # a checkpoint
    live = model.state_dict()
    if not isinstance(best, dict) or best.keys() != live.keys():
        fail(f"best_state should be a copy of model.state_dict() (the model's keys); got {type(best).__name__}.")
    ptrs = {v.untyped_storage().data_ptr() for v in live.values()}
    if any(isinstance(v, torch.Tensor) and v.untyped_storage().data_ptr() in ptrs for v in best.values()):
        fail("best_state holds the model's live tensors: model.state_dict() is not a copy, and every later epoch "
             "changes it. Keep copy.deepcopy(model.state_dict()).")
    dice, loss = ([r[k] for r in ref["history"]] for k in ("val_dice", "val_loss"))
    if _same(best, ref["after"][dice.index(max(dice))]):
        return
    top, kept = dice.index(max(dice)) + 1, next((e for e, s in enumerate(watch.after, 1) if _same(best, s)), None)
    if kept is None:
        fail(f"best_state matches the weights after no epoch: keep copy.deepcopy(model.state_dict()) right after "
             f"the held-out pass of an epoch whose val_dice beats the best so far (epoch {top} here).")
    why = [w for w, e in (("the last epoch", len(dice)), ("the lowest held-out loss", loss.index(min(loss)) + 1))
           if e == kept]
    fail(f"best_state holds the weights after epoch {kept}" + (f" ({' and '.join(why)})" if why else "")
         + f", but the best held-out Dice was at epoch {top} ({max(dice):.4f}; epoch {kept}: {dice[kept - 1]:.4f}). "
           f"Keep a copy only when val_dice beats the best so far: the score is Dice, not the loss.")


def check_epoch_loop(my_fit: Callable[..., Any]) -> None:
    """Exercise 4: `my_fit(model, train_loader, val_loader, epochs, lr)` -> (history, best_state). Each
    epoch: train on every batch (train_step, make_optimizer's AdamW, make_scheduler stepped per batch),
    score the held-out loader (eval mode, no gradients, mean per-image Dice), append a row (train_loss,
    val_loss, val_dice), keep a copy of the weights of the best val_dice. Compared with
    course_utils.engine.fit run from the same seed on 30 + 5 tiny images. Lesson 06."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    model, train, val = _loop_setup()
    watch = _Watch(train, val)
    hooks = [model.register_forward_pre_hook(watch.forward), register_optimizer_step_pre_hook(watch.step)]
    try:
        got = call_answer(my_fit, "my_fit", _named(model, "model"), _named(train, "train_loader"),
                          _named(val, "val_loader"), _LOOP["epochs"], _LOOP["lr"])
    finally:
        for hook in hooks:
            hook.remove()
    if not (isinstance(got, (tuple, list)) and len(got) == 2 and isinstance(got[0], list)):
        fail(f"{_CALL} returned {type(got).__name__}; expected (history, best_state): a list of one row per epoch, "
             f"and the state dict of the best epoch's weights.")
    history, best = got
    if len(history) != _LOOP["epochs"] or not all(isinstance(r, dict) for r in history):
        fail(f"{_CALL} returned {len(history)} history rows for {_LOOP['epochs']} epochs: append one dict per epoch.")
    missing = sorted({k for r in history for k in ("train_loss", "val_loss", "val_dice") if k not in r})
    if missing:
        fail(f"history rows lack {', '.join(missing)}: name the numbers as fit does: train_loss, val_loss, val_dice.")
    _check_optimizer(watch, len(train))
    _check_schedule([lr for _, lr in watch.steps], len(train))
    _check_modes(watch, len(val))
    ref = _reference()  # after the learner's run: a crash or a missing solution is reported at once
    _check_history(history, ref, watch)
    _check_best(best, model, ref, watch)
    passed("every batch trained with a per-batch schedule, the held-out set scored in eval mode without gradients "
           "(mean per-image Dice), a copy of the best epoch kept: 4 epochs match course_utils.engine.fit.")
