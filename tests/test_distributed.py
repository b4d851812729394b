"""Scale-out on CPU with gloo: torchrun through launch/train.sh, SLURM-started processes, a rank that
dies, a stop signal mid-run that resumes exactly, and DDP + sync BatchNorm equal to one big batch."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from pcseg.engine.checkpoint import load_checkpoint
from pcseg.engine.distributed import first_host, slurm_environment
from pcseg.train import EXIT_STOPPED
from tests.conftest import REPO, free_port, tiny_overrides

CFG = REPO / "configs" / "synthetic_base.yaml"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "MASTER_", "RANK", "WORLD_SIZE",
                                                                      "LOCAL_RANK", "TORCHELASTIC"))}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), **extra)
    return env


def _spawn(overrides: list[str], world: int, slurm: bool = False, port: int | None = None) -> list[subprocess.Popen]:
    """``world`` real ``python -m pcseg.train`` processes, wired like torchrun or like srun."""
    port = port or free_port()
    procs = []
    for rank in range(world):
        if slurm:  # what srun sets; no MASTER_* and no RANK: pcseg derives them
            env = _env(SLURM_PROCID=str(rank), SLURM_NTASKS=str(world), SLURM_LOCALID=str(rank),
                       SLURM_JOB_NODELIST="localhost", SLURM_JOB_ID=str(port - 15000))
        else:
            env = _env(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, "-m", "pcseg.train", "--cfg", str(CFG), *overrides],
                                      env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    return procs


def _finish(procs: list[subprocess.Popen], timeout: float = 300) -> list[tuple[int, str]]:
    out = []
    for p in procs:
        text, _ = p.communicate(timeout=timeout)
        out.append((p.returncode, text))
    return out


def _records(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


def _wait_for_step(run: Path, step: int, procs: list[subprocess.Popen], timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(r["type"] == "train" and r["step"] >= step for r in _records(run)):
            return
        if any(p.poll() is not None for p in procs):
            raise AssertionError(f"a process ended early: {_finish(procs)}")
        time.sleep(0.05)
    raise AssertionError(f"step {step} not reached in {timeout} s")


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_slurm_node_lists_and_precedence() -> None:
    assert first_host("node[03-05,9],gpu1") == "node03"
    assert first_host("gpu-a100-[12,14]") == "gpu-a100-12"
    assert first_host("login7") == "login7"
    assert first_host("n[1-2],m3") == "n1"
    env = {"SLURM_PROCID": "3", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_JOB_NODELIST": "c[10-11]",
           "SLURM_JOB_ID": "123456"}
    got = slurm_environment(env)
    assert got == {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "c10",
                   "MASTER_PORT": str(15000 + 123456 % 20000)}
    assert slurm_environment({**env, "RANK": "0", "WORLD_SIZE": "2"}) == {}  # torchrun's variables win
    given = slurm_environment({**env, "MASTER_ADDR": "h", "MASTER_PORT": "1"})
    assert "MASTER_ADDR" not in given and "MASTER_PORT" not in given


def test_launch_train_sh_two_processes(small_caches, tmp_path) -> None:
    run = tmp_path / "run"
    env = _env(NPROC="2", PYTHON=sys.executable)
    res = subprocess.run(["bash", str(REPO / "launch" / "train.sh"), str(CFG),
                          *tiny_overrides(small_caches, run, **{"train.epochs": 2})],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ckpt = load_checkpoint(run / "last.pth")
    assert ckpt["step"] == 4 and len(ckpt["rng"]) == 2  # 2 epochs x 2 steps, two processes
    assert [r["epoch"] for r in _records(run) if r["type"] == "val"] == [1, 2]
    assert (run / "best.pth").is_file()


def test_slurm_started_processes_train_together(small_caches, tmp_path) -> None:
    run = tmp_path / "run"
    procs = _spawn(tiny_overrides(small_caches, run, **{"train.epochs": 1, "train.eval_every": 0}), 2, slurm=True)
    results = _finish(procs)
    assert [c for c, _ in results] == [0, 0], results
    assert len(load_checkpoint(run / "last.pth")["rng"]) == 2  # one process group of two


def test_a_dead_rank_stops_the_other_in_time(small_caches, tmp_path) -> None:
    run = tmp_path / "run"
    timeout_s = 20
    procs = _spawn(tiny_overrides(small_caches, run, **{"train.epochs": 500, "train.eval_every": 0,
                                                        "dist.timeout_s": timeout_s}), 2)
    _wait_for_step(run, 2, procs)
    killed = time.monotonic()
    procs[1].kill()  # SIGKILL: no goodbye
    code, text = _finish([procs[0]], timeout=timeout_s + 60)[0]
    elapsed = time.monotonic() - killed
    assert code != 0 and elapsed < timeout_s + 30, (code, elapsed, text[-2000:])
    assert "lost the others" in text, text[-2000:]


def test_stop_signal_mid_run_resumes_to_the_same_weights(small_caches, tmp_path) -> None:
    common = {"train.epochs": 3, "train.eval_every": 2, "data.loop": 4}
    full = tmp_path / "full"
    assert [c for c, _ in _finish(_spawn(tiny_overrides(small_caches, full, **common), 2))] == [0, 0]
    part = tmp_path / "part"
    procs = _spawn(tiny_overrides(small_caches, part, **common), 2)
    _wait_for_step(part, 3, procs)
    for p in procs:  # SLURM's USR1 reaches every task of the step
        p.send_signal(signal.SIGUSR1)
    results = _finish(procs)
    assert [c for c, _ in results] == [EXIT_STOPPED] * 2, results
    total = load_checkpoint(full / "last.pth")["step"]
    stopped_at = load_checkpoint(part / "last.pth")["step"]
    assert 3 <= stopped_at < total - 2  # mid-run, before the end
    # the same command again continues from last.pth on its own
    assert [c for c, _ in _finish(_spawn(tiny_overrides(small_caches, part, **common), 2))] == [0, 0]
    a, b = _weights(full / "last.pth"), _weights(part / "last.pth")
    assert load_checkpoint(part / "last.pth")["step"] == total
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_ddp_with_sync_bn_equals_one_process_with_the_whole_batch(small_caches, tmp_path) -> None:
    """2 processes at batch 1 (sync BatchNorm, loss normalised over the global batch) train to the
    weights of 1 process at batch 2: same scenes per step, same augmentations. Without sync
    BatchNorm they do not, which shows the comparison can fail. (float32 rounding differs
    between the two layouts and BatchNorm over the few voxels of the coarse levels amplifies
    it, so the learning rate is kept small enough for a 1e-4 bound over 8 steps.)"""
    common = {"train.epochs": 2, "train.eval_every": 0, "data.loop": 2, "data.grid_size": 0.05,
              "optim.name": "sgd", "optim.lr": 0.005, "optim.momentum": 0.0, "sched.name": "constant",
              "train.batch_size": 2}

    def run(name: str, world: int, **extra: object) -> dict:
        out = tmp_path / name
        assert [c for c, _ in _finish(_spawn(tiny_overrides(small_caches, out, **common, **extra), world))] == [0] * world
        return load_checkpoint(out / "last.pth")

    def worst(a: dict, b: dict) -> float:
        return max((a["model"][k].float() - b["model"][k].float()).abs().max().item()
                   for k in a["model"] if a["model"][k].is_floating_point())

    one = run("one", 1)
    two = run("two", 2, **{"train.sync_bn": "true"})
    assert one["step"] == two["step"] == 8  # 2 epochs x (4 scenes x loop 2) / batch 2
    assert worst(one, two) <= 1e-4, worst(one, two)
    unsynced = run("unsynced", 2)
    assert worst(one, unsynced) > 3e-4
