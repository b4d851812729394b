"""Stops lose nothing: SIGTERM to the whole process group (what scancel and SLURM preemption do),
and a stop on an epoch's last step or on the final step, by signal or by ``train.max_steps``,
resume to the validation records, best.pth and weights of the uninterrupted run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pcseg.engine.checkpoint import load_checkpoint
from pcseg.engine.config import load_config
from pcseg.engine.trainer import StopRequested, Trainer
from pcseg.train import EXIT_STOPPED
from tests.conftest import REPO, tiny_overrides

CFG = REPO / "configs" / "synthetic_base.yaml"
# 5 training scenes at batch 2: 2 steps per epoch; validation after every epoch
COMMON = {"train.epochs": 3, "train.eval_every": 1}
STEPS_PER_EPOCH, TOTAL = 2, 6


def _val_records(run: Path) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["type"] == "val"]


def _same_state(a: Path, b: Path) -> None:
    x, y = load_checkpoint(a), load_checkpoint(b)
    assert (x["step"], x["epochs_done"], x["best_miou"]) == (y["step"], y["epochs_done"], y["best_miou"])
    assert x["model"].keys() == y["model"].keys()
    for k, v in x["model"].items():
        assert torch.equal(v, y["model"][k]), k


class SignalAtStep(Trainer):
    """A trainer that sends itself a real SIGUSR1 right after step ``at`` (as SLURM would)."""

    at = -1

    def train_step(self, batch):
        logs = super().train_step(batch)
        if self.step == self.at:
            os.kill(os.getpid(), signal.SIGUSR1)
        return logs


@pytest.fixture(scope="module")
def uninterrupted(small_caches, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("full")
    Trainer(load_config(CFG, tiny_overrides(small_caches, run, **COMMON))).fit()
    assert load_checkpoint(run / "last.pth")["step"] == TOTAL
    assert [r["epoch"] for r in _val_records(run)] == [1, 2, 3]
    return run


@pytest.mark.parametrize("at", [STEPS_PER_EPOCH, TOTAL], ids=["epoch_end", "final_step"])
def test_signal_on_an_epochs_last_step_keeps_its_validation(at, uninterrupted, small_caches, tmp_path) -> None:
    cfg = load_config(CFG, tiny_overrides(small_caches, tmp_path, **COMMON))
    trainer = SignalAtStep(cfg)
    trainer.at = at
    with pytest.raises(StopRequested):
        trainer.fit()
    saved = load_checkpoint(tmp_path / "last.pth")
    assert saved["step"] == at and saved["epochs_done"] == at // STEPS_PER_EPOCH - 1  # its validation is to come
    Trainer(load_config(CFG, tiny_overrides(small_caches, tmp_path, **COMMON))).fit()
    assert _val_records(tmp_path) == _val_records(uninterrupted)
    _same_state(tmp_path / "best.pth", uninterrupted / "best.pth")
    _same_state(tmp_path / "last.pth", uninterrupted / "last.pth")


def test_max_steps_on_an_epochs_last_step_then_resume(uninterrupted, small_caches, tmp_path) -> None:
    Trainer(load_config(CFG, tiny_overrides(small_caches, tmp_path, **COMMON,
                                            **{"train.max_steps": STEPS_PER_EPOCH}))).fit()
    assert [r["epoch"] for r in _val_records(tmp_path)] == [1]
    Trainer(load_config(CFG, tiny_overrides(small_caches, tmp_path, **COMMON))).fit()
    assert _val_records(tmp_path) == _val_records(uninterrupted)
    _same_state(tmp_path / "best.pth", uninterrupted / "best.pth")
    _same_state(tmp_path / "last.pth", uninterrupted / "last.pth")


def test_records_written_after_the_checkpoint_are_not_repeated(uninterrupted, small_caches, tmp_path) -> None:
    """A crash after a validation record but before last.pth: the resumed run writes it once."""
    run = tmp_path / "run"
    Trainer(load_config(CFG, tiny_overrides(small_caches, run, **COMMON, **{"train.max_steps": 3}))).fit()
    mid = load_checkpoint(run / "last.pth")
    full = (uninterrupted / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(full) + "\n{\"type\": \"tr")  # as if it had run on, then crashed
    assert mid["step"] == 3
    Trainer(load_config(CFG, tiny_overrides(small_caches, run, **COMMON))).fit()
    assert _val_records(run) == _val_records(uninterrupted)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "MASTER_", "RANK", "WORLD_SIZE",
                                                                      "LOCAL_RANK", "TORCHELASTIC"))}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return env


def _train(overrides: list[str], **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pcseg.train", "--cfg", str(CFG), *overrides], env=_env(),
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def test_sigterm_to_the_whole_process_group_with_loader_workers(small_caches, tmp_path) -> None:
    """``kill -TERM -- -PGID`` reaches the DataLoader workers too: the run still finishes its step,
    saves last.pth and exits 75, and the same command then ends at the uninterrupted weights."""
    common = {**COMMON, "train.epochs": 4, "data.num_workers": 1, "data.loop": 4}
    full, part = tmp_path / "full", tmp_path / "part"
    done = _train(tiny_overrides(small_caches, full, **common))
    text, _ = done.communicate(timeout=300)
    assert done.returncode == 0, text[-3000:]
    proc = _train(tiny_overrides(small_caches, part, **common), start_new_session=True)  # setsid
    end = time.monotonic() + 120
    while not (part / "metrics.jsonl").is_file() or '"step": 3' not in (part / "metrics.jsonl").read_text():
        assert proc.poll() is None and time.monotonic() < end, proc.communicate()[0][-3000:]
        time.sleep(0.05)
    workers = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) >= 2, workers  # the main process and its loader worker(s) share the group
    os.killpg(proc.pid, signal.SIGTERM)
    text, _ = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_STOPPED, text[-3000:]
    assert "killed by signal" not in text, text[-3000:]
    stopped = load_checkpoint(part / "last.pth")["step"]
    total = load_checkpoint(full / "last.pth")["step"]
    assert 3 <= stopped < total
    again = _train(tiny_overrides(small_caches, part, **common))
    text, _ = again.communicate(timeout=300)
    assert again.returncode == 0, text[-3000:]
    _same_state(part / "last.pth", full / "last.pth")
    assert _val_records(part) == _val_records(full)


def test_a_scene_with_bad_values_found_in_validation_keeps_the_state(small_caches, tmp_path) -> None:
    """NaN coordinates in a validation scene (headers fine, so training starts) end the run with
    exit 2 and a message naming the scene and file, after last.pth keeps the trained steps; the
    epoch's validation is still to come, so the rerun on fixed data does it."""
    import shutil

    import numpy as np

    data = tmp_path / "caches"
    shutil.copytree(small_caches, data)
    scene = sorted(p for p in (data / "val").iterdir() if p.is_dir())[0]
    coord = np.load(scene / "coord.npy")
    bad = coord.copy()
    bad[5, 1] = np.nan
    np.save(scene / "coord.npy", bad)
    run = tmp_path / "run"
    proc = _train(tiny_overrides(data, run, **COMMON, **{"data.num_workers": 1}))
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, text[-3000:]
    assert scene.name in text and "coord.npy" in text and "Traceback" not in text, text[-3000:]
    saved = load_checkpoint(run / "last.pth")
    assert saved["step"] == STEPS_PER_EPOCH and saved["epochs_done"] == 0
    np.save(scene / "coord.npy", coord)
    again = _train(tiny_overrides(data, run, **COMMON))
    text, _ = again.communicate(timeout=300)
    assert again.returncode == 0, text[-3000:]
    assert [r["epoch"] for r in _val_records(run)] == [1, 2, 3]


def test_a_stop_during_set_up_is_kept_for_the_loop(small_caches, tmp_path, monkeypatch) -> None:
    """SIGTERM while the trainer is being built (data, model): no step runs, last.pth is written,
    exit 75, so SLURM requeues instead of losing the job."""
    from pcseg import train as train_cli

    real_init = Trainer.__init__

    def init_then_signal(self, *args, **kwargs) -> None:
        real_init(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # arrives before the loop installs its handlers

    monkeypatch.setattr(Trainer, "__init__", init_then_signal)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    assert train_cli.main(["--cfg", str(CFG), *tiny_overrides(small_caches, tmp_path, **COMMON)]) == EXIT_STOPPED
    assert load_checkpoint(tmp_path / "last.pth")["step"] == 0
    assert {sig: signal.getsignal(sig) for sig in before} == before  # the caller's handlers are back
