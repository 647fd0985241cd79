"""Running a trained model, in one place: eval mode without gradients (`evaluating`), the
precision-aware `forward` that training shares, `predict_probabilities` for batches,
overlap-tile inference for images of any size (`predict_tiled`, the paper's Figure 2, over the
grid of course_utils.tiling), test-time augmentation (`averaged_over` the image's mirror, or its 8
rotations and flips), whole EM stacks (`predict_stack`), and `trace_shapes`, which runs a zero
tile to record each stage's shape. Evaluation, the viewer, the figures and the predict CLI all
run models through here.

Memory on the device is bounded by the tile (times `batch_size`), not by the image, so a
1918 x 1280 Carvana photo runs on a small GPU. For the paper's unpadded ("valid") network the
tiled result equals ONE pass over the whole mirror-padded image (to float rounding); a
"same"-padded network's tiles overlap and only each tile's centre is kept. Lessons 02, 07, 08, 13.

>>> from course_utils import UNet
>>> net = UNet(3, 1, base_channels=4, depth=2, padding="valid", batch_norm=False)
>>> predict_tiled(net, torch.rand(3, 37, 53), tile_size=52).shape
torch.Size([1, 37, 53])
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from .tiling import mirror_pad, stack_overlap, tile_grid

# ---------------------------------------------------------------------------- one forward pass


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Inside: the model in eval mode (BatchNorm's running statistics, no dropout) and no gradients
    kept; after: its own train/eval mode back, so a notebook can predict in the middle of training.
    Lesson 07."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def forward(model: nn.Module, images: torch.Tensor, amp_dtype: torch.dtype | None = None,
            channels_last: bool = False) -> torch.Tensor:
    """The model's logits in float32: computed under autocast(amp_dtype), images in channels_last
    if asked. Losses and metrics then work in float32, where sums over many pixels stay exact. Lesson 06."""
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(images.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        logits = model(images)
    if isinstance(logits, dict):  # the two-headed U-Net (lesson 11)
        return {k: v.float() for k, v in logits.items()}
    return logits.float()


# ---------------------------------------------------------------------------- test-time augmentation

# Views of an image as (quarter turns k, mirrored): FLIP is the image and its left-right mirror
# (a car photo's up stays up); DIHEDRAL all 4 turns with and without the mirror (an EM slice has
# no "up", so each of the 8 copies is a fair view of it). (0, False) is the image itself.
FLIP: tuple[tuple[int, bool], ...] = ((0, False), (0, True))
DIHEDRAL: tuple[tuple[int, bool], ...] = tuple((k, flip) for flip in (False, True) for k in range(4))


def turn(image: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """(..., H, W) mirrored left-right when flip, then turned k quarter turns counter-clockwise. Lessons 08 and 13."""
    return torch.rot90(image.flip(-1) if flip else image, k, dims=(-2, -1))


def turn_back(image: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """The inverse of turn: a prediction of the turned image, put back in the image's place. Lessons 08 and 13."""
    back = torch.rot90(image, -k, dims=(-2, -1))
    return back.flip(-1) if flip else back


def averaged_over(views: tuple[tuple[int, bool], ...], predict: Callable[[torch.Tensor, int], torch.Tensor],
                  image: torch.Tensor) -> torch.Tensor:
    """Test-time augmentation: the mean of predict(turned image, k), each turned back into place.
    predict gets the quarter turns k too (a (h, w) tile is (w, h) for an odd k). Lessons 08 and 13."""
    total = None
    for k, flip in views:
        out = turn_back(predict(turn(image, k, flip), k), k, flip)
        total = out if total is None else total + out
    return total / len(views)


def _swapped(value, k: int):
    """A (h, w) pair for the image turned k quarter turns: swapped when k is odd."""
    return tuple(reversed(value)) if k % 2 and isinstance(value, (tuple, list)) else value


# ---------------------------------------------------------------------------- batches


def model_device(model: nn.Module) -> torch.device:
    """Where the model's weights live (the CPU for a model without any). Lesson 07."""
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's weights (float32 for a model without any). Lesson 07."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _probabilities(logits: torch.Tensor) -> torch.Tensor:
    """sigmoid for one channel (car vs background), softmax over channels otherwise."""
    return torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)


