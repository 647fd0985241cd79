"""Masks for new photos or EM stacks, and a Kaggle submission, from a trained checkpoint (lessons 08, 13).

    python -m course_utils.predict --checkpoint runs/quick-demo/best.pt data/toy_carvana/train --out preds
    python -m course_utils.predict --checkpoint RUN/best.pt TEST_IMAGES/ --submission submission.csv.gz
    python -m course_utils.predict --checkpoint RUN/best.pt data/isbi2012/test-volume.tif --out preds --tta

Each photo goes to the scale the model learned: it is resized to the checkpoint's `image_size`
exactly as training resized it (eval_transform), the network runs, and its LOGITS are resized
bilinearly back to the photo's own size before the threshold. Thresholding first and then
resizing the mask would give blocky, staircase edges; a smooth logit map cut at the threshold
gives edges placed between the network's pixels. `--tiled TILE` instead runs the overlap-tile
strategy (course_utils.inference) at the photo's full resolution, for a model trained on
full-size crops.

Writes DIR/<name>_mask.png (mode "L", 0 = background, 255 = car: viewable, and the {0, 255} PNG
mask format CarvanaDataset reads), DIR/<name>_overlay.png (the photo with the car tinted and
outlined), and with --submission the competition's file: a CSV `img,rle_mask` with one row per
photo in the order given, the full-size mask run-length encoded (course_utils.rle).

Stack mode (lesson 13), for .tif/.tiff inputs and a `--task isbi2012` checkpoint: each slice of
a multi-page 8-bit stack (test-volume.tif, or held-out slices saved with write_stack) is
overlap-tiled whole with mirror padding at its border (predict_stack), with --tta averaged over its
8 rotations and flips. Tile: --tile-size, else a valid network's training tile (the paper's 572),
else the whole slice. Writes the challenge's layout, DIR/<stack>_probabilities.tif (32-bit float,
one page per slice, same order), and DIR/<stack>_<page>_mask.png (pages from 00; mode "L",
255 = cell, 0 = membrane, the labels' convention).
"""
from __future__ import annotations

import argparse
import csv
import gzip
import io
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .checkpoint import atomic_write, load_checkpoint
from .environment import is_writable, work_root
from .inference import predict_stack, predict_tiled
from .tiling import covering_tile_size, tile_grid
from .rle import rle_encode

__all__ = ["read_image", "predict_logits", "predict_image", "overlay_mask", "write_submission",
           "read_submission", "find_images", "predict_stack_file", "main"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
STACK_SUFFIXES = (".tif", ".tiff")
HEADER = ["img", "rle_mask"]
HOW_TO_TRAIN = ("Train one with `python -m course_utils.train` (it writes runs/<profile>-<date>-<time>/best.pt), "
                "then pass that file.")


# ---------------------------------------------------------------------------- one image


def read_image(path: str | Path) -> np.ndarray:
    """The photo at `path` as uint8 (H, W, 3) RGB; errors name the file and say what to do. Lesson 08."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image at {path}; check the path (a folder is read as all its .jpg/.png files).")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as e:
        raise OSError(f"could not read the image {path} ({e}). It is damaged or not a picture; "
                      "give JPEG or PNG photos.") from e


def _as_uint8(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """uint8 (H, W, 3) from that, or from a float (3, H, W) tensor in [0, 1] (CarvanaDataset's images)."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.ndim == 4 and image.shape[0] == 1:
            image = image[0]
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"expected one image tensor (3, H, W), got shape {tuple(image.shape)}.")
        if image.is_floating_point():
            image = (image * 255).round().clamp(0, 255)
        return image.to(torch.uint8).permute(1, 2, 0).numpy()
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 3) photo (read_image gives one), got {image.dtype} {image.shape}.")
    return image


