"""The one builder of the training objective from the config: the point loss and the auxiliary terms.

The point loss takes its options from ``loss:`` (class weights, focal, logit adjustment,
Lovasz). Each auxiliary term has a config section with an ``enabled`` key and a builder that
lives with the method's code (:data:`TERMS`); adding a method means adding a line there.
The trainer only calls :func:`build_objective` and the :class:`~pcseg.models.objective.Objective`
interface.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Sequence

import torch
from omegaconf import DictConfig

from pcseg.data.cache_check import load_array
from pcseg.models.losses import SegLoss, class_weights_from_histogram, log_point_prior
from pcseg.models.objective import AuxTerm, Objective
from pcseg.nc.prior import log_scene_prior, scene_counts
from pcseg.nc.terms import TermContext, ceco_term, rr_term

__all__ = ["TERMS", "build_objective", "build_point_loss"]

# config section -> builder of its term, in the order the terms run and log
TERMS: dict[str, Callable[[DictConfig, TermContext], AuxTerm]] = {"ceco": ceco_term, "rr": rr_term}


def _histogram(cfg: DictConfig, manifest: dict | None, key: str) -> list[int]:
    if manifest is None:
        raise FileNotFoundError(
            f"{key} needs the class histogram in {Path(cfg.data.root) / 'manifest.json'}; it is written by "
            "python data_prep/scannet200.py")
    return manifest["class_histogram"][cfg.data.label_set]["counts"]


def build_point_loss(cfg: DictConfig, manifest: dict | None) -> SegLoss:
    """The point loss of ``loss:``; class weights and the logit-adjustment prior come from the
    manifest's point histogram of the training split."""
    lc = cfg.loss
    weights = None
    if lc.class_weights != "none":
        weights = class_weights_from_histogram(_histogram(cfg, manifest, f"loss.class_weights={lc.class_weights}"),
                                               lc.class_weights)
    prior = None
    if lc.logit_adjust > 0:
        prior = log_point_prior(_histogram(cfg, manifest, f"loss.logit_adjust={lc.logit_adjust}"))
    return SegLoss(weights, lc.lovasz_weight, focal_gamma=lc.focal_gamma, log_prior=prior,
                   logit_adjust=lc.logit_adjust)


def scene_prior_source(cfg: DictConfig, manifest: dict | None, scene_dirs: Sequence[Path], num_classes: int,
                       note: Callable[[str], None]) -> Callable[[], torch.Tensor]:
    """A function giving the log scene prior (the share of training scenes holding each class),
    from the manifest, or counted from the caches for a manifest without the counts (said once
    through ``note``). Computed at most once, whichever terms ask."""
    @functools.cache
    def get() -> torch.Tensor:
        counts = (manifest or {}).get("class_histogram", {}).get(cfg.data.label_set, {}).get("scenes")
        if counts is None:
            counts = scene_counts((load_array(s, cfg.data.label_set, None) for s in scene_dirs), num_classes)
            note(f"scene prior: the manifest has no per-class scene counts, so they were read from the "
                 f"{len(scene_dirs)} training caches")
        return log_scene_prior(counts)

    return get


def build_objective(cfg: DictConfig, ctx: TermContext, manifest: dict | None,
                    reduce_normalizer: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Objective:
    """The point loss plus a term for every enabled section of :data:`TERMS`."""
    terms = {name: build(cfg[name], ctx) for name, build in TERMS.items() if cfg[name].enabled}
    return Objective(build_point_loss(cfg, manifest), terms, reduce_normalizer)
