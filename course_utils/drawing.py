"""The U of the paper's Figure 1, drawn by code from a real model's traced shapes (lesson 04).

Every box is one feature map (the pooled maps too, which the paper's figure leaves out;
white boxes are the copied skips): its height grows with the spatial size (square root, so a
28 x 28 map is still visible next to a 572 x 572 one), its width with the channels (log
scale, so 1024 channels fit). Channels are written above a box, height x width beside it.
Arrows are the operations: 3x3 conv (+ReLU), 2x2 max-pool down, 2x2 up-conv up, the skip
copy (cropped where the dashed frame shows, in the unpadded net) and the final 1x1 conv.

Regenerate the README figure:  python -m course_utils.drawing images/unet.png
"""
from __future__ import annotations

import math
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib

if __name__ == "__main__":  # a script run needs no display
    matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

from .inference import trace_shapes
from .model import UNet, count_parameters

INCH_PER_UNIT = 0.42  # figure scale when draw_unet makes its own figure
GAP = 0.42  # horizontal space between boxes (holds an arrow and a rotated size label)
LEVEL_GAP = 1.1  # vertical space between levels (holds a pooling or up-conv arrow)
BOX_COLORS = {"feature": "#9ecae1", "up": "#9ecae1", "input": "#d9d9d9", "copy": "#ffffff", "output": "#fdd0a2"}
ARROW_COLORS = {"conv": "#08519c", "pool": "#cb181d", "up": "#238b45", "skip": "#737373", "head": "#6a51a3"}
CHAR_HEIGHT = 0.15  # length of one character of a rotated size label, in drawing units
LEGEND_CHAR_WIDTH = 0.16  # width of one legend character, in drawing units
MIN_WIDTH = 17.0  # drawing units: room for the title under a shallow network


@dataclass
class _Box:
    """One feature map: channels, (h, w), where it sits, and how it is coloured."""

    channels: int
    size: tuple[int, int]
    level: int
    kind: str = "feature"
    x: float = 0.0
    w: float = 0.0


def draw_unet(model: UNet, input_size: tuple[int, int] | int, ax: plt.Axes | None = None) -> Figure:
    """Draw `model` as the U of Figure 1, from `trace_shapes(model, input_size)`.

    model: a course_utils UNet (any depth, "valid" or "same" padding, either upsampling).
    input_size: H (square) or (H, W). ax: draw into this Axes; default a new figure sized
    to the drawing. Returns the Figure (save it with ``fig.savefig("unet.png")``).

    >>> fig = draw_unet(UNet(1, 2, padding="valid", batch_norm=False), 572)  # the paper's figure

    Lesson 04.
    """
    left, bottom, right, head = _feature_maps(model, input_size)
    layout = _Layout(left, bottom, right, head, _legend_entries(model))
    x0, x1, y0, y1 = layout.extent
    if ax is None:
        title = _title(model, left[0][0].size, head.size, width_inches=(x1 - x0) * INCH_PER_UNIT)
        title_space = 0.25 + 0.17 * title.count("\n")  # inches above the drawing
        fig = plt.figure(figsize=((x1 - x0) * INCH_PER_UNIT, (y1 - y0) * INCH_PER_UNIT + title_space))
        ax = fig.add_axes((0, 0, 1, (y1 - y0) / (y1 - y0 + title_space / INCH_PER_UNIT)))
    else:
        title = _title(model, left[0][0].size, head.size,
                       width_inches=ax.get_position().width * ax.figure.get_figwidth())
    layout.draw(ax)
    ax.set_aspect("equal")  # keep the boxes' proportions in an Axes of any shape
    ax.set_title(title, fontsize=9.5)
    return ax.figure


