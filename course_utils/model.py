"""U-Net (Ronneberger, Fischer, Brox 2015), built from the blocks lessons 01-04 teach.

``UNet(1, 2, padding="valid", batch_norm=False)`` is the paper's network: 23 conv layers,
31,030,658 parameters, a 572 x 572 tile in and a 388 x 388 map out. The defaults
(``padding="same"``, BatchNorm) are what practice moved to: output size = input size.

>>> net = UNet(1, 2, padding="valid", batch_norm=False)
>>> count_parameters(net), net.output_size(572, 572)
(31030658, (388, 388))
"""
from __future__ import annotations

import math
from collections.abc import Collection

import torch
from torch import nn

PADDINGS = ("same", "valid")
UPSAMPLINGS = ("transpose", "bilinear")


class DoubleConv(nn.Sequential):
    """(3x3 conv -> [BatchNorm] -> ReLU) twice: the unit every level of the U is made of.

    With ``padding="valid"`` each conv trims one pixel per side, so the block takes 4 px off
    height and width. With BatchNorm the convs carry no bias (BatchNorm's shift replaces it). Lesson 01.
    """

    def __init__(self, in_channels: int, out_channels: int, padding: str = "same", batch_norm: bool = True):
        _check_choice("padding", padding, PADDINGS)
        pad = 1 if padding == "same" else 0
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers.append(nn.Conv2d(c_in, out_channels, 3, padding=pad, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Down(nn.Sequential):
    """One step down the contracting path: 2x2 max-pool, then a DoubleConv that doubles the channels. Lesson 02."""

    def __init__(self, in_channels: int, out_channels: int, padding: str = "same", batch_norm: bool = True):
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels, padding, batch_norm))


class Up(nn.Module):
    """One step up the expanding path.

    Upsample 2x while halving the channels (a 2x2 up-convolution, or bilinear resize + 1x1
    conv), concatenate the skip connection from the contracting path (center-cropped when the
    network is unpadded), then a DoubleConv. ``forward(x, skip)``: x (B, C, h, w), skip
    (B, C/2, H, W) -> (B, out_channels, ...). skip_channels: the skip's channels when they are
    not C/2 (a torchvision encoder's stages); 0 with ``forward(x)``: upsample without a skip. Lessons 03 and 04.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        upsampling: str = "transpose",
        padding: str = "same",
        batch_norm: bool = True,
        skip_channels: int | None = None,
    ):
        super().__init__()
        _check_choice("upsampling", upsampling, UPSAMPLINGS)
        half = in_channels // 2
        if upsampling == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(in_channels, half, kernel_size=2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, half, kernel_size=1),
            )
        joined = in_channels if skip_channels is None else half + skip_channels
        self.conv = DoubleConv(joined, out_channels, padding, batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = self.up(x)  # (B, C/2, 2h, 2w)
        if skip is None:  # an Up with skip_channels=0
            return self.conv(x)
        skip = center_crop(skip, x.shape[-2:])  # a view; a no-op for the same-padded net
        return self.conv(torch.cat([skip, x], dim=1))  # (B, C, 2h, 2w) -> DoubleConv


def center_crop(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """The central (h, w) window of x (B, C, H, W); x itself when it already has that size. Lesson 03."""
    h, w = size
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    if top == 0 and left == 0 and x.shape[-2] == h and x.shape[-1] == w:
        return x
    return x[..., top : top + h, left : left + w]


class UNet(nn.Module):
    """The U-Net of Figure 1: a contracting path, a bottleneck and an expanding path joined
    by skip connections, ending in a 1x1 conv to ``out_channels`` logits per pixel.

    Args:
        in_channels: image channels (3 for RGB, 1 for the paper's microscopy).
        out_channels: 1 for a binary mask (sigmoid), C for C classes (softmax).
        base_channels: channels of the first level; level i has base * 2**i. Paper: 64.
        depth: number of down (and up) steps. Paper: 4.
        padding: "valid" (paper: unpadded convs, output smaller than input) or "same".
        upsampling: "transpose" (2x2 up-convolution, paper) or "bilinear" (+ 1x1 conv).
        batch_norm: BatchNorm after each 3x3 conv (then the conv has no bias). Paper: False.

    Input (B, in_channels, H, W) -> logits (B, out_channels, *self.output_size(H, W)).
    A size the network cannot take raises a ValueError naming the nearest that work. Shown whole
    first, then built piece by piece: Lessons 00-04.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        base_channels: int = 64,
        depth: int = 4,
        padding: str = "same",
        upsampling: str = "transpose",
        batch_norm: bool = True,
    ):
        super().__init__()
        _check_choice("padding", padding, PADDINGS)
        _check_choice("upsampling", upsampling, UPSAMPLINGS)
        if depth < 1 or base_channels < 1:
            raise ValueError(f"depth and base_channels must be >= 1, got depth={depth}, base_channels={base_channels}")
        self.config = dict(
            in_channels=in_channels, out_channels=out_channels, base_channels=base_channels,
            depth=depth, padding=padding, upsampling=upsampling, batch_norm=batch_norm,
        )
        widths = [base_channels * 2**i for i in range(depth + 1)]  # e.g. 64, 128, 256, 512, 1024
        self.inc = DoubleConv(in_channels, widths[0], padding, batch_norm)
        self.downs = nn.ModuleList(Down(widths[i], widths[i + 1], padding, batch_norm) for i in range(depth))
        self.ups = nn.ModuleList(
            Up(widths[i + 1], widths[i], upsampling, padding, batch_norm) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def features(self, x: torch.Tensor, zero_skips: Collection[int] = ()) -> torch.Tensor:
        """The last decoder level's features (B, base_channels, h, w), before the 1x1 head.

        zero_skips: levels (0 = the finest, inc's output) whose skip is replaced by zeros, to see
        what a trained network loses without it (lesson 09)."""
        self._check_input(x)
        x = self.inc(x)
        skips = []
        for down in self.downs:  # contracting path: keep each level's features for later
            skips.append(x)
            x = down(x)
        for up in self.ups:  # expanding path: the deepest skip joins first
            skip = skips.pop()
            x = up(x, torch.zeros_like(skip) if len(skips) in zero_skips else skip)
        return x

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Output (h, w) for an input (height, width); ValueError if the network cannot take it."""
        return self._out_len(height, "height"), self._out_len(width, "width")

    def _out_len(self, n: int, axis: str) -> int:
        out = output_length(n, self.config["depth"], self.config["padding"])
        if out is None:
            below, above = nearest_valid_sizes(n, self.config["depth"], self.config["padding"])
            rule = (
                f"multiples of 2**depth = {2 ** self.config['depth']}"
                if self.config["padding"] == "same"
                else f"sizes whose every level is even before pooling ({_valid_rule(self.config['depth'])})"
            )
            near = " or ".join(str(s) for s in (below, above) if s is not None)
            raise ValueError(
                f"UNet(padding={self.config['padding']!r}, depth={self.config['depth']}) cannot take an input "
                f"{axis} of {n}: it takes {rule}. Nearest that work: {near}. Resize or crop the input "
                f"(e.g. the image_size setting), or pad it."
            )
        return out

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4:
            raise ValueError(f"UNet expects a batch (B, C, H, W); got a tensor of shape {tuple(x.shape)}. "
                             f"For one image use x.unsqueeze(0).")
        if x.shape[1] != self.config["in_channels"]:
            raise ValueError(f"UNet was built for {self.config['in_channels']} input channels, got {x.shape[1]} "
                             f"(shape {tuple(x.shape)}).")
        self.output_size(x.shape[-2], x.shape[-1])


class NoSkipUNet(UNet):
    """UNet whose skips carry only zeros: the ablation that measures what the skips are worth.

    It keeps UNet's parameters (the skip half of each Up's first conv then multiplies zeros and
    gets no gradient), so both nets have the same size. Lessons 04 and 09.
    """

    def features(self, x: torch.Tensor, zero_skips: Collection[int] = ()) -> torch.Tensor:
        return super().features(x, zero_skips=range(len(self.downs)))


class TwoHeadUNet(UNet):
    """U-Net with two 1x1 heads on the same decoder features (NYU Depth V2):
    `num_classes` segmentation logits and a depth map in metres.

    The only change to UNet is one more 1x1 conv: both tasks share every other weight.
    forward returns a dict {"seg": (B, C, h, w) logits, "depth": (B, 1, h, w) metres}.
    The depth head predicts log-depth, so depth = exp(output) is always positive; its bias
    starts at log(typical_depth) so the first predictions are of the right size. Lesson 11.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 13, base_channels: int = 64, depth: int = 4,
                 padding: str = "same", upsampling: str = "transpose", batch_norm: bool = True,
                 typical_depth: float = 2.5):
        super().__init__(in_channels, num_classes, base_channels, depth, padding, upsampling, batch_norm)
        self.config = dict(self.config, heads="seg+depth", typical_depth=typical_depth)
        self.depth_head = nn.Conv2d(base_channels, 1, kernel_size=1)
        nn.init.constant_(self.depth_head.bias, math.log(typical_depth))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        return {"seg": self.head(f), "depth": torch.exp(self.depth_head(f).clamp(max=8.0))}


