"""Point-wise segmentation losses: cross-entropy (optionally class-weighted) and Lovasz-softmax."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pcseg.data.dataset import IGNORE_INDEX


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


def lovasz_softmax(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
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
    """Cross-entropy over the labelled points (label -1 = unlabelled), optionally class-weighted,
    plus an optional Lovasz term.

    The cross-entropy is a sum divided by ``normalizer``: by default the (weighted) number of
    labelled points of this batch, i.e. the usual mean. Under DDP the trainer passes the
    labelled count of the whole global batch divided by the number of processes, so after
    DDP's gradient averaging every labelled point of the global batch weighs the same,
    however the points are split between processes. The Lovasz term is a per-process mean
    (it is not a sum over points).
    """

    def __init__(self, weight: torch.Tensor | None = None, lovasz_weight: float = 0.0) -> None:
        super().__init__()
        self.ignore_index = IGNORE_INDEX
        self.lovasz_weight = lovasz_weight
        self.register_buffer("weight", weight if weight is not None else None, persistent=False)

    def normalizer(self, target: torch.Tensor) -> torch.Tensor:
        """The (class-weighted) number of labelled points in ``target``, as a float64 scalar."""
        valid = target != self.ignore_index
        if self.weight is None:
            return valid.sum().to(torch.float64)
        return self.weight[target[valid]].sum().to(torch.float64)

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                normalizer: torch.Tensor | float | None = None) -> torch.Tensor:
        if not (target != self.ignore_index).any():
            return logits.sum() * 0.0  # a batch without labelled points contributes no gradient
        denom = self.normalizer(target) if normalizer is None else torch.as_tensor(normalizer, dtype=torch.float64)
        total = F.cross_entropy(logits.float(), target, weight=self.weight, ignore_index=self.ignore_index,
                                reduction="sum")
        loss = total / denom.clamp_min(1e-12).to(total)
        if self.lovasz_weight > 0:
            loss = loss + self.lovasz_weight * lovasz_softmax(logits, target, self.ignore_index)
        return loss
