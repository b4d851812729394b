"""Study: CE vs CE + CeCo over several seeds on the same synthetic long-tailed data, paired.

Trains the baseline (cross-entropy) and the same config with the CeCo center regularizer
(``ceco.enabled=true``, nothing else changed) for seeds 0..N-1, evaluates the final weights
(``last.pth``) of every run on the validation split by the benchmark protocol (per mesh
vertex, ``pcseg.test``) and with the neural-collapse analysis (``pcseg.analyze``), and
reports per arm mean ± std and the paired difference CeCo − CE (same seed) with a 95 %
t-interval. Writes ``OUT/report.md`` (tables and plots) and ``OUT/study.json``.

    python bench/ceco_study.py [--out runs/study] [--seeds 3] [--epochs E] [--jobs J] [key=value ...]

Without ``--data`` it generates synthetic scenes in the ScanNet release format and converts
them (``OUT/data``, reused on a rerun). Every run lives in ``OUT/runs/<arm>/seed<s>`` and
is trained in its own process (log: ``study_run.log`` there). A rerun reuses finished runs
(their metrics files exist) and continues interrupted ones from ``last.pth``; Ctrl-C stops
the runs at their next step boundary with ``last.pth`` saved. Exit codes: 0 done, 1 a run
failed, 2 a usage error, 130 interrupted.

CPU default (24 scenes: 17 train / 5 val, MinkUNet14A at half width, the demo's setting of
``configs/synthetic_base.yaml``: 30 epochs of one scene per step = 510 steps per run, 6 runs):
about 1.1 s per step on one core, two runs side by side on two cores, so ~10 min per pair of
runs and ~35 min in all (three pairs, evaluation and analysis included).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pcseg.utils.cpu import usable_cores  # noqa: E402

ARMS = ("ce", "ceco")
ARM_LABELS = {"ce": "CE", "ceco": "CE + CeCo"}
MODEL_CFGS = {"spunet": REPO / "configs" / "synthetic_base.yaml", "ptv3": REPO / "configs" / "synthetic_ptv3.yaml"}
# (key, label, source file, percent?)
METRICS = (
    ("miou", "mIoU", "seg", True),
    ("miou_head", "mIoU head", "seg", True),
    ("miou_common", "mIoU common", "seg", True),
    ("miou_tail", "mIoU tail", "seg", True),
    ("macc", "mAcc", "seg", True),
    ("nc1", "NC1 (lower = more collapsed)", "nc", False),
    ("equiangularity_means", "equiangularity, class means", "nc", False),
    ("maxangle_means", "max-angle, class means", "nc", False),
    ("equiangularity_classifier", "equiangularity, classifier", "nc", False),
)
NC_PLOT = ("nc1", "equiangularity_means", "maxangle_means", "equiangularity_classifier")
# Keys the study sets itself; an override of one of them is a usage error.
STUDY_KEYS = ("ceco.enabled", "seed", "out_dir", "data.root")
RUN_FILES = ("run.json", "metrics_val.json", "nc_val/nc_metrics.json")

# Two-sided 95 % quantiles t_{0.975, df} of Student's t, df = 1..30.
T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
        2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
        2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)
Z975 = 1.959963984540054


class UsageError(Exception):
    """A problem with the command line or the output folder: exit code 2."""


# ---------------------------------------------------------------------------- statistics
def t_quantile_975(df: int) -> float:
    """t_{0.975, df}: the table for df <= 30, the Cornish-Fisher expansion beyond (error < 1e-4)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(T975):
        return T975[df - 1]
    z = Z975
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    return z + g1 / df + g2 / df ** 2 + g3 / df ** 3


