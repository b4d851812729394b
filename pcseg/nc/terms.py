"""The center branches as training terms: CeCo (``ceco:`` section) and region rebalance (``rr:``).

Each wraps a :class:`~pcseg.nc.ceco.CenterHead` as an :class:`~pcseg.models.objective.AuxTerm`
and builds it from its config section, so the trainer never names either method.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from omegaconf import DictConfig

from pcseg.models.objective import AuxTerm, TermOutput

from .ceco import CenterHead

__all__ = ["CenterTerm", "TermContext", "ceco_term", "rr_term"]


@dataclass(frozen=True)
class TermContext:
    """What a term's builder may need besides its config section. ``log_scene_prior`` is called
    only by the terms that use the prior (it may have to read every training cache)."""

    feat_dim: int
    num_classes: int
    seed: int
    log_scene_prior: Callable[[], torch.Tensor]


@dataclass(frozen=True)
class CenterLogKeys:
    """The names a center term logs under (distinct per term, so two terms can run together)."""

    loss: str
    num_present: str
    cos_std: str


class CenterTerm(AuxTerm):
    """A center branch's loss, weighted, with its batch statistics as logs."""

    def __init__(self, head: CenterHead, weight: float, keys: CenterLogKeys) -> None:
        super().__init__(weight)
        self.head = head
        self.keys = keys

    def forward(self, feats: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor) -> TermOutput:
        out = self.head(feats, labels)
        return TermOutput(out["loss"], {self.keys.loss: float(out["loss"].detach()),
                                        self.keys.num_present: float(out["num_present"]),
                                        self.keys.cos_std: out["center_cos_std"]})


CECO_KEYS = CenterLogKeys("loss_center", "num_present", "center_cos_std")
RR_KEYS = CenterLogKeys("loss_rr", "rr_num_present", "rr_center_cos_std")


def _prior(section: DictConfig, ctx: TermContext) -> torch.Tensor | None:
    return None if section.prior == "none" else ctx.log_scene_prior()


def ceco_term(c: DictConfig, ctx: TermContext) -> CenterTerm:
    """CeCo from the ``ceco:`` section (variant official or learned; see pcseg.nc.ceco)."""
    official = c.variant == "official"
    head = CenterHead(ctx.feat_dim, ctx.num_classes, variant=c.variant, dim=c.dim, scale=c.scale,
                      global_centers=c.global_centers, ema=c.ema, seed=ctx.seed, hidden=c.hidden,
                      log_prior=_prior(c, ctx) if official else None, dropout=c.dropout,
                      reduce_dim=c.reduce_dim, trainable=c.trainable_projection)
    return CenterTerm(head, c.weight, CECO_KEYS)


def rr_term(c: DictConfig, ctx: TermContext) -> CenterTerm:
    """Region rebalance from the ``rr:`` section, as released in ``UPerHead_cecol``."""
    head = CenterHead(ctx.feat_dim, ctx.num_classes, variant="rr", dim=c.dim, scale=c.scale,
                      global_centers=c.global_centers, seed=ctx.seed, log_prior=_prior(c, ctx),
                      dropout=c.dropout, reduce_dim=c.reduce_dim, smooth=c.smooth)
    return CenterTerm(head, c.weight, RR_KEYS)
