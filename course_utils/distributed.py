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
    """(rank, world_size) of the initialised process group, (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def launched_by_torchrun() -> bool:
    """True when torchrun (torch.distributed.run) started this process: it sets WORLD_SIZE and RANK."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device: torch.device) -> torch.device:
    """Join torchrun's process group: nccl and cuda:LOCAL_RANK on GPUs, gloo on the CPU.
    Returns this process's device."""
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def all_reduce_sum(values: list[float], device: torch.device | str) -> list[float]:
    """Sum each value over all processes (float64, so sums of many Dice values stay exact)."""
    if dist_info()[1] == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()