def predict_logits(model: nn.Module, image: np.ndarray | torch.Tensor, image_size: tuple[int, int] | None = None,
                   *, tile_size: int | tuple[int, int] | None = None, overlap: int | None = None, tta: bool = False,
                   batch_size: int = 4, amp_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Logits (out_channels, H, W), float32 on the CPU, at the photo's own size H x W.

    image: uint8 (H, W, 3) as read_image gives, or a float (3, H, W) tensor in [0, 1].
    image_size: (h, w) to resize the photo to first (the checkpoint's training size, as
        eval_transform resizes); None keeps the photo's size. The logits come back bilinearly.
    tile_size, overlap: run overlap-tile inference (predict_tiled) at that size; None: one pass
        over the whole (mirror-padded to fit) image.
    tta: also run the left-right mirrored photo and average the two logit maps. Lesson 08.
    """
    photo = _as_uint8(image)
    height, width = photo.shape[:2]
    if image_size is not None:
        from .data.transforms import eval_transform

        photo = eval_transform((int(image_size[0]), int(image_size[1])))(image=photo)["image"]
    x = torch.from_numpy(np.ascontiguousarray(photo.transpose(2, 0, 1))).float().div_(255)  # (3, h, w)
    h, w = x.shape[-2:]
    tile, overlap = (tile_size, overlap) if tile_size is not None else (covering_tile_size(model, h, w), 0)
    logits = predict_tiled(model, x, tile, overlap, batch_size=batch_size, amp_dtype=amp_dtype,
                           tta="flip" if tta else False)
    if (h, w) != (height, width):  # logits, not masks, are resized: smooth edges, threshold after
        logits = F.interpolate(logits[None], size=(height, width), mode="bilinear", align_corners=False,
                               antialias=height < h or width < w)[0]
    return logits


def predict_image(model: nn.Module, image: np.ndarray | torch.Tensor, image_size: tuple[int, int] | None = None,
                  threshold: float = 0.5, **options) -> np.ndarray:
    """The binary mask uint8 (H, W) {0, 1} at the photo's own size: sigmoid(logits) > threshold.

    Arguments as predict_logits (options: tile_size, overlap, tta, batch_size, amp_dtype); the
    logits are resized to the photo's size before the threshold. Needs a one-channel model. Lesson 08.
    """
    if not 0 < threshold < 1:
        raise ValueError(f"threshold is a probability between 0 and 1 (e.g. 0.5), got {threshold}.")
    channels = model.config["out_channels"]
    if channels != 1:
        raise ValueError(f"predict_image makes binary masks and needs a model with one output channel; this one has "
                         f"{channels} (for classes take predict_logits(...).argmax(0)).")
    logits = predict_logits(model, image, image_size, **options)
    return (torch.sigmoid(logits[0]) > threshold).numpy().astype(np.uint8)


def overlay_mask(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = (255, 60, 0),
                 alpha: float = 0.4) -> Image.Image:
    """The photo (H, W, 3) uint8 with the mask (H, W) {0, 1} tinted in `color` and its outline drawn. Lesson 08."""
    photo = Image.fromarray(_as_uint8(image))
    inside = np.asarray(mask) > 0
    outline = _outline(inside, 1 if max(inside.shape) <= 800 else 2)  # the line grows with the photo
    solid = Image.new("RGB", photo.size, tuple(color))
    tinted = Image.composite(Image.blend(photo, solid, alpha), photo, Image.fromarray(inside))
    return Image.composite(solid, tinted, Image.fromarray(outline))


def _outline(inside: np.ndarray, width: int) -> np.ndarray:
    """Pixels within `width` steps (4-neighbour) of the mask's border, on either side."""
    grown, shrunk = inside.copy(), inside.copy()
    for _ in range(width):
        g, s = np.pad(grown, 1, mode="edge"), np.pad(shrunk, 1, mode="edge")
        grown = g[1:-1, 1:-1] | g[:-2, 1:-1] | g[2:, 1:-1] | g[1:-1, :-2] | g[1:-1, 2:]
        shrunk = s[1:-1, 1:-1] & s[:-2, 1:-1] & s[2:, 1:-1] & s[1:-1, :-2] & s[1:-1, 2:]
    return grown & ~shrunk


# ---------------------------------------------------------------------------- the submission file


def write_submission(rows: Iterable[tuple[str, np.ndarray | str]] | Mapping[str, np.ndarray | str],
                     path: str | Path) -> int:
    """Write the Kaggle file `img,rle_mask` (gzip when `path` ends in .gz); returns the row count.

    rows: (file name, mask) pairs, or a dict name -> mask, in the order to write; a mask is a full-size
        (H, W) {0, 1} array (encoded with rle_encode) or an RLE string. Rows may come from a generator,
        so a whole test set never has to sit in memory. Written atomically: an error or a kill midway
        leaves no half file. Lesson 08.
    """
    path = Path(path)
    items = rows.items() if isinstance(rows, Mapping) else rows
    count = 0

    def write(f) -> None:
        nonlocal count
        raw = gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) if path.suffix == ".gz" else None
        text = io.TextIOWrapper(raw or f, encoding="utf-8", newline="")
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(HEADER)
        for name, mask in items:
            writer.writerow([name, mask if isinstance(mask, str) else rle_encode(np.asarray(mask))])
            count += 1
        text.flush()
        text.detach()
        if raw is not None:
            raw.close()  # writes the gzip trailer; f stays open for atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, write)
    return count


