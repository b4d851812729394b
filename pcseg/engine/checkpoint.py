"""Checkpoints: atomic writes and complete training state (model, optimizer, RNG, ...).

A checkpoint is written to a temporary file and renamed, so ``last.pth`` is always the
previous good state or the new one, never a torn file.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pcseg.utils.atomic import atomic_path


def rng_state() -> dict[str, Any]:
    """Every RNG the training loop touches, so a resumed run draws the same numbers."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path | str, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint, with an error that names the file and what to do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found (train first, or pass the path of a .pth file)")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise RuntimeError(f"checkpoint {path} cannot be read ({exc}); it may be from an interrupted copy") from exc


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict without the DDP ``module.`` prefix, so checkpoints load in any launch mode."""
    inner = model.module if hasattr(model, "module") else model
    return inner.state_dict()
