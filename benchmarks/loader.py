"""How fast can Carvana be fed to a GPU? Naive per-item decoding vs the course's cached loader (lesson 05).

    python benchmarks/loader.py                       # 4 toy cars (64 images) at Kaggle's 1280 x 1918
    python benchmarks/loader.py --cars 8 --size 640 960 --workers 4

Draws (once, then reuses) a toy Carvana at the real resolution, then measures images per second for
  naive:  CarvanaDataset(root, transform=eval_transform(size)): PIL decodes the full 1918 x 1280
          JPEG and GIF for every item, then resizes (the slow path);
  course: CarvanaDataset(root, transform=eval_transform(size), size=size): reads the one-time
          cache of training-size arrays (its build time is reported separately);
both in this process (num_workers=0) and through a DataLoader with worker processes, and with
the training augmentation. It checks that both return the same tensors up to the resize method
(JPEG draft decoding): mean absolute image difference and per-image mask IoU.
Exits with status 1 when the course's loader is not at least 4x faster or the outputs differ.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from course_utils.data import CarvanaDataset, ensure_toy_carvana, eval_transform, train_transform

FULL = (1280, 1918)  # Kaggle's image size (H, W)


def images_per_second(dataset, min_seconds: float, loader_kwargs: dict | None = None) -> float:
    """Read the whole dataset (repeatedly, for at least min_seconds); images per second.

    With loader_kwargs, through one DataLoader with persistent workers, timed after a first
    epoch that starts them (the steady state of a training run).
    """
    if loader_kwargs is None:
        epoch = lambda: [dataset[i] for i in range(len(dataset))]  # noqa: E731
    else:
        loader = DataLoader(dataset, persistent_workers=loader_kwargs.get("num_workers", 0) > 0, **loader_kwargs)
        epoch = lambda: [batch for batch in loader]  # noqa: E731
        epoch()  # start the workers
    n, start = 0, time.perf_counter()
    while True:
        epoch()
        n += len(dataset)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return n / elapsed


def compare(naive: CarvanaDataset, course: CarvanaDataset) -> tuple[float, float, float]:
    """(mean |image difference| on the 0..1 scale, worst per-image one, lowest mask IoU) over every item."""
    diffs, ious = [], []
    for i in range(len(naive)):
        (a, ma), (b, mb) = naive[i], course[i]
        assert a.shape == b.shape and ma.shape == mb.shape, (a.shape, b.shape)
        diffs.append((a - b).abs().mean().item())
        union = ((ma + mb) > 0).sum().item()
        ious.append(((ma * mb) > 0).sum().item() / union if union else 1.0)
    return sum(diffs) / len(diffs), max(diffs), min(ious)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cars", type=int, default=4, help="toy cars, 16 images each (default 4)")
    p.add_argument("--size", type=int, nargs=2, default=(320, 480), metavar=("H", "W"), help="training size")
    p.add_argument("--root", type=Path, help="toy set at 1280 x 1918 (default: a folder in the temp dir, reused)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes for the second table")
    p.add_argument("--seconds", type=float, default=2.0, help="minimum time per measurement")
    args = p.parse_args(argv)
    size = tuple(args.size)
    root = args.root or Path(tempfile.gettempdir()) / "unet-course-bench" / f"toy_carvana_{args.cars}cars_1280x1918"
    t0 = time.perf_counter()
    ensure_toy_carvana(root, n_cars=args.cars, image_size=FULL, seed=0)
    ready = time.perf_counter() - t0
    print(f"toy set: {root} ({args.cars * 16} images at {FULL[1]}x{FULL[0]}; ready in {ready:.1f} s)")

    cache_dir = Path(tempfile.mkdtemp(prefix="unet-course-bench-cache-"))
    try:
        naive = CarvanaDataset(root, transform=eval_transform(size))
        t0 = time.perf_counter()
        course = CarvanaDataset(root, transform=eval_transform(size), size=size, cache_dir=cache_dir)
        build = time.perf_counter() - t0
        n = len(course)

        rows = [("naive: full-size PIL decode, then resize", images_per_second(naive, args.seconds)),
                ("course: resized cache (memory-mapped)", images_per_second(course, args.seconds))]
        ratio = rows[1][1] / rows[0][1]
        aug_naive = CarvanaDataset(root, transform=train_transform(size, seed=0))
        aug_course = CarvanaDataset(root, transform=train_transform(size, seed=0), size=size, cache_dir=cache_dir)
        rows += [("naive + train_transform", images_per_second(aug_naive, args.seconds)),
                 ("course + train_transform", images_per_second(aug_course, args.seconds))]
        kw = dict(batch_size=16, num_workers=args.workers, pin_memory=torch.cuda.is_available())
        rows += [(f"naive + train_transform, DataLoader({args.workers} workers)",
                  images_per_second(aug_naive, args.seconds, kw)),
                 (f"course + train_transform, DataLoader({args.workers} workers)",
                  images_per_second(aug_course, args.seconds, kw))]
        mean_diff, worst_diff, min_iou = compare(naive, course)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)

    h, w = size
    print(f"\nLoader speed at {h}x{w} from {FULL[1]}x{FULL[0]} JPEG + GIF ({n} images, torch threads "
          f"{torch.get_num_threads()}):")
    width = max(len(name) for name, _ in rows)
    print(f"  {'loader'.ljust(width)}  images/s")
    for name, speed in rows:
        print(f"  {name.ljust(width)}  {speed:8.1f}")
    print(f"  {'ratio course / naive (eval transform, one process)'.ljust(width)}  {ratio:7.1f}x")
    print(f"  cache build (once): {build:.2f} s for {n} images ({n / build:.1f} images/s)")
    print(f"Same outputs: mean |image difference| {mean_diff:.4f} (worst image {worst_diff:.4f}) on the 0..1 scale, "
          f"lowest mask IoU {min_iou:.4f}")
    ok = ratio >= 4 and mean_diff < 0.01 and worst_diff < 0.02 and min_iou > 0.99
    print("PASS: at least 4x faster with the same outputs" if ok else "FAIL: the bar is 4x and the same outputs")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
