"""plot_history draws a real run's curves: loss (train, held-out) and held-out Dice, best epoch marked."""
import json

import pytest
import torch
from matplotlib.figure import Figure
from torch.utils.data import DataLoader, TensorDataset

from course_utils import UNet
from course_utils.engine import fit
from course_utils.viz import plot_history


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real run folder: 3 epochs of a tiny U-Net on squares, written by fit(out=...)."""
    torch.manual_seed(0)
    masks = torch.zeros(8, 1, 32, 32)
    for i in range(8):
        masks[i, :, 4 + i:16 + i, 6:20] = 1
    images = masks.expand(-1, 3, -1, -1) * 0.8 + 0.1 * torch.rand(8, 3, 32, 32)
    loader = DataLoader(TensorDataset(images, masks), batch_size=4)
    out = tmp_path_factory.mktemp("run")
    fit(UNet(3, 1, base_channels=4, depth=2), loader, loader, epochs=3, lr=1e-2, device="cpu", out=out,
        progress=False, verbose=False)
    return out


def test_plot_history_of_a_run_folder_draws_both_losses_and_the_dice(run_dir):
    history = json.loads((run_dir / "history.json").read_text())
    fig = plot_history(run_dir)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    loss_ax, dice_ax = fig.axes
    lines = {line.get_label(): line for line in loss_ax.get_lines()}
    assert list(lines["train loss"].get_ydata()) == [r["train_loss"] for r in history]
    assert list(lines["held-out loss"].get_ydata()) == [r["val_loss"] for r in history]
    dice = {line.get_label(): line for line in dice_ax.get_lines()}
    assert list(dice["held-out Dice"].get_xdata()) == [1, 2, 3]
    assert list(dice["held-out Dice"].get_ydata()) == [r["val_dice"] for r in history]
    best = max(history, key=lambda r: r["val_dice"])
    marker = [label for label in dice if label.startswith("best epoch")]
    assert marker == [f"best epoch {best['epoch']} (Dice {best['val_dice']:.4f})"]
    assert list(dice[marker[0]].get_xdata()) == [best["epoch"]] * 2


def test_plot_history_takes_fit_s_list_and_the_json_file(run_dir):
    history = json.loads((run_dir / "history.json").read_text())
    history[1]["val_dice"] = 2.0  # make epoch 2 the best, whatever the run did
    fig = plot_history(history)
    assert any(line.get_label().startswith("best epoch 2 ") for line in fig.axes[1].get_lines())
    assert len(plot_history(run_dir / "history.json").axes[0].get_lines()) == 3


def test_plot_history_explains_a_missing_or_empty_history(tmp_path):
    with pytest.raises(FileNotFoundError, match="history.json"):
        plot_history(tmp_path)
    with pytest.raises(ValueError, match="at least one epoch"):
        plot_history([])


def test_plot_history_of_a_classes_run_plots_miou():
    history = [dict(epoch=e, train_loss=2.0 / e, val_loss=2.1 / e, val_miou=m, val_pixel_acc=0.5)
               for e, m in ((1, 0.10), (2, 0.31), (3, 0.27))]
    fig = plot_history(history)
    score = {line.get_label(): line for line in fig.axes[1].get_lines()}
    assert list(score["held-out mIoU"].get_ydata()) == [0.10, 0.31, 0.27]
    assert "best epoch 2 (mIoU 0.3100)" in score
