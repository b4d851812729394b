"""One run of a study, in its own process: train (or continue), evaluate ``last.pth`` by the
benchmark protocol, analyse its neural collapse, and write ``run.json`` last.

    python -m pcseg.experiments.worker RUN_DIR/study_spec.json

Each stage is skipped when its output exists, so a stopped or failed run continues where it
left off. Exit codes: 0 done, 1 failed, 75 stopped by SIGTERM (``last.pth`` saved).
"""
from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path

from pcseg.utils.atomic import atomic_write_text

# what a finished run leaves, and so what a study reads
RUN_FILES = ("run.json", "metrics_val.json", "nc_val/nc_metrics.json")


def finished(run_dir: Path) -> bool:
    return all((run_dir / f).is_file() for f in RUN_FILES)


def _train(cfg, run_dir: Path) -> int:
    from pcseg.engine.trainer import StopRequested, Trainer

    done = run_dir / "train_done.json"
    if done.is_file():
        return 0
    spent = run_dir / "train_seconds.txt"  # training time of earlier, interrupted invocations
    before = float(spent.read_text()) if spent.is_file() else 0.0
    t0 = time.perf_counter()
    try:
        trainer = Trainer(cfg)
        start = trainer.step
        trainer.fit()
    except StopRequested as exc:
        atomic_write_text(spent, str(before + time.perf_counter() - t0))
        print(f"stopped: {exc}", flush=True)
        return 75
    del trainer
    gc.collect()  # shut the DataLoader workers down before anything else
    atomic_write_text(done, json.dumps({"resumed_from_step": start, "seconds": before + time.perf_counter() - t0}))
    return 0


def run(spec_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    import torch

    torch.set_num_threads(int(spec["threads"]))
    from pcseg import test as test_cli
    from pcseg.analyze import analyze
    from pcseg.engine.config import load_config

    run_dir = Path(spec["run_dir"])
    cfg = load_config(spec["cfg"], spec["overrides"])
    code = _train(cfg, run_dir)
    if code:
        return code
    t1 = time.perf_counter()
    if not (run_dir / "metrics_val.json").is_file():
        code = test_cli.main(["--ckpt", str(run_dir / "last.pth"), "--split", cfg.data.val_split,
                              "--out", str(run_dir), f"data.root={cfg.data.root}", f"train.device={cfg.train.device}",
                              "train.progress=false", f"data.num_workers={cfg.data.num_workers}"])
        if code != 0:
            print(f"pcseg.test failed (exit {code})", flush=True)
            return 1
        gc.collect()
    nc_dir = run_dir / "nc_val"
    if not (nc_dir / "nc_metrics.json").is_file():
        analyze(cfg, run_dir / "last.pth", cfg.data.val_split, nc_dir, progress=False)
        gc.collect()
    info = json.loads((run_dir / "train_done.json").read_text())
    info.update(arm=spec["arm"], seed=spec["seed"], eval_seconds=time.perf_counter() - t1)
    atomic_write_text(run_dir / "run.json", json.dumps(info, indent=1))  # last: it marks the run finished
    return 0


if __name__ == "__main__":
    try:
        code = run(Path(sys.argv[1]))
    except BaseException:  # noqa: BLE001 - reported in the run's log, exit code 1
        import traceback

        traceback.print_exc()
        code = 1
    # Leave without the interpreter's exit handlers: persistent DataLoader workers ignore
    # SIGTERM, so joining them at exit can hang; they see their parent gone and exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
