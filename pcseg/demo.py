"""``python -m pcseg.demo``: the whole pipeline on synthetic ScanNet-format scenes, on a CPU.

Generates scenes in the raw release format, converts them with the real data-preparation
code, trains the small model, validates and prints the metrics. Every stage is skipped
when its output already exists, so a second run only repeats what is missing.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from pcseg.utils.cpu import usable_cores

REPO = Path(__file__).resolve().parent.parent


def _int_at_least(low: int):
    """An argparse type: an integer >= ``low`` (argparse then prints one usage line and exits 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from pcseg.data.synthetic import SIZES

    p = argparse.ArgumentParser(prog="python -m pcseg.demo", description=__doc__)
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--scenes", type=_int_at_least(3), default=24, help="synthetic scenes (>= 3: train, val, test)")
    p.add_argument("--seed", type=_int_at_least(0), default=0)
    p.add_argument("--size", default="default", choices=SIZES, help="synthetic scene size")
    p.add_argument("--cfg", type=Path, default=REPO / "configs" / "synthetic_base.yaml")
    p.add_argument("--jobs", type=_int_at_least(1), default=None,
                   help="runs trained at once (default: 2 when there are 2 or more cores, else 1)")
    p.add_argument("overrides", nargs="*", help="extra training overrides, e.g. train.epochs=5")
    args = p.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        p.error(f"--out {args.out} is a file: pass a folder (it is created if missing)")
    return args


def prepare_data(out: Path, scenes: int, seed: int, size: str) -> Path:
    """Synthetic scenes in ``out/raw`` (generated once), converted into ``out/data``."""
    from pcseg.experiments.synthetic_data import SyntheticDataError, synthetic_caches

    try:
        return synthetic_caches(out / "raw", out / "data", scenes, seed, size, workers=2, tag="[demo]", progress=True)
    except SyntheticDataError as exc:
        raise SystemExit(f"[demo] {exc}") from None


def run_command(cfg_path: Path, data: Path, run_dir: Path, overrides: list[str]) -> list[str]:
    """``python -m pcseg.train`` for one arm: the same command a user would type."""
    return [sys.executable, "-m", "pcseg.train", "--cfg", str(cfg_path), f"data.root={data}", f"out_dir={run_dir}",
            "train.progress=false", *overrides]


def total_steps(cfg_path: Path, data: Path, overrides: list[str]) -> int:
    """Steps the trainer will take (single process): floor(train scenes / batch) x epochs, capped by max_steps."""
    from pcseg.engine.config import load_config

    cfg = load_config(cfg_path, [f"data.root={data}", *overrides])
    from pcseg.data.scene_names import is_scene_name

    scenes = sum(1 for d in (data / "train").iterdir() if is_scene_name(d.name) and (d / "coord.npy").is_file())
    steps = max(scenes // int(cfg.train.batch_size), 1) * int(cfg.train.epochs)
    return min(steps, int(cfg.train.max_steps)) if cfg.train.max_steps is not None else steps


def last_step(run_dir: Path) -> int:
    """The last training step ``metrics.jsonl`` records (0 before the first log line)."""
    from pcseg.engine.curves import read_curves

    if not (run_dir / "metrics.jsonl").is_file():
        return 0
    steps = read_curves(run_dir)["train_step"]  # a line being written right now is skipped
    return int(steps.max()) if len(steps) else 0


def train_runs(runs: dict[str, tuple[Path, Path]], data: Path, overrides: list[str], jobs: int) -> None:
    """Train every arm with ``python -m pcseg.train``, ``jobs`` at a time, one progress bar per arm
    (:func:`pcseg.experiments.jobs.run_jobs`: single-threaded runs side by side, Ctrl-C saves and
    stops them, and the next ``make demo`` continues them). Each run's output goes to
    ``<run>/demo_train.log``; a failed run stops the demo with that log's tail."""
    from tqdm import tqdm

    from pcseg.experiments.jobs import Job, log_tail, run_jobs

    dirs = {label: run_dir for label, (_, run_dir) in runs.items()}
    bars = {label: tqdm(total=total_steps(cfg_path, data, overrides), desc=f"[demo] {label}", unit="step",
                        dynamic_ncols=True) for label, (cfg_path, _) in runs.items()}
    failed: list[str] = []

    def on_tick(active: list[Job]) -> None:
        for job in active:
            bar = bars[job.name]
            bar.n = min(last_step(dirs[job.name]), bar.total)
            bar.refresh()

    def on_exit(job: Job, code: int) -> None:
        on_tick([job])
        bars[job.name].close()
        if code != 0:
            failed.append(job.name)
            print(f"[demo] {job.name} failed (exit {code}); the end of {job.log}:" + log_tail(job.log, 25),
                  file=sys.stderr)

    jobs_list = [Job(label, run_command(cfg_path, data, run_dir, overrides), run_dir / "demo_train.log", REPO)
                 for label, (cfg_path, run_dir) in runs.items()]
    try:
        run_jobs(jobs_list, jobs, max(1, usable_cores() // jobs), on_exit, on_tick, tick_s=1.0)
    finally:
        for bar in bars.values():
            bar.close()
    if failed:
        raise SystemExit(1)


ROWS = (("mIoU", "seg", "miou"), ("mIoU head", "seg", "miou_head"), ("mIoU common", "seg", "miou_common"),
        ("mIoU tail", "seg", "miou_tail"), ("mAcc", "seg", "macc"), ("allAcc", "seg", "allacc"),
        ("NC1 (lower = more collapsed)", "nc", "nc1"),
        ("equiangularity of class means", "nc", "equiangularity_means"),
        ("equiangularity of classifier", "nc", "equiangularity_classifier"),
        ("max-angle of class means", "nc", "maxangle_means"),
        ("max-angle of class means, tail", "nc", "maxangle_means_tail"),
        ("NC3 self-duality", "nc", "nc3"))


def comparison_table(results: dict[str, dict]) -> str:
    """A markdown table of segmentation and neural-collapse numbers, one column per run."""
    names = list(results)
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, part, key in ROWS:
        cells = []
        for n in names:
            v = results[n][part].get(key)
            cells.append("-" if v is None else (f"{100 * v:.1f}" if part == "seg" else f"{v:.3f}"))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ceco_arm(c) -> str:
    """Which CeCo the CeCo arm ran (the variants differ in what defines the method)."""
    what = {"official": "the released center branch (frozen projection, scene prior)",
            "learned": "pcseg's earlier head (trainable projection, no prior)"}[c.variant]
    return (f"CeCo arm: `ceco.variant={c.variant}`, {what}; weight {c.weight:g}"
            + (f", prior {c.prior}" if c.variant == "official" else "") + ".")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from pcseg.analyze import analyze
    from pcseg.engine.config import load_config
    from pcseg.utils.atomic import atomic_write_text

    torch.set_num_threads(min(2, usable_cores()))
    jobs = args.jobs if args.jobs is not None else (2 if usable_cores() >= 2 else 1)
    t0 = time.perf_counter()
    runs = {"baseline (CE)": (args.cfg, args.out / "base"),
            "CeCo (CE + center loss)": (args.cfg.parent / "synthetic_nc.yaml", args.out / "ceco")}
    from pcseg.engine.config import ConfigError

    loaded = {}
    for name, (cfg_path, _) in runs.items():  # a typo in an override fails now, not minutes later
        try:
            loaded[name] = load_config(cfg_path, list(args.overrides))
        except (ConfigError, FileNotFoundError) as exc:
            print(f"[demo] error: {exc}", file=sys.stderr)
            return 2
    data = prepare_data(args.out, args.scenes, args.seed, args.size)
    print(f"\n[demo] training {len(runs)} runs, {jobs} at a time (logs: <run>/demo_train.log)")
    try:
        train_runs(runs, data, args.overrides, jobs)
    except KeyboardInterrupt:
        print("\n[demo] stopped: the runs saved last.pth at their last step; the same command continues them",
              file=sys.stderr)
        return 130
    results: dict[str, dict] = {}
    for label, (cfg_path, run_dir) in runs.items():
        cfg = load_config(cfg_path, [f"data.root={data}", f"out_dir={run_dir}", *args.overrides])
        res = analyze(cfg, run_dir / "last.pth", "val", run_dir / "nc_val", progress=False)
        results[label] = {"seg": res["segmentation"], "nc": res["nc"], "dir": run_dir}
    table = comparison_table(results)
    from pcseg.data.classes import scannet200
    from pcseg.eval.metrics import format_table

    manifest = json.loads((data / "manifest.json").read_text())
    freq = np.array(manifest["class_histogram"]["segment200"]["counts"])
    present = int((freq > 0).sum())
    minutes = (time.perf_counter() - t0) / 60
    for label, r in results.items():
        print(f"\n[demo] {label}, validation scenes (benchmark protocol):")
        print(format_table(r["seg"], scannet200(), frequency=freq, top=25))
    print("\n[demo] side by side (last checkpoints, validation split):\n" + table)
    from pcseg.engine.curves import plot_learning_curves

    plot_learning_curves({label: r["dir"] for label, r in results.items()}, args.out / "learning_curves.png")
    plots = []
    for label, r in results.items():
        rel = r["dir"].name + "/nc_val"
        plots += [f"### {label}", "", f"![cosines]({rel}/cosine_heatmaps.png)", "",
                  f"![IoU vs frequency]({rel}/iou_vs_frequency.png)", ""]
    report = "\n".join([
        "# pcseg demo: baseline vs CeCo on synthetic ScanNet-format scenes", "",
        f"{args.scenes} synthetic scenes (seed {args.seed}), {present} classes in training; "
        f"chance-level mIoU is about {100 / max(present, 1):.1f}. Total time {minutes:.1f} min on this machine.",
        "One short CPU run each: it shows the pipeline learning, not whether CeCo helps. "
        "`python bench/imbalance_study.py` compares CeCo with CE and other imbalance remedies over several seeds, "
        "paired (README, \"The imbalance study\").", "",
        table, "", _ceco_arm(loaded["CeCo (CE + center loss)"].ceco), "",
        "Neural-collapse details per run: `base/nc_val/report.md`, `ceco/nc_val/report.md`.", "",
        "## Learning curves", "", "![learning curves](learning_curves.png)", "",
        "## Pairwise cosines (classes by training frequency) and IoU against frequency", "", *plots])
    atomic_write_text(args.out / "report.md", report)
    print(f"\n[demo] chance level: mIoU ~ {100 / max(present, 1):.1f} ({present} classes in training)")
    print(f"[demo] done in {minutes:.1f} min; report: {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
