"""Training on many processes with torchrun (lesson 06): the process group, sums over
processes, and the samplers that give each process its share of an epoch.

Under torchrun (it sets RANK, WORLD_SIZE and LOCAL_RANK) each process trains a replica on its
own GPU (cuda:LOCAL_RANK, nccl) or on the CPU (gloo). Without torchrun every function here
behaves as for one process, so the training loop calls them unconditionally.
"""
from __future__ import annotations

import math
import os

import torch
from torch.utils.data import Dataset, Sampler

from .data.sampling import EpochShuffle


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


class ShardedEpochShuffle(EpochShuffle):
    """EpochShuffle for one of `world_size` processes: rank r takes every world_size-th entry,
    from r, of the same (seed, epoch) permutation, so the shards are disjoint and together
    cover the epoch. Like DistributedSampler, the permutation is padded with its own start to
    a multiple of world_size, so every process runs the same number of steps (DDP needs that)."""

    def __init__(self, data: Dataset, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(data, seed)
        self.rank, self.world_size = rank, world_size

    def __iter__(self):
        pairs = list(super().__iter__())
        pairs += pairs[:len(self) * self.world_size - len(pairs)]
        return iter(pairs[self.rank::self.world_size])

    def __len__(self) -> int:
        return math.ceil(self.n / self.world_size)


class Shard(Sampler[int]):
    """Indices rank, rank + world_size, ... of a dataset, in order and without padding: each
    image is evaluated by exactly one process (shards may differ in length by one)."""

    def __init__(self, data: Dataset, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, len(data), world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
