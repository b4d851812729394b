"""Study: imbalance remedies against plain cross-entropy, over several seeds, paired, in one table.

Every arm is the same config (the demo's setting by default) with one method switched on;
every arm trains on the same data with the same seeds as the ``ce`` arm, and its final weights
(``last.pth``) are evaluated on the validation split by the benchmark protocol (every mesh
vertex, ``pcseg.test``) and analysed for neural collapse (``pcseg.analyze``). The report gives
per arm mean ± std and the paired difference arm − CE (same seed) with its 95 % t-interval,
and the per-class IoU difference against training frequency. Writes ``OUT/report.md`` (tables,
plots) and ``OUT/study.json``.

    python bench/imbalance_study.py [--out runs/imbalance] [--arms ce focal la ...] [--seeds 3]
                                    [--ceco-weight W] [--jobs J] [key=value ...]

Arms (``--arms``, default all but the CeCo ablations; ``ce`` is always run):
  ce            cross-entropy (the baseline every arm is paired with)
  weighted      class-weighted CE, 1/sqrt(frequency)          loss.class_weights=inverse_sqrt
  lovasz        CE + Lovasz-softmax (Berman et al. 2018)       loss.lovasz_weight=1
  focal         focal loss, gamma 2 (Lin et al. 2017)         loss.focal_gamma=2
  la            logit adjustment, tau 1 (Menon et al. 2021)    loss.logit_adjust=1
  rr            region rebalance (Zhong et al. 2022)           rr.enabled=true
  ceco          CeCo as released (Zhong et al. 2023)           ceco.enabled=true
  ceco_learned  pcseg's earlier CeCo head                      + ceco.variant=learned
  ceco_noprior  ablation: official CeCo without the prior      + ceco.prior=none
  ceco_trainable ablation: official CeCo, trainable projection + ceco.trainable_projection=true

Without ``--data`` it generates synthetic scenes in the ScanNet release format and converts
them (``OUT/data``, reused on a rerun). Every run lives in ``OUT/runs/<arm>/seed<s>`` and is
trained in its own process (log: ``study_run.log`` there). A rerun reuses finished runs and
continues interrupted ones from ``last.pth`` (runs of other settings in the folder are an
error); Ctrl-C stops the runs at their next step with ``last.pth`` saved. Runs go arm by arm in
the order given. Exit codes: 0 done, 1 a run failed, 2 a usage error, 130 interrupted.

CPU cost in the demo's setting: ~9 min per run, two runs side by side on two cores.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pcseg.experiments.jobs import Job, log_tail, run_jobs  # noqa: E402
from pcseg.experiments.report import (METRICS, arms_table, fmt_value, plot_iou_difference, plot_nc,  # noqa: E402
                                      summarize_study)
from pcseg.experiments.worker import finished  # noqa: E402
from pcseg.utils.atomic import atomic_write_text  # noqa: E402
from pcseg.utils.cpu import usable_cores  # noqa: E402


@dataclass(frozen=True)
class Arm:
    """A method: the overrides that switch it on over the base config, and where it comes from."""

    name: str
    label: str
    overrides: tuple[str, ...]
    source: str


ARMS = {a.name: a for a in (
    Arm("ce", "CE", (), "cross-entropy"),
    Arm("weighted", "weighted CE", ("loss.class_weights=inverse_sqrt",), "1/sqrt(class frequency)"),
    Arm("lovasz", "CE + Lovász", ("loss.lovasz_weight=1.0",), "Berman et al. 2018"),
    Arm("focal", "focal", ("loss.focal_gamma=2.0",), "Lin et al. 2017"),
    Arm("la", "logit adjustment", ("loss.logit_adjust=1.0",), "Menon et al. 2021; Ren et al. 2020"),
    Arm("rr", "RR", ("rr.enabled=true",), "Zhong et al. 2022, UPerHead_cecol as released"),
    Arm("ceco", "CeCo", ("ceco.enabled=true",), "Zhong et al. 2023, UPerHead_ceco as released"),
    Arm("ceco_learned", "CeCo (learned)", ("ceco.enabled=true", "ceco.variant=learned"), "pcseg's earlier head"),
    Arm("ceco_noprior", "CeCo, no prior", ("ceco.enabled=true", "ceco.prior=none"), "ablation"),
    Arm("ceco_trainable", "CeCo, trainable proj.", ("ceco.enabled=true", "ceco.trainable_projection=true"),
        "ablation"),
)}
DEFAULT_ARMS = ("ce", "weighted", "lovasz", "focal", "la", "rr", "ceco", "ceco_learned")
MODEL_CFGS = {"spunet": REPO / "configs" / "synthetic_base.yaml", "ptv3": REPO / "configs" / "synthetic_ptv3.yaml"}
# Keys the study sets itself; an override of one of them is a usage error.
STUDY_KEYS = ("seed", "out_dir", "data.root")
USE_OPTION = {"train.epochs": "--epochs", "ceco.weight": "--ceco-weight", "train.device": "--device"}


class UsageError(Exception):
    """A problem with the command line or the output folder: exit code 2."""


@dataclass
class Run:
    arm: str
    seed: int
    dir: Path
    cfg_path: Path
    overrides: list[str]

    @property
    def name(self) -> str:
        return f"{self.arm}/seed{self.seed}"


# ---------------------------------------------------------------------------- command line
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python bench/imbalance_study.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/imbalance"), help="output folder (default runs/imbalance)")
    p.add_argument("--arms", nargs="+", default=list(DEFAULT_ARMS), metavar="ARM",
                   help=f"arms to run, of {', '.join(ARMS)} (default: {' '.join(DEFAULT_ARMS)}); ce is always added")
    p.add_argument("--data", type=Path, default=None,
                   help="existing caches (data_prep output); default: synthetic scenes generated into OUT/data")
    p.add_argument("--scenes", type=int, default=None, help="synthetic scenes to generate (default 24)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the generated scenes (default 0)")
    p.add_argument("--model", choices=sorted(MODEL_CFGS), default="spunet",
                   help="spunet: configs/synthetic_base.yaml, ptv3: configs/synthetic_ptv3.yaml")
    p.add_argument("--cfg", type=Path, default=None, help="base config instead of --model's")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per arm (default 3)")
    p.add_argument("--epochs", type=int, default=None, help="train.epochs (default: the config's)")
    p.add_argument("--ceco-weight", type=float, default=None, help="ceco.weight (default: the config's, 0.4)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--jobs", type=int, default=0,
                   help="runs in parallel (default: 1 on a GPU; on the CPU usable cores / threads per run)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per run (default: $OMP_NUM_THREADS, else cores / jobs)")
    p.add_argument("overrides", nargs="*", help="key=value config overrides for every arm, e.g. train.batch_size=4")
    return p.parse_intermixed_args(argv)


def check_args(args: argparse.Namespace) -> None:
    unknown = [a for a in args.arms if a not in ARMS]
    if unknown:
        raise UsageError(f"unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")
    args.arms = ["ce"] + [a for a in dict.fromkeys(args.arms) if a != "ce"]
    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    if args.ceco_weight is not None and not (args.ceco_weight > 0 and math.isfinite(args.ceco_weight)):
        raise UsageError(f"--ceco-weight must be a positive number, got {args.ceco_weight}")
    if args.jobs < 0:
        raise UsageError(f"--jobs must be >= 1 (0 = automatic), got {args.jobs}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    if args.scenes is not None:
        if args.data is not None:
            raise UsageError("--scenes sets the number of generated scenes; it has no meaning with --data")
        if args.scenes < 3:
            raise UsageError(f"--scenes must be >= 3 (train, val and test splits), got {args.scenes}")
    for o in args.overrides:
        key, eq, _ = o.partition("=")
        if not eq or not key:
            raise UsageError(f"override {o!r} is not key=value (options go before, e.g. --epochs 4)")
        if key in STUDY_KEYS:
            raise UsageError(f"{key} is set by the study itself (--seeds, --out, --data); leave it out")
        if key in USE_OPTION:
            raise UsageError(f"use {USE_OPTION[key]} instead of {key}=")
        if any(key == a.split("=")[0] for arm in ARMS.values() for a in arm.overrides):
            raise UsageError(f"{key} is what an arm sets (see --help); leave it out")
    if args.cfg is not None and not args.cfg.is_file():
        raise UsageError(f"config {args.cfg} not found")


def device_name(name: str) -> str:
    from pcseg.utils.device import resolve_device

    try:
        return resolve_device(name, "--device").type
    except RuntimeError as exc:
        raise UsageError(str(exc)) from None


# ---------------------------------------------------------------------------- data
def prepare_data(args: argparse.Namespace) -> Path:
    """The caches to train on: --data as given (checked), else synthetic scenes in OUT/data."""
    if args.data is not None:
        root = args.data
        if not root.is_dir():
            raise UsageError(f"--data {root} is not a folder")
        for split in ("train", "val"):
            if not any((root / split).glob("*/coord.npy")):
                raise UsageError(f"--data {root} has no {split} scenes ({root / split}/<scene>/coord.npy); "
                                 "convert a release with data_prep/scannet200.py first")
        return root
    from pcseg.experiments.synthetic_data import SyntheticDataError, synthetic_caches

    try:
        return synthetic_caches(args.out / "data" / "raw", args.out / "data" / "caches", args.scenes or 24,
                                args.data_seed)
    except SyntheticDataError as exc:
        raise UsageError(str(exc)) from None


def class_counts(root: Path, split: str, label_set: str, num_classes: int) -> np.ndarray:
    """Labelled points per class in a split's caches (ignore label -1 left out)."""
    from pcseg.data.dataset import SceneCacheDataset

    ds = SceneCacheDataset(root, split, label_set=label_set)
    counts = np.zeros(num_classes, dtype=np.int64)
    for i in range(len(ds)):
        seg = np.asarray(ds.load_scene(i)["segment"]).astype(np.int64)
        counts += np.bincount(seg[seg >= 0], minlength=num_classes)[:num_classes]
    return counts


