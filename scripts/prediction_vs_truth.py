"""Make the README's figure: held-out cars at their own size, image | ground truth | prediction.

    python scripts/prediction_vs_truth.py                      # the course model (load_or_train)
    python scripts/prediction_vs_truth.py --checkpoint RUN/best.pt --out images/prediction_vs_truth.png

The cars come from the checkpoint's own validation split (same data, fraction and seed), so
none of them was trained on. Each prediction is made the way `course_utils.predict` makes it:
the photo resized to the training size, the logits resized back, then the threshold.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from course_utils.checkpoint import load_checkpoint  # noqa: E402
from course_utils.data import CarvanaDataset, split_cars  # noqa: E402
from course_utils.metrics import dice_score  # noqa: E402
from course_utils.predict import predict_image  # noqa: E402
from course_utils.config import TrainConfig  # noqa: E402
from course_utils.tasks.carvana import resolve_data_dir  # noqa: E402
from course_utils.train import load_or_train  # noqa: E402
from course_utils.viz import pick_indices  # noqa: E402

import torch  # noqa: E402


def held_out_figure(model, ckpt: dict, n: int = 3) -> Figure:
    """n held-out cars (different cars, different angles) with the Dice of each prediction."""
    cfg = TrainConfig.from_dict(ckpt["config"])
    root = resolve_data_dir(cfg)
    _, val_ids = split_cars(root, val_fraction=cfg.val_fraction, by="car", seed=cfg.seed, verbose=False)
    held_out = CarvanaDataset(root, val_ids)
    rows = pick_indices(held_out, n)
    fig = Figure(figsize=(10, 2.3 * len(rows) + 0.4), layout="constrained")
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for row, i in zip(axes, rows):
        image, mask = held_out.load(i)
        pred = predict_image(model, image, tuple(ckpt["image_size"]))
        dice = dice_score(torch.from_numpy(pred)[None], torch.tensor(mask)[None]).item()
        h, w = mask.shape
        for ax, picture, title in zip(row, (image, mask, pred), (f"{held_out.ids[i]} ({w} x {h})",
                                                                 "ground truth", f"prediction, Dice {dice:.4f}")):
            ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()
    fig.suptitle(f"Held-out cars ({cfg.profile} profile, trained at {ckpt['image_size'][0]}x{ckpt['image_size'][1]},"
                 f" held-out Dice {ckpt['best_dice']:.4f})", fontsize=10)
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a run's best.pt (default: the course model, trained once if needed)")
    parser.add_argument("--out", default="images/prediction_vs_truth.png")
    parser.add_argument("--n", type=int, default=3, help="how many held-out cars (default 3)")
    args = parser.parse_args(argv)
    model, ckpt = load_checkpoint(args.checkpoint) if args.checkpoint else load_or_train()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    held_out_figure(model.eval(), ckpt, args.n).savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
