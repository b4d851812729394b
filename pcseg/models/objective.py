"""The training objective: a point loss plus any number of auxiliary terms, behind one interface.

Imbalance remedies come in two kinds. Some change the point loss itself (class weights,
focal loss, logit adjustment, Lovasz: :class:`pcseg.models.losses.SegLoss`); others add a
training-only branch with a loss of its own (CeCo, region rebalance: :mod:`pcseg.nc`). The
trainer knows neither: it runs :class:`TrainingModel` (the segmentor with the terms, one
module so DDP sees every trainable parameter) and asks :meth:`Objective.total` for the loss.
A new method is a new :class:`AuxTerm` and a line in the builder, not a trainer change.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

__all__ = ["AuxTerm", "TermOutput", "TrainingModel", "Objective"]


@dataclass
class TermOutput:
    """One auxiliary term's result: the unweighted scalar ``loss`` and a few scalars to log.

    ``logs`` must hold the same keys on every DDP rank (they are averaged over ranks);
    NaN stands for "undefined in this batch"."""

    loss: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)


class AuxTerm(nn.Module):
    """A training-only auxiliary loss: ``weight * forward(feats, labels, logits).loss`` joins the
    point loss. Its ``state_dict`` is its checkpoint state; inference never builds it.

    Subclasses implement :meth:`forward`. Under DDP every rank calls every term each step, so
    a term may use collectives; a term whose loss does not depend on some of its trainable
    parameters in a batch must still keep them in the graph (``x.sum() * 0``)."""

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = float(weight)

    def forward(self, feats: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor) -> TermOutput:  # noqa: D401
        raise NotImplementedError


class TrainingModel(nn.Module):
    """A segmentor plus its auxiliary terms, as one module (DDP wraps this).

    The segmentor is untouched: its ``forward`` never calls a term, so a checkpoint's ``model``
    entry (the segmentor alone) and inference carry no cost of any method. Terms run only in
    training mode and only when labels are passed; their outputs come back under ``"terms"``.
    """

    def __init__(self, segmentor: nn.Module, terms: dict[str, AuxTerm]) -> None:
        super().__init__()
        self.segmentor = segmentor
        self.terms = nn.ModuleDict(terms)

    def forward(self, grid_coord: torch.Tensor, batch: torch.Tensor, feat: torch.Tensor,
                segment: torch.Tensor | None = None, coord: torch.Tensor | None = None) -> dict:
        """``coord`` reaches only backbones that read point coordinates (see ``Segmentor``)."""
        out = self.segmentor(grid_coord, batch, feat, coord)
        if self.training and segment is not None and len(self.terms):
            out["terms"] = {name: term(out["feat"], segment, out["logits"]) for name, term in self.terms.items()}
        return out


class Objective:
    """Point loss + weighted auxiliary terms, and what to log of them.

    ``point_loss(logits, target, normalizer)`` is the point-wise loss; ``normalizer(target)``
    its per-process denominator (labelled points). ``reduce_normalizer`` turns that into the
    global batch's (the trainer passes an all-reduce under DDP), so the DDP gradient is the
    whole batch's. Terms' logs are prefixed by nothing: each term names its own keys.
    """

    def __init__(self, point_loss: nn.Module, terms: dict[str, AuxTerm],
                 reduce_normalizer: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.point_loss = point_loss
        self.terms = terms
        self.reduce_normalizer = reduce_normalizer or (lambda x: x)

    def total(self, out: dict, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The total loss of one step and its parts as floats (``loss_seg``, then each term's)."""
        denom = self.reduce_normalizer(self.point_loss.normalizer(target))
        loss = self.point_loss(out["logits"], target, denom)
        logs = {"loss_seg": float(loss.detach())}
        for name, result in out.get("terms", {}).items():
            loss = loss + self.terms[name].weight * result.loss
            logs.update(result.logs)
        return loss, logs

    def to(self, device: torch.device | str) -> "Objective":
        """Move the point loss's buffers and the terms to ``device``."""
        self.point_loss.to(device)
        for term in self.terms.values():
            term.to(device)
        return self

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """Each term's state by name (the checkpoint's ``terms`` entry)."""
        return {name: term.state_dict() for name, term in self.terms.items()}

    def load_state_dict(self, states: dict[str, dict[str, torch.Tensor]]) -> None:
        """Load each term's state; a term missing from ``states`` is an error naming it."""
        missing = [n for n in self.terms if n not in states]
        if missing:
            raise ValueError(f"no saved state for the training term(s) {missing}")
        for name, term in self.terms.items():
            term.load_state_dict(states[name])
