"""Learning curves read back from a run's metrics.jsonl and drawn for the demo report."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pcseg.engine.curves import plot_learning_curves, read_curves


def _write_run(run: Path, records: list[dict], tail: str = "") -> Path:
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return run


def test_read_curves_orders_steps_and_keeps_the_last_value(tmp_path: Path) -> None:
    recs = [{"type": "train", "step": 5, "loss": 3.0}, {"type": "train", "step": 10, "loss": 2.0},
            {"type": "val", "step": 10, "miou": 0.05},
            # a resumed run logs step 10 again: the later record wins
            {"type": "train", "step": 10, "loss": 1.9}, {"type": "train", "step": 15, "loss": 1.5},
            {"type": "val", "step": 16, "miou": None}, {"type": "val", "step": 20, "miou": 0.125}]
    c = read_curves(_write_run(tmp_path / "r", recs, tail='{"type": "train", "st'))
    assert c["train_step"].tolist() == [5, 10, 15]
    assert c["loss"] == pytest.approx([3.0, 1.9, 1.5])
    assert c["val_step"].tolist() == [10, 20]
    assert c["miou"] == pytest.approx([5.0, 12.5])


def test_read_curves_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        read_curves(tmp_path)
    run = _write_run(tmp_path / "bad", [{"type": "train", "step": 1, "loss": 1.0}], tail="garbage\n{}\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl:2"):
        read_curves(run)


def test_plot_learning_curves_writes_one_png(tmp_path: Path) -> None:
    runs = {}
    for name, slope in (("a", 1.0), ("b", 2.0)):
        recs = [{"type": "train", "step": s, "loss": float(np.exp(-slope * s / 20))} for s in range(5, 41, 5)]
        recs += [{"type": "val", "step": s, "miou": s / 100} for s in (16, 32)]
        runs[name] = _write_run(tmp_path / name, recs)
    out = plot_learning_curves(runs, tmp_path / "curves.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "curves.png"]