def t_interval(values: list[float]) -> tuple[float, float] | None:
    """95 % t-interval of the mean of ``values``; None with fewer than two values."""
    n = len(values)
    if n < 2:
        return None
    x = np.asarray(values, dtype=np.float64)
    half = t_quantile_975(n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    m = float(x.mean())
    return m - half, m + half


def pairs_needed(sd: float | None, effect: float | None, max_pairs: int = 10_000) -> int | None:
    """Seed pairs a study needs for the 95 % t-interval of the mean paired difference to exclude 0
    when the true difference is ``effect`` and the per-seed differences spread by ``sd``: the
    smallest n >= 2 with t(0.975, n-1) * sd / sqrt(n) < |effect| (a planning figure: it takes
    the observed sd as the truth). None when undefined (no sd, or no effect); ``max_pairs`` caps it."""
    if sd is None or effect is None or effect == 0 or not math.isfinite(sd):
        return None
    if sd == 0:
        return 2
    for n in range(2, max_pairs + 1):
        if t_quantile_975(n - 1) * sd / math.sqrt(n) < abs(effect):
            return n
    return max_pairs


def describe(values: list[float | None]) -> dict[str, Any]:
    """mean, sample std (None below two values) and n of the defined values."""
    x = [float(v) for v in values if v is not None]
    return {"mean": float(np.mean(x)) if x else None, "std": float(np.std(x, ddof=1)) if len(x) > 1 else None,
            "n": len(x)}


def paired(ce: dict[int, float | None], ceco: dict[int, float | None]) -> dict[str, Any]:
    """CeCo − CE per seed (seeds where both are defined), their mean, std and 95 % t-interval."""
    diffs = {s: ceco[s] - ce[s] for s in sorted(ce) if s in ceco and ce[s] is not None and ceco[s] is not None}
    out = describe(list(diffs.values()))
    ci = t_interval(list(diffs.values()))
    out["ci95"] = None if ci is None else [ci[0], ci[1]]
    out["per_seed"] = {str(s): d for s, d in diffs.items()}
    # how many pairs would resolve a difference of the observed size at the observed spread
    out["pairs_to_resolve_observed"] = pairs_needed(out["std"], out["mean"])
    return out


# ---------------------------------------------------------------------------- command line
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python bench/ceco_study.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/study"), help="output folder (default runs/study)")
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
    p.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help="key=value config overrides for both arms, e.g. train.batch_size=4")
    return p.parse_intermixed_args(argv)


def check_args(args: argparse.Namespace) -> None:
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
            raise UsageError(f"{key} is set by the study itself (arms, --seeds, --out, --data); leave it out")
        if key in ("train.epochs", "ceco.weight", "train.device"):
            raise UsageError(f"use {'--epochs' if key == 'train.epochs' else '--ceco-weight' if key == 'ceco.weight' else '--device'} "
                             f"instead of {key}=")
    if args.cfg is not None and not args.cfg.is_file():
        raise UsageError(f"config {args.cfg} not found")


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is visible to torch (use --device cpu or auto)")
    return name


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
    from pcseg.data.prep import main as prep_main
    from pcseg.data.synthetic import write_release

    scenes = args.scenes or 24
    base = args.out / "data"
    spec = {"scenes": scenes, "seed": args.data_seed, "size": "default"}
    stamp = base / "synthetic.json"
    if stamp.is_file() and json.loads(stamp.read_text()) != spec:
        raise UsageError(f"{base} holds other synthetic data ({stamp.read_text().strip()}), not {spec}: "
                         "use another --out or the same --scenes/--data-seed")
    raw, caches = base / "raw", base / "caches"
    if not (raw / "scannetv2_train.txt").is_file():
        print(f"[study] generating {scenes} synthetic scenes (seed {args.data_seed}) -> {raw}", flush=True)
        base.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(spec))
        write_release(raw, num_scenes=scenes, seed=args.data_seed, size="default", workers=1)
    if not (caches / "manifest.json").is_file():
        print(f"[study] converting -> {caches}", flush=True)
        if prep_main(["--raw", str(raw), "--out", str(caches), "--workers", "1", "--no-progress"]) != 0:
            raise RuntimeError("data preparation failed; see the messages above")
    return caches


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
    from pcseg.engine.trainer import read_manifest

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
        ov.append(f"ceco.weight={args.ceco_weight}")  # both arms: the configs differ in ceco.enabled only
    ov += list(args.overrides)  # the user's last (may turn validation during training back on)
    ov.append(f"ceco.enabled={'true' if arm == 'ceco' else 'false'}")
    return ov