def read_submission(path: str | Path) -> list[tuple[str, str]]:
    """The (img, rle_mask) rows of a submission file (gzip or plain CSV); decode with rle_decode. Lesson 08."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != HEADER:
            raise ValueError(f"{path} is not a Carvana submission: its header is {header}, expected {HEADER}.")
        return [(row[0], row[1]) for row in reader]


# ---------------------------------------------------------------------------- the CLI


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given (in that order); a folder stands for its .jpg/.jpeg/.png files, sorted by name. Lesson 08."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            inside = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())
            if not inside:
                raise FileNotFoundError(f"the folder {p} holds no .jpg or .png images.")
            found += inside
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"no image at {p}; check the path.")
    names = [p.name for p in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"several images share the file name {twice[0]}: their masks and submission rows would "
                         "collide. Predict them in separate runs.")
    return found


def get_args_parser() -> argparse.ArgumentParser:
    """The CLI's options: photos, a submission, or EM stacks. Lessons 08 and 13."""
    p = argparse.ArgumentParser(prog="python -m course_utils.predict", description=__doc__.split("\n\n")[0],
                                epilog="Photos: DIR/<name>_mask.png (mode L, 0 background / 255 car) and "
                                       "DIR/<name>_overlay.png. " + __doc__.split("\n\n")[-1])  # stack mode
    p.add_argument("images", nargs="*", metavar="IMAGES", help="photos (JPEG/PNG) or folders of them, or multi-page "
                   ".tif stacks of EM slices")
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by course_utils.train, e.g. RUN/best.pt")
    p.add_argument("--out", metavar="DIR", help="folder for the mask and overlay PNGs (stacks: the probabilities "
                   "TIFF and mask PNGs)")
    p.add_argument("--submission", metavar="FILE.csv.gz", help="write the Kaggle submission file here")
    p.add_argument("--threshold", type=float, help="probability above which a pixel is car or cell (photos: 0.5; "
                   "stacks: the threshold training chose on the held-out slices, else 0.5)")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"),
                   help="size the photos are resized to (default: the checkpoint's training size)")
    p.add_argument("--tiled", "--tile-size", type=int, metavar="TILE", help="overlap-tile inference at full resolution "
                   "with TILE x TILE network inputs; photos: for a model trained on full-size crops (not on resized "
                   "photos); stacks: default the training tile for a valid network, else the whole slice")
    p.add_argument("--overlap", type=int, metavar="PX", help="with --tiled: output pixels neighbouring tiles share "
                   "(default: 0 for a valid network, a quarter of the tile for a same-padded one)")
    p.add_argument("--tta", action="store_true", help="average with the left-right mirrored photo's prediction; "
                   "stacks: over each slice's 8 rotations and flips (8x the time)")
    p.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass (4)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")
    p.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"), default="auto",
                   help="mixed precision (auto: bf16/fp16 on CUDA, off elsewhere)")
    return p


def _load(args: argparse.Namespace, stacks: bool) -> tuple[nn.Module, dict, torch.dtype | None]:
    """The model on its device, its checkpoint dict and the autocast dtype; refuses a model built for
    the other kind of input (colour photos vs greyscale stacks)."""
    from .environment import pick_device
    from .precision import resolve_amp

    if not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"no checkpoint at {args.checkpoint}. {HOW_TO_TRAIN}")
    model, ckpt = load_checkpoint(args.checkpoint)
    channels = model.config["in_channels"]
    if stacks and channels != 1:
        raise ValueError(f"{args.checkpoint} takes colour photos ({channels} input channels, e.g. Carvana), but a .tif "
                         "stack holds greyscale EM slices: use a checkpoint trained with `python -m course_utils.train "
                         "--task isbi2012`.")
    if not stacks and channels == 1:
        raise ValueError(f"{args.checkpoint} takes greyscale EM slices (1 input channel, --task isbi2012), not photos: "
                         "give it a multi-page .tif stack such as test-volume.tif.")
    device = pick_device(args.device)
    model.to(device).eval()
    return model, ckpt, resolve_amp(args.amp, device)


