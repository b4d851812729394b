"""Models: spconv backbones (SpUNet, PTv3 and its Sonata/Utonia generations), heads and the segmentor, plus the CPU shim for spconv."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import spconv_compat
from .heads import LinearHead
from .ptv3 import PTV3_PRESETS, PTV3M2_PRESETS, PTV3M3_PRESETS, PTv3, PTv3M2, PTv3M3
from .segmentor import Segmentor
from .spconv_compat import conv_algo, set_conv_algo
from .spunet import SPUNET_PRESETS, SpUNet

# Importing the models is what every training/eval path does first, so the
# spconv stream fix is applied here once.
spconv_compat.install()

__all__ = [
    "MODELS",
    "PRESETS",
    "LinearHead",
    "PTv3",
    "PTv3M2",
    "PTv3M3",
    "Segmentor",
    "SpUNet",
    "build_model",
    "build_model_from_cfg",
    "conv_algo",
    "set_conv_algo",
    "spconv_compat",
]

# Backbone name -> class.
MODELS: dict[str, type[nn.Module]] = {
    "spunet": SpUNet,
    "minkunet": SpUNet,
    "ptv3": PTv3,
    "ptv3m2": PTv3M2,
    "ptv3m3": PTv3M3,
}

# Backbone name -> (preset name -> constructor kwargs, default preset).
PRESETS: dict[str, tuple[dict[str, dict[str, Any]], str]] = {
    "spunet": (SPUNET_PRESETS, "minkunet34c"),
    "minkunet": (SPUNET_PRESETS, "minkunet34c"),
    "ptv3": (PTV3_PRESETS, "scannet200"),
    "ptv3m2": (PTV3M2_PRESETS, "sonata"),
    "ptv3m3": (PTV3M3_PRESETS, "utonia"),
}


def build_model(
    name: str,
    num_classes: int,
    in_channels: int = 9,
    preset: str | None = None,
    device: torch.device | str | None = "cpu",
    **overrides: Any,
) -> Segmentor:
    """Build ``Segmentor(backbone=MODELS[name](**preset, **overrides), num_classes)``.

    ``device`` only picks the spconv conv algorithm (and is where the model is
    placed); ``overrides`` win over the preset, e.g. ``layers=(1,) * 8``.
    """
    key = name.lower()
    if key not in MODELS:
        raise KeyError(f"unknown model {name!r}; valid: {sorted(MODELS)}")
    presets, default = PRESETS.get(key, ({}, None))
    kwargs: dict[str, Any] = {}
    chosen = preset if preset is not None else default
    if chosen is not None:
        if chosen not in presets:
            raise KeyError(f"unknown preset {chosen!r} for {name!r}; valid: {sorted(presets)}")
        kwargs.update(presets[chosen])
    kwargs.update(overrides)
    backbone = MODELS[key](in_channels=in_channels, device=device, **kwargs)
    model = Segmentor(backbone, num_classes)
    if device is not None:
        model = model.to(device)
    return model


from .from_config import build_model_from_cfg  # noqa: E402  (uses build_model above)


def __getattr__(name: str) -> Any:
    """Point old ``from pcseg.models import load_segmentor`` code at its new home, without
    importing the engine from the models layer."""
    if name == "load_segmentor":
        raise AttributeError("load_segmentor moved to pcseg.engine.load: "
                             "from pcseg.engine.load import load_segmentor")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
