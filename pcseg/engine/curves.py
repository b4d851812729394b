"""Learning curves from ``metrics.jsonl``: training loss and validation mIoU against step.

Comparing runs by their last number hides whether one is still climbing; the curves show it.
Reads the run folders the trainer writes, so any finished or interrupted run can be plotted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from pcseg.engine.logger import read_metrics
from pcseg.utils.atomic import save_png


def read_curves(run_dir: Path | str) -> dict[str, np.ndarray]:
    """``train_step``/``loss`` (the logged training loss, CeCo term included when enabled),
    ``val_step``/``miou`` (validation mIoU in %) from a run's ``metrics.jsonl``.

    A resumed run appends to the same file; a step logged twice keeps its last value.
    """
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics.jsonl; is {run_dir} a training run folder?")
    train: dict[int, float] = {}
    val: dict[int, float] = {}
    for rec in read_metrics(path):
        if rec.get("type") == "train" and "loss" in rec:
            train[int(rec["step"])] = float(rec["loss"])
        elif rec.get("type") == "val" and rec.get("miou") is not None:
            val[int(rec["step"])] = 100.0 * float(rec["miou"])
    ts, vs = sorted(train), sorted(val)
    return {"train_step": np.array(ts, dtype=np.int64), "loss": np.array([train[s] for s in ts]),
            "val_step": np.array(vs, dtype=np.int64), "miou": np.array([val[s] for s in vs])}


def plot_learning_curves(runs: Mapping[str, Path | str], path: Path | str) -> Path:
    """One figure, two panels (training loss, validation mIoU) with one line per run."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.0, 3.8))
    ax_loss, ax_miou = fig.subplots(1, 2)
    for label, run_dir in runs.items():
        c = read_curves(run_dir)
        ax_loss.plot(c["train_step"], c["loss"], label=label, linewidth=1.2)
        ax_miou.plot(c["val_step"], c["miou"], marker="o", markersize=3, label=label, linewidth=1.2)
    ax_loss.set(xlabel="step", ylabel="training loss", title="training loss")
    ax_miou.set(xlabel="step", ylabel="val mIoU (%)", title="validation mIoU")
    for ax in (ax_loss, ax_miou):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_png(fig, path, dpi=110)
