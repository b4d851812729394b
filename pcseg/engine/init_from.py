"""``train.init_from``: a new run starting from another run's, a converted, or a pretrained encoder's
weights. Which tensors come from the file and which start fresh is decided here, and said in the
run's log; a tensor that does not fit is an error naming it, never a silent partial load."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig
from torch import nn

from pcseg.engine.checkpoint import ENCODER_KIND, load_checkpoint
from pcseg.models import MODELS
from pcseg.models.pointcept import ENCODER_PREFIXES
from pcseg.models.pointcept_layouts import summarize_names

__all__ = ["load_initial_weights"]


def load_initial_weights(model: nn.Module, path: Path, cfg: DictConfig) -> str:
    """Load ``train.init_from`` weights into ``model``; returns the line the run's log records.

    The point classifier is kept when the checkpoint was trained on the same classes and
    re-initialised otherwise. An encoder checkpoint (a converted Sonata/Concerto/Utonia
    encoder) gives the stem and encoder; the decoder and the classifier start fresh. Any
    other missing, unexpected or differently shaped tensor is an error that names them,
    since it means a different network.
    """
    ckpt = load_checkpoint(path, map_location="cpu")
    if "model" not in ckpt:
        raise ValueError(f"train.init_from={path} holds no 'model' weights (a pcseg checkpoint is needed; "
                         "convert Pointcept checkpoints with python -m pcseg.convert)")
    source = ckpt["model"]
    target = model.state_dict()
    encoder = ckpt.get("kind") == ENCODER_KIND
    # PT-v3m2 and m3 weights have the same names and shapes: the stored network decides (by the
    # backbone class its name builds, so minkunet and spunet are one network).
    stored = ckpt.get("config", {}).get("model", {}).get("name") if isinstance(ckpt.get("config"), dict) else None
    if stored is not None and MODELS.get(str(stored).lower()) is not MODELS.get(str(cfg.model.name).lower()):
        raise ValueError(f"train.init_from={path} holds model.name={stored} weights, this run is "
                         f"model.name={cfg.model.name}: use a config of that network")
    if encoder:
        fresh = [k for k in target if not k.startswith(ENCODER_PREFIXES)]
        same_classes = True
    else:
        same_classes = ckpt.get("label_set", cfg.data.label_set) == cfg.data.label_set and all(
            k not in source or source[k].shape == v.shape for k, v in target.items() if k.startswith("head."))
        if not same_classes:
            source = {k: v for k, v in source.items() if not k.startswith("head.")}
        fresh = [] if same_classes else [k for k in target if k.startswith("head.")]
    missing = [k for k in target if k not in source and k not in fresh]
    unexpected = [k for k in source if k not in target]
    shapes = [f"{k} {tuple(source[k].shape)} vs {tuple(v.shape)}" for k, v in target.items()
              if k in source and source[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise ValueError(f"train.init_from={path} does not fit model.name={cfg.model.name}: "
                         f"missing {missing[:8]}, unexpected {unexpected[:8]}, shape mismatches {shapes[:8]}; "
                         "use the model settings it was trained with")
    model.load_state_dict(source, strict=False)
    if encoder:
        origin = ckpt.get("converted_from", {}).get("format", "encoder checkpoint")
        return (f"initialised from {path} ({origin}): {len(source)} tensors of the stem and encoder "
                f"({summarize_names(list(source), 2)}); fresh: {len(fresh)} tensors ({summarize_names(fresh, 2)})")
    return f"initialised from {path}" + ("" if same_classes else " (classes differ: the point classifier starts fresh)")
