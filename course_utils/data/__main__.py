"""Command line for the course's data sets (lesson 05).

    python -m course_utils.data download carvana [--root DIR] [--keep-zips]
    python -m course_utils.data toy carvana [--root DIR] [--cars N] [--size H W] [--seed S]
    python -m course_utils.data cache carvana --size H W [--root DIR] [--cache-dir DIR] [--workers N]

Problems a learner can fix (no kaggle package, no credentials, rules not accepted, no network,
a missing folder) are printed as one message, without a traceback, and exit with status 1.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m course_utils.data",
        description="Get the course's data sets: download the real Carvana from Kaggle, draw the toy one, "
                    "or build the fast loader's resized cache.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{download,toy,cache}")

    d = sub.add_parser("download", help="download Carvana from Kaggle (needs the kaggle package and a token)",
                       description="Fetch train.zip, train_masks.zip, train_masks.csv.zip and metadata.csv.zip of "
                                   "the Kaggle competition carvana-image-masking-challenge, check and unpack them. "
                                   "Zips already copied into the folder are used without downloading.")
    d.add_argument("dataset", choices=["carvana"])
    d.add_argument("--root", type=Path, help="data-set folder (default: data_root()/carvana)")
    d.add_argument("--keep-zips", action="store_true", help="keep the zips after unpacking them")

    t = sub.add_parser("toy", help="draw the toy Carvana (same layout and formats, seconds on a CPU)",
                       description="Draw the toy Carvana in the Kaggle layout (made once; reused when present).")
    t.add_argument("dataset", choices=["carvana"])
    t.add_argument("--root", type=Path, help="data-set folder (default: data_root()/toy_carvana)")
    t.add_argument("--cars", type=int, default=40, help="number of cars, 16 photos each (default 40)")
    t.add_argument("--size", type=int, nargs=2, default=(160, 240), metavar=("H", "W"),
                   help="image height and width (default 160 240; Kaggle's are 1280 1918)")
    t.add_argument("--seed", type=int, default=0)

    c = sub.add_parser("cache", help="build the fast loader's cache of images and masks at a training size",
                       description="Decode every image and mask once at H x W into numpy files that "
                                   "CarvanaDataset(..., size=(H, W)) memory-maps (worth running before torchrun).")
    c.add_argument("dataset", choices=["carvana", "toy_carvana"])
    c.add_argument("--size", type=int, nargs=2, required=True, metavar=("H", "W"))
    c.add_argument("--root", type=Path, help="data-set folder (default: data_root()/<dataset>)")
    c.add_argument("--cache-dir", type=Path, help="where the cache goes (default: <root>/.cache)")
    c.add_argument("--workers", type=int, help="decoding threads (default: min(8, CPU count))")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ..environment import data_root
    from .download import DownloadError

    try:
        if args.command == "download":
            from .download import download_carvana

            download_carvana(args.root, keep_zips=args.keep_zips)
        elif args.command == "toy":
            from .toy_carvana import ensure_toy_carvana

            root = ensure_toy_carvana(args.root, n_cars=args.cars, image_size=tuple(args.size), seed=args.seed)
            print(f"Toy Carvana ready in {root}")
        else:
            from .cache import build_cache

            folder = build_cache(args.root or data_root() / args.dataset, tuple(args.size),
                                 cache_dir=args.cache_dir, workers=args.workers)
            print(f"Cache ready in {folder}")
    except (DownloadError, FileNotFoundError, FileExistsError, PermissionError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to continue.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
