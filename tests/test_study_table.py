"""bench/study_table.py: one README table from several studies' study.json, only when they share CE."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.study_table import table


def _study(folder: Path, weight: float, ce_miou: float, diff: float) -> Path:
    def summary(m: float) -> dict:
        return {k: {"mean": m, "std": 0.01, "n": 3} for k in
                ("miou", "miou_head", "miou_common", "miou_tail", "macc", "maxangle_means", "equiangularity_means")}

    paired = {k: {"mean": diff, "std": 0.004, "n": 3, "ci95": [diff - 0.01, diff + 0.01],
                  "per_seed": {"0": diff, "1": diff + 0.004, "2": diff - 0.004}} for k in summary(0)}
    folder.mkdir()
    (folder / "study.json").write_text(json.dumps({
        "settings": {"ceco_weight": weight}, "arms": {"ce": {"summary": summary(ce_miou)},
                                                      "ceco": {"summary": summary(ce_miou + diff)}},
        "paired": paired}))
    return folder


def test_table_reads_every_number_from_the_studies(tmp_path) -> None:
    a = _study(tmp_path / "a", 0.2, 0.30, -0.015)
    b = _study(tmp_path / "b", 0.8, 0.30, 0.012)
    text = table([a, b], "weight {w:g}")
    assert "weight 0.2: CeCo" in text and "weight 0.8: CeCo" in text
    assert "| mIoU | 30.00 ± 1.00 | 28.50 ± 1.00 | **−1.50** [−2.50, −0.50] | 31.20 ± 1.00 | **+1.20**" in text
    with pytest.raises(SystemExit, match="CE arm"):
        table([a, _study(tmp_path / "c", 0.4, 0.31, 0.0)], "weight {w:g}")
