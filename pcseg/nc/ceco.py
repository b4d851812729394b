"""CeCo: center collapse regularisation, a training-only branch beside the point classifier.

Per-class centers of projected features are classified by a *fixed* simplex ETF. The
loss is averaged over classes, not points, so a tail class present with 50 points pulls
as hard as the floor with 50 000: it pushes the class means towards the maximally and
equally separated geometry that imbalance prevents. The branch is used in training only
(``loss = seg_loss + w * head(feat, segment)["loss"]``); inference never runs it.

Two variants (``variant=``):

* ``official``: the center branch as its authors released it (``UPerHead_ceco`` in
  dvlab-research/Parametric-Contrastive-Learning), mapped from pixels to points. A *frozen*
  random projection (Linear C->128 without bias, BatchNorm in training mode over all points
  of the batch, labelled or not), per-class means over the labelled points, a frozen
  Linear 128->512 + ReLU on the means, L2 normalisation, dropout, the fixed ETF x scale,
  plus the log class prior; cross-entropy over the classes present. Nothing in the branch
  learns: the loss can only move the backbone's features.
* ``learned``: pcseg's earlier head (a trainable Linear-LayerNorm-ReLU-Linear projection,
  no prior), kept for comparison and for its checkpoints.
* ``rr``: region rebalance (Zhong et al. 2022), the same authors' earlier method, released in
  the same file as ``UPerHead_cecol``: the official branch's frozen projection and prior, but
  no normalisation and no ETF: a frozen random linear classifier (with bias) at scale 1, and
  smoothed targets (``smooth`` on the own class, the rest spread over the other K-1).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .centers import class_centers
from .etf import simplex_etf

__all__ = ["CenterHead", "ceco_loss", "smoothed_cross_entropy", "DEFAULT_SCALE", "VARIANTS"]

VARIANTS = ("official", "learned", "rr")
# the released defaults of the frozen-projection variants: (logit scale, target smoothing)
RELEASED = {"official": (5.0, 1.0), "rr": (1.0, 0.5)}

# ETF logits are cosines in [-1, 1]. Unscaled, even a center sitting on its vertex keeps
# a cross-entropy of log(1 + (K-1) e^{-K/(K-1)}) ~ 4.3 for K = 200: the softmax stays
# nearly flat and the gradient barely separates classes. Scaled by s, the loss becomes
# negligible once the own cosine beats the others by about (log(K-1) + 4.6) / s, so a
# large s stops pulling long before the ETF is reached (s = 30: a margin of ~0.33 of the
# attainable 1 + 1/(K-1)). s = 10 keeps a strong gradient for random centers (loss ~
# log K) yet still pulls until a center is essentially on its vertex (floor
# 199 e^{-10.05} ~ 0.009 for K = 200).
DEFAULT_SCALE = 10.0


def ceco_loss(
    centers: torch.Tensor,
    include: torch.Tensor,
    etf: torch.Tensor,
    scale: float = DEFAULT_SCALE,
) -> torch.Tensor:
    """Mean cross-entropy of the included (L2-normalised) centers against their own ETF column.

    ``centers``: (K, d); ``include``: (K,) bool; ``etf``: (d, K). Returns 0 (a plain
    tensor) when nothing is included; callers keep their graph by adding ``x.sum() * 0``.
    """
    idx = include.nonzero(as_tuple=False).squeeze(1)
    if idx.numel() == 0:
        return centers.sum() * 0.0
    c = F.normalize(centers[idx].float(), dim=1)
    logits = scale * (c @ etf.float())
    return F.cross_entropy(logits, idx)


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, smooth: float) -> torch.Tensor:
    """Mean cross-entropy against targets with ``smooth`` on the own class and ``(1 - smooth) /
    (K - 1)`` on each other class, as the released center losses smooth (``smooth = 1``: plain CE)."""
    if smooth == 1.0:
        return F.cross_entropy(logits, target)
    k = logits.shape[1]
    soft = torch.full_like(logits, (1.0 - smooth) / (k - 1))
    soft.scatter_(1, target[:, None], smooth)
    return -(soft * F.log_softmax(logits, dim=1)).sum(1).mean()


def _cos_stats(unit: torch.Tensor) -> tuple[float, float]:
    """Mean and population std of the pairwise cosines of unit rows (NaN below 2 rows).

    At a simplex ETF they are -1/(K-1) and 0: cheap per-step collapse monitors.
    """
    n = unit.shape[0]
    if n < 2:
        return math.nan, math.nan
    g = unit @ unit.T
    iu = torch.triu_indices(n, n, offset=1, device=unit.device)
    pairs = g[iu[0], iu[1]]
    stats = torch.stack([pairs.mean(), pairs.std(unbiased=False)]).tolist()
    return float(stats[0]), float(stats[1])


class CenterHead(nn.Module):
    """A fixed classifier of the batch's class centers: a simplex ETF (``official``, ``learned``) or
    a frozen random linear layer (``rr``).

    ``official`` (the released head, see the module docstring) uses BatchNorm in training
    mode over the whole per-process batch, as released: its statistics are set mostly by
    the frequent classes and differ per rank, which is part of the method as published.

    ``learned`` uses LayerNorm in its trainable projection instead: it normalises each point
    on its own, keeps no running statistics and behaves the same for one point or a
    million. ``ema`` > 0 (learned only) keeps running (unit) centers so classes absent from a
    batch still enter the loss average. Those terms are detached and the ETF is fixed, so
    they carry no gradient: they steady the loss value and lower the per-class weight of
    the batch's classes to 1/(classes seen so far) instead of 1/(classes in the batch).
    """

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        variant: str = "official",
        dim: int | None = None,
        scale: float | None = None,
        ignore_index: int = -1,
        global_centers: bool | None = None,
        ema: float = 0.0,
        seed: int = 0,
        hidden: int | None = None,
        log_prior: torch.Tensor | None = None,
        dropout: float = 0.1,
        reduce_dim: int = 128,
        trainable: bool = False,
        smooth: float | None = None,
    ) -> None:
        """Defaults follow the variant: ``official`` as released (dim 512, scale 5, centers per
        process, dropout 0.1, a 128-wide frozen reduction, no smoothing); ``rr`` as released in
        ``UPerHead_cecol`` (the same, scale 1, smooth 0.5); ``learned`` as pcseg had it (dim
        256, scale 10, centers all-reduced over ranks)."""
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {ema}")
        if variant == "official" and ema > 0.0:
            raise ValueError("ema (running centers) belongs to the learned variant; the released heads have none")
        official = variant in RELEASED  # the frozen-projection variants (official, rr)
        self.variant = variant
        self.in_dim = int(in_dim)
        self.num_classes = int(num_classes)
        self.dim = int(dim if dim is not None else (512 if official else 256))
        self.scale = float(scale if scale is not None else (RELEASED[variant][0] if official else DEFAULT_SCALE))
        self.smooth = float(smooth if smooth is not None else (RELEASED[variant][1] if official else 1.0))
        if not 1.0 / self.num_classes <= self.smooth <= 1.0:
            raise ValueError(f"smooth must be in [1/K, 1] (the own class's target share), got {self.smooth}")
        if variant == "learned" and self.smooth != 1.0:
            raise ValueError("smooth (smoothed center targets) belongs to the released variants")
        self.ignore_index = int(ignore_index)
        self.global_centers = bool(global_centers if global_centers is not None else not official)
        self.ema = float(ema)
        if official:
            self._build_official(int(reduce_dim), float(dropout), int(seed), log_prior, bool(trainable))
        else:
            self._build_learned(hidden)
        if variant != "rr":
            self.register_buffer("etf", simplex_etf(num_classes, self.dim, seed))
        if not official:
            # Registered even with ema == 0 so checkpoints load whatever the setting.
            self.register_buffer("running_centers", torch.zeros(num_classes, self.dim))
            self.register_buffer("ema_valid", torch.zeros(num_classes, dtype=torch.bool))

    def _build_learned(self, hidden: int | None) -> None:
        # The per-point part (Linear, norm, activation) runs on every voxel, so its width
        # sets the branch's cost; it defaults to the backbone width, and only the last
        # Linear, applied to the K centers, lifts to ``dim`` for the simplex ETF.
        self.hidden = int(hidden or self.in_dim)
        self.proj = nn.Sequential(
            nn.Linear(self.in_dim, self.hidden),
            nn.LayerNorm(self.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(self.hidden, self.dim),
        )

    def _build_official(self, reduce_dim: int, dropout: float, seed: int, log_prior: torch.Tensor | None,
                        trainable: bool) -> None:
        # Random but reproducible: drawn from ``seed`` alone, without touching the global RNG
        # (the backbone's initialisation stays what it is without the branch).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.reduce = nn.Sequential(nn.Linear(self.in_dim, reduce_dim, bias=False), nn.BatchNorm1d(reduce_dim))
            self.gain = nn.Sequential(nn.Linear(reduce_dim, self.dim), nn.ReLU(inplace=True))
            if self.variant == "rr":  # the released RR classifier: random, frozen, with its bias
                self.cls = nn.Linear(self.dim, self.num_classes)
        for p in self.parameters():
            # frozen, as released: the loss cannot be absorbed by the branch (``trainable`` is the
            # ablation that lets the projection learn, as the learned head's does)
            p.requires_grad_(trainable)
        self.dropout = nn.Dropout(dropout)
        prior = torch.zeros(self.num_classes) if log_prior is None else torch.as_tensor(log_prior, dtype=torch.float32)
        if prior.shape != (self.num_classes,) or not bool(torch.isfinite(prior).all()):
            raise ValueError(f"log_prior must be {self.num_classes} finite numbers, got shape {tuple(prior.shape)}")
        self.register_buffer("log_prior", prior.clone())

    def extra_repr(self) -> str:
        width = f"hidden={self.hidden}" if self.variant == "learned" else f"frozen, smooth={self.smooth}"
        return (f"variant={self.variant}, num_classes={self.num_classes}, {width}, dim={self.dim}, scale={self.scale}, "
                f"global_centers={self.global_centers}, ema={self.ema}")

    @torch.no_grad()
    def _update_running(self, unit: torch.Tensor, present: torch.Tensor) -> None:
        """EMA of the present classes' unit centers; the first sighting initialises."""
        new = unit.detach().to(self.running_centers.dtype)
        blended = self.ema * self.running_centers + (1.0 - self.ema) * new
        upd = torch.where(self.ema_valid[:, None], blended, new)
        self.running_centers.copy_(torch.where(present[:, None], upd, self.running_centers))
        self.ema_valid |= present

    def forward(self, feats: torch.Tensor, labels: torch.Tensor) -> dict:
        """``loss`` (scalar), ``num_present`` / ``num_in_loss`` (int tensors: classes in the
        batch / in the loss average), ``center_cos_std`` / ``center_cos_mean`` (floats over
        the batch's present centers; 0 and -1/(K-1) at collapse).

        With ``global_centers`` under torch.distributed every rank must call this each
        step, since the centers are all-reduced.
        """
        if self.variant != "learned":
            return self._forward_official(feats, labels)
        # The last Linear commutes with the per-class mean, so it is applied to the K
        # centers instead of the N points: the same result (bias included) at a fraction
        # of the cost, which keeps the branch's overhead within a few percent of a step.
        z = self.proj[:-1](feats)
        centers, present = class_centers(
            z, labels, self.num_classes, self.ignore_index, global_reduce=self.global_centers
        )
        centers = self.proj[-1](centers)
        with torch.autocast(device_type=z.device.type, enabled=False):
            unit = F.normalize(centers.float(), dim=1)
            include = present
            if self.ema > 0.0:
                if self.training:
                    self._update_running(unit, present)
                filled = self.ema_valid & ~present
                if bool(filled.any()):
                    running = F.normalize(self.running_centers.float(), dim=1).detach()
                    unit = torch.where(filled[:, None], running, unit)
                    include = present | filled
            loss = ceco_loss(unit, include, self.etf, self.scale)
            if not bool(present.any()):
                # Keeps every parameter in the graph (DDP) while contributing nothing.
                loss = loss + z.sum() * 0.0
            with torch.no_grad():
                cos_mean, cos_std = _cos_stats(unit[present])
        return {
            "loss": loss,
            "num_present": present.sum(),
            "num_in_loss": include.sum(),
            "center_cos_std": cos_std,
            "center_cos_mean": cos_mean,
        }

    def _forward_official(self, feats: torch.Tensor, labels: torch.Tensor) -> dict:
        """The released branches on points: BatchNorm statistics over every point of the batch,
        means over the labelled ones, then the frozen gain on the K means (not the N points);
        ``official``: normalisation, dropout, ETF x scale; ``rr``: dropout, the frozen linear
        classifier x scale; then + log prior and the mean (smoothed) cross-entropy over the
        classes present (the released sum over them divided by their number)."""
        z = self.reduce(feats.float() if feats.dtype in (torch.float16, torch.bfloat16) else feats)
        centers, present = class_centers(
            z, labels, self.num_classes, self.ignore_index, global_reduce=self.global_centers
        )
        idx = present.nonzero(as_tuple=False).squeeze(1)
        with torch.autocast(device_type=z.device.type, enabled=False):
            g = self.gain(centers[idx].float())
            unit = F.normalize(g, dim=1)
            if idx.numel() == 0:
                loss = z.sum() * 0.0  # keeps the features in the graph (DDP) while contributing nothing
            else:
                if self.variant == "rr":
                    logits = self.scale * self.cls(self.dropout(g))
                else:
                    logits = self.scale * (self.dropout(unit) @ self.etf.float())
                loss = smoothed_cross_entropy(logits + self.log_prior, idx, self.smooth)
            with torch.no_grad():
                cos_mean, cos_std = _cos_stats(unit)
        return {
            "loss": loss,
            "num_present": present.sum(),
            "num_in_loss": present.sum(),
            "center_cos_std": cos_std,
            "center_cos_mean": cos_mean,
        }
