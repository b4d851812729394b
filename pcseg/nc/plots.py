"""Figures of the neural-collapse analysis: cosine heatmaps of class means and classifier rows,
and per-class IoU against training frequency. matplotlib is imported only when one is drawn."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from pcseg.utils.atomic import save_png

__all__ = ["iou_plot_classes", "plot_cosine_heatmaps", "plot_iou_vs_frequency"]

_SPLIT_COLORS = {"head": "#1f77b4", "common": "#ff7f0e", "tail": "#d62728", "": "#7f7f7f"}


def _tick_positions(k: int, max_labels: int = 60) -> np.ndarray:
    return np.arange(k) if k <= max_labels else np.arange(0, k, int(math.ceil(k / max_labels)))


def plot_cosine_heatmaps(
    cos_means: np.ndarray,
    cos_classifier: np.ndarray | None,
    order: Sequence[int],
    names: Sequence[str],
    path: Path | str,
) -> Path:
    """Side-by-side class-mean / classifier cosine matrices, classes in ``order``
    (most frequent first), so crowding of the tail shows as a warm lower-right block."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    cmap = colormaps["RdBu_r"].with_extremes(bad="#dddddd")  # grey = class absent
    order = np.asarray(order, dtype=np.int64)
    panels = [("class means (centred)", cos_means)]
    if cos_classifier is not None:
        panels.append(("classifier", cos_classifier))
    k = len(order)
    side = min(4.0 + k * 0.06, 16.0)
    fig = Figure(figsize=(side * len(panels) + 1.0, side))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    ticks = _tick_positions(k)
    labels = [names[i] for i in order[ticks]]
    fontsize = 7 if k <= 30 else 4
    im = None
    for ax, (title, mat) in zip(axes, panels):
        m = np.ma.masked_invalid(np.asarray(mat, dtype=np.float64)[np.ix_(order, order)])
        im = ax.imshow(m, cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest")
        ax.set_title(f"pairwise cosine: {title}")
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.set_xticklabels(labels, rotation=90, fontsize=fontsize)
        ax.set_yticklabels(labels, fontsize=fontsize)
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    return save_png(fig, path)


def plot_iou_vs_frequency(
    per_class_iou: Sequence[float | None] | np.ndarray,
    frequency: Sequence[float] | np.ndarray,
    splits: Sequence[str] | None,
    path: Path | str,
    names: Sequence[str] | None = None,
) -> Path:
    """Per-class IoU bars (coloured by split) against training frequency, most frequent
    first: the imbalance story in one picture. Only classes that occur are drawn (seen in
    training or with a defined IoU); a class with a defined IoU but no training points
    shows as a bar with no frequency, a trained class absent from the split as a grey x
    (an IoU of 0 is a real miss). ``names`` labels the bars."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    iou = np.array([np.nan if v is None else float(v) for v in per_class_iou], dtype=np.float64)
    freq = np.asarray(frequency, dtype=np.float64)
    if iou.shape != freq.shape:
        raise ValueError(f"{iou.size} IoUs but {freq.size} frequencies")
    order = np.array(iou_plot_classes(iou, freq), dtype=np.int64)
    k = len(order)
    split_of = list(splits) if splits is not None else [""] * len(freq)
    colors = [_SPLIT_COLORS.get(split_of[i], _SPLIT_COLORS[""]) for i in order]
    fig = Figure(figsize=(min(6.0 + 0.12 * k, 20.0), 4.5))
    ax = fig.subplots()
    x = np.arange(k)
    ax.bar(x, np.nan_to_num(iou[order] * 100.0, nan=0.0), color=colors, width=0.9)
    undefined = np.isnan(iou[order])  # trained on, but neither present nor predicted in this split
    if undefined.any():
        ax.scatter(x[undefined], np.full(int(undefined.sum()), 2.0), marker="x", color="gray", s=12,
                   label="not in this split", zorder=3)
    ax.set_xlim(-0.5, max(k, 1) - 0.5)
    ax.set_ylim(0, 100)
    if names is not None and k:
        ticks = _tick_positions(k)
        ax.set_xticks(ticks)
        ax.set_xticklabels([names[order[t]] for t in ticks], rotation=90, fontsize=6)
        ax.set_xlabel("classes that occur, by training frequency (most frequent first)")
    else:
        ax.set_xlabel("class rank by training frequency (most frequent first)")
    ax.set_ylabel("IoU (%)")
    ax2 = ax.twinx()
    f = freq[order]
    ax2.plot(x, np.where(f > 0, f, np.nan), color="black", linewidth=1.0)
    if np.any(f > 0):
        ax2.set_yscale("log")
    ax2.set_ylabel("training points (log)")
    used = [s for s in ("head", "common", "tail") if s in [split_of[i] for i in order]]
    handles = [Patch(color=_SPLIT_COLORS[s], label=s) for s in used]
    if undefined.any():
        handles.append(ax.collections[-1])
    if handles:
        ax.legend(handles=handles, loc="upper right")
    return save_png(fig, path)


def iou_plot_classes(per_class_iou: Sequence[float | None] | np.ndarray,
                     frequency: Sequence[float] | np.ndarray) -> list[int]:
    """The classes :func:`plot_iou_vs_frequency` draws, in its order."""
    iou = np.array([np.nan if v is None else float(v) for v in per_class_iou], dtype=np.float64)
    freq = np.asarray(frequency, dtype=np.float64)
    order = np.argsort(-freq, kind="stable")
    return [int(i) for i in order[(freq[order] > 0) | ~np.isnan(iou[order])]]
