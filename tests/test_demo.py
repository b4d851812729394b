"""``python -m pcseg.demo`` in its tiniest form: both arms trained side by side, analysed, reported."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

TINY = ["--scenes", "6", "--size", "small", "--jobs", "2", "data.grid_size=0.1", "data.point_max=4000",
        "model.preset=tiny", "train.epochs=2", "train.eval_every=1", "train.log_every=1", "data.num_workers=0"]


def _demo(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "pcseg.demo", "--out", str(out), *TINY, *extra],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=400)


def test_demo_trains_both_arms_and_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    r = _demo(out)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for arm in ("base", "ceco"):
        metrics = [json.loads(line) for line in (out / arm / "metrics.jsonl").read_text().splitlines()]
        assert [m["epoch"] for m in metrics if m["type"] == "val"] == [1, 2]  # the learning curve's points
        assert (out / arm / "last.pth").is_file() and (out / arm / "nc_val" / "nc_metrics.json").is_file()
    cfg = json.loads((out / "ceco" / "nc_val" / "nc_metrics.json").read_text())
    assert cfg["segmentation"]["miou"] is not None
    report = (out / "report.md").read_text()
    assert "![learning curves](learning_curves.png)" in report and "| mIoU |" in report
    assert "`ceco.variant=official`" in report  # the report names the CeCo it ran
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    # a second run finds everything in place: nothing is trained again
    mtime = (out / "base" / "last.pth").stat().st_mtime_ns
    r2 = _demo(out)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert (out / "base" / "last.pth").stat().st_mtime_ns == mtime


def test_demo_names_the_log_of_a_failed_run(tmp_path: Path) -> None:
    r = _demo(tmp_path / "demo", "model.in_channels=5")  # the features give 9: the trainer refuses to start
    assert r.returncode == 1
    assert "failed" in r.stderr and "demo_train.log" in r.stderr and "model.in_channels" in r.stderr


def test_demo_rejects_a_bad_override_before_training(tmp_path: Path) -> None:
    r = _demo(tmp_path / "demo", "train.lr=0.1")
    assert r.returncode == 2 and "optim.lr" in r.stderr
    assert not (tmp_path / "demo" / "base").exists()


def test_ctrl_c_stops_both_runs_with_last_pth_saved(tmp_path: Path) -> None:
    import signal
    import time

    out = tmp_path / "demo"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    long = [a if a != "train.epochs=2" else "train.epochs=500" for a in TINY]
    # its own process group, as a shell gives a foreground job: Ctrl-C signals the whole group
    proc = subprocess.Popen([sys.executable, "-m", "pcseg.demo", "--out", str(out), *long], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline and not all((out / a / "metrics.jsonl").is_file() for a in ("base", "ceco")):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    for arm in ("base", "ceco"):
        assert (out / arm / "last.pth").is_file(), err[-2000:]
        assert "stop requested" in (out / arm / "train.log").read_text()


def test_demo_argument_values_are_usage_errors(tmp_path: Path) -> None:
    """Bad values are one argparse message and exit 2, before any scene is generated."""
    from pcseg import demo

    afile = tmp_path / "afile"
    afile.write_text("x")
    for argv in (["--scenes", "0"], ["--scenes", "-2"], ["--size", "bogus"], ["--seed", "-1"], ["--jobs", "0"],
                 ["--jobs", "-1"], ["--out", str(afile)]):
        with pytest.raises(SystemExit) as exc:
            demo.parse_args(argv)
        assert exc.value.code == 2, argv
