"""The scripts that make the README's figures run from a checkpoint as a learner would run them."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image

from course_utils.data import make_toy_carvana

REPO = Path(__file__).resolve().parents[1]


def test_prediction_vs_truth_figure_from_a_checkpoint(tmp_path):
    root = make_toy_carvana(tmp_path / "toy_carvana", n_cars=4, image_size=(64, 96), seed=1)
    run = tmp_path / "run"
    train = [sys.executable, "-m", "course_utils.train", "--data-dir", str(root), "--out", str(run), "--epochs", "1",
             "--image-size", "32", "48", "--base-channels", "4", "--val-fraction", "0.25", "--profile", "quick"]
    assert subprocess.run(train, capture_output=True, text=True, timeout=300).returncode == 0
    out = tmp_path / "figure.png"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "prediction_vs_truth.py"), "--checkpoint",
                           str(run / "best.pt"), "--out", str(out), "--n", "2"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as figure:
        width, height = figure.size
    assert width > 600 and 250 < height < width  # two rows of three panels
