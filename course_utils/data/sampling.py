"""Reproducible data order and augmentation (lesson 06): an epoch's shuffle depends only on
(seed, epoch), and item i of epoch e is augmented with its own seed, so a resumed run, or a
run with any number of loader workers, sees exactly the same batches.
"""
from __future__ import annotations

import math
import random

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class EpochShuffle(Sampler[tuple[int, int]]):
    """A shuffle that depends only on (seed, epoch), so a resumed run sees the same order.

    Call `set_epoch(epoch)` before each epoch (fit does). Same interface as
    torch's DistributedSampler, which replaces it when training on many GPUs. It yields
    (epoch, index) pairs: the epoch travels with each index to the loader's workers, which
    keep stale copies of the dataset when they are persistent, so `SeededAugment` in a
    worker still augments item i of epoch e with the seed of (seed, e, i). Lesson 06.
    """

    def __init__(self, data: Dataset, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = len(data), seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter((self.epoch, i) for i in torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class SeededAugment(Dataset):
    """Wraps a dataset so item i of epoch e is augmented with its own seed (seed, e, i).

    albumentations keeps its own random state (global seeds do not reach it), so we seed it
    per item: the same augmentations with 0 or 8 loader workers, and after a resume.
    Other attributes (ids, root, ...) are those of the wrapped dataset. Lesson 06.
    """

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]):
        """Item i, augmented for epoch e: key is i (the epoch of set_epoch) or (e, i) from EpochShuffle."""
        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        transform = getattr(self.dataset, "transform", None)
        if hasattr(transform, "set_random_state"):
            s = int(np.random.SeedSequence([self.seed, epoch, i]).generate_state(1)[0])
            transform.set_random_state(np.random.default_rng(s), random.Random(s))
        return self.dataset[i]

    def __getattr__(self, name: str):
        if name == "dataset":  # not set yet (e.g. while unpickling in a worker)
            raise AttributeError(name)
        return getattr(self.dataset, name)


class ShardedEpochShuffle(EpochShuffle):
    """EpochShuffle for one of `world_size` processes: rank r takes every world_size-th entry,
    from r, of the same (seed, epoch) permutation, so the shards are disjoint and together
    cover the epoch. Like DistributedSampler, the permutation is padded with its own start to
    a multiple of world_size, so every process runs the same number of steps (DDP needs that). Lesson 06."""

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
    image is evaluated by exactly one process (shards may differ in length by one). Lesson 06."""

    def __init__(self, data: Dataset, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, len(data), world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