def _feature_maps(model: UNet, input_size):
    """Every feature map of the forward pass, from the traced stage outputs.

    trace_shapes gives each stage's output; the maps inside a stage follow from them: a
    DoubleConv's first conv trims half of what the block trims, a pool halves, an up-conv
    doubles. Returns the left column per level, the bottom level, the right column per
    level (top level first) and the output map.
    """
    rows = dict(trace_shapes(model, input_size))
    depth = len(model.downs)
    _, c_in, h_in, w_in = rows["input"]
    trim = (h_in - rows["inc"][2]) // 2  # pixels one 3x3 conv takes per axis: 2 (valid) or 0 (same)

    def conv_pair(shape, level, first=None):
        _, c, h, w = shape
        maps = [first] if first else []
        return maps + [_Box(c, (h + trim, w + trim), level), _Box(c, (h, w), level)]

    levels = [conv_pair(rows["inc"], 0, _Box(c_in, (h_in, w_in), 0, "input"))]
    for i in range(1, depth + 1):
        prev = levels[-1][-1]
        pooled = _Box(prev.channels, (prev.size[0] // 2, prev.size[1] // 2), i)
        levels.append(conv_pair(rows[f"down{i}"], i, pooled))
    right = []
    for j in range(1, depth + 1):
        level = depth - j
        _, c, h, w = rows[f"up{j}"]
        up_size = (h + 2 * trim, w + 2 * trim)
        pair = [_Box(levels[level][-1].channels, up_size, level, "copy"), _Box(c, up_size, level, "up")]
        right.append(pair + conv_pair(rows[f"up{j}"], level))
    _, c_out, h_out, w_out = rows["head"]
    return levels[:-1], levels[-1], right[::-1], _Box(c_out, (h_out, w_out), 0, "output")


class _Layout:
    """Places the boxes as a U (each level's boxes in a row, each pool straight down, each
    up-conv straight up) and draws them with their arrows and labels."""

    def __init__(self, left, bottom, right, head, legend: list[tuple[str, str]]):
        self.left, self.bottom, self.right, self.head = left, bottom, right, head
        self.legend = legend
        sizes = [b.size[0] for row in left + [bottom] for b in row]
        self._place_x()
        width = self.head.x + self.head.w
        level_max = [max(math.sqrt(b.size[0]) for b in row) for row in left + [bottom]]
        # box heights: sqrt of the spatial size, scaled so the U is about 0.55 as tall as wide
        self.height_scale = 0.55 * width / max(sum(level_max) + LEVEL_GAP * len(level_max), 1e-6)
        self.height_scale = min(self.height_scale, 12.0 / math.sqrt(max(sizes)))
        self.centre = [0.0]
        for a, b in zip(level_max, level_max[1:]):
            self.centre.append(self.centre[-1] - (a + b) / 2 * self.height_scale - LEVEL_GAP)
        self.size_labels: dict[int, str] = {}  # id(box) -> "HxW", written where the size changes
        last = None
        for box in self.boxes():
            if box.size != last and box.kind != "up":  # an up-conv map shares its copy's label
                self.size_labels[id(box)] = f"{box.size[0]}x{box.size[1]}"
                last = box.size
        self._place_legend()

    def _place_x(self) -> None:
        x, above = 0.0, None
        for row in self.left + [self.bottom]:  # each pooled map sits right under the map it came from
            for i, box in enumerate(row):
                box.w = _box_width(box.channels)
                box.x = x + GAP if i else (above.x if above else 0.0)
                x = box.x + box.w
            above = row[-1]
        below = self.bottom[-1]
        for row in reversed(self.right):  # each up-conv output sits right above the map it came from
            copy, up = row[0], row[1]
            for box in row:
                box.w = _box_width(box.channels)
            up.x = below.x + below.w / 2 - up.w / 2
            copy.x = up.x - copy.w
            x = up.x + up.w
            for box in row[2:]:
                box.x = x + GAP
                x = box.x + box.w
            below = row[-1]
        self.head.w = _box_width(self.head.channels)
        self.head.x = x + GAP

    def h(self, box: _Box) -> float:
        return self.height_scale * math.sqrt(box.size[0])

    def y(self, box: _Box) -> float:
        return self.centre[box.level]

    def boxes(self):
        for row in self.left + [self.bottom] + self.right:
            yield from row
        yield self.head

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(x0, x1, y0, y1) of the drawing, at least MIN_WIDTH wide so the title fits."""
        bottoms = [self.y(b) - self.h(b) / 2 for b in self.boxes()] + [self.legend_bottom]
        tops = [self.y(b) + self.h(b) / 2 for b in self.boxes()]
        x0, x1 = -0.9, self.head.x + self.head.w + 0.7
        pad = max(0.0, MIN_WIDTH - (x1 - x0)) / 2
        return x0 - pad, x1 + pad, min(bottoms) - 0.3, max(tops) + 0.7

    # -- drawing ------------------------------------------------------------------
    def draw(self, ax: plt.Axes) -> None:
        for box in self.boxes():
            self._rect(ax, box)
            ax.text(box.x + box.w / 2, self.y(box) + self.h(box) / 2 + 0.08, str(box.channels),
                    ha="center", va="bottom", fontsize=7)
            if id(box) in self.size_labels:
                ax.text(box.x - 0.04, self.y(box) - self.h(box) / 2, self.size_labels[id(box)],
                        ha="right", va="bottom", rotation=90, fontsize=6.5)
        for row in self.left + [self.bottom]:
            self._convs(ax, row)
        for row in self.right:
            self._convs(ax, row[1:])
        self._vertical_arrows(ax)
        self._skips(ax)
        self._arrow(ax, self.right[0][-1], self.head, "head")
        self._legend(ax)
        for box, text in ((self.left[0][0], "input\nimage"), (self.head, "output\nmap")):
            ax.text(box.x + box.w / 2, self.y(box) - self.h(box) / 2 - 0.1, text, ha="center", va="top",
                    fontsize=7, style="italic")
        x0, x1, y0, y1 = self.extent
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_axis_off()

    def _rect(self, ax, box: _Box) -> None:
        ax.add_patch(Rectangle((box.x, self.y(box) - self.h(box) / 2), box.w, self.h(box),
                               facecolor=BOX_COLORS[box.kind], edgecolor="#252525", lw=0.6))

    def _convs(self, ax, row) -> None:
        for a, b in zip(row, row[1:]):
            if b.x > a.x + a.w + 1e-6:  # a gap between two maps is a 3x3 conv
                self._arrow(ax, a, b, "conv")

    def _arrow(self, ax, a: _Box, b: _Box, kind: str, lw: float = 1.3) -> None:
        y = self._arrow_height(a, b)
        _draw_arrow(ax, (a.x + a.w + 0.03, y), (b.x - 0.03, y), ARROW_COLORS[kind], lw)

    def _arrow_height(self, a: _Box, b: _Box) -> float:
        """Mid-height, or higher on short boxes so the arrow clears b's size label."""
        h = min(self.h(a), self.h(b))
        label = len(self.size_labels.get(id(b), "")) * CHAR_HEIGHT
        return min(max(self.y(a), self.y(a) - h / 2 + label + 0.15), self.y(a) + h / 2 - 0.15)

    def _vertical_arrows(self, ax) -> None:
        for upper, lower in zip(self.left, self.left[1:] + [self.bottom]):
            a, b = upper[-1], lower[0]
            x = a.x + a.w / 2
            _draw_arrow(ax, (x, self.y(a) - self.h(a) / 2 - 0.05), (x, self.y(b) + self.h(b) / 2 + 0.35),
                        ARROW_COLORS["pool"])
        below = self.bottom[-1]
        for row in reversed(self.right):
            up = row[1]
            x = below.x + below.w / 2
            _draw_arrow(ax, (x, self.y(below) + self.h(below) / 2 + 0.3), (x, self.y(up) - self.h(up) / 2 - 0.05),
                        ARROW_COLORS["up"])
            below = row[-1]

    def _skips(self, ax) -> None:
        for row_left, row_right in zip(self.left, self.right):
            src, copy = row_left[-1], row_right[0]
            self._arrow(ax, src, copy, "skip", lw=1.0)
            y = self.y(src)
            if copy.size != src.size:  # the valid net: show the window the crop keeps
                hc = self.height_scale * math.sqrt(copy.size[0])
                ax.add_patch(Rectangle((src.x, y - hc / 2), src.w, hc, fill=False, ls="--", lw=0.8,
                                       edgecolor=ARROW_COLORS["skip"]))

    # -- legend in the lower right, below every box it would overlap ---------------
    def _place_legend(self) -> None:
        self.legend_line = 0.55
        width = 1.2 + LEGEND_CHAR_WIDTH * max(len(text) for _, text in self.legend)
        x1 = self.head.x + self.head.w
        self.legend_x = x1 - width
        height = len(self.legend) * self.legend_line
        top = min(self.y(b) - self.h(b) / 2 for b in self.bottom) + height
        for b in self.boxes():
            if b.x + b.w > self.legend_x and b.x < x1:
                top = min(top, self.y(b) - self.h(b) / 2 - 0.5)
        self.legend_top = top
        self.legend_bottom = top - height

    def _legend(self, ax) -> None:
        for i, (kind, text) in enumerate(self.legend):
            y = self.legend_top - (i + 0.5) * self.legend_line
            _draw_arrow(ax, (self.legend_x, y), (self.legend_x + 1.0, y), ARROW_COLORS[kind])
            ax.text(self.legend_x + 1.2, y, text, va="center", fontsize=8)


def _box_width(channels: int) -> float:
    return 0.18 + 0.085 * math.log2(max(channels, 1))


def _draw_arrow(ax, start, end, color: str, lw: float = 1.3) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=7, color=color, lw=lw,
                                 shrinkA=0, shrinkB=0))


