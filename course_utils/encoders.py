"""A U-Net whose contracting path is a torchvision classifier (VGG11 or ResNet-34), as Carvana's
winning teams built theirs (TernausNet: VGG11; others ResNet-34), with the course's `Up` blocks as
the expanding path. The classifier's stages give the skips; the input is normalised the way
ImageNet-pretrained weights expect, so `weights="imagenet"` starts from features that already
see edges, textures and parts instead of from random numbers. `TorchvisionSegmenter` adapts the
baselines U-Net is compared with (torchvision's FCN and LR-ASPP) to the same interface (lesson 14).

>>> net = EncoderUNet("resnet34")                  # weights=None: the architecture, untrained
>>> net(torch.rand(1, 3, 64, 96)).shape
torch.Size([1, 1, 64, 96])
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .model import Up, nearest_valid_sizes

ENCODERS = ("vgg11", "resnet34")
SEGMENTERS = ("fcn_resnet50", "lraspp_mobilenet_v3_large")  # torchvision's baselines (lesson 14)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the statistics torchvision's ImageNet weights were trained with
IMAGENET_STD = (0.229, 0.224, 0.225)


class EncoderUNet(nn.Module):
    """U-Net with a torchvision classifier as its contracting path and the course's Up blocks as
    its expanding path; one logit map of the input's size out (same padding).

    encoder: "vgg11" (TernausNet: VGG11's five conv stages; skips at 1, 1/2, 1/4, 1/8 of the input,
        the bottom at 1/16) or "resnet34" (stem, layer1-4; skips at 1/2-1/16, the bottom at 1/32,
        then one more Up to the full size).
    weights: None (random, torchvision's own initialisation), "imagenet" (torchvision's weights
        API, cached where torchvision caches them), or the path of a torchvision state dict saved
        with torch.save(classifier.state_dict(), path): the classifier's weights, not the U-Net's.
    in_channels: 3; for 1 (greyscale) the first conv's RGB kernels are summed, so pretrained
        features still apply. Sides must be multiples of 2**depth (16 for vgg11, 32 for resnet34).

    Lesson 14.
    """

    def __init__(self, encoder: str = "resnet34", in_channels: int = 3, out_channels: int = 1,
                 weights: str | Path | None = None, batch_norm: bool = True):
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}.")
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 3 (RGB) or 1 (greyscale), got {in_channels}.")
        depth = 4 if encoder == "vgg11" else 5
        self.config = dict(kind="encoder", encoder=encoder, in_channels=in_channels, out_channels=out_channels,
                           depth=depth, padding="same", batch_norm=batch_norm)
        classifier = torchvision_classifier(encoder, weights)
        self.stages = nn.ModuleList(_stages(encoder, classifier, in_channels))
        widths = _widths(encoder)  # channels of each stage's output, top (skip 0) to bottom
        self.ups = nn.ModuleList(Up(widths[i + 1], widths[i], skip_channels=widths[i], batch_norm=batch_norm)
                                 for i in reversed(range(len(widths) - 1)))
        self.final_up = (Up(widths[0], 32, skip_channels=0, batch_norm=batch_norm) if encoder == "resnet34"
                         else None)  # resnet34's top stage is at 1/2: one more step to the full size
        self.head = nn.Conv2d(32 if self.final_up is not None else widths[0], out_channels, kernel_size=1)
        grey = in_channels == 1
        mean = [sum(IMAGENET_MEAN) / 3] if grey else list(IMAGENET_MEAN)
        std = [sum(IMAGENET_STD) / 3] if grey else list(IMAGENET_STD)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_sides(x, self.config["depth"], self.config["encoder"])
        x = (x - self.mean) / self.std  # what the pretrained weights saw in training
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        x = skips.pop()  # the bottom of the U
        for up in self.ups:
            x = up(x, skips.pop())
        if self.final_up is not None:
            x = self.final_up(x)
        return self.head(x)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The logits' size for an input of height x width: the same (after the size check)."""
        _check_sides(torch.empty(1, self.config["in_channels"], height, width), self.config["depth"],
                     self.config["encoder"])
        return height, width


class TorchvisionSegmenter(nn.Module):
    """One of torchvision's segmentation networks as a course model: (B, 3, H, W) in [0, 1] in,
    (B, out_channels, H, W) logits out, like UNet and EncoderUNet, so `fit` and `evaluate` take it.

    name: "fcn_resnet50" (Long, Shelhamer and Darrell's FCN, the baseline of the U-Net paper, on a
        ResNet-50 whose last two stages are dilated: features at 1/8, then one 8x bilinear upsampling)
        or "lraspp_mobilenet_v3_large" (a light MobileNetV3 head: features at 1/8 and 1/16, 8x up).
    bn_momentum: 0.1 (PyTorch's default) for every BatchNorm; None keeps torchvision's. MobileNetV3
        uses 0.01, made for long ImageNet runs: after a short run its running statistics are still
        near their start, and in eval mode it predicts background everywhere.
    Weights are random (torchvision's initialisation). The adapter normalises with ImageNet's
    statistics (what torchvision's networks expect) and returns the dict's "out" tensor.

    >>> TorchvisionSegmenter("lraspp_mobilenet_v3_large")(torch.rand(2, 3, 64, 96)).shape
    torch.Size([2, 1, 64, 96])

    Lesson 14.
    """

    def __init__(self, name: str = "fcn_resnet50", out_channels: int = 1, bn_momentum: float | None = 0.1):
        super().__init__()
        if name not in SEGMENTERS:
            raise ValueError(f"name must be one of {SEGMENTERS}, got {name!r}.")
        build = getattr(_torchvision().models.segmentation, name)
        self.net = build(weights=None, weights_backbone=None, num_classes=out_channels)  # random, no aux head
        for norm in self.net.modules():
            if isinstance(norm, nn.BatchNorm2d) and bn_momentum is not None:
                norm.momentum = bn_momentum
        self.config = dict(kind="torchvision", name=name, in_channels=3, out_channels=out_channels)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)["out"]  # torchvision returns {"out": logits}


