"""The file layouts Pointcept-family PTv3 weights are published in, brought to one naming.

* a Pointcept segmentor checkpoint (``DefaultSegmentorV2``): ``state_dict`` with
  ``[module.]backbone.*`` and ``[module.]seg_head.*``;
* a Pointcept pretraining checkpoint (Sonata, Concerto, Utonia: ``pretrain-*.pth``):
  ``state_dict`` with ``module.student.backbone.*`` next to the teacher and the
  pretraining heads, which fine-tuning does not use;
* a standalone encoder file (``sonata.pth``, ``concerto_*.pth``, ``utonia.pth``):
  ``{"config": <constructor arguments>, "state_dict": {embedding.*, enc.*, ...}}``.

:func:`split_layout` returns the tensors under Pointcept's segmentor names
(``backbone.*``, ``seg_head.*``), which :mod:`.pointcept` maps onto pcseg, and
lists every tensor it leaves out, so nothing is dropped silently.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["LAYOUTS", "SourceWeights", "split_layout", "summarize_names"]

LAYOUTS = ("segmentor", "pretrain", "encoder file")
# Tensors of a pretrained encoder that fine-tuning does not use (Pointcept's configs build the
# fine-tuned backbone with mask_token=False).
_UNUSED_ENCODER = ("backbone.embedding.mask_token",)


@dataclass
class SourceWeights:
    """Weights under Pointcept's segmentor names, and what the file held besides."""

    layout: str  # one of LAYOUTS
    state: dict[str, torch.Tensor]
    ignored: list[str] = field(default_factory=list)  # source names left out (teacher, heads, mask token)
    config: dict[str, Any] | None = None  # an encoder file's constructor arguments
    meta: dict[str, Any] = field(default_factory=dict)  # epoch, best metric...

    @property
    def has_head(self) -> bool:
        return any(_strip_module(k) == "seg_head.weight" for k in self.state)


def _strip_module(name: str) -> str:
    return name[len("module."):] if name.startswith("module.") else name


def split_layout(obj: Any, what: str = "checkpoint") -> SourceWeights:
    """Recognise the layout of a loaded checkpoint ``obj``; ValueError names what was found."""
    if not isinstance(obj, dict):
        raise ValueError(f"{what} holds a {type(obj).__name__}, not a checkpoint dict")
    state = obj.get("state_dict", obj)
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{what} has no 'state_dict' of tensors (keys: {sorted(obj)[:10]})")
    meta = {k: v for k, v in obj.items() if k not in ("state_dict", "config") and isinstance(v, (int, float, str))}
    names = {_strip_module(k): k for k in state}
    ignored: list[str] = []
    if any(k.startswith("student.backbone.") for k in names):
        layout, out = "pretrain", {}
        for k, original in names.items():
            if k.startswith("student.backbone."):
                out["backbone." + k[len("student.backbone."):]] = state[original]
            else:
                ignored.append(original)
        config = None
    elif any(k.startswith(("backbone.", "seg_head.")) for k in names):
        layout = "segmentor"
        out = dict(state)  # names as stored (``module.`` kept), so errors quote the file's own names
        config = None
    elif any(k.startswith(("embedding.", "enc.")) for k in names):
        layout = "encoder file"
        out = {"backbone." + k: state[original] for k, original in names.items()}
        config = obj.get("config") if isinstance(obj.get("config"), dict) else None
    else:
        raise ValueError(f"{what}: no known PTv3 layout (no backbone.*, student.backbone.* or embedding.*/enc.* "
                         f"tensors; first names: {sorted(names)[:5]})")
    for k in list(out):
        if _strip_module(k) in _UNUSED_ENCODER:
            del out[k]
            ignored.append(k)
    return SourceWeights(layout, out, ignored, config, meta)


def summarize_names(names: list[str], depth: int = 3) -> str:
    """``a.b.c.* (12), ...``: names grouped by their first ``depth`` parts, for logs."""
    groups = Counter(".".join(n.split(".")[:depth]) for n in names)
    return ", ".join(f"{g}.* ({c})" if g not in names else g for g, c in sorted(groups.items()))
