"""torch.distributed set-up for torchrun/SLURM launches, and single-process fallbacks.

Everything else asks this module for rank and world size, so the trainer has one code
path for 1 process and for N.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from pcseg.utils.dist import all_reduce_sum_array, distributed_ready, multi_process  # noqa: F401  (re-exported)


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


DEFAULT_TIMEOUT_S = 1800.0
_PORT_BASE, _PORT_SPAN = 15000, 20000


def first_host(nodelist: str) -> str:
    """The first host name of a SLURM node list (``node[03-05,9],gpu1`` -> ``node03``)."""
    nodelist = nodelist.strip()
    m = re.match(r"^([^,\[]+)(?:\[([^\]]+)\])?", nodelist)
    if m is None or not nodelist:
        raise ValueError(f"cannot read a host name from SLURM_JOB_NODELIST={nodelist!r}")
    prefix, ranges = m.group(1), m.group(2)
    if ranges is None:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def slurm_environment(env: dict[str, str]) -> dict[str, str]:
    """torch.distributed variables for a process started by ``srun`` (one task per GPU).

    Rank, world size and local rank come from ``SLURM_PROCID``, ``SLURM_NTASKS`` and
    ``SLURM_LOCALID``; the master is the first host of the allocation and the port is
    derived from the job id, so every task computes the same address. Variables already
    set (by torchrun, or by the user) win.
    """
    if "SLURM_PROCID" not in env or "RANK" in env:
        return {}
    out = {"RANK": env["SLURM_PROCID"], "WORLD_SIZE": env.get("SLURM_NTASKS", "1"),
           "LOCAL_RANK": env.get("SLURM_LOCALID", "0")}
    if "MASTER_ADDR" not in env:
        out["MASTER_ADDR"] = first_host(env.get("SLURM_JOB_NODELIST", env.get("SLURM_NODELIST", "localhost")))
    if "MASTER_PORT" not in env:
        out["MASTER_PORT"] = str(_PORT_BASE + int(env.get("SLURM_JOB_ID", "0")) % _PORT_SPAN)
    return out


def init_distributed(device: str = "auto", timeout_s: float | None = None) -> DistInfo:
    """Join the process group described by torchrun's (or SLURM's) environment, if any.

    ``timeout_s`` bounds how long a collective waits for a rank that died or hangs
    (``dist.timeout_s``); the others then fail instead of waiting forever.
    """
    env = os.environ
    env.update(slurm_environment(dict(env)))
    world = int(env.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(env["RANK"]), int(env.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if use_cuda:
        torch.cuda.set_device(local)
        # a failed or hung NCCL collective aborts the process instead of blocking it
        env.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo",
                                timeout=timedelta(seconds=timeout_s or DEFAULT_TIMEOUT_S))
    return DistInfo(rank, world, local)


def _agree(flag: bool, op: "dist.ReduceOp", device: torch.device | str) -> bool:
    if not multi_process():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=op)
    return bool(t.item() > 0)


def max_over_ranks(value: int, device: torch.device | str = "cpu") -> int:
    """The largest of an integer over ranks (e.g. a signal number, -1 for none)."""
    if not multi_process():
        return value
    t = torch.tensor([float(value)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def all_ranks(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True only if ``flag`` holds on every rank (same answer everywhere)."""
    return _agree(flag, dist.ReduceOp.MIN, device)


def current() -> DistInfo:
    """Rank and world size of the initialised process group (or the single-process defaults)."""
    if distributed_ready():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()


def barrier() -> None:
    if distributed_ready():
        dist.barrier()


def all_reduce_mean(value: float, device: torch.device | str = "cpu") -> float:
    """Mean of a scalar over ranks (for logging only)."""
    if not distributed_ready():
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def is_collective_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says a collective failed because a peer died, closed or timed out."""
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("connection closed by peer", "connection reset", "timed out", "timeout",
                                   "gloo", "nccl", "broken pipe"))


def describe_failure(exc: BaseException) -> str:
    """The first line of a collective error, with the peer rank when the message names one."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    m = re.search(r"rank[ :=]*(\d+)", str(exc), flags=re.IGNORECASE)
    return first[:300] + (f" [peer rank {m.group(1)}]" if m else "")


def cleanup(wait_for_all: bool = False) -> None:
    """Leave the process group. ``wait_for_all`` (after a normal finish) first waits until every
    rank is done, so no rank tears its connections down while another still uses them (rank 0
    writing the last checkpoint, say); after a failure the others may be gone, so it does not."""
    if distributed_ready():
        if wait_for_all:
            dist.barrier()
        dist.destroy_process_group()