def torchvision_classifier(encoder: str, weights: str | Path | None = None) -> nn.Module:
    """torchvision's VGG11 (with BatchNorm: vgg11_bn) or ResNet-34, random, ImageNet-pretrained
    through torchvision's weights API, or loaded from a saved state dict. Lesson 14."""
    torchvision = _torchvision()
    build = {"vgg11": torchvision.models.vgg11_bn, "resnet34": torchvision.models.resnet34}[encoder]
    if weights is None or str(weights) == "none":
        return build(weights=None)
    if str(weights) == "imagenet":
        enum = {"vgg11": torchvision.models.VGG11_BN_Weights, "resnet34": torchvision.models.ResNet34_Weights}[encoder]
        try:
            return build(weights=enum.IMAGENET1K_V1)
        except (OSError, RuntimeError) as e:  # no network (URLError is an OSError), or a cut-short file
            raise RuntimeError(
                f"could not fetch torchvision's ImageNet weights for {encoder} ({type(e).__name__}: {e}). "
                f"On a machine with a network, save them once with\n"
                f"  import torch, torchvision; torch.save(torchvision.models.{build.__name__}(weights='DEFAULT')"
                f".state_dict(), '{encoder}.pt')\n"
                f"copy the file here and pass weights='{encoder}.pt' (the CLI: --encoder-weights {encoder}.pt)."
            ) from e
    return _from_file(build, Path(weights), encoder)


def _torchvision():
    """torchvision, or an ImportError that says how to install it."""
    try:
        import torchvision
    except Exception as e:  # not installed, or a torch it was not built for
        raise ImportError(f"EncoderUNet and TorchvisionSegmenter need torchvision next to a torch it was built for "
                          f"({type(e).__name__}: {e}). Install both from PyPI: pip install -e . (README: quick start).") from e
    return torchvision


def _from_file(build, path: Path, encoder: str) -> nn.Module:
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}: weights is None, 'imagenet' or the path of a "
                                f"torchvision {encoder} state dict saved with torch.save(model.state_dict(), path).")
    classifier = build(weights=None)
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        classifier.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{path} does not hold torchvision's {build.__name__} weights: {str(e)[:200]}") from e
    return classifier


def _stages(encoder: str, net: nn.Module, in_channels: int) -> list[nn.Module]:
    """The classifier's layers grouped into stages, each ending where the next one pools."""
    if encoder == "vgg11":
        f = list(net.features)  # vgg11_bn: [conv bn relu, pool] x ..., pools at 3, 7, 14, 21, 28
        pools = [i for i, m in enumerate(f) if isinstance(m, nn.MaxPool2d)]
        bounds = [0, *pools[:4]]
        stages = [nn.Sequential(*f[a:b]) for a, b in zip(bounds, bounds[1:])]  # full, 1/2, 1/4, 1/8
        stages.append(nn.Sequential(*f[pools[3]:pools[4]]))  # pool, then the fifth conv stage: 1/16
    else:
        stages = [nn.Sequential(net.conv1, net.bn1, net.relu), nn.Sequential(net.maxpool, net.layer1),
                  net.layer2, net.layer3, net.layer4]
    if in_channels == 1:
        _to_greyscale(stages[0])
    return stages


def _widths(encoder: str) -> list[int]:
    return [64, 128, 256, 512, 512] if encoder == "vgg11" else [64, 64, 128, 256, 512]


def _to_greyscale(stage: nn.Sequential) -> None:
    """The stage's first conv takes one channel: its RGB kernels summed (a grey image is R = G = B)."""
    conv = next(m for m in stage.modules() if isinstance(m, nn.Conv2d))
    grey = nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None)
    with torch.no_grad():
        grey.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
        if conv.bias is not None:
            grey.bias.copy_(conv.bias)
    for name, child in stage.named_children():
        if child is conv:
            setattr(stage, name, grey)


def _check_sides(x: torch.Tensor, depth: int, encoder: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"EncoderUNet takes a batch (B, C, H, W), got shape {tuple(x.shape)}.")
    m = 2**depth
    if all(int(s) % m == 0 for s in x.shape[-2:]):
        return
    near = [str(s) if s % m == 0 else " or ".join(str(n) for n in nearest_valid_sizes(int(s), depth, "same") if n)
            for s in x.shape[-2:]]
    raise ValueError(f"{encoder}'s encoder halves the image {depth} times, so each side must be a multiple of "
                     f"{m}; got {x.shape[-2]} x {x.shape[-1]}. Nearest that work: height {near[0]}, width {near[1]}.")
