"""What a paired seed study reports: the per-arm summary against the baseline arm, as markdown
tables and plots. Reads only the ``study.json`` structure that :func:`summarize_study` builds."""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .stats import describe, paired, pairs_needed

__all__ = ["Metric", "METRICS", "summarize_study", "arms_table", "plot_iou_difference", "plot_nc", "fmt_value"]


class Metric(NamedTuple):
    """A number each run reports: from ``metrics_val.json`` (``seg``) or ``nc_metrics.json`` (``nc``)."""

    key: str
    label: str
    source: str
    percent: bool


METRICS = (
    Metric("miou", "mIoU", "seg", True),
    Metric("miou_head", "mIoU head", "seg", True),
    Metric("miou_common", "mIoU common", "seg", True),
    Metric("miou_tail", "mIoU tail", "seg", True),
    Metric("macc", "mAcc", "seg", True),
    Metric("nc1", "NC1 (lower = more collapsed)", "nc", False),
    Metric("equiangularity_means", "equiangularity, class means", "nc", False),
    Metric("maxangle_means", "max-angle, class means", "nc", False),
    Metric("equiangularity_classifier", "equiangularity, classifier", "nc", False),
)
NC_PLOT = ("nc1", "equiangularity_means", "maxangle_means", "equiangularity_classifier")


def fmt_value(v: float | None, percent: bool, signed: bool = False) -> str:
    if v is None:
        return "–"
    text = f"{100 * v:{'+' if signed else ''}.2f}" if percent else f"{v:{'+' if signed else ''}.3f}"
    return text.replace("-", "−")


def summarize_study(runs: dict[str, dict[int, dict[str, Any]]], base: str = "ce") -> dict[str, Any]:
    """Per arm: its runs (by seed), mean/std of every metric, and every metric's paired difference
    against the ``base`` arm on the same seeds."""
    arms: dict[str, Any] = {}
    for arm, by_seed in runs.items():
        arms[arm] = {"runs": {str(s): r for s, r in sorted(by_seed.items())},
                     "summary": {m.key: describe([r[m.key] for r in by_seed.values()]) for m in METRICS}}
        if arm != base:
            arms[arm]["paired"] = {m.key: paired({s: r[m.key] for s, r in runs[base].items()},
                                                 {s: r[m.key] for s, r in by_seed.items()}) for m in METRICS}
    return arms


def _diff_cell(p: dict[str, Any], percent: bool) -> str:
    if p["mean"] is None:
        return "–"
    ci = p["ci95"]
    inner = f" [{fmt_value(ci[0], percent, True)}, {fmt_value(ci[1], percent, True)}]" if ci else ""
    mean = fmt_value(p["mean"], percent, True)
    # Bold only what the interval separates from no difference.
    return f"**{mean}**{inner}" if ci and (ci[0] > 0 or ci[1] < 0) else f"{mean}{inner}"


TABLE_DIFFS = ("miou_head", "miou_common", "miou_tail", "macc", "maxangle_means")


def arms_table(arms: dict[str, Any], labels: dict[str, str], base: str = "ce") -> str:
    """One row per arm: mIoU mean ± std, the paired mIoU difference against ``base`` with its 95 %
    interval, the other differences, and the seed pairs the observed, a 1-point and a 0.5-point
    mIoU difference would need for their interval to exclude 0, at the observed spread."""
    by_key = {m.key: m for m in METRICS}
    head = ["arm", "mIoU", f"mIoU − {labels[base]} [95 % CI]"] + \
        [f"{by_key[k].label.replace('mIoU ', '')} − {labels[base]}" for k in TABLE_DIFFS] + \
        ["mIoU per seed − CE", "seed pairs to resolve: this Δ / 1 pt / 0.5 pt"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm, a in arms.items():
        s = a["summary"]["miou"]
        cells = [labels[arm], f"{fmt_value(s['mean'], True)} ± {fmt_value(s['std'], True)}"]
        if arm == base:
            cells += ["(baseline)"] + [f"{fmt_value(a['summary'][k]['mean'], by_key[k].percent)}" for k in TABLE_DIFFS]
            cells += ["", ""]
        else:
            p = a["paired"]
            cells.append(_diff_cell(p["miou"], True))
            cells += [_diff_cell(p[k], by_key[k].percent) for k in TABLE_DIFFS]
            cells.append(", ".join(fmt_value(v, True, True) for v in p["miou"]["per_seed"].values()))
            sd = p["miou"]["std"]
            observed = p["miou"]["pairs_to_resolve_observed"]
            cells.append(f"{observed or '–'} / {pairs_needed(sd, 0.01) or '–'} / {pairs_needed(sd, 0.005) or '–'}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_iou_difference(path: Path, arms: dict[str, Any], labels: dict[str, str], names: list[str],
                        splits: list[str], freq: np.ndarray, val_counts: np.ndarray, base: str = "ce") -> int:
    """Per arm, the per-class IoU difference against ``base`` (mean over seeds ± std) against the
    class's training frequency, for classes in training and in the validation ground truth;
    returns the number of classes plotted per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    others = [a for a in arms if a != base]
    cols = min(4, max(1, len(others)))
    rows = max(1, -(-len(others) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False, sharey=True)
    colors = {"head": "tab:blue", "common": "tab:orange", "tail": "tab:red", "": "tab:gray"}
    shown = 0  # stays 0 without another arm
    for ax, arm in zip(axes.flat, others):
        seeds = [s for s in arms[base]["runs"] if s in arms[arm]["runs"]]
        shown = 0
        for split in ("head", "common", "tail", ""):
            xs, ys, es = [], [], []
            for i, name in enumerate(names):
                if splits[i] != split or freq[i] <= 0 or val_counts[i] <= 0:
                    continue
                d = [arms[arm]["runs"][s]["per_class"][name] - arms[base]["runs"][s]["per_class"][name]
                     for s in seeds]
                xs.append(freq[i])
                ys.append(100 * float(np.mean(d)))
                es.append(100 * float(np.std(d, ddof=1)) if len(d) > 1 else 0.0)
            if xs:
                ax.errorbar(xs, ys, yerr=es if len(seeds) > 1 else None, fmt="o", ms=3, capsize=2, alpha=0.8,
                            color=colors[split], label=split or "no split")
                shown += len(xs)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(f"{labels[arm]} − {labels[base]}", fontsize=9)
        ax.set_xlabel("training points of the class (log)", fontsize=8)
    for ax in list(axes.flat)[len(others):]:
        ax.axis("off")
    axes[0][0].set_ylabel("IoU difference (points)")
    if others:
        axes[0][0].legend(fontsize=7)
    fig.suptitle("Per-class IoU difference, mean over seeds ± std", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return shown


def plot_nc(path: Path, arms: dict[str, Any], labels: dict[str, str]) -> None:
    """NC metrics per arm: one point per seed, the mean as a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_key = {m.key: m for m in METRICS}
    names = list(arms)
    fig, axes = plt.subplots(1, len(NC_PLOT), figsize=(3.4 * len(NC_PLOT), 3.8))
    for ax, key in zip(axes, NC_PLOT):
        for x, arm in enumerate(names):
            v = [r[key] for r in arms[arm]["runs"].values() if r[key] is not None]
            ax.scatter([x] * len(v), v, s=14, zorder=3)
            if v:
                ax.hlines(np.mean(v), x - 0.3, x + 0.3, color="black", lw=2, zorder=4)
        ax.set_xticks(range(len(names)), [labels[a] for a in names], rotation=60, ha="right", fontsize=7)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_title(by_key[key].label, fontsize=9)
    fig.suptitle("Neural-collapse metrics on the validation split (bar = mean over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
