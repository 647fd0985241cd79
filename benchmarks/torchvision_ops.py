"""Where torchvision's image ops could replace the course's own code: measured, not assumed (lesson 14).

    python benchmarks/torchvision_ops.py                     # the real Carvana samples, 1280 x 1918
    python benchmarks/torchvision_ops.py --size 320 480 --repeat 10

Two places, each timed against the course's code in the same run (milliseconds per photo, median
of --repeat runs), on whatever device is there (decode_jpeg also runs on CUDA when a GPU is present):
  decode:  the full photo, PIL against torchvision.io.decode_jpeg; then the loader cache's path to the
           training size (data/cache.py: PIL in draft mode, where libjpeg scales by 1/2, 1/4 or 1/8 while
           decoding, then OpenCV's INTER_AREA resize) against decode_jpeg and the same resize.
  overlay: a mask drawn on a photo. The course's predict.overlay_mask (PIL composite plus outline)
           against torchvision.utils.draw_segmentation_masks (the tint only, no outline).
Prints a ratio course/torchvision: above 1 means torchvision is faster.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision.io import decode_jpeg, read_file

from course_utils.predict import overlay_mask

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "real_samples" / "carvana"


def timed(fn, repeat: int) -> float:
    """Median milliseconds of `repeat` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def pil_draft(path: Path, size: tuple[int, int]) -> np.ndarray:
    """The loader cache's path: draft-mode decoding, then INTER_AREA to (H, W)."""
    with Image.open(path) as im:
        im.draft("RGB", (size[1], size[0]))  # libjpeg decodes at the smallest scale >= (W, H)
        image = np.asarray(im.convert("RGB"))
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def tv_decode(data: torch.Tensor, size: tuple[int, int], device: str) -> np.ndarray:
    """decode_jpeg (the full photo), then the same INTER_AREA resize."""
    image = decode_jpeg(data, device=device).permute(1, 2, 0).cpu().numpy()
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=Path, default=SAMPLES, help="a folder with train/*.jpg and train_masks/*.gif")
    p.add_argument("--size", type=int, nargs=2, default=(320, 480), metavar=("H", "W"), help="training size")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    photos = sorted((args.samples / "train").glob("*.jpg"))
    if not photos:
        print(f"no photos under {args.samples}/train: pass --samples", file=sys.stderr)
        return 1
    size = tuple(args.size)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {device}, "
          f"{len(photos)} photos, {torch.get_num_threads()} threads")
    rows = []
    data = [read_file(str(p)) for p in photos]
    course = timed(lambda: [np.asarray(Image.open(p).convert("RGB")) for p in photos], args.repeat) / len(photos)
    tv = timed(lambda: [decode_jpeg(d, device=device) for d in data], args.repeat) / len(photos)
    rows.append(("decode the full photo", course, tv))
    course = timed(lambda: [pil_draft(p, size) for p in photos], args.repeat) / len(photos)
    tv = timed(lambda: [tv_decode(d, size, device) for d in data], args.repeat) / len(photos)
    rows.append((f"cache path to {size[0]}x{size[1]}", course, tv))
    photo = np.array(Image.open(photos[0]).convert("RGB"))
    mask_path = next((args.samples / "train_masks").glob(f"{photos[0].stem}_mask.gif"), None)
    mask = (np.array(Image.open(mask_path)) > 0) if mask_path else np.zeros(photo.shape[:2], bool)
    image_t, mask_t = torch.from_numpy(photo).permute(2, 0, 1).contiguous(), torch.from_numpy(mask)
    course = timed(lambda: overlay_mask(photo, mask), args.repeat)
    tv = timed(lambda: torchvision.utils.draw_segmentation_masks(image_t, mask_t, alpha=0.4, colors="orange"),
               args.repeat)
    rows.append((f"overlay at {photo.shape[0]}x{photo.shape[1]}", course, tv))
    print(f"{'':28}{'course ms':>10}{'torchvision ms':>16}{'course/tv':>11}")
    for name, c, t in rows:
        print(f"{name:28}{c:10.1f}{t:16.1f}{c / t:11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
