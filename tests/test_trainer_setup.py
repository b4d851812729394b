"""A run the trainer refuses leaves no trace: every check (config values that only the data can
judge, checkpoints to start from) comes before out_dir, train.log or config.yaml is created."""
from __future__ import annotations

import pytest

from pcseg import train as train_cli
from tests.conftest import REPO, tiny_overrides

CFG = REPO / "configs" / "synthetic_base.yaml"


@pytest.mark.parametrize("extra, says", [
    ({"train.batch_size": 64}, "no full batch"),
    ({"train.init_from": "nowhere.pth"}, "nowhere.pth"),
    ({"model.in_channels": 4}, "in_channels"),
], ids=["batch_larger_than_the_data", "missing_init_from", "feature_width"])
def test_refused_run_creates_nothing(extra, says, small_caches, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert train_cli.main(["--cfg", str(CFG), *tiny_overrides(small_caches, out, **extra)]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err, err
    assert not out.exists(), sorted(p.name for p in out.iterdir())