def train_frequency(root: Path, label_set: str, num_classes: int) -> np.ndarray:
    from pcseg.data.manifest import read_manifest

    manifest = read_manifest(root)
    if manifest is not None:
        return np.asarray(manifest["class_histogram"][label_set]["counts"], dtype=np.int64)
    return class_counts(root, "train", label_set, num_classes)


# ---------------------------------------------------------------------------- configs and runs
def arm_overrides(args: argparse.Namespace, device: str, data: Path, arm: str, seed: int, run_dir: Path) -> list[str]:
    ov = [f"data.root={data}", f"out_dir={run_dir}", f"seed={seed}", f"train.device={device}",
          "train.eval_every=0", "train.progress=false", "wandb.mode=disabled"]
    if args.epochs is not None:
        ov.append(f"train.epochs={args.epochs}")
    if args.ceco_weight is not None:
        ov.append(f"ceco.weight={args.ceco_weight}")  # every arm: inert where CeCo is off
    ov += list(args.overrides)  # the user's last (may turn validation during training back on)
    return ov + list(ARMS[arm].overrides)


def arm_difference(base: Any, cfg: Any) -> list[str]:
    """The dotted keys (but out_dir and seed) whose values differ between two configs."""
    from pcseg.engine.config import flatten_config

    a, b = flatten_config(base), flatten_config(cfg)
    return [k for k in sorted(set(a) | set(b)) if k not in ("out_dir", "seed") and a.get(k) != b.get(k)]


