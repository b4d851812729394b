"""Point-wise segmentation losses: cross-entropy (optionally class-weighted) and Lovasz-softmax."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def class_weights_from_histogram(counts: np.ndarray | list[int], kind: str) -> torch.Tensor | None:
    """Per-class loss weights from training point counts (the manifest histogram).

    ``inverse_sqrt``: 1/sqrt(frequency); ``inverse_log``: 1/log(1.02 + frequency) (ENet).
    Weights are normalised to mean 1 over the classes that occur; absent classes get 0
    (they never appear as targets).
    """
    if kind == "none":
        return None
    c = np.asarray(counts, dtype=np.float64)
    present = c > 0
    if not present.any():
        raise ValueError("class histogram is empty: no labelled training points")
    freq = c / c.sum()
    w = np.zeros_like(freq)
    if kind == "inverse_sqrt":
        w[present] = 1.0 / np.sqrt(freq[present])
    elif kind == "inverse_log":
        w[present] = 1.0 / np.log(1.02 + freq[present])
    else:
        raise ValueError(f"loss.class_weights={kind!r}: expected none, inverse_sqrt or inverse_log")
    w[present] /= w[present].mean()
    return torch.tensor(w, dtype=torch.float32)


def lovasz_softmax(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = -1) -> torch.Tensor:
    """Lovasz-softmax loss (Berman et al. 2018), averaged over the classes present in the target.

    A convex surrogate of per-class IoU; a common companion of cross-entropy on ScanNet200.
    """
    valid = target != ignore_index
    if not valid.any():
        return logits.sum() * 0.0
    prob = logits[valid].float().softmax(-1)
    tgt = target[valid]
    losses = []
    for c in torch.unique(tgt):
        fg = (tgt == c).float()
        err = (fg - prob[:, c]).abs()
        err_sorted, order = torch.sort(err, descending=True)
        fg_sorted = fg[order]
        gts = fg_sorted.sum()
        inter = gts - fg_sorted.cumsum(0)
        union = gts + (1 - fg_sorted).cumsum(0)
        jac = 1.0 - inter / union
        jac = torch.cat([jac[:1], jac[1:] - jac[:-1]])
        losses.append(torch.dot(err_sorted, jac))
    return torch.stack(losses).mean()


class SegLoss(torch.nn.Module):
    """Cross-entropy with ignore index and optional class weights, plus optional Lovasz term."""

    def __init__(self, ignore_index: int = -1, weight: torch.Tensor | None = None, lovasz_weight: float = 0.0) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.lovasz_weight = lovasz_weight
        self.register_buffer("weight", weight if weight is not None else None, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not (target != self.ignore_index).any():
            return logits.sum() * 0.0  # a batch without labelled points contributes no gradient
        loss = F.cross_entropy(logits.float(), target, weight=self.weight, ignore_index=self.ignore_index)
        if self.lovasz_weight > 0:
            loss = loss + self.lovasz_weight * lovasz_softmax(logits, target, self.ignore_index)
        return loss