def predict_probabilities(model: nn.Module, images: torch.Tensor, *, tta: bool = False,
                          amp_dtype: torch.dtype | None = None, channels: slice | None = None) -> torch.Tensor:
    """Probabilities, float32 on the CPU, for images (N, C_in, H, W): sigmoid (N, 1, H, W) for a
    one-channel model, softmax (N, C, H, W) otherwise.

    Runs on the model's device in eval mode under no_grad (train mode is restored after).
    tta=True also predicts the horizontally mirrored images, mirrors those back and averages the
    two probabilities: a cheap test-time augmentation for data that looks the same mirrored.
    amp_dtype: autocast dtype (torch.bfloat16 / torch.float16 on a GPU), None for float32.
    channels: the output channels that hold the scores, e.g. slice(0, 13) for a model whose
    last channel is depth; None: all of them. A model returning {"seg", "depth"} (TwoHeadUNet,
    lesson 11) is scored on its "seg" output. Lesson 07.
    """
    images = torch.as_tensor(images)
    if images.ndim != 4:
        raise ValueError(f"expected a batch of images (N, C, H, W), got shape {tuple(images.shape)}; "
                         "for one image use image.unsqueeze(0).")
    images = images.to(model_device(model), model_dtype(model))
    pick = channels if channels is not None else slice(None)

    def probabilities(x: torch.Tensor, k: int = 0) -> torch.Tensor:
        out = forward(model, x, amp_dtype)
        return _probabilities((out["seg"] if isinstance(out, dict) else out)[:, pick])  # TwoHeadUNet: its classes

    with evaluating(model):
        probs = averaged_over(FLIP, probabilities, images) if tta else probabilities(images)
    return probs.float().cpu()


# ---------------------------------------------------------------------------- images of any size


def as_chw(image, channels: int) -> torch.Tensor:
    """(C, H, W) float tensor from (C, H, W), (1, C, H, W), or a uint8 (H, W, C) array / (C, H, W) tensor;
    a one-channel model also takes an (H, W) array (a greyscale EM slice as read_stack gives). Lessons 07 and 13."""
    if isinstance(image, np.ndarray):
        if image.ndim == 2 and channels == 1:
            image = image[..., None]
        if image.ndim != 3 or image.shape[-1] != channels:
            grey = " or (H, W)" if channels == 1 else ""
            raise ValueError(f"a numpy image must be (H, W, {channels}){grey} like PIL gives, got shape {image.shape}.")
        image = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    if not isinstance(image, torch.Tensor):
        raise TypeError("image must be a torch tensor (C, H, W) or a numpy array (H, W, C), "
                        f"got {type(image).__name__}.")
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or image.shape[0] != channels:
        raise ValueError(f"predict_tiled takes one image ({channels}, H, W) or (1, {channels}, H, W), "
                         f"got shape {tuple(image.shape)}; loop over a batch one image at a time.")
    return image.float().div(255) if image.dtype == torch.uint8 else image.float()


def predict_tiled(model: nn.Module, image: torch.Tensor, tile_size: int | tuple[int, int],
                  overlap: int | tuple[int, int] | None = None, *, batch_size: int = 4,
                  amp_dtype: torch.dtype | None = None, tta: bool | str = False) -> torch.Tensor:
    """Logits (out_channels, H, W), float32 on the CPU, for one image of any size.

    image: (3, H, W) or (1, 3, H, W) float in [0, 1] as CarvanaDataset gives (a uint8 tensor or a
        uint8 (H, W, 3) array is scaled by 1/255); for a one-channel model a (1, H, W) slice or a
        uint8 (H, W) array. It stays on the CPU; tiles go to the model's device `batch_size` at a
        time, so device memory depends on the tile, not on the image.
    tile_size, overlap: see tile_grid. amp_dtype: autocast dtype (e.g. torch.bfloat16) or None.
    tta: test-time augmentation, 8x the work: the image is turned through its 8 rotations and flips
        (DIHEDRAL), each copy is tiled and predicted, put back in place, and the LOGITS are averaged,
        so the result is still logits. The paper averaged 7 rotated copies of each EM slice (Section
        4); the dihedral group has 8 (the image itself among them). For (h, w) tiles, a turned copy
        uses (w, h). tta="flip": only the image and its left-right mirror (2x the work).

    The model runs in eval mode without gradients; its train/eval mode is restored afterwards.
    For a valid network the result equals one pass over the mirror-padded whole image. Lessons 08 and 13.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be 1 or more, got {batch_size}.")
    image = as_chw(image, model.config["in_channels"])
    views = {False: ((0, False),), True: DIHEDRAL, "flip": FLIP}[tta]

    def tiles(x: torch.Tensor, k: int) -> torch.Tensor:
        return _run_tiles(model, x, _swapped(tile_size, k), _swapped(overlap, k), batch_size, amp_dtype)

    with evaluating(model):
        return averaged_over(views, tiles, image)


def _run_tiles(model: nn.Module, image: torch.Tensor, tile_size, overlap, batch_size: int,
               amp_dtype: torch.dtype | None) -> torch.Tensor:
    """predict_tiled's one pass over the grid: image (C, H, W) -> logits (out_channels, H, W)."""
    h, w = image.shape[-2:]
    tiles = tile_grid(h, w, model, tile_size, overlap)
    top, left = -min(t.input_box.top for t in tiles), -min(t.input_box.left for t in tiles)
    bottom, right = max(t.input_box.bottom for t in tiles) - h, max(t.input_box.right for t in tiles) - w
    padded = mirror_pad(image, max(top, 0), max(bottom, 0), max(left, 0), max(right, 0))  # (C, H', W')
    param = next(model.parameters())
    result = torch.empty(model.config["out_channels"], h, w)
    for i in range(0, len(tiles), batch_size):
        batch = tiles[i:i + batch_size]
        x = torch.stack([padded[:, t.input_box.top + top:t.input_box.bottom + top,
                                t.input_box.left + left:t.input_box.right + left] for t in batch])
        x = x.to(device=param.device, dtype=param.dtype)  # (B, C, tile_h, tile_w)
        y = forward(model, x, amp_dtype).cpu()  # (B, out_channels, out_h, out_w), float32
        for t, out in zip(batch, y):
            k, o = t.keep_box, t.output_box
            result[:, k.top:k.bottom, k.left:k.right] = out[:, k.top - o.top:k.bottom - o.top,
                                                             k.left - o.left:k.right - o.left]
    return result