def check_reusable(run_dir: Path, cfg: Any) -> None:
    """A run folder with results or a checkpoint must belong to the same settings."""
    from omegaconf import OmegaConf

    from pcseg.engine.config import resume_differences

    saved = run_dir / "config.yaml"
    if not saved.is_file() or not ((run_dir / "last.pth").is_file() or (run_dir / "run.json").is_file()):
        return
    diffs = resume_differences(OmegaConf.to_container(OmegaConf.load(saved), resolve=True), cfg)
    if diffs:
        raise UsageError(f"{run_dir} holds a run with other settings:\n  " + "\n  ".join(diffs[:10])
                         + "\nuse another --out, or the options it was run with")


def plan(args: argparse.Namespace, device: str, base_cfg: Path, data: Path) -> tuple[list[Run], dict[str, Any]]:
    """Every run (arm-major, in --arms order) and one config per arm; each arm's config must differ
    from CE's exactly in the keys its overrides set."""
    from pcseg.engine.config import ConfigError, load_config

    runs, cfgs = [], {}
    for arm in args.arms:
        for seed in range(args.seeds):
            run_dir = (args.out / "runs" / arm / f"seed{seed}").resolve()
            ov = arm_overrides(args, device, data.resolve(), arm, seed, run_dir)
            try:
                cfg = load_config(base_cfg, ov)
            except ConfigError as exc:
                raise UsageError(f"arm {arm}: {exc}") from None
            cfgs.setdefault(arm, cfg)
            check_reusable(run_dir, cfg)
            runs.append(Run(arm, seed, run_dir, base_cfg.resolve(), ov))
    for arm in args.arms[1:]:
        keys = {o.split("=")[0] for o in ARMS[arm].overrides}
        diff = set(arm_difference(cfgs["ce"], cfgs[arm]))
        if not diff or not diff <= keys:
            raise UsageError(f"arm {arm} must differ from ce in {sorted(keys)} only; it differs in {sorted(diff)} "
                             "(an override of yours may set the same thing)")
    return runs, cfgs


