"""Is course_utils.UNet as fast as a plain, straightforward U-Net? (forward + backward)

The baseline below is the network written the obvious way, with nothing clever: the same
layers, explicit encoder and decoder stages, torch.cat for the skips. The course's model adds
input checks and generic depth; this benchmark shows that costs nothing measurable.

    python benchmarks/model_speed.py                      # CPU, 2 x 3 x 192 x 192, base 32
    python benchmarks/model_speed.py --size 572 --valid   # the paper's network

Prints milliseconds per step for each and the ratio course / baseline (< 1.05 is a pass).
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from course_utils import UNet, count_parameters


def plain_block(c_in: int, c_out: int, pad: int, bn: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=pad, bias=not bn)]
    layers += [nn.BatchNorm2d(c_out)] if bn else []
    layers += [nn.ReLU(inplace=True), nn.Conv2d(c_out, c_out, 3, padding=pad, bias=not bn)]
    layers += [nn.BatchNorm2d(c_out)] if bn else []
    return nn.Sequential(*layers, nn.ReLU(inplace=True))


class PlainUNet(nn.Module):
    """Depth-4 U-Net spelled out stage by stage."""

    def __init__(self, c_in: int, c_out: int, base: int, valid: bool, bn: bool):
        super().__init__()
        pad = 0 if valid else 1
        w = [base, base * 2, base * 4, base * 8, base * 16]
        self.e1, self.e2 = plain_block(c_in, w[0], pad, bn), plain_block(w[0], w[1], pad, bn)
        self.e3, self.e4 = plain_block(w[1], w[2], pad, bn), plain_block(w[2], w[3], pad, bn)
        self.bottom = plain_block(w[3], w[4], pad, bn)
        self.pool = nn.MaxPool2d(2)
        self.u4, self.d4 = nn.ConvTranspose2d(w[4], w[3], 2, 2), plain_block(w[4], w[3], pad, bn)
        self.u3, self.d3 = nn.ConvTranspose2d(w[3], w[2], 2, 2), plain_block(w[3], w[2], pad, bn)
        self.u2, self.d2 = nn.ConvTranspose2d(w[2], w[1], 2, 2), plain_block(w[2], w[1], pad, bn)
        self.u1, self.d1 = nn.ConvTranspose2d(w[1], w[0], 2, 2), plain_block(w[1], w[0], pad, bn)
        self.out = nn.Conv2d(w[0], c_out, 1)

    @staticmethod
    def crop(skip: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        dh, dw = (skip.shape[2] - like.shape[2]) // 2, (skip.shape[3] - like.shape[3]) // 2
        return skip[:, :, dh : dh + like.shape[2], dw : dw + like.shape[3]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.e1(x)
        x2 = self.e2(self.pool(x1))
        x3 = self.e3(self.pool(x2))
        x4 = self.e4(self.pool(x3))
        y = self.bottom(self.pool(x4))
        y = self.u4(y)
        y = self.d4(torch.cat([self.crop(x4, y), y], 1))
        y = self.u3(y)
        y = self.d3(torch.cat([self.crop(x3, y), y], 1))
        y = self.u2(y)
        y = self.d2(torch.cat([self.crop(x2, y), y], 1))
        y = self.u1(y)
        y = self.d1(torch.cat([self.crop(x1, y), y], 1))
        return self.out(y)


def time_step(model: nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median seconds of one forward + backward."""
    times = []
    for i in range(repeats + 2):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        model(x).float().mean().backward()
        if i >= 2:  # two warm-up steps
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--base", type=int, default=32)
    p.add_argument("--valid", action="store_true", help="the paper's unpadded network without BatchNorm")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    torch.manual_seed(0)
    kw = dict(valid=args.valid, bn=not args.valid)
    plain = PlainUNet(3, 1, args.base, **kw)
    ours = UNet(3, 1, args.base, padding="valid" if args.valid else "same", batch_norm=not args.valid)
    assert count_parameters(plain) == count_parameters(ours), "the two networks must be the same size"
    x = torch.randn(args.batch, 3, args.size, args.size)
    print(f"device: cpu ({torch.get_num_threads()} threads), torch {torch.__version__}, input {tuple(x.shape)}, "
          f"base {args.base}, {'valid' if args.valid else 'same'}, {count_parameters(ours):,} parameters")
    rounds = [(time_step(plain, x, args.repeats), time_step(ours, x, args.repeats)) for _ in range(2)]
    t_plain, t_ours = min(r[0] for r in rounds), min(r[1] for r in rounds)
    print(f"plain baseline : {t_plain * 1e3:8.1f} ms / step")
    print(f"course UNet    : {t_ours * 1e3:8.1f} ms / step   ratio {t_ours / t_plain:.3f}")


if __name__ == "__main__":
    main()