def _photo_size(args: argparse.Namespace, model: nn.Module, ckpt: dict) -> tuple[int, int] | None:
    """The size photos are resized to (None: full resolution); checks a --tiled tile and overlap."""
    size = args.image_size or (None if args.tiled else ckpt.get("image_size"))
    if size is None and not args.tiled:
        raise ValueError(f"{args.checkpoint} does not say which image size the model was trained at (no "
                         "image_size). Give --image-size H W (the training size), or --tiled TILE to run at the "
                         "photos' own resolution.")
    if args.tiled:
        tile_grid(args.tiled, args.tiled, model, args.tiled, args.overlap)  # a bad tile or overlap fails here
    return None if size is None else (int(size[0]), int(size[1]))


def _predictions(paths: list[Path], model: nn.Module, size, amp_dtype, args) -> Iterator[tuple[str, np.ndarray]]:
    """(file name, full-size mask) per photo, writing its PNGs on the way when --out is given."""
    from tqdm.auto import tqdm

    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    for path in tqdm(paths, desc="predict", unit="image", disable=not sys.stderr.isatty()):
        image = read_image(path)
        mask = predict_image(model, image, size, args.threshold, tile_size=args.tiled, overlap=args.overlap,
                             tta=args.tta, batch_size=args.batch_size, amp_dtype=amp_dtype)
        if out is not None:
            Image.fromarray(mask * 255).save(out / f"{path.stem}_mask.png")
            overlay_mask(image, mask).save(out / f"{path.stem}_overlay.png", compress_level=3)
        yield path.name, mask


def _stack_mode(args: argparse.Namespace) -> bool:
    """True when the inputs are .tif stacks; refuses a mix with photos and the photo-only options."""
    stacks = [p for p in args.images if Path(p).suffix.lower() in STACK_SUFFIXES]
    if not stacks:
        return False
    if len(stacks) != len(args.images):
        raise ValueError("give either .tif stacks (EM slices) or photos, not both: they need different checkpoints.")
    if args.submission:
        raise ValueError("--submission writes the Kaggle file for Carvana photos; a stack's predictions are written "
                         "in the ISBI challenge's layout instead (DIR/<stack>_probabilities.tif): give --out DIR.")
    if args.image_size:
        raise ValueError("--image-size resizes photos; stack slices are predicted at full resolution "
                         "(choose the network's input with --tile-size).")
    stems = [Path(p).stem for p in stacks]
    if len(set(stems)) != len(stems):
        raise ValueError("two stacks share a file name: their outputs would collide. Predict them in separate runs.")
    return True


def _stack_tile(model: nn.Module, ckpt: dict, height: int, width: int) -> tuple[int, int]:
    """The tile when --tile-size is not given: a valid network's training tile (its config image_size,
    e.g. the paper's 572), else the smallest tile covering the whole slice (the slice itself when
    its sides divide by 2**depth): one pass per slice."""
    trained = ckpt.get("config", {}).get("image_size") or ckpt.get("image_size")
    if model.config["padding"] == "valid" and trained:
        return int(trained[0]), int(trained[1])
    return covering_tile_size(model, height, width)