# ---------------------------------------------------------------------------- EM stacks


def predict_stack(model: nn.Module, stack: np.ndarray, *, tile_size: int | tuple[int, int],
                  overlap: int | tuple[int, int] | None = None, tta: bool = False, batch_size: int = 4,
                  amp_dtype: torch.dtype | None = None, progress: bool = True) -> np.ndarray:
    """Probabilities float32 (N, H, W), sigmoid of the logits, for every slice of an EM stack.

    stack: uint8 (N, H, W) as read_stack gives (or float in [0, 1]); model: a one-in, one-out U-Net
        (greyscale slice in, one "cell" logit per pixel out) as `train --task isbi2012` trains.
    Each whole slice goes through predict_tiled (mirror padding at its border) with `tile_size`
    and, with tta=True, the average of its 8 rotations and flips. overlap: as tile_grid, except
    that by default a side the tile's output covers in one piece gets none (one pass, nothing to
    repair). progress: a bar over the slices.

    >>> from course_utils import UNet
    >>> net = UNet(1, 1, base_channels=4, depth=2)
    >>> predict_stack(net, np.zeros((2, 40, 56), np.uint8), tile_size=64, progress=False).shape
    (2, 40, 56)

    Lesson 13.
    """
    from tqdm.auto import tqdm

    stack = np.asarray(stack)
    channels = (model.config["in_channels"], model.config["out_channels"])
    if channels != (1, 1):
        raise ValueError(f"predict_stack needs a U-Net with 1 input channel (a greyscale slice) and 1 output (the "
                         f"cell logit), as `--task isbi2012` trains; this one has {channels[0]} in, {channels[1]} out.")
    if stack.ndim != 3:
        raise ValueError(f"a stack is (N, H, W) greyscale slices as read_stack gives, got shape {stack.shape}.")
    if overlap is None:  # per side: none where one tile's output covers the slice
        overlap = stack_overlap(model, tile_size, *stack.shape[1:])
    probs = np.empty(stack.shape, np.float32)
    for k in tqdm(range(len(stack)), desc="predict", unit="slice", disable=not progress):
        logits = predict_tiled(model, stack[k], tile_size, overlap, batch_size=batch_size, amp_dtype=amp_dtype,
                               tta=tta)
        probs[k] = torch.sigmoid(logits[0]).numpy()
    return probs


# ---------------------------------------------------------------------------- shapes (lesson 02)


def trace_shapes(model: nn.Module, input_size: tuple[int, ...] | int) -> list[tuple[str, tuple[int, ...]]]:
    """Run a zero input through `model` and record each stage's output shape.

    input_size: H (square), (H, W), (C, H, W) or (B, C, H, W). Returns rows
    ``(stage, shape)`` for "input", "inc", "down1".., "up1".., "head". Lessons 02-04.
    """
    shape = _full_shape(model, input_size)
    stages = [("inc", model.inc)]
    stages += [(f"down{i + 1}", m) for i, m in enumerate(model.downs)]
    stages += [(f"up{i + 1}", m) for i, m in enumerate(model.ups)]
    stages += [("head", model.head)]
    rows: list[tuple[str, tuple[int, ...]]] = [("input", shape)]
    hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: rows.append((name, tuple(out.shape))))
             for name, m in stages]
    try:
        with evaluating(model):
            model(torch.zeros(shape, device=model_device(model), dtype=model_dtype(model)))
    finally:
        for h in hooks:
            h.remove()
    return rows


def _full_shape(model: nn.Module, size: tuple[int, ...] | int) -> tuple[int, ...]:
    c = model.config["in_channels"] if hasattr(model, "config") else 3
    if isinstance(size, int):
        return (1, c, size, size)
    size = tuple(size)
    return {2: (1, c, *size), 3: (1, *size), 4: size}[len(size)]
