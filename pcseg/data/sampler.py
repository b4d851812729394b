"""A resumable, distributed-aware sampler.

The order of an epoch depends only on (seed, epoch), and an epoch can start at any
position, so a run stopped mid-epoch and resumed sees exactly the batches an
uninterrupted run would have seen.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    def __init__(self, num_samples: int, shuffle: bool = True, seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False) -> None:
        self.n = num_samples
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world = world_size
        self.drop_last = drop_last
        self.epoch = 0
        self.start = 0
        if drop_last:
            self.per_rank = self.n // world_size
        else:
            self.per_rank = math.ceil(self.n / world_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's order and skip its first ``start`` samples (of this rank)."""
        self.epoch = epoch
        self.start = start

    def _order(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = self.per_rank * self.world
        if total > len(order):  # pad by repeating, as DistributedSampler does
            order = (order * math.ceil(total / max(1, len(order))))[:total]
        return order[:total][self.rank::self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self._order()[self.start:])

    def __len__(self) -> int:
        return max(0, self.per_rank - self.start)
