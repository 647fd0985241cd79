"""Command line for the course's data sets (lessons 05, 10 and 13).

    python -m course_utils.data download carvana [--root DIR] [--keep-zips]
    python -m course_utils.data download nyuv2 [--root DIR]
    python -m course_utils.data download isbi2012 [--root DIR]
    python -m course_utils.data toy carvana [--root DIR] [--cars N] [--size H W] [--seed S]
    python -m course_utils.data toy nyuv2 [--root DIR] [--n-images N] [--size H W] [--seed S]
    python -m course_utils.data cache carvana --size H W [--root DIR] [--cache-dir DIR] [--workers N]
    python -m course_utils.data --work-dir DIR ...   # where downloads, toy sets and caches are written

Without --root, a data set is read from the data root ($UNET_COURSE_DATA) when it is there, and
written (downloaded, drawn, unpacked) to the work root: the data root itself when writable, else
$UNET_COURSE_WORK or --work-dir, else ~/.cache/unet-course/work (environment.work_root).

Problems a learner can fix (no kaggle package, no credentials, rules not accepted, no network,
a missing folder) are printed as one message, without a traceback, and exit with status 1.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

TOY_SIZES = {"carvana": (160, 240), "nyuv2": (96, 128)}  # (H, W) of the toy sets' images


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m course_utils.data",
        description="Get the course's data sets: download the real Carvana (Kaggle), NYU Depth V2 or the ISBI 2012 "
                    "EM stacks, draw a toy one, or build the fast loader's resized cache.")
    p.add_argument("--work-dir", type=Path, help="where to write downloads, toy sets and caches when the data root "
                   "is read-only (default: $UNET_COURSE_WORK, else the data root when writable, else "
                   "~/.cache/unet-course/work)")
    sub = p.add_subparsers(dest="command", required=True, metavar="{download,toy,cache}")

    d = sub.add_parser("download", help="download Carvana from Kaggle (needs the kaggle package and a token), "
                                        "NYU Depth V2 (2.97 GB over HTTPS) or ISBI 2012 (23 MB over HTTPS)",
                       description="carvana: fetch train.zip, train_masks.zip, train_masks.csv.zip and "
                                   "metadata.csv.zip of the Kaggle competition carvana-image-masking-challenge, check "
                                   "and unpack them; zips already copied into the folder are used without downloading. "
                                   "nyuv2: fetch nyu_depth_v2_labeled.mat, splits.mat, classMapping40.mat and "
                                   "class13Mapping.mat, resuming an interrupted download and checking sizes and "
                                   "SHA-256; files already copied into the folder are checked, not fetched. "
                                   "isbi2012: fetch train-volume.tif, train-labels.tif and test-volume.tif from a "
                                   "public copy (ISBI2012_URL, or the address in $UNET_COURSE_ISBI2012_URL), "
                                   "resuming, and check their content (30 pages of 512 x 512, labels 0/255).")
    d.add_argument("dataset", choices=["carvana", "nyuv2", "isbi2012"])
    d.add_argument("--root", type=Path, help="data-set folder (default: <work root>/<dataset>)")
    d.add_argument("--keep-zips", action="store_true", help="carvana: keep the zips after unpacking them")

    t = sub.add_parser("toy", help="draw a toy data set (same layout and formats as the real one, seconds on a CPU)",
                       description="Draw the toy Carvana (cars on a turntable, Kaggle layout) or the toy NYUv2 "
                                   "(rooms with labels and depth, in NYUv2's four files); made once, reused when "
                                   "present with the same settings.")
    t.add_argument("dataset", choices=["carvana", "nyuv2"])
    t.add_argument("--root", type=Path, help="data-set folder (default: <work root>/toy_<dataset>)")
    t.add_argument("--cars", type=int, default=40, help="carvana: number of cars, 16 photos each (default 40)")
    t.add_argument("--n-images", type=int, default=200, help="nyuv2: number of frames (default 200)")
    t.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="image height and width (default 160 240 for carvana, Kaggle's are 1280 1918; "
                        "96 128 for nyuv2, NYU's are 480 640)")
    t.add_argument("--seed", type=int, default=0)

    c = sub.add_parser("cache", help="build the fast loader's cache of images and masks at a training size",
                       description="Decode every image and mask once at H x W into numpy files that "
                                   "CarvanaDataset(..., size=(H, W)) memory-maps (worth running before torchrun).")
    c.add_argument("dataset", choices=["carvana", "toy_carvana"])
    c.add_argument("--size", type=int, nargs=2, required=True, metavar=("H", "W"))
    c.add_argument("--root", type=Path, help="data-set folder (default: <data root>/<dataset>, else <work root>/<dataset>)")
    c.add_argument("--cache-dir", type=Path, help="where the cache goes (default: <root>/.cache, or under the work root "
                   "when <root> is read-only)")
    c.add_argument("--workers", type=int, help="decoding threads (default: min(8, CPU count))")
    return p


def _toy(args: argparse.Namespace) -> Path:
    size = tuple(args.size or TOY_SIZES[args.dataset])
    if args.dataset == "carvana":
        from .toy_carvana import ensure_toy_carvana

        return ensure_toy_carvana(args.root, n_cars=args.cars, image_size=size, seed=args.seed)
    from .toy_nyuv2 import ensure_toy_nyuv2

    return ensure_toy_nyuv2(args.root, n_images=args.n_images, seed=args.seed, image_size=size)


def main(argv: list[str] | None = None) -> int:
    """CLI `python -m course_utils.data`: download a real data set, draw a toy one, or build the Carvana cache;
    a learner's problem prints one message and exits 1. Lessons 05, 10 and 13."""
    args = _parser().parse_args(argv)
    from ..environment import dataset_dir, set_work_root
    from .download import DownloadError

    try:
        if args.work_dir is not None:
            set_work_root(args.work_dir)
        if args.command == "download" and args.dataset == "nyuv2":
            from .download import download_nyuv2

            download_nyuv2(args.root)
        elif args.command == "download" and args.dataset == "isbi2012":
            from .isbi2012_download import download_isbi2012

            download_isbi2012(args.root)
        elif args.command == "download":
            from .download import download_carvana

            download_carvana(args.root, keep_zips=args.keep_zips)
        elif args.command == "toy":
            root = _toy(args)
            print(f"Toy {'Carvana' if args.dataset == 'carvana' else 'NYUv2'} ready in {root}")
        else:
            from .cache import build_cache

            folder = build_cache(args.root or dataset_dir(args.dataset), tuple(args.size),
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
