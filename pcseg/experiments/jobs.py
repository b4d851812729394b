"""Several training processes at once, each in its own session, stopped cleanly on Ctrl-C.

Used by ``python -m pcseg.demo`` and ``bench/imbalance_study.py``. On a CPU, two
single-threaded runs side by side use two cores better than one run with two threads
(sparse convolutions scale poorly across threads), so runs are separate processes with
``OMP_NUM_THREADS`` set. Each runs in its own session, so Ctrl-C reaches only this process,
which then sends SIGTERM to the runs: they save ``last.pth`` at their next step and exit,
and the same command later continues them.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = ["Job", "run_jobs", "log_tail"]


@dataclass
class Job:
    """One process to run: ``command`` in ``cwd``, output appended to ``log``."""

    name: str
    command: list[str]
    log: Path
    cwd: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log, indented, for a failure message."""
    tail = path.read_text(errors="replace").splitlines()[-lines:] if path.is_file() else []
    return "\n    ".join(["", *tail]) if tail else " (no log)"


def _start(job: Job, env: dict[str, str]) -> None:
    job.log.parent.mkdir(parents=True, exist_ok=True)
    with open(job.log, "a") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {job.name}\n")
        log.flush()
        job.proc = subprocess.Popen(job.command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=job.cwd,
                                    start_new_session=True)


def run_jobs(jobs: list[Job], parallel: int, threads: int, on_exit: Callable[[Job, int], None],
             on_tick: Callable[[list[Job]], None] | None = None, tick_s: float = 1.0) -> None:
    """Run ``jobs`` in order, ``parallel`` at a time with ``threads`` threads each.

    ``on_exit(job, code)`` is called as each finishes; ``on_tick(running)`` every ``tick_s``
    seconds while some run. SIGINT or SIGTERM stops launching, sends SIGTERM to the running
    jobs, waits for them (they save) and raises KeyboardInterrupt."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    pending, active = list(jobs), []
    stopping: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        if not stopping:
            for job in active:
                if job.running():
                    try:
                        job.proc.send_signal(signal.SIGTERM)
                    except ProcessLookupError:
                        pass
        stopping.append(signum)

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    last_tick = time.monotonic()
    try:
        while active or (pending and not stopping):
            while pending and not stopping and len(active) < parallel:
                job = pending.pop(0)
                _start(job, env)
                active.append(job)
            time.sleep(0.5)
            for job in [j for j in active if not j.running()]:
                active.remove(job)
                if not stopping:
                    on_exit(job, job.proc.returncode)
            if on_tick is not None and active and time.monotonic() - last_tick >= tick_s:
                last_tick = time.monotonic()
                on_tick(active)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if stopping:
        raise KeyboardInterrupt