def flat(cfg) -> dict[str, Any]:
    from omegaconf import OmegaConf

    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


def arm_difference(cfgs: dict[str, Any]) -> list[str]:
    """``key: CE -> CeCo`` for every setting (but out_dir) that differs between the two arms."""
    a, b = flat(cfgs["ce"]), flat(cfgs["ceco"])
    return [f"{k}: {a.get(k)} -> {b.get(k)}" for k in sorted(set(a) | set(b))
            if k != "out_dir" and a.get(k) != b.get(k)]


def check_reusable(run_dir: Path, cfg) -> None:
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


def finished(run_dir: Path) -> bool:
    return all((run_dir / f).is_file() for f in RUN_FILES)


def worker(spec_path: Path) -> int:
    """One run, in its own process: train (or continue), evaluate ``last.pth``, analyze, write run.json."""
    import gc

    spec = json.loads(spec_path.read_text())
    import torch

    torch.set_num_threads(int(spec["threads"]))
    from pcseg import test as test_cli
    from pcseg.analyze import analyze
    from pcseg.engine.config import load_config
    from pcseg.engine.trainer import StopRequested, Trainer

    run_dir = Path(spec["run_dir"])
    cfg = load_config(spec["cfg"], spec["overrides"])
    done = run_dir / "train_done.json"
    t0 = time.perf_counter()
    if not done.is_file():
        def train() -> int:
            trainer = Trainer(cfg)
            start = trainer.step
            trainer.fit()
            return start

        spent = run_dir / "train_seconds.txt"  # training time of earlier, interrupted invocations
        before = float(spent.read_text()) if spent.is_file() else 0.0
        try:
            start = train()
        except StopRequested as exc:
            spent.write_text(str(before + time.perf_counter() - t0))
            print(f"stopped: {exc}", flush=True)
            return 75
        gc.collect()  # shut the DataLoader workers down before anything else
        done.write_text(json.dumps({"resumed_from_step": start, "seconds": before + time.perf_counter() - t0}))
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
    info = json.loads(done.read_text())
    info.update(arm=spec["arm"], seed=spec["seed"], eval_seconds=time.perf_counter() - t1)
    (run_dir / "run.json").write_text(json.dumps(info, indent=1))
    return 0


class Run:
    def __init__(self, arm: str, seed: int, run_dir: Path, cfg_path: Path, overrides: list[str]) -> None:
        self.arm, self.seed, self.dir, self.cfg_path, self.overrides = arm, seed, run_dir, cfg_path, overrides
        self.proc: subprocess.Popen | None = None

    @property
    def name(self) -> str:
        return f"{self.arm}/seed{self.seed}"

    def last_step(self) -> str:
        try:
            lines = (self.dir / "metrics.jsonl").read_text().strip().splitlines()
            rec = json.loads(lines[-1])
            return f"step {rec['step']} (epoch {rec['epoch'] + 1})"
        except (OSError, IndexError, ValueError, KeyError):
            return "starting"


def launch(run: Run, threads: int, stopping: list[bool]) -> int:
    """Run ``run`` in a child process (its own session, so Ctrl-C reaches only us); its exit code."""
    if stopping:
        return 130
    run.dir.mkdir(parents=True, exist_ok=True)
    spec = {"arm": run.arm, "seed": run.seed, "run_dir": str(run.dir), "cfg": str(run.cfg_path),
            "overrides": run.overrides, "threads": threads}
    spec_path = run.dir / "study_spec.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    with open(run.dir / "study_run.log", "a") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {run.name}\n")
        log.flush()
        run.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_path)],
                                    stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                    cwd=str(REPO))
        return run.proc.wait()


