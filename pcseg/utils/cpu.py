"""How many cores this process may use: the affinity mask (what SLURM or taskset grant),
not the machine's count, so parallel runs are sized to what is really there."""
from __future__ import annotations

import os


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
