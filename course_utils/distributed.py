"""Training on many processes with torchrun (lesson 06): the process group and sums over
processes (the samplers that give each process its share of an epoch are in data/sampling.py).

Under torchrun (it sets RANK, WORLD_SIZE and LOCAL_RANK) each process trains a replica on its
own GPU (cuda:LOCAL_RANK, nccl) or on the CPU (gloo). Without torchrun every function here
behaves as for one process, so the training loop calls them unconditionally.
"""
from __future__ import annotations

import os

import torch


def dist_info() -> tuple[int, int]:
    """(rank, world_size) of the initialised process group, (0, 1) without one. Lesson 06."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def launched_by_torchrun() -> bool:
    """True when torchrun (torch.distributed.run) started this process: it sets WORLD_SIZE and RANK. Lesson 06."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device: torch.device) -> torch.device:
    """Join torchrun's process group: nccl and cuda:LOCAL_RANK on GPUs, gloo on the CPU.
    Returns this process's device. Lesson 06."""
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def all_reduce_sum(values: list[float], device: torch.device | str) -> list[float]:
    """Sum each value over all processes (float64, so sums of many Dice values stay exact). Lesson 06."""
    if dist_info()[1] == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()


def all_reduce_sums(sums: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    """Each tensor of `sums` added over all processes, in its own dtype: counts (int64, such as a
    confusion matrix or a number of images) stay exact integers, float64 sums of scores stay float.
    Two collectives in all (one per dtype), however many tensors. Lesson 06."""
    if dist_info()[1] == 1:
        return sums
    out: dict[str, torch.Tensor] = {}
    for dtype in (torch.int64, torch.float64):
        keys = [k for k, v in sums.items() if v.dtype == dtype]
        if not keys:
            continue
        flat = torch.cat([sums[k].reshape(-1) for k in keys]).to(device)
        torch.distributed.all_reduce(flat)
        parts = flat.cpu().split([sums[k].numel() for k in keys])
        out |= {k: part.view(sums[k].shape) for k, part in zip(keys, parts)}
    if set(out) != set(sums):
        raise TypeError("all_reduce_sums adds int64 and float64 tensors only; got "
                        f"{ {k: str(v.dtype) for k, v in sums.items() if k not in out} }.")
    return out
