"""draw_unet: the U of Figure 1 drawn from a real model's traced shapes."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
from matplotlib.patches import Rectangle
from PIL import Image

from course_utils.drawing import draw_unet, main
from course_utils.inference import trace_shapes
from course_utils.model import UNet


def texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts + [ax.title]]


def feature_boxes(fig) -> list[Rectangle]:
    """The filled rectangles (feature maps); dashed crop frames are unfilled."""
    return [p for ax in fig.axes for p in ax.patches if isinstance(p, Rectangle) and p.get_fill()]


@pytest.fixture(scope="module")
def paper_figure():
    fig = draw_unet(UNet(1, 2, padding="valid", batch_norm=False), 572)
    yield fig
    plt.close(fig)


def test_paper_network_labels_every_size_of_figure_1(paper_figure):
    labels = texts(paper_figure)
    for size in (572, 570, 568, 284, 280, 136, 64, 32, 30, 28, 56, 54, 52, 104, 100, 200, 196, 392, 390, 388):
        assert f"{size}x{size}" in labels, size
    for channels in ("1", "64", "128", "256", "512", "1024", "2"):
        assert channels in labels
    assert "copy and crop" in labels
    assert any("31,030,658" in t for t in labels)


def test_paper_network_has_one_box_per_feature_map_and_a_crop_frame_per_skip(paper_figure):
    depth = 4
    assert len(feature_boxes(paper_figure)) == 3 * (depth + 1) + 4 * depth + 1
    frames = [p for p in paper_figure.axes[0].patches if isinstance(p, Rectangle) and not p.get_fill()]
    assert len(frames) == depth


def test_boxes_grow_with_spatial_size_and_channels(paper_figure):
    boxes = feature_boxes(paper_figure)
    input_box, first_conv = boxes[0], boxes[1]  # 1 x 572 and 64 x 570
    bottom = boxes[3 * 4 + 2]  # 1024 x 28
    assert input_box.get_height() > bottom.get_height() > 0
    assert bottom.get_width() > first_conv.get_width() > input_box.get_width()


def test_same_padded_depth_3_draws_the_traced_sizes():
    model = UNet(3, 1, base_channels=8, depth=3)
    fig = draw_unet(model, (64, 96))
    labels = texts(fig)
    for _, shape in trace_shapes(model, (64, 96)):
        assert f"{shape[2]}x{shape[3]}" in labels
        assert str(shape[1]) in labels
    assert "copy" in labels and "copy and crop" not in labels
    assert len(feature_boxes(fig)) == 3 * 4 + 4 * 3 + 1
    plt.close(fig)


@pytest.mark.parametrize("depth", [2, 5])
def test_other_depths_and_bilinear(depth):
    model = UNet(3, 1, base_channels=4, depth=depth, upsampling="bilinear")
    fig = draw_unet(model, 2**depth * 4)
    assert len(feature_boxes(fig)) == 3 * (depth + 1) + 4 * depth + 1
    assert "bilinear 2x, conv 1x1" in texts(fig)
    plt.close(fig)


def test_draws_into_a_given_axes():
    fig, (a, b) = plt.subplots(1, 2)
    assert draw_unet(UNet(3, 1, base_channels=4, depth=2), 32, ax=b) is fig
    assert not a.patches and b.patches
    plt.close(fig)


def test_png_saving_and_the_readme_script(tmp_path, paper_figure):
    path = tmp_path / "u.png"
    paper_figure.savefig(path, dpi=40)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > im.height > 100
    main([str(tmp_path / "sub" / "unet.png")])
    with Image.open(tmp_path / "sub" / "unet.png") as im:
        assert im.format == "PNG" and im.width > 1000
