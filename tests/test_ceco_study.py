"""bench/ceco_study.py: the paired CE vs CeCo study, in its tiniest form, and its statistics."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

from pcseg.engine.config import load_config
from tests.conftest import REPO

SCRIPT = REPO / "bench" / "ceco_study.py"
TINY = ["--seeds", "1", "--epochs", "1", "--jobs", "1", "data.num_workers=0", "data.grid_size=0.1",
        "data.point_max=4000", "model.preset=tiny", "train.batch_size=2"]


def _module():
    spec = importlib.util.spec_from_file_location("ceco_study", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


study = _module()


def _run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=REPO)


def test_t_quantiles_match_the_tables() -> None:
    assert study.t_quantile_975(1) == pytest.approx(12.706, abs=1e-3)
    assert study.t_quantile_975(2) == pytest.approx(4.303, abs=1e-3)
    assert study.t_quantile_975(4) == pytest.approx(2.776, abs=1e-3)
    assert study.t_quantile_975(30) == pytest.approx(2.042, abs=1e-3)
    # beyond the table: the Cornish-Fisher expansion
    assert study.t_quantile_975(31) == pytest.approx(2.0395, abs=2e-4)
    assert study.t_quantile_975(60) == pytest.approx(2.0003, abs=2e-4)
    assert study.t_quantile_975(120) == pytest.approx(1.9799, abs=2e-4)
    assert study.t_quantile_975(10 ** 6) == pytest.approx(1.95996, abs=1e-4)
    with pytest.raises(ValueError):
        study.t_quantile_975(0)


def test_t_interval_and_paired_differences() -> None:
    lo, hi = study.t_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, n 3
    half = 4.3027 / math.sqrt(3)
    assert (lo, hi) == pytest.approx((2 - half, 2 + half))
    assert study.t_interval([0.5]) is None
    p = study.paired({0: 0.30, 1: 0.20, 2: None}, {0: 0.35, 1: 0.20, 2: 0.5})
    assert p["n"] == 2 and p["per_seed"] == pytest.approx({"0": 0.05, "1": 0.0})
    assert p["mean"] == pytest.approx(0.025) and p["std"] == pytest.approx(math.sqrt(0.00125))
    assert p["ci95"] == pytest.approx([0.025 - 12.7062 * math.sqrt(0.00125) / math.sqrt(2),
                                       0.025 + 12.7062 * math.sqrt(0.00125) / math.sqrt(2)])
    one = study.paired({0: 0.3}, {0: 0.4})
    assert one["mean"] == pytest.approx(0.1) and one["std"] is None and one["ci95"] is None


def test_nc_config_is_the_base_config_with_ceco_enabled() -> None:
    """The study's CeCo arm is the base config with ceco.enabled=true; that is what
    configs/synthetic_nc.yaml is too (nothing else differs but out_dir)."""
    base = load_config(REPO / "configs" / "synthetic_base.yaml", ["ceco.enabled=true"])
    nc = load_config(REPO / "configs" / "synthetic_nc.yaml", [])
    a, b = study.flat(base), study.flat(nc)
    assert [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)] == ["out_dir"]


def test_usage_errors_exit_2(tmp_path) -> None:
    r = _run("--out", str(tmp_path), "--seeds", "0", timeout=60)
    assert r.returncode == 2 and "--seeds" in r.stderr
    r = _run("--out", str(tmp_path), "ceco.enabled=true", timeout=60)
    assert r.returncode == 2 and "ceco.enabled" in r.stderr
    assert not (tmp_path / "data").exists()  # nothing generated on a usage error


def test_study_tiny_end_to_end_and_rerun_reuses(small_caches, tmp_path) -> None:
    out = tmp_path / "study"
    r = _run("--out", str(out), "--data", str(small_caches), *TINY)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ce/seed0" in r.stdout and "ceco/seed0" in r.stdout  # progress per run

    res = json.loads((out / "study.json").read_text())
    assert set(res["arms"]) == {"ce", "ceco"}
    keys = [k for k, *_ in study.METRICS]
    assert res["metrics"] == keys
    assert res["settings"]["arm_difference"] == ["ceco.enabled: False -> True"]
    for arm in ("ce", "ceco"):
        run = res["arms"][arm]["runs"]["0"]
        assert all(k in run for k in keys)
        assert run["miou"] is not None and run["nc1"] is not None
        assert set(res["arms"][arm]["summary"]) == set(keys)
        assert res["arms"][arm]["summary"]["miou"]["std"] is None  # one seed
    for k in keys:
        p = res["paired"][k]
        ce, ceco = res["arms"]["ce"]["runs"]["0"][k], res["arms"]["ceco"]["runs"]["0"][k]
        if ce is None or ceco is None:
            assert p["n"] == 0
            continue
        assert p["n"] == 1 and p["mean"] == pytest.approx(ceco - ce, abs=1e-12)
        assert p["ci95"] is None  # undefined with one seed
    # the evaluation is pcseg.test's, on the val split, per vertex
    metrics = json.loads((out / "runs" / "ce" / "seed0" / "metrics_val.json").read_text())
    assert metrics["split"] == "val" and res["arms"]["ce"]["runs"]["0"]["miou"] == metrics["miou"]

    report = (out / "report.md").read_text()
    assert "| metric | CE mean ± std | CE + CeCo mean ± std | CeCo − CE (paired mean) |" in report
    assert "| mIoU |" in report and "| NC1 (lower = more collapsed) |" in report and "undefined" in report
    assert (out / "iou_diff_vs_frequency.png").stat().st_size > 0 and (out / "nc_metrics.png").stat().st_size > 0

    ckpts = {a: out / "runs" / a / "seed0" / "last.pth" for a in ("ce", "ceco")}
    mtimes = {a: p.stat().st_mtime_ns for a, p in ckpts.items()}
    r2 = _run("--out", str(out), "--data", str(small_caches), *TINY, timeout=120)
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert "0 to run" in r2.stdout and r2.stdout.count("reused") == 2
    assert {a: p.stat().st_mtime_ns for a, p in ckpts.items()} == mtimes
    assert json.loads((out / "study.json").read_text())["paired"]["miou"] == res["paired"]["miou"]

    # other settings on the same folder: an error, not a silent mix of runs
    r3 = _run("--out", str(out), "--data", str(small_caches), *TINY, "optim.lr=0.01", timeout=120)
    assert r3.returncode == 2 and "other settings" in r3.stderr


def test_pairs_needed_inverts_the_t_interval() -> None:
    # sd 1, effect 1: n = 7 is the first with t(n-1)/sqrt(n) < 1 (t(5)=2.571/sqrt6=1.05; t(6)=2.447/sqrt7=0.925)
    assert study.pairs_needed(1.0, 1.0) == 7
    assert study.pairs_needed(1.0, -1.0) == 7
    n = study.pairs_needed(0.02, 0.005)
    assert study.t_quantile_975(n - 1) * 0.02 / math.sqrt(n) < 0.005
    assert study.t_quantile_975(n - 2) * 0.02 / math.sqrt(n - 1) >= 0.005
    assert study.pairs_needed(None, 0.1) is None and study.pairs_needed(0.1, 0.0) is None
    assert study.pairs_needed(0.0, 0.1) == 2
    assert study.pairs_needed(1.0, 1e-6, max_pairs=50) == 50
    assert study.paired({0: 0.3, 1: 0.2, 2: 0.1}, {0: 0.31, 1: 0.22, 2: 0.13})["pairs_to_resolve_observed"] == 4  # mean .02, sd .01
