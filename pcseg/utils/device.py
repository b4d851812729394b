"""The torch device a ``train.device`` / ``--device`` setting names: one rule for training,
evaluation, analysis and the benchmarks."""
from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(name: str, setting: str = "train.device") -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` as a :class:`torch.device`.

    ``auto`` is the current CUDA device when CUDA is available, else the CPU; ``cuda``
    without CUDA is an error that names the fix in terms of ``setting`` (the config key or
    command-line flag the value came from), so the message fits where it was set.
    """
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{setting}=cuda but CUDA is not available (use {setting}=cpu or auto)")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())
