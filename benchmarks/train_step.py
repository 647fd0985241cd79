"""How fast is one training step of UNet(3, 1) with each speed option? (issue 4, lesson 06)

Times forward + loss + backward + AdamW step (course_utils.engine.train_step, the engine's own
step) on random images, for: the float32 baseline, channels_last, mixed precision (bf16 on a
CPU or a bf16-capable GPU, else fp16 with a GradScaler) and torch.compile. Each is printed as
images/s and as a ratio to the baseline measured in the same run, on the device named.

    python benchmarks/train_step.py --base 16 --size 128 192 --batch 4       # a CPU, small
    python benchmarks/train_step.py --device cuda --size 640 960 --batch 8  # the full profile
"""
from __future__ import annotations

import argparse
import copy
import time

import torch

from course_utils.environment import pick_device
from course_utils.losses import BCEDiceLoss
from course_utils.model import UNet
from course_utils.engine import train_step
from course_utils.precision import make_scaler


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def images_per_s(model, images, masks, device, steps, warmup, *, amp_dtype=None, channels_last=False,
                 compile=False) -> float:
    """Mean throughput of `steps` training steps after `warmup` untimed ones (compilation, caches)."""
    model = copy.deepcopy(model)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler, loss_fn = make_scaler(device, amp_dtype), BCEDiceLoss()
    net = torch.compile(model) if compile else model
    for _ in range(warmup):
        train_step(net, images, masks, loss_fn, optimizer, amp_dtype=amp_dtype, scaler=scaler,
                   channels_last=channels_last)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        train_step(net, images, masks, loss_fn, optimizer, amp_dtype=amp_dtype, scaler=scaler,
                   channels_last=channels_last)
    sync(device)
    return steps * len(images) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=int, default=64, help="base_channels of UNet(3, 1) (paper: 64)")
    p.add_argument("--size", type=int, nargs=2, default=(640, 960), metavar=("H", "W"))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=10, help="timed steps per option")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compile happens here)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    bf16 = device.type != "cuda" or torch.cuda.is_bf16_supported()
    mixed = torch.bfloat16 if bf16 else torch.float16

    torch.manual_seed(0)
    model = UNet(3, 1, base_channels=args.base).to(device)
    images = torch.rand(args.batch, 3, *args.size, device=device)
    masks = (torch.rand(args.batch, 1, *args.size, device=device) > 0.5).float()
    print(f"device: {device.type} = {name}; torch {torch.__version__}")
    print(f"UNet(3, 1, base_channels={args.base}), batch {args.batch} x 3 x {args.size[0]} x {args.size[1]}, "
          f"{args.steps} timed steps after {args.warmup} warm-up steps\n")

    options = [("fp32 (baseline)", {}), ("channels_last", dict(channels_last=True)),
               (f"mixed precision ({str(mixed).removeprefix('torch.')})", dict(amp_dtype=mixed)),
               ("torch.compile", dict(compile=True))]
    base_rate = None
    print(f"{'option':<28}{'images/s':>10}{'vs fp32':>9}")
    for label, opts in options:
        try:
            rate = images_per_s(model, images, masks, device, args.steps, args.warmup, **opts)
        except Exception as e:  # e.g. torch.compile without a working C compiler / Triton
            first = (str(e).strip().splitlines() or [""])[0][:100]
            print(f"{label:<28}{'skipped':>10}   ({type(e).__name__}: {first})")
            continue
        base_rate = base_rate or rate
        print(f"{label:<28}{rate:>10.2f}{rate / base_rate:>8.2f}x", flush=True)


if __name__ == "__main__":
    main()
