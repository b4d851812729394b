"""A trained (or converted) pcseg checkpoint as a ready-to-run segmentor.

In the engine, not in :mod:`pcseg.models`: reading a checkpoint safely and validating the
config it stores are engine concerns, and the models layer does not import the engine.
"""
from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from pcseg.engine.checkpoint import ENCODER_KIND, load_checkpoint
from pcseg.engine.config import load_config
from pcseg.models.from_config import build_model_from_cfg
from pcseg.models.segmentor import Segmentor
from pcseg.models.spconv_compat import set_conv_algo

__all__ = ["load_segmentor"]


def load_segmentor(path: str | Path, device: torch.device | str = "cpu") -> tuple[Segmentor, DictConfig]:
    """A trained (or converted) pcseg checkpoint as ``(model, cfg)``: eval mode, on ``device``.

    Call it as ``model(grid_coord, batch, feat)["logits"]``; ``cfg.data`` says which input
    features it expects (``feat_keys``, ``color_range``, ``grid_size``).
    """
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt.get("config"), dict) or "model" not in ckpt:
        raise ValueError(f"{path} is not a pcseg checkpoint (no 'config' and 'model'); "
                         "convert Pointcept checkpoints with python -m pcseg.convert")
    if ckpt.get("kind") == ENCODER_KIND:
        raise ValueError(f"{path} is an encoder checkpoint (a pretrained stem + encoder, no decoder or classifier): "
                         "fine-tune it first with train.init_from, then evaluate the run's best.pth")
    cfg = load_config(ckpt["config"])
    model = build_model_from_cfg(cfg, device)
    model.load_state_dict(ckpt["model"])
    device = torch.device(device)
    return set_conv_algo(model.to(device), device).eval(), cfg
