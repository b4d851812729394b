"""Point-wise segmentation losses: cross-entropy, optionally class-weighted, focal (Lin et al. 2017)
and logit-adjusted (Menon et al. 2021; Ren et al. 2020's balanced softmax), plus Lovasz-softmax."""
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


def log_point_prior(counts: np.ndarray | list[int]) -> torch.Tensor:
    """``log(pi)`` with pi the point-level class frequency (the manifest histogram), for the logit
    adjustment.

    A class without training points gets the most frequent class's value, not ``log 0``: it is
    never a target, so with a very negative adjustment its loss gradient would vanish and its
    raw logit, the one inference uses, would never be pushed down; ScanNet200's training split
    lacks many of the 200 classes, and they would then be predicted. Adjusted like the most
    frequent class, it is suppressed at least as firmly as any class the data shows.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or not np.isfinite(c).all() or (c < 0).any() or c.sum() <= 0:
        raise ValueError("class histogram must be non-negative counts with a positive sum")
    prior = np.full_like(c, c.max() / c.sum())
    prior[c > 0] = c[c > 0] / c.sum()
    return torch.from_numpy(np.log(prior)).float()


def focal_terms(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-point focal loss ``-(1 - p_t)^gamma log p_t`` (Lin et al. 2017) for labelled targets;
    ``gamma = 0`` is the cross-entropy. Computed from log-probabilities, so it stays finite
    where p_t underflows."""
    logp = F.log_softmax(logits.float(), dim=1).gather(1, target[:, None]).squeeze(1)
    if gamma == 0:
        return -logp
    return -((1.0 - logp.exp()).clamp_min(0.0) ** gamma) * logp


class SegLoss(torch.nn.Module):
    """The point loss: cross-entropy over the labelled points (label -1 = unlabelled), with the
    optional class weights, focal modulation, logit adjustment and Lovasz term.

    * ``weight`` (K,): per-class weights (``loss.class_weights``), also the focal loss's alpha.
    * ``focal_gamma``: > 0 turns the cross-entropy into the focal loss (``loss.focal_gamma``).
    * ``log_prior`` (K,) and ``logit_adjust`` tau: the loss sees ``logits + tau * log_prior``
      (logit adjustment; tau = 1 is the balanced softmax). Only the loss sees it: the model's
      logits, and so inference, are unchanged, which is what makes the rare classes win more
      often at test time.

    The point term is a sum divided by ``normalizer``: by default the (weighted) number of
    labelled points of this batch, i.e. the usual mean. Under DDP the trainer passes the
    labelled count of the whole global batch divided by the number of processes, so after
    DDP's gradient averaging every labelled point of the global batch weighs the same,
    however the points are split between processes. The Lovasz term is a per-process mean
    (it is not a sum over points).
    """

    def __init__(self, weight: torch.Tensor | None = None, lovasz_weight: float = 0.0, focal_gamma: float = 0.0,
                 log_prior: torch.Tensor | None = None, logit_adjust: float = 0.0) -> None:
        super().__init__()
        if logit_adjust and log_prior is None:
            raise ValueError("logit_adjust needs the log class prior (log_prior)")
        self.ignore_index = IGNORE_INDEX
        self.lovasz_weight = lovasz_weight
        self.focal_gamma = float(focal_gamma)
        self.logit_adjust = float(logit_adjust)
        self.register_buffer("weight", weight if weight is not None else None, persistent=False)
        self.register_buffer("log_prior", log_prior if logit_adjust else None, persistent=False)

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
        if self.log_prior is not None:
            logits = logits.float() + self.logit_adjust * self.log_prior
        if self.focal_gamma > 0:
            valid = target != self.ignore_index
            per_point = focal_terms(logits[valid], target[valid], self.focal_gamma)
            if self.weight is not None:
                per_point = per_point * self.weight[target[valid]]
            total = per_point.sum()
        else:
            total = F.cross_entropy(logits.float(), target, weight=self.weight, ignore_index=self.ignore_index,
                                    reduction="sum")
        loss = total / denom.clamp_min(1e-12).to(total)
        if self.lovasz_weight > 0:
            loss = loss + self.lovasz_weight * lovasz_softmax(logits, target, self.ignore_index)
        return loss
