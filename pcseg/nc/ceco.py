"""CeCo: center collapse regularisation, a training-only branch beside the point classifier.

Per-class centers of projected features are classified by a *fixed* simplex ETF. The
loss is averaged over classes, not points, so a tail class present with 50 points pulls
as hard as the floor with 50 000: it pushes the class means towards the maximally and
equally separated geometry that imbalance prevents. The branch is used in training only
(``loss = seg_loss + w * head(feat, segment)["loss"]``); inference never runs it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .centers import class_centers
from .etf import simplex_etf

__all__ = ["CenterHead", "ceco_loss", "DEFAULT_SCALE"]

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
    """Projection MLP + fixed simplex-ETF classifier of batch class centers.

    LayerNorm rather than BatchNorm1d in the projection: the batch is ~10^5 points
    dominated by a few head classes, so batch statistics would be set by walls and
    floors and would differ per rank (needing SyncBatchNorm); LayerNorm normalises
    each point on its own, keeps no running statistics (useless here: the branch never
    runs in eval) and behaves the same for one point or a million.

    ``ema`` > 0 keeps running (unit) centers so classes absent from a batch still enter
    the loss average. Those terms are detached and the ETF is fixed, so they carry no
    gradient: they steady the loss value and lower the per-class weight of the batch's
    classes to 1/(classes seen so far) instead of 1/(classes in the batch).
    """

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        dim: int = 256,
        scale: float = DEFAULT_SCALE,
        ignore_index: int = -1,
        global_centers: bool = True,
        ema: float = 0.0,
        seed: int = 0,
        hidden: int | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {ema}")
        self.in_dim = int(in_dim)
        self.num_classes = int(num_classes)
        self.dim = int(dim)
        # The per-point part (Linear, norm, activation) runs on every voxel, so its width
        # sets the branch's cost; it defaults to the backbone width, and only the last
        # Linear, applied to the K centers, lifts to ``dim`` for the simplex ETF.
        self.hidden = int(hidden or in_dim)
        self.scale = float(scale)
        self.ignore_index = int(ignore_index)
        self.global_centers = bool(global_centers)
        self.ema = float(ema)
        self.proj = nn.Sequential(
            nn.Linear(in_dim, self.hidden),
            nn.LayerNorm(self.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(self.hidden, dim),
        )
        self.register_buffer("etf", simplex_etf(num_classes, dim, seed))
        # Registered even with ema == 0 so checkpoints load whatever the setting.
        self.register_buffer("running_centers", torch.zeros(num_classes, dim))
        self.register_buffer("ema_valid", torch.zeros(num_classes, dtype=torch.bool))

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, hidden={self.hidden}, dim={self.dim}, scale={self.scale}, "
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


class WithCenterHead(nn.Module):
    """A segmentor plus the training-only CeCo branch, as one module for DDP.

    The segmentor is untouched: its ``forward`` never calls the center head, so inference
    (and a checkpoint's ``model`` entry, which holds the segmentor alone) has zero
    CeCo cost. The branch runs only in training mode and only when labels are passed.
    """

    def __init__(self, segmentor: nn.Module, center_head: CenterHead) -> None:
        super().__init__()
        self.segmentor = segmentor
        self.center_head = center_head

    def forward(self, grid_coord: torch.Tensor, batch: torch.Tensor, feat: torch.Tensor,
                segment: torch.Tensor | None = None) -> dict:
        out = self.segmentor(grid_coord, batch, feat)
        if self.training and segment is not None:
            for k, v in self.center_head(out["feat"], segment).items():
                out[f"ceco_{k}"] = v
        return out
