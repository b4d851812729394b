"""Collectives the lower layers need (evaluation metrics, neural-collapse statistics), each a
no-op without a process group.

They live below :mod:`pcseg.engine` so that ``pcseg.eval`` and ``pcseg.nc`` can sum over
ranks without importing the engine; :mod:`pcseg.engine.distributed` (process-group set-up,
rank bookkeeping) re-exports them for engine code.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["all_reduce_sum_array", "distributed_ready", "multi_process"]


def distributed_ready() -> bool:
    """True when a process group is up, i.e. when a global reduction is possible."""
    return dist.is_available() and dist.is_initialized()


def multi_process() -> bool:
    """True when a process group with more than one rank is up: only then is a collective needed."""
    return distributed_ready() and dist.get_world_size() > 1


def all_reduce_sum_array(array: np.ndarray) -> np.ndarray:
    """Sum a numpy array over ranks, on the device the backend serves (NCCL: CUDA only)."""
    if not multi_process():
        return array
    where = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.from_numpy(np.ascontiguousarray(array)).to(where)
    dist.all_reduce(t)
    return t.cpu().numpy()
