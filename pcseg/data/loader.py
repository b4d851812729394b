"""DataLoader construction with reproducible shuffling and worker seeding."""
from __future__ import annotations

import os
import random
import signal
import threading
from functools import partial

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .collate import collate


def _derived_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (SeedSequence avoids correlated neighbours)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def _ignore_stop_signals_from_others() -> None:
    """In a loader worker: survive the stop signals meant for the main process, and still obey the
    DataLoader's own shutdown.

    A stop request is the main process's to handle: it finishes the step, saves and exits. But
    SLURM (``scancel``, preemption, time limits) and ``kill -- -PGID`` signal every process of
    the step, workers included, and a worker killed by that makes the main process fail instead.
    SIGUSR1 is simply ignored. SIGTERM cannot be: the DataLoader (and multiprocessing at exit)
    terminates stuck workers with it and then waits for them. So SIGTERM is blocked and a
    thread reads it with ``sigwaitinfo``, which tells who sent it: from the parent (the main
    process) it ends the worker at once (as torch's own worker SIGTERM handler does); from anyone else it is dropped. Where ``sigwaitinfo``
    does not exist (macOS), SIGTERM keeps its default.
    """
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    if not hasattr(signal, "sigwaitinfo"):
        return
    parent = os.getppid()
    # blocked before any other thread of this worker starts, so every thread inherits the mask
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    def watch() -> None:
        while True:
            info = signal.sigwaitinfo({signal.SIGTERM})
            if info.si_pid == parent or os.getppid() != parent:
                # exit status 0, as torch's own worker handler does: the loader's SIGCHLD handler
                # in the parent treats any other status as a crashed worker
                os._exit(0)

    threading.Thread(target=watch, name="pcseg-sigterm", daemon=True).start()


def seed_worker(worker_id: int, seed: int, rank: int) -> None:
    """Give each worker of each rank its own fixed seed for numpy, random and torch, and keep it
    alive through stop signals aimed at the whole process group (see
    :func:`_ignore_stop_signals_from_others`).

    The dataset draws augmentations from its own (seed, epoch, index) generator;
    this covers any library code that still uses the global generators.
    """
    worker_seed = _derived_seed(seed, rank, worker_id)
    _ignore_stop_signals_from_others()
    np.random.seed(worker_seed % 2**32)
    random.seed(worker_seed)
    torch.manual_seed(worker_seed)


def worker_message(exc: BaseException) -> str:
    """The original message of an exception a DataLoader worker raised: the loader re-raises it
    with the worker's whole traceback as its text, of which the last line is the message."""
    text = str(exc).strip()
    if "Original Traceback" not in text:
        return text
    last = text.splitlines()[-1]
    name = type(exc).__name__
    return last.split(f"{name}: ", 1)[1] if f"{name}: " in last else last


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