def run_summary(run: Run) -> dict[str, Any]:
    seg = json.loads((run.dir / "metrics_val.json").read_text())
    nc = json.loads((run.dir / "nc_val" / "nc_metrics.json").read_text())["nc"]
    info = json.loads((run.dir / "run.json").read_text())
    out: dict[str, Any] = {}
    for key, _, src, _ in METRICS:
        v = (seg if src == "seg" else nc).get(key)
        out[key] = None if v is None else float(v)
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


def execute(runs: list[Run], jobs: int, threads: int) -> list[Run]:
    """Run the pending runs, ``jobs`` at a time; the failed ones. Ctrl-C/SIGTERM stop them cleanly."""
    stopping: list[bool] = []
    failed: list[Run] = []

    def stop(signum: int, frame: Any) -> None:
        if not stopping:
            print("\n[study] stopping: the runs save last.pth at their next step; rerun the same command "
                  "to continue", flush=True)
        stopping.append(True)
        for r in runs:
            if r.proc is not None and r.proc.poll() is None:
                try:
                    r.proc.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    total, done_n = len(runs), 0
    t0 = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {}
            for r in runs:
                futures[pool.submit(launch, r, threads, stopping)] = r
            pending = set(futures)
            while pending:
                ready, pending = wait(pending, timeout=60, return_when=FIRST_COMPLETED)
                for f in ready:
                    r = futures[f]
                    code = f.result()
                    done_n += 1
                    if code == 0 and finished(r.dir):
                        info = json.loads((r.dir / "run.json").read_text())
                        cont = f", continued from step {info['resumed_from_step']}" if info["resumed_from_step"] else ""
                        print(f"[study] [{done_n}/{total}] {r.name} trained in {info['seconds'] / 60:.1f} min{cont}: "
                              f"{fmt_run(run_summary(r))}", flush=True)
                    elif not stopping:
                        failed.append(r)
                        log = r.dir / "study_run.log"
                        tail = log.read_text().splitlines()[-15:] if log.is_file() else []
                        print(f"[study] [{done_n}/{total}] {r.name} FAILED (exit {code}); last lines of {log}:\n    "
                              + "\n    ".join(tail), flush=True)
                if pending and not ready:
                    busy = [f"{r.name} {r.last_step()}" for r in runs
                            if r.proc is not None and r.proc.poll() is None]
                    print(f"[study] {time.perf_counter() - t0:.0f} s: running " + ", ".join(busy), flush=True)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if stopping:
        raise KeyboardInterrupt
    return failed


# ---------------------------------------------------------------------------- report
def fmt_value(v: float | None, percent: bool, signed: bool = False) -> str:
    if v is None:
        return "-"
    s = "+" if signed else ""
    return f"{100 * v:{s}.2f}" if percent else f"{v:{s}.4f}"