def output_length(n: int, depth: int, padding: str) -> int | None:
    """Length of one output axis for an input of length n, or None if U-Net cannot take n.

    Same padding: n must divide by 2**depth. Valid padding: each DoubleConv takes 4 px, each
    pool halves an even length, each up-conv doubles; every step must stay positive and even. Lessons 04 and 12.
    """
    if padding == "same":
        return n if n > 0 and n % 2**depth == 0 else None
    for _ in range(depth):  # contracting path
        n -= 4
        if n <= 0 or n % 2:
            return None
        n //= 2
    n -= 4  # bottleneck
    if n <= 0:
        return None
    for _ in range(depth):  # expanding path
        n = 2 * n - 4
    return n if n > 0 else None


def valid_input_sizes(depth: int = 4, padding: str = "valid", limit: int = 1024) -> list[int]:
    """Every input length up to `limit` the network takes (valid, depth 4: 188, 204, ..., 572, ...). Lesson 02."""
    return [n for n in range(1, limit + 1) if output_length(n, depth, padding) is not None]


def nearest_valid_sizes(n: int, depth: int, padding: str) -> tuple[int | None, int | None]:
    """The largest working size below n and the smallest above n (None where there is none). Lessons 02 and 04."""
    below = next((m for m in range(n - 1, 0, -1) if output_length(m, depth, padding)), None)
    above = next(m for m in range(n + 1, n + 2 ** (depth + 2) + 16 * 2**depth) if output_length(m, depth, padding))
    return below, above


def _valid_rule(depth: int) -> str:
    sizes = valid_input_sizes(depth, "valid", limit=2 ** (depth + 1) * 16)
    step = sizes[1] - sizes[0]
    return f"{sizes[0] % step} mod {step}, at least {sizes[0]}"


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {choices}.")


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters: 31,030,658 for the paper's network. Counted first, derived
    later: Lessons 00 and 01."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
