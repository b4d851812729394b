"""Models from a config: the one place that turns ``model.*`` keys into a network.

Training, evaluation, analysis, conversion and :func:`pcseg.engine.load.load_segmentor` all
build through here, so a config key means the same thing everywhere and a mismatch between
the input features and ``model.in_channels`` is caught before any data is touched. Loading a
checkpoint is the engine's job (:mod:`pcseg.engine.load`): this module imports no engine code.
"""
from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from .ptv3 import PTV3_KEYS, PTV3M2_KEYS, PTV3M3_KEYS
from .segmentor import Segmentor
from .spunet import SPUNET_KEYS

# Config keys (``model.<key>``) each backbone family takes besides name/preset/in_channels.
BACKBONE_KEYS: dict[str, tuple[str, ...]] = {
    "spunet": SPUNET_KEYS, "ptv3": PTV3_KEYS, "ptv3m2": PTV3M2_KEYS, "ptv3m3": PTV3M3_KEYS,
}
BACKBONE_KEYS["minkunet"] = BACKBONE_KEYS["spunet"]


def model_overrides(cfg: DictConfig) -> dict[str, Any]:
    """Constructor overrides from ``model.*``: the keys that are set, checked against the backbone."""
    m = cfg.model
    name = str(m.name).lower()
    if name not in BACKBONE_KEYS:
        raise ValueError(f"model.name={m.name!r}: expected one of {sorted(BACKBONE_KEYS)}")
    mine = BACKBONE_KEYS[name]
    out: dict[str, Any] = {}
    for key, keys in BACKBONE_KEYS.items():
        for k in keys:
            value = m.get(k)
            if value is None:
                continue
            if k not in mine:
                raise ValueError(f"model.{k} is a {key} setting, but model.name={m.name}: remove it "
                                 f"(valid for {m.name}: {', '.join(mine)})")
            out[k] = tuple(value) if OmegaConf.is_list(value) else value
    return out


def check_input_channels(cfg: DictConfig) -> None:
    """``model.in_channels`` must equal the width of ``feat`` the data transforms produce."""
    from pcseg.data.pipelines import train_transform_list, val_transform_list
    from pcseg.data.transforms import feature_channels

    for key, transforms in (("data.train_transforms", train_transform_list(cfg)),
                            ("data.val_transforms", val_transform_list(cfg))):
        width = feature_channels(transforms)
        if width is not None and width != cfg.model.in_channels:
            source = key if cfg.data.get(key.split(".")[1]) is not None else f"data.feat_keys={list(cfg.data.feat_keys)}"
            raise ValueError(f"the input features ({source}) have {width} channels but model.in_channels="
                             f"{cfg.model.in_channels}: make them agree (coord, color and normal are 3 each)")


def build_model_from_cfg(cfg: DictConfig, device: torch.device | str | None = "cpu") -> Segmentor:
    """The segmentor ``cfg.model`` describes, for the classes of ``cfg.data.label_set``."""
    from pcseg.data.classes import table as class_table

    from . import build_model

    check_input_channels(cfg)
    num_classes = class_table(cfg.data.label_set).num_classes
    model = build_model(cfg.model.name, num_classes=num_classes, in_channels=cfg.model.in_channels,
                        preset=cfg.model.preset, device=device, **model_overrides(cfg))
    if cfg.model.get("freeze_backbone"):
        # Linear probing: the backbone's weights stay as loaded; only the head (and terms) train.
        for p in model.backbone.parameters():
            p.requires_grad_(False)
    momentum = cfg.model.get("bn_momentum")
    if momentum is not None:
        if not 0.0 < float(momentum) <= 1.0:
            raise ValueError(f"model.bn_momentum must be in (0, 1], got {momentum}")
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = float(momentum)
    return model