def _legend_entries(model: UNet) -> list[tuple[str, str]]:
    cfg = model.config
    valid = cfg["padding"] == "valid"
    return [
        ("conv", f"conv 3x3{'' if valid else ' pad 1'}, {'BN, ' if cfg['batch_norm'] else ''}ReLU"),
        ("skip", "copy and crop" if valid else "copy"),
        ("pool", "max pool 2x2"),
        ("up", "up-conv 2x2" if cfg["upsampling"] == "transpose" else "bilinear 2x, conv 1x1"),
        ("head", "conv 1x1"),
    ]


def _title(model: UNet, size_in: tuple[int, int], size_out: tuple[int, int], width_inches: float) -> str:
    """The model's constructor call, wrapped to the figure width, then its sizes and parameters."""
    cfg = model.config
    call = textwrap.fill(f"UNet({', '.join(f'{k}={v!r}' for k, v in cfg.items())})", int(width_inches / 0.08))
    return (f"{call}\n{cfg['in_channels']} x {size_in[0]}x{size_in[1]} in -> "
            f"{cfg['out_channels']} x {size_out[0]}x{size_out[1]} out, {count_parameters(model):,} parameters")


def main(argv: list[str] | None = None) -> None:
    """Save the paper's network, drawn at 572 x 572, to the path given (default images/unet.png,
    the figure of README.md). README.md."""
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0] if argv else "images/unet.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = draw_unet(UNet(1, 2, padding="valid", batch_norm=False), 572)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
