"""DataLoader construction with reproducible shuffling and worker seeding."""
from __future__ import annotations

import random
import signal
from functools import partial

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .collate import collate


def _derived_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (SeedSequence avoids correlated neighbours)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def seed_worker(worker_id: int, seed: int, rank: int) -> None:
    """Give each worker of each rank its own fixed seed for numpy, random and torch.

    The dataset draws augmentations from its own (seed, epoch, index) generator;
    this covers any library code that still uses the global generators.
    """
    worker_seed = _derived_seed(seed, rank, worker_id)
    # A stop request (SIGUSR1, which srun delivers to every process of the job step) is the
    # main process's to handle: it finishes the step and saves. A worker killed by it first
    # would make the main process fail instead. SIGTERM keeps its default: the DataLoader
    # itself uses it to shut down workers that do not exit on their own.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    np.random.seed(worker_seed % 2**32)
    random.seed(worker_seed)
    torch.manual_seed(worker_seed)


class SceneLoader(DataLoader):
    """A DataLoader whose ``set_epoch`` reshuffles and re-augments reproducibly.

    Shuffling depends only on (seed, epoch), not on how many epochs ran before, so
    a resumed run sees the same order as an uninterrupted one.
    """

    seed: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Call before iterating each epoch (sampler order, dataset augmentations)."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        if self.generator is not None:
            self.generator.manual_seed(_derived_seed(self.seed, epoch))
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


def build_loader(dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int, seed: int,
                 distributed: bool = False, drop_last: bool = False,
                 pin_memory: bool | None = None, sampler: Sampler | None = None) -> SceneLoader:
    """A loader yielding :func:`~pcseg.data.collate.collate` batches.

    ``distributed`` uses a :class:`DistributedSampler` over the initialised process
    group (each rank then sees its own shard); ``pin_memory`` defaults to whether
    CUDA is available. Workers stay alive between epochs to skip their start-up cost.
    A custom ``sampler`` (e.g. a resumable one) replaces both; ``shuffle`` and
    ``distributed`` are then left to it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    if sampler is None and distributed:
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("distributed=True needs an initialised torch.distributed process group")
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    generator = torch.Generator()
    generator.manual_seed(_derived_seed(seed, 0))
    loader = SceneLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        drop_last=drop_last,
        worker_init_fn=partial(seed_worker, seed=seed, rank=rank) if num_workers > 0 else None,
        generator=generator,
        persistent_workers=num_workers > 0,
    )
    loader.seed = int(seed)
    return loader