def plot_iou_difference(path: Path, study: dict[str, Any], table, freq: np.ndarray, val_counts: np.ndarray) -> int:
    """Per-class IoU difference CeCo − CE (mean over seeds) against training frequency, for the
    classes that occur both in training and in the validation ground truth; the number plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = sorted(int(s) for s in study["arms"]["ce"]["runs"])
    colors = {"head": "tab:blue", "common": "tab:orange", "tail": "tab:red", "": "tab:gray"}
    fig, ax = plt.subplots(figsize=(8, 4.5))
    shown = 0
    for split in ("head", "common", "tail", ""):
        xs, ys, es = [], [], []
        for i, name in enumerate(table.names):
            if table.split[i] != split or freq[i] <= 0 or val_counts[i] <= 0:
                continue
            d = [study["arms"]["ceco"]["runs"][str(s)]["per_class"][name]
                 - study["arms"]["ce"]["runs"][str(s)]["per_class"][name] for s in seeds]
            xs.append(freq[i])
            ys.append(100 * float(np.mean(d)))
            es.append(100 * float(np.std(d, ddof=1)) if len(d) > 1 else 0.0)
        if xs:
            ax.errorbar(xs, ys, yerr=es if len(seeds) > 1 else None, fmt="o", ms=4, capsize=2, alpha=0.8,
                        color=colors[split], label=split or "no split")
            shown += len(xs)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("training points of the class (log)")
    ax.set_ylabel("IoU CeCo − CE (points)")
    ax.set_title(f"Per-class IoU difference, mean over {len(seeds)} seed(s)"
                 + (" ± std" if len(seeds) > 1 else ""))
    if shown:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return shown


def plot_nc(path: Path, study: dict[str, Any]) -> None:
    """NC metrics per arm: one point per seed, seeds of the two arms joined, the mean as a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {k: lab for k, lab, _, _ in METRICS}
    seeds = sorted(int(s) for s in study["arms"]["ce"]["runs"])
    fig, axes = plt.subplots(1, len(NC_PLOT), figsize=(3.2 * len(NC_PLOT), 3.6))
    for ax, key in zip(axes, NC_PLOT):
        vals = {a: [study["arms"][a]["runs"][str(s)][key] for s in seeds] for a in ARMS}
        for s_i in range(len(seeds)):
            pair = [vals["ce"][s_i], vals["ceco"][s_i]]
            if None not in pair:
                ax.plot([0, 1], pair, color="gray", lw=0.8, alpha=0.7)
        for x, a in enumerate(ARMS):
            v = [u for u in vals[a] if u is not None]
            ax.scatter([x] * len(v), v, color=("tab:blue", "tab:red")[x], zorder=3, s=18)
            if v:
                ax.hlines(np.mean(v), x - 0.2, x + 0.2, color="black", lw=2, zorder=4)
        ax.set_xticks([0, 1], [ARM_LABELS[a] for a in ARMS])
        ax.set_xlim(-0.5, 1.5)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_title(labels[key], fontsize=9)
    fig.suptitle(f"Neural-collapse metrics on the validation split ({len(seeds)} seed(s); bar = mean)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out: Path, study: dict[str, Any], n_plotted: int) -> None:
    from pcseg.utils.atomic import atomic_write_text

    st = study["settings"]
    seeds = sorted(int(s) for s in study["arms"]["ce"]["runs"])
    lines = [
        "# CeCo study: CE vs CE + CeCo, paired by seed", "",
        f"Config `{st['config']}` ({st['model']}), {st['epochs']} epochs, seeds {', '.join(map(str, seeds))}, "
        f"CeCo weight {st['ceco_weight']:g}, device {st['device']}; data `{st['data']}` ({st['train_scenes']} train / {st['val_scenes']} val scenes, "
        f"{st['classes_in_train']} classes in training, chance mIoU ~ {100 / max(st['classes_in_train'], 1):.1f}).",
        f"The arms differ only in: {'; '.join(st['arm_difference']) or '(nothing!)'}. "
        f"Extra overrides: {' '.join(st['overrides']) or 'none'}.",
        "Each run's final weights (`last.pth`) are evaluated on the validation split: segmentation by the "
        "benchmark protocol (every mesh vertex, `pcseg.test`), neural collapse by `pcseg.analyze`. "
        "Segmentation metrics in points (%).", "",
        "| metric | CE mean ± std | CE + CeCo mean ± std | CeCo − CE (paired mean) | 95 % t-interval | pairs |",
        "|---|---|---|---|---|---|",
    ]
    for key, label, _, pct in METRICS:
        cells = []
        for a in ARMS:
            s = study["arms"][a]["summary"][key]
            cells.append(fmt_value(s["mean"], pct) + ("" if s["std"] is None else f" ± {fmt_value(s['std'], pct)}"))
        p = study["paired"][key]
        ci = "undefined (n < 2)" if p["ci95"] is None else \
            f"[{fmt_value(p['ci95'][0], pct, True)}, {fmt_value(p['ci95'][1], pct, True)}]"
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {fmt_value(p['mean'], pct, True)} | {ci} | {p['n']} |")
    if len(seeds) < 2:
        lines += ["", "With one seed the paired difference is a single number: its interval is undefined "
                  "(null in study.json). Use `--seeds 3` or more."]
    else:
        lines += ["", f"Interval: mean ± t(0.975, n−1) · sd / √n over the per-seed differences. An interval that "
                  "contains 0 means no difference shown at this number of seeds."]
        p = study["paired"]["miou"]
        if p["std"] is not None and p["mean"] is not None:
            point = pairs_needed(p["std"], 0.01)
            lines += ["", f"Study size (mIoU): the per-seed differences spread by {100 * p['std']:.2f} points. "
                      f"If that spread is typical, a true difference of the observed size ({100 * p['mean']:+.2f}) "
                      f"needs {p['pairs_to_resolve_observed'] or 'n/a'} seed pairs for its 95 % interval to exclude 0, "
                      f"a 1-point difference {point} pairs."]
    lines += ["", "## Per run", "", "| run | " + " | ".join(lab for _, lab, _, _ in METRICS) + " | train min |",
              "|---" * (len(METRICS) + 2) + "|"]
    for a in ARMS:
        for s in seeds:
            r = study["arms"][a]["runs"][str(s)]
            lines.append(f"| {a} seed {s} | " + " | ".join(fmt_value(r[k], pct) for k, _, _, pct in METRICS)
                         + f" | {r['train_minutes']:.1f} |")
    lines += ["", "## Plots", "",
              f"Per-class IoU difference against training frequency ({n_plotted} classes that occur in training "
              "and in the validation ground truth):", "", "![IoU difference](iou_diff_vs_frequency.png)", "",
              "Neural-collapse metrics per arm:", "", "![NC metrics](nc_metrics.png)", "",
              "Per-run details: `runs/<arm>/seed<s>/metrics_val.json` and `nc_val/report.md` (cosine heatmaps).", ""]
    atomic_write_text(out / "report.md", "\n".join(lines))


def build_study(args, runs: list[Run], cfgs: dict[str, Any], data: Path, device: str, base_cfg: Path,
                minutes: float) -> dict[str, Any]:
    from pcseg.data.classes import table as class_table
    from pcseg.data.dataset import SceneCacheDataset

    cfg = cfgs["ce"]
    table = class_table(cfg.data.label_set)
    freq = train_frequency(data, cfg.data.label_set, table.num_classes)
    val_counts = class_counts(data, cfg.data.val_split, cfg.data.label_set, table.num_classes)
    arms: dict[str, Any] = {a: {"runs": {}, "summary": {}} for a in ARMS}
    for r in runs:
        arms[r.arm]["runs"][str(r.seed)] = run_summary(r)
    for a in ARMS:
        for key, *_ in METRICS:
            arms[a]["summary"][key] = describe([v[key] for v in arms[a]["runs"].values()])
    pairs = {key: paired({int(s): v[key] for s, v in arms["ce"]["runs"].items()},
                         {int(s): v[key] for s, v in arms["ceco"]["runs"].items()}) for key, *_ in METRICS}
    settings = {
        "config": str(base_cfg), "model": cfg.model.name, "epochs": int(cfg.train.epochs), "seeds": args.seeds,
        "ceco_weight": float(cfgs["ceco"].ceco.weight), "device": device, "data": str(data),
        "train_scenes": len(SceneCacheDataset(data, cfg.data.train_split, label_set=cfg.data.label_set)),
        "val_scenes": len(SceneCacheDataset(data, cfg.data.val_split, label_set=cfg.data.label_set)),
        "classes_in_train": int((freq > 0).sum()), "classes_in_val": int((val_counts > 0).sum()),
        "overrides": list(args.overrides), "arm_difference": arm_difference(cfgs), "evaluated": "last.pth",
        "minutes_this_invocation": minutes,
    }
    notes = ["paired = CeCo − CE on the same seed; ci95 = 95 % t-interval of the mean difference",
             "segmentation values are fractions (0..1); None/null = undefined (e.g. no tail class in val)"]
    if args.seeds < 2:
        notes.append("one seed: std and ci95 are undefined (null)")
    return {"settings": settings, "metrics": [k for k, *_ in METRICS], "arms": arms, "paired": pairs,
            "train_frequency": {n: int(c) for n, c in zip(table.names, freq) if c > 0},
            "val_frequency": {n: int(c) for n, c in zip(table.names, val_counts) if c > 0}, "notes": notes,
            "_plot": (table, freq, val_counts)}


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        return worker(args.worker)
    t0 = time.perf_counter()
    try:
        check_args(args)
        device = resolve_device(args.device)
        from pcseg.engine.config import ConfigError, load_config

        base_cfg = args.cfg if args.cfg is not None else MODEL_CFGS[args.model]
        data = args.data if args.data is not None else args.out / "data" / "caches"
        runs: list[Run] = []
        cfgs: dict[str, Any] = {}
        for seed in range(args.seeds):
            for arm in ARMS:
                run_dir = (args.out / "runs" / arm / f"seed{seed}").resolve()
                ov = arm_overrides(args, device, data.resolve(), arm, seed, run_dir)
                try:
                    cfg = load_config(base_cfg, ov)
                except ConfigError as exc:
                    raise UsageError(str(exc)) from None
                cfgs.setdefault(arm, cfg)
                check_reusable(run_dir, cfg)
                runs.append(Run(arm, seed, run_dir, base_cfg.resolve(), ov))
        diff = arm_difference(cfgs)
        if [d.split(":")[0] for d in diff] != ["ceco.enabled"]:
            raise UsageError("the two arms must differ in ceco.enabled only, they differ in: " + "; ".join(diff))
        data = prepare_data(args)  # after the configs are known to be valid
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    pending = [r for r in runs if not finished(r.dir)]
    cores = usable_cores()
    env_threads = os.environ.get("OMP_NUM_THREADS", "")
    if args.jobs:
        jobs = args.jobs
    elif device == "cuda":
        jobs = 1
    else:
        per = args.threads or (int(env_threads) if env_threads.isdigit() and int(env_threads) > 0 else 1)
        jobs = max(1, cores // per)
    jobs = max(1, min(jobs, len(pending) or 1))
    threads = args.threads or (int(env_threads) if env_threads.isdigit() and int(env_threads) > 0
                               else max(1, cores // jobs))
    c = cfgs["ce"]
    print(f"[study] {len(runs)} runs ({args.seeds} seed(s) x {{CE, CE + CeCo}}), {c.model.name} from {base_cfg.name}, "
          f"{c.train.epochs} epochs, device {device}; {len(runs) - len(pending)} finished already, "
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

    from pcseg.utils.atomic import atomic_write_text

    study = build_study(args, runs, cfgs, data.resolve(), device, base_cfg, (time.perf_counter() - t0) / 60)
    table, freq, val_counts = study.pop("_plot")
    args.out.mkdir(parents=True, exist_ok=True)
    n_plotted = plot_iou_difference(args.out / "iou_diff_vs_frequency.png", study, table, freq, val_counts)
    plot_nc(args.out / "nc_metrics.png", study)
    atomic_write_text(args.out / "study.json", json.dumps(study, indent=1))
    write_report(args.out, study, n_plotted)
    print("\n[study] paired difference CeCo − CE (mean, 95 % t-interval):", flush=True)
    for key, label, _, pct in METRICS:
        p = study["paired"][key]
        ci = "undefined" if p["ci95"] is None else \
            f"[{fmt_value(p['ci95'][0], pct, True)}, {fmt_value(p['ci95'][1], pct, True)}]"
        print(f"  {label:<32} {fmt_value(p['mean'], pct, True):>9}  {ci}", flush=True)
    print(f"[study] done in {(time.perf_counter() - t0) / 60:.1f} min; {args.out / 'report.md'}, "
          f"{args.out / 'study.json'}", flush=True)
    return 0


if __name__ == "__main__":
    if "--worker" in sys.argv:
        try:
            code = main()
        except BaseException:  # noqa: BLE001 - reported in the run's log, exit code 1
            import traceback

            traceback.print_exc()
            code = 1
        # Leave without the interpreter's exit handlers: persistent DataLoader workers ignore
        # SIGTERM, so joining them at exit can hang; they see their parent gone and exit.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(main())
