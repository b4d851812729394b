"""torch.distributed set-up for torchrun/SLURM launches, and single-process fallbacks.

Everything else asks this module for rank and world size, so the trainer has one code
path for 1 process and for N.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group described by torchrun's (or SLURM's) environment, if any."""
    env = os.environ
    if "RANK" not in env and "SLURM_PROCID" in env and "MASTER_ADDR" in env:
        env.setdefault("RANK", env["SLURM_PROCID"])
        env.setdefault("WORLD_SIZE", env.get("SLURM_NTASKS", "1"))
        env.setdefault("LOCAL_RANK", env.get("SLURM_LOCALID", "0"))
    world = int(env.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(env["RANK"]), int(env.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(minutes=30))
    return DistInfo(rank, world, local)


def current() -> DistInfo:
    """Rank and world size of the initialised process group (or the single-process defaults)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum_array(array: np.ndarray) -> np.ndarray:
    """Sum a numpy array over ranks, on the device the backend serves (NCCL: CUDA only)."""


    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return array
    where = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.from_numpy(np.ascontiguousarray(array)).to(where)
    dist.all_reduce(t)
    return t.cpu().numpy()


def all_reduce_mean(value: float, device: torch.device | str = "cpu") -> float:
    """Mean of a scalar over ranks (for logging only)."""
    if not (dist.is_available() and dist.is_initialized()):
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