def run_summary(run: Run) -> dict[str, Any]:
    seg = json.loads((run.dir / "metrics_val.json").read_text())
    nc = json.loads((run.dir / "nc_val" / "nc_metrics.json").read_text())["nc"]
    info = json.loads((run.dir / "run.json").read_text())
    out: dict[str, Any] = {}
    for m in METRICS:
        v = (seg if m.source == "seg" else nc).get(m.key)
        out[m.key] = None if v is None else float(v)
    out["allacc"] = seg.get("allacc")
    out["per_class"] = seg["per_class"]
    out["train_minutes"] = info.get("seconds", 0.0) / 60
    out["dir"] = str(run.dir)
    return out


def fmt_run(r: dict[str, Any]) -> str:
    def pc(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    nc1 = "-" if r["nc1"] is None else f"{r['nc1']:.3g}"
    return (f"mIoU {pc(r['miou'])} (head {pc(r['miou_head'])} common {pc(r['miou_common'])} tail "
            f"{pc(r['miou_tail'])}), mAcc {pc(r['macc'])}, NC1 {nc1}")


def last_step(run: Run) -> str:
    from pcseg.engine.logger import read_metrics

    path = run.dir / "metrics.jsonl"
    recs = [r for r in read_metrics(path) if r.get("type") == "train"] if path.is_file() else []
    return f"step {recs[-1]['step']} (epoch {recs[-1]['epoch'] + 1})" if recs else "starting"


def execute(runs: list[Run], jobs: int, threads: int) -> list[Run]:
    """Run the pending runs, ``jobs`` at a time; the failed ones. Ctrl-C/SIGTERM stop them cleanly."""
    failed: list[Run] = []
    by_name = {r.name: r for r in runs}
    total, done = len(runs), [0]
    t0 = time.perf_counter()

    def spec_job(r: Run) -> Job:
        r.dir.mkdir(parents=True, exist_ok=True)
        spec = {"arm": r.arm, "seed": r.seed, "run_dir": str(r.dir), "cfg": str(r.cfg_path),
                "overrides": r.overrides, "threads": threads}
        atomic_write_text(r.dir / "study_spec.json", json.dumps(spec, indent=1))
        return Job(r.name, [sys.executable, "-m", "pcseg.experiments.worker", str(r.dir / "study_spec.json")],
                   r.dir / "study_run.log", REPO)

    def on_exit(job: Job, code: int) -> None:
        r = by_name[job.name]
        done[0] += 1
        if code == 0 and finished(r.dir):
            info = json.loads((r.dir / "run.json").read_text())
            cont = f", continued from step {info['resumed_from_step']}" if info["resumed_from_step"] else ""
            print(f"[study] [{done[0]}/{total}] {r.name} trained in {info['seconds'] / 60:.1f} min{cont}: "
                  f"{fmt_run(run_summary(r))}", flush=True)
        else:
            failed.append(r)
            print(f"[study] [{done[0]}/{total}] {r.name} FAILED (exit {code}); last lines of {job.log}:"
                  + log_tail(job.log), flush=True)

    def on_tick(active: list[Job]) -> None:
        busy = ", ".join(f"{j.name} {last_step(by_name[j.name])}" for j in active)
        print(f"[study] {time.perf_counter() - t0:.0f} s: running {busy}", flush=True)

    try:
        run_jobs([spec_job(r) for r in runs], jobs, threads, on_exit, on_tick, tick_s=60)
    except KeyboardInterrupt:
        print("\n[study] stopped: the runs saved last.pth at their last step; rerun the same command to continue",
              flush=True)
        raise
    return failed


# ---------------------------------------------------------------------------- report
def write_outputs(args: argparse.Namespace, runs: list[Run], cfgs: dict[str, Any], data: Path, device: str,
                  base_cfg: Path, minutes: float) -> dict[str, Any]:
    from pcseg.data.classes import table as class_table
    from pcseg.data.dataset import SceneCacheDataset
    from pcseg.utils.atomic import atomic_write_text

    cfg = cfgs["ce"]
    table = class_table(cfg.data.label_set)
    freq = train_frequency(data, cfg.data.label_set, table.num_classes)
    val_counts = class_counts(data, cfg.data.val_split, cfg.data.label_set, table.num_classes)
    by_arm: dict[str, dict[int, dict[str, Any]]] = {a: {} for a in args.arms}
    for r in runs:
        by_arm[r.arm][r.seed] = run_summary(r)
    arms = summarize_study(by_arm)
    labels = {a: ARMS[a].label for a in args.arms}
    settings = {
        "config": str(base_cfg), "model": cfg.model.name, "epochs": int(cfg.train.epochs), "seeds": args.seeds,
        "ceco_weight": float(cfg.ceco.weight), "device": device, "data": str(data),
        "train_scenes": len(SceneCacheDataset(data, cfg.data.train_split, label_set=cfg.data.label_set)),
        "val_scenes": len(SceneCacheDataset(data, cfg.data.val_split, label_set=cfg.data.label_set)),
        "classes_in_train": int((freq > 0).sum()), "classes_in_val": int((val_counts > 0).sum()),
        "overrides": list(args.overrides), "evaluated": "last.pth", "minutes_this_invocation": minutes,
        "arm_overrides": {a: list(ARMS[a].overrides) for a in args.arms},
    }
    study = {"settings": settings, "labels": labels, "metrics": [m.key for m in METRICS], "arms": arms,
             "train_frequency": {n: int(c) for n, c in zip(table.names, freq) if c > 0},
             "val_frequency": {n: int(c) for n, c in zip(table.names, val_counts) if c > 0},
             "notes": ["paired = arm − CE on the same seed; ci95 = 95 % t-interval of the mean difference",
                       "segmentation values are fractions (0..1); null = undefined (e.g. no tail class in val)"]}
    args.out.mkdir(parents=True, exist_ok=True)
    n_plotted = plot_iou_difference(args.out / "iou_diff_vs_frequency.png", arms, labels, list(table.names),
                                    list(table.split), freq, val_counts)
    plot_nc(args.out / "nc_metrics.png", arms, labels)
    atomic_write_text(args.out / "study.json", json.dumps(study, indent=1))
    atomic_write_text(args.out / "report.md", report_markdown(study, n_plotted))
    return study


def report_markdown(study: dict[str, Any], n_plotted: int) -> str:
    st, arms, labels = study["settings"], study["arms"], study["labels"]
    seeds = sorted(int(s) for s in arms["ce"]["runs"])
    lines = [
        "# Imbalance study: every arm against CE, paired by seed", "",
        f"Config `{st['config']}` ({st['model']}), {st['epochs']} epochs, seeds {', '.join(map(str, seeds))}, "
        f"CeCo weight {st['ceco_weight']:g}, device {st['device']}; data `{st['data']}` ({st['train_scenes']} train / "
        f"{st['val_scenes']} val scenes, {st['classes_in_train']} classes in training, chance mIoU ~ "
        f"{100 / max(st['classes_in_train'], 1):.1f}). Extra overrides: {' '.join(st['overrides']) or 'none'}.",
        "Each run's final weights (`last.pth`) are evaluated on the validation split: segmentation by the "
        "benchmark protocol (every mesh vertex, `pcseg.test`), neural collapse by `pcseg.analyze`. "
        "Segmentation in points (%); differences are arm − CE on the same seed, mean with its 95 % t-interval.", "",
        arms_table(arms, labels), "",
        "| arm | what it switches on |", "|---|---|",
    ]
    lines += [f"| {labels[a]} | `{' '.join(ov) or '(baseline)'}` |" for a, ov in st["arm_overrides"].items()]
    lines += ["", "## Per run", "", "| run | " + " | ".join(m.label for m in METRICS) + " | train min |",
              "|---" * (len(METRICS) + 2) + "|"]
    for a, arm in arms.items():
        for s, r in arm["runs"].items():
            lines.append(f"| {a} seed {s} | " + " | ".join(fmt_value(r[m.key], m.percent) for m in METRICS)
                         + f" | {r['train_minutes']:.1f} |")
    lines += ["", "## Plots", "",
              f"Per-class IoU difference against training frequency ({n_plotted} classes that occur in training "
              "and in the validation ground truth):", "", "![IoU difference](iou_diff_vs_frequency.png)", "",
              "Neural-collapse metrics per arm:", "", "![NC metrics](nc_metrics.png)", "",
              "Per-run details: `runs/<arm>/seed<s>/metrics_val.json` and `nc_val/report.md`.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main
def parallelism(args: argparse.Namespace, device: str, pending: int) -> tuple[int, int]:
    """(runs at once, threads per run): on a GPU one run; on a CPU one single-threaded run per core."""
    cores = usable_cores()
    env = os.environ.get("OMP_NUM_THREADS", "")
    env_threads = int(env) if env.isdigit() and int(env) > 0 else None
    if args.jobs:
        jobs = args.jobs
    elif device == "cuda":
        jobs = 1
    else:
        jobs = max(1, cores // (args.threads or env_threads or 1))
    jobs = max(1, min(jobs, pending or 1))
    return jobs, args.threads or env_threads or max(1, cores // jobs)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    try:
        check_args(args)
        device = device_name(args.device)
        base_cfg = args.cfg if args.cfg is not None else MODEL_CFGS[args.model]
        data = args.data if args.data is not None else args.out / "data" / "caches"
        runs, cfgs = plan(args, device, base_cfg, data)
        data = prepare_data(args)  # after the configs are known to be valid
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    pending = [r for r in runs if not finished(r.dir)]
    jobs, threads = parallelism(args, device, len(pending))
    c = cfgs["ce"]
    print(f"[study] {len(runs)} runs ({args.seeds} seed(s) x {', '.join(args.arms)}), {c.model.name} from "
          f"{base_cfg.name}, {c.train.epochs} epochs, device {device}; {len(runs) - len(pending)} finished already, "
          f"{len(pending)} to run, {jobs} at a time with {threads} thread(s) each -> {args.out}", flush=True)
    for r in runs:
        if r not in pending:
            print(f"[study] {r.name}: reused ({fmt_run(run_summary(r))})", flush=True)
    try:
        failed = execute(pending, jobs, threads) if pending else []
    except KeyboardInterrupt:
        return 130
    if failed:
        print(f"[study] {len(failed)} run(s) failed: {', '.join(r.name for r in failed)}; fix and rerun "
              "(finished runs are kept)", file=sys.stderr)
        return 1
    study = write_outputs(args, runs, cfgs, data.resolve(), device, base_cfg, (time.perf_counter() - t0) / 60)
    print("\n" + arms_table(study["arms"], study["labels"]), flush=True)
    print(f"\n[study] done in {(time.perf_counter() - t0) / 60:.1f} min; {args.out / 'report.md'}, "
          f"{args.out / 'study.json'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
