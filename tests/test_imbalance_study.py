"""bench/imbalance_study.py: the paired study across imbalance methods, in its tiniest form, and the
statistics it reports (pcseg.experiments.stats)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from pcseg.engine.config import flatten_config, load_config
from bench import imbalance_study as study
from pcseg.experiments import stats
from tests.conftest import REPO

SCRIPT = REPO / "bench" / "imbalance_study.py"
TINY = ["--seeds", "1", "--epochs", "1", "--jobs", "1", "data.num_workers=0", "data.grid_size=0.1",
        "data.point_max=4000", "model.preset=tiny", "train.batch_size=2"]




def _run(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=REPO)


def test_t_quantiles_match_the_tables() -> None:
    assert stats.t_quantile_975(1) == pytest.approx(12.706, abs=1e-3)
    assert stats.t_quantile_975(2) == pytest.approx(4.303, abs=1e-3)
    assert stats.t_quantile_975(4) == pytest.approx(2.776, abs=1e-3)
    assert stats.t_quantile_975(30) == pytest.approx(2.042, abs=1e-3)
    # beyond the table: the Cornish-Fisher expansion
    assert stats.t_quantile_975(31) == pytest.approx(2.0395, abs=2e-4)
    assert stats.t_quantile_975(60) == pytest.approx(2.0003, abs=2e-4)
    assert stats.t_quantile_975(120) == pytest.approx(1.9799, abs=2e-4)
    assert stats.t_quantile_975(10 ** 6) == pytest.approx(1.95996, abs=1e-4)
    with pytest.raises(ValueError):
        stats.t_quantile_975(0)


def test_t_interval_and_paired_differences() -> None:
    lo, hi = stats.t_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, n 3
    half = 4.3027 / math.sqrt(3)
    assert (lo, hi) == pytest.approx((2 - half, 2 + half))
    assert stats.t_interval([0.5]) is None
    p = stats.paired({0: 0.30, 1: 0.20, 2: None}, {0: 0.35, 1: 0.20, 2: 0.5})
    assert p["n"] == 2 and p["per_seed"] == pytest.approx({"0": 0.05, "1": 0.0})
    assert p["mean"] == pytest.approx(0.025) and p["std"] == pytest.approx(math.sqrt(0.00125))
    assert p["ci95"] == pytest.approx([0.025 - 12.7062 * math.sqrt(0.00125) / math.sqrt(2),
                                       0.025 + 12.7062 * math.sqrt(0.00125) / math.sqrt(2)])
    one = stats.paired({0: 0.3}, {0: 0.4})
    assert one["mean"] == pytest.approx(0.1) and one["std"] is None and one["ci95"] is None


def test_pairs_needed_inverts_the_t_interval() -> None:
    # sd 1, effect 1: n = 7 is the first with t(n-1)/sqrt(n) < 1 (t(5)=2.571/sqrt6=1.05; t(6)=2.447/sqrt7=0.925)
    assert stats.pairs_needed(1.0, 1.0) == 7
    assert stats.pairs_needed(1.0, -1.0) == 7
    n = stats.pairs_needed(0.02, 0.005)
    assert stats.t_quantile_975(n - 1) * 0.02 / math.sqrt(n) < 0.005
    assert stats.t_quantile_975(n - 2) * 0.02 / math.sqrt(n - 1) >= 0.005
    assert stats.pairs_needed(None, 0.1) is None and stats.pairs_needed(0.1, 0.0) is None
    assert stats.pairs_needed(0.0, 0.1) == 2
    assert stats.pairs_needed(1.0, 1e-6, max_pairs=50) == 50
    assert stats.paired({0: 0.3, 1: 0.2, 2: 0.1}, {0: 0.31, 1: 0.22, 2: 0.13})["pairs_to_resolve_observed"] == 4


def test_nc_config_is_the_base_config_with_ceco_enabled() -> None:
    """The study's CeCo arm is the base config with ceco.enabled=true; that is what
    configs/synthetic_nc.yaml is too (nothing else differs but out_dir)."""
    base = load_config(REPO / "configs" / "synthetic_base.yaml", list(study.ARMS["ceco"].overrides))
    nc = load_config(REPO / "configs" / "synthetic_nc.yaml", [])
    a, b = flatten_config(base), flatten_config(nc)
    assert [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)] == ["out_dir"]


def test_every_arm_differs_from_ce_in_its_own_keys_only(tmp_path) -> None:
    args = study.parse_args(["--out", str(tmp_path), "--arms", *study.ARMS, "--seeds", "1"])
    study.check_args(args)
    runs, cfgs = study.plan(args, "cpu", study.MODEL_CFGS["spunet"], tmp_path / "data")
    assert [r.arm for r in runs] == list(study.ARMS) and args.arms[0] == "ce"
    assert study.arm_difference(cfgs["ce"], cfgs["focal"]) == ["loss.focal_gamma"]
    assert study.arm_difference(cfgs["ce"], cfgs["ceco_learned"]) == ["ceco.enabled", "ceco.variant"]


def test_usage_errors_exit_2(tmp_path) -> None:
    r = _run("--out", str(tmp_path), "--seeds", "0", timeout=60)
    assert r.returncode == 2 and "--seeds" in r.stderr
    r = _run("--out", str(tmp_path), "ceco.enabled=true", timeout=60)
    assert r.returncode == 2 and "ceco.enabled" in r.stderr
    r = _run("--out", str(tmp_path), "--arms", "ce", "mixup", timeout=60)
    assert r.returncode == 2 and "mixup" in r.stderr
    assert not (tmp_path / "data").exists()  # nothing generated on a usage error


def test_study_tiny_end_to_end_and_rerun_reuses(small_caches, tmp_path) -> None:
    out = tmp_path / "study"
    arms = ["focal", "rr"]
    r = _run("--out", str(out), "--data", str(small_caches), "--arms", *arms, *TINY)
    assert r.returncode == 0, r.stdout + r.stderr
    assert all(f"{a}/seed0" in r.stdout for a in ("ce", *arms))  # progress per run

    res = json.loads((out / "study.json").read_text())
    assert list(res["arms"]) == ["ce", *arms]
    keys = [m.key for m in study.METRICS]
    assert res["metrics"] == keys
    for arm in ("ce", *arms):
        run = res["arms"][arm]["runs"]["0"]
        assert all(k in run for k in keys)
        assert run["miou"] is not None and run["nc1"] is not None
        assert res["arms"][arm]["summary"]["miou"]["std"] is None  # one seed
    for arm in arms:
        for k in keys:
            p = res["arms"][arm]["paired"][k]
            ce, other = res["arms"]["ce"]["runs"]["0"][k], res["arms"][arm]["runs"]["0"][k]
            if ce is None or other is None:
                assert p["n"] == 0
                continue
            assert p["n"] == 1 and p["mean"] == pytest.approx(other - ce, abs=1e-12)
            assert p["ci95"] is None  # undefined with one seed
    # the arms really ran their methods
    rr_log = (out / "runs" / "rr" / "seed0" / "metrics.jsonl").read_text()
    assert "loss_rr" in rr_log
    assert load_config(out / "runs" / "focal" / "seed0" / "config.yaml").loss.focal_gamma == 2.0
    # the evaluation is pcseg.test's, on the val split, per vertex
    metrics = json.loads((out / "runs" / "ce" / "seed0" / "metrics_val.json").read_text())
    assert metrics["split"] == "val" and res["arms"]["ce"]["runs"]["0"]["miou"] == metrics["miou"]

    report = (out / "report.md").read_text()
    assert "| CE | " in report and "| focal | " in report and "| RR | " in report
    assert "`loss.focal_gamma=2.0`" in report
    assert (out / "iou_diff_vs_frequency.png").stat().st_size > 0 and (out / "nc_metrics.png").stat().st_size > 0

    ckpts = {a: out / "runs" / a / "seed0" / "last.pth" for a in ("ce", *arms)}
    mtimes = {a: p.stat().st_mtime_ns for a, p in ckpts.items()}
    r2 = _run("--out", str(out), "--data", str(small_caches), "--arms", *arms, *TINY, timeout=120)
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert "0 to run" in r2.stdout and r2.stdout.count("reused") == 3
    assert {a: p.stat().st_mtime_ns for a, p in ckpts.items()} == mtimes
    assert json.loads((out / "study.json").read_text())["arms"]["focal"]["paired"]["miou"] == \
        res["arms"]["focal"]["paired"]["miou"]

    # other settings on the same folder: an error, not a silent mix of runs
    r3 = _run("--out", str(out), "--data", str(small_caches), "--arms", *arms, *TINY, "optim.lr=0.01", timeout=120)
    assert r3.returncode == 2 and "other settings" in r3.stderr


def test_arms_table_pairs_every_arm_with_ce() -> None:
    from pcseg.experiments.report import arms_table, summarize_study

    def run(miou: float) -> dict:
        return {m.key: (miou if m.percent else 0.5) for m in study.METRICS}

    runs = {"ce": {0: run(0.30), 1: run(0.32), 2: run(0.31)},
            "focal": {0: run(0.31), 1: run(0.34), 2: run(0.31)},
            "la": {0: run(0.28), 1: run(0.30), 2: run(0.29)}}
    arms = summarize_study(runs)
    assert arms["focal"]["paired"]["miou"]["per_seed"] == pytest.approx({"0": 0.01, "1": 0.02, "2": 0.0})
    assert "paired" not in arms["ce"]
    lines = arms_table(arms, {"ce": "CE", "focal": "focal", "la": "LA"}).splitlines()
    assert lines[2].startswith("| CE | 31.00 ± 1.00 | (baseline)")
    row = lines[3]
    # bold only where the interval excludes 0: +1.00 [-1.48, +3.48] is not, -2.00 [-2.00, -2.00] is
    assert row.startswith("| focal | 32.00 ± 1.73 | +1.00 [") and "+1.00, +2.00, +0.00" in row
    assert lines[4].startswith("| LA | 29.00 ± 1.00 | **−2.00** [")
    sd = arms["focal"]["paired"]["miou"]["std"]
    assert row.endswith(f"| {stats.pairs_needed(sd, 0.01)} / {stats.pairs_needed(sd, 0.01)} / "
                        f"{stats.pairs_needed(sd, 0.005)} |")