def predict_stack_file(model: nn.Module, path: str | Path, out: str | Path, *, threshold: float = 0.5,
                       tile_size: int | None = None, ckpt: dict | None = None, **options) -> str:
    """Predict the .tif stack at `path` and write OUT/<stem>_probabilities.tif and OUT/<stem>_<page>_mask.png;
    returns a line saying what was written. The CLI's stack mode, one stack.

    tile_size: None picks one from `ckpt`, the checkpoint dict (see the module docstring);
    options go to predict_stack (overlap, tta, batch_size, amp_dtype, progress). Lesson 13.
    """
    from .data.isbi2012 import read_stack, write_stack  # here: importing course_utils.data takes seconds

    path, out = Path(path), Path(out)
    stack = read_stack(path)  # (N, H, W) uint8; ValueError for a truncated or non-8-bit file
    n, h, w = stack.shape
    tile = (tile_size, tile_size) if tile_size else _stack_tile(model, ckpt or {}, h, w)
    probs = predict_stack(model, stack, tile_size=tile, **options)  # (N, H, W) float32
    out.mkdir(parents=True, exist_ok=True)
    tif = out / f"{path.stem}_probabilities.tif"
    tmp = tif.with_name(f".{tif.name}.{os.getpid()}.tmp")  # a kill midway leaves no half file
    try:
        os.replace(write_stack(tmp, probs), tif)
    finally:
        tmp.unlink(missing_ok=True)
    for k, page in enumerate(probs):
        Image.fromarray(((page > threshold) * 255).astype(np.uint8)).save(out / f"{path.stem}_{k:02d}_mask.png")
    tta = ", averaged over 8 rotations and flips" if options.get("tta") else ""
    return (f"predicted {n} slice{'s' * (n != 1)} of {path.name} ({h}x{w}, tile {tile[0]}x{tile[1]}{tta}): {tif} "
            f"(probabilities, one page per slice) and masks {path.stem}_00_mask.png to {path.stem}_{n - 1:02d}_mask.png "
            "(255 = cell, 0 = membrane)")


def chosen_threshold(ckpt: dict) -> float:
    """The threshold of best.pt's epoch with the lowest held-out Rand error (an ISBI 2012 run's
    val_rand_threshold), else 0.5. Lesson 13."""
    history = ckpt.get("history") or []
    record = next((r for r in history if r.get("epoch") == ckpt.get("epoch")), {})
    return float(record.get("val_rand_threshold", 0.5))


def main(argv: list[str] | None = None) -> int:
    """The CLI: `python -m course_utils.predict --checkpoint CKPT IMAGES... --out DIR`; returns the exit status.
    Lessons 08 and 13."""
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if not args.images:
        parser.error("no images given: name photos or folders, e.g. "
                     "`python -m course_utils.predict --checkpoint RUN/best.pt data/toy_carvana/train --out preds`.")
    if not (args.out or args.submission):
        parser.error("nothing to write: give --out DIR (masks and overlays), --submission FILE.csv.gz, or both.")
    if args.threshold is not None and not 0 < args.threshold < 1:
        parser.error(f"--threshold is a probability between 0 and 1 (e.g. 0.5), got {args.threshold}.")
    for target in filter(None, (args.out, args.submission and Path(args.submission).parent)):
        if not is_writable(target):  # e.g. inside a read-only data root
            parser.error(f"{target} is read-only: write the predictions to a folder of your own, "
                         f"e.g. --out {work_root() / 'predictions'}")
    try:
        stacks = _stack_mode(args)
        paths = [Path(p) for p in args.images] if stacks else find_images(args.images)
        model, ckpt, amp_dtype = _load(args, stacks)
        args.threshold = args.threshold or (chosen_threshold(ckpt) if stacks else 0.5)
        if stacks:
            print(f"threshold {args.threshold:g}", flush=True)
            for path in paths:
                print(predict_stack_file(model, path, args.out, threshold=args.threshold, tile_size=args.tiled,
                                         ckpt=ckpt, overlap=args.overlap, tta=args.tta, batch_size=args.batch_size,
                                         amp_dtype=amp_dtype, progress=sys.stderr.isatty()), flush=True)
            return 0
        size = _photo_size(args, model, ckpt)
        rows = _predictions(paths, model, size, amp_dtype, args)
        n = write_submission(rows, args.submission) if args.submission else sum(1 for _ in rows)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; files written so far stay, no half submission or probabilities file is left.",
              file=sys.stderr)
        return 130
    scale = f"resized to {size[0]}x{size[1]}" if size else "at full resolution"
    wrote = [f"masks and overlays in {args.out}"] if args.out else []
    wrote += [f"submission {args.submission}"] if args.submission else []
    print(f"predicted {n} image{'s' * (n != 1)} ({scale}{', tiled' if args.tiled else ''}): {'; '.join(wrote)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
