"""Semantic-segmentation metrics by the ScanNet benchmark protocol.

Follows the official ``evaluate_semantic_label.py`` semantics: only vertices whose
ground truth is a valid class are counted; a prediction outside the valid classes is a
miss for the ground-truth class (a false negative, not a false positive of any class);
IoU = TP / (TP + FP + FN) is defined whenever that denominator is positive (so a class
absent from the ground truth but predicted scores 0) and undefined otherwise; means are
over the defined classes only. Averaging undefined classes as 0 instead understates
ScanNet200 val mIoU, where 11 classes never occur.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from pcseg.data.classes import SPLITS, ClassTable
from pcseg.utils.dist import all_reduce_sum_array


class ConfusionMatrix:
    """Counts (ground truth class, predicted class) over valid vertices.

    Shape (K, K + 1): the last column collects predictions outside 0..K-1.
    Summable across processes and scenes, so distributed evaluation is exact.
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes + 1), dtype=np.int64)

    def update(self, pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> None:
        if isinstance(pred, torch.Tensor):
            pred = pred.detach().cpu().numpy()
        if isinstance(target, torch.Tensor):
            target = target.detach().cpu().numpy()
        pred = np.asarray(pred).astype(np.int64).reshape(-1)
        target = np.asarray(target).astype(np.int64).reshape(-1)
        if pred.shape != target.shape:
            raise ValueError(f"prediction has {pred.size} entries but ground truth {target.size}")
        k = self.num_classes
        valid = (target >= 0) & (target < k)
        p = pred[valid]
        p = np.where((p >= 0) & (p < k), p, k)
        self.matrix += np.bincount(target[valid] * (k + 1) + p, minlength=k * (k + 1)).reshape(k, k + 1)

    def merge(self, other: "ConfusionMatrix") -> None:
        self.matrix += other.matrix

    def all_reduce(self) -> None:
        """Sum over all ranks (no-op without torch.distributed; NCCL-safe)."""
        self.matrix = all_reduce_sum_array(self.matrix)


def per_class_iou(matrix: np.ndarray) -> np.ndarray:
    """IoU per class; NaN where TP + FP + FN == 0 (undefined)."""
    k = matrix.shape[0]
    tp = np.diag(matrix[:, :k]).astype(np.float64)
    fn = matrix.sum(1) - tp  # includes predictions outside the valid classes
    fp = matrix[:, :k].sum(0) - tp
    denom = tp + fp + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)


def _mean(x: np.ndarray) -> float | None:
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else None


def summarize(matrix: np.ndarray, table: ClassTable) -> dict:
    """mIoU (all / head / common / tail), mAcc, allAcc and per-class IoU (None = undefined)."""
    k = matrix.shape[0]
    iou = per_class_iou(matrix)
    tp = np.diag(matrix[:, :k]).astype(np.float64)
    gt = matrix.sum(1).astype(np.float64)
    acc = np.where(gt > 0, tp / np.maximum(gt, 1), np.nan)
    out: dict = {"miou": _mean(iou)}
    for split in SPLITS:
        idx = [i for i, s in enumerate(table.split) if s == split]
        out[f"miou_{split}"] = _mean(iou[idx]) if idx else None
    out["macc"] = _mean(acc)
    out["allacc"] = float(tp.sum() / gt.sum()) if gt.sum() > 0 else None
    out["per_class"] = {n: (None if math.isnan(v) else float(v)) for n, v in zip(table.names, iou)}
    out["num_vertices"] = int(gt.sum())
    return out


def format_table(metrics: dict, table: ClassTable, frequency: np.ndarray | None = None, top: int | None = None) -> str:
    """Human-readable summary plus per-class IoU (sorted by training frequency when given)."""
    def f(v: float | None) -> str:
        return "  -  " if v is None else f"{100 * v:5.1f}"

    head = (f"mIoU {f(metrics['miou'])} | head {f(metrics.get('miou_head'))} | common {f(metrics.get('miou_common'))}"
            f" | tail {f(metrics.get('miou_tail'))} | mAcc {f(metrics['macc'])} | allAcc {f(metrics['allacc'])}")
    order = list(range(table.num_classes))
    if frequency is not None:
        order.sort(key=lambda i: -int(frequency[i]))
    rows = [f"{'class':<28}{'split':<8}{'IoU':>6}" + ("  train pts" if frequency is not None else "")]
    shown = 0
    for i in order:
        v = metrics["per_class"][table.names[i]]
        if v is None:
            continue
        extra = f"  {int(frequency[i]):>9}" if frequency is not None else ""
        rows.append(f"{table.names[i]:<28}{table.split[i] or '-':<8}{f(v):>6}{extra}")
        shown += 1
        if top is not None and shown >= top:
            break
    return head + "\n" + "\n".join(rows)
