"""Checkpoints: atomic, durable writes of the complete training state (model, optimizer, RNG, ...),
and loading that never runs code from the file.

A checkpoint is written to a temporary file, fsynced and renamed, so ``last.pth`` is always
the previous good state or the new one, never a torn or empty file.

Loading always uses ``torch.load(weights_only=True)``: a ``.pth`` is a pickle, and a full
unpickle of a downloaded file can run arbitrary code. Everything pcseg saves is tensors and
plain Python data (the numpy RNG state is stored as a tensor, see :func:`rng_state`); the
only other types accepted are those older pcseg checkpoints used for that RNG state
(:data:`LEGACY_SAFE_GLOBALS`). A file that needs anything else is refused, naming the type;
there is no unsafe fallback.
"""
from __future__ import annotations

import pickle
import random
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pcseg.utils.atomic import atomic_path


# ``kind`` of a checkpoint that holds a pretrained stem + encoder only (``python -m pcseg.convert`` of a
# Sonata/Concerto/Utonia encoder): ``train.init_from`` accepts it, evaluation needs a whole segmentor.
ENCODER_KIND = "encoder"


class CheckpointError(ValueError):
    """A checkpoint cannot be used: unreadable, truncated, or it needs types a safe load refuses.
    The message names the file."""


def _reconstruct() -> Any:
    core = getattr(np, "_core", None) or np.core  # numpy >= 2 moved it; pickles name either path
    return core.multiarray._reconstruct


# What checkpoints of earlier pcseg versions hold besides tensors: numpy's RNG state as an
# ndarray (np.random.get_state()). Rebuilding a plain ndarray runs no code of the file's choosing.
LEGACY_SAFE_GLOBALS: list[Any] = [
    np.ndarray,
    np.dtype,
    (_reconstruct(), "numpy._core.multiarray._reconstruct"),
    (_reconstruct(), "numpy.core.multiarray._reconstruct"),
    *[(type(np.dtype(c)), f"numpy.dtypes.{type(np.dtype(c)).__name__}") for c in "?bBhHiIlLqQefdg"],
]


def _numpy_state_to_plain(state: tuple) -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = state
    return {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _numpy_state_from_plain(state: Any) -> tuple:
    if isinstance(state, dict):  # what rng_state() writes
        keys = state["keys"].numpy().astype(np.uint32)
        return state["kind"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"]
    return tuple(state)  # older checkpoints: np.random.get_state() as saved


def rng_state() -> dict[str, Any]:
    """Every RNG the training loop touches, so a resumed run draws the same numbers; in types
    that ``weights_only`` loading accepts."""
    state = {"python": random.getstate(), "numpy": _numpy_state_to_plain(np.random.get_state()),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np.random.set_state(_numpy_state_from_plain(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path | str, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _unsafe_globals(path: Path) -> list[str]:
    """The globals the file's pickle names beyond what the safe loader allows (read, not run)."""
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint (legacy format) or unreadable: the load error says why
        return []
    allowed = {name for entry in LEGACY_SAFE_GLOBALS if isinstance(entry, tuple) for name in [entry[1]]}
    allowed |= {f"{e.__module__}.{e.__qualname__}" for e in LEGACY_SAFE_GLOBALS if not isinstance(e, tuple)}
    return [g for g in found if g not in allowed]


def safe_load(path: Path | str, map_location: str | torch.device = "cpu", what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` with errors that name the file: a missing or
    truncated file, and a file that would need code to load (the offending types named)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found (pass the path of a .pth file)")
    try:
        with torch.serialization.safe_globals(LEGACY_SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = _unsafe_globals(path)
        named = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if unsafe or named:
            types = ", ".join(unsafe) if unsafe else named.group(1)
            raise CheckpointError(
                f"{what} {path} was refused: loading it would need {types}, which could run code from the "
                "file. pcseg loads only tensors and plain data (torch.load weights_only=True). If the file "
                "is yours, load it where you trust it and save its state_dict (tensors only)") from None
        raise CheckpointError(f"{what} {path} cannot be read: not a torch checkpoint, or truncated") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        first = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{what} {path} cannot be read ({first[:200]}); it may be truncated or from an "
                              "interrupted copy") from None


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A pcseg checkpoint (a dict), loaded safely; errors name the file and what to do."""
    ckpt = safe_load(path, map_location)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(ckpt).__name__}, not a checkpoint dict")
    return ckpt


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict without the DDP ``module.`` prefix, so checkpoints load in any launch mode."""
    inner = model.module if hasattr(model, "module") else model
    return inner.state_dict()


def term_states(ckpt: dict[str, Any]) -> dict[str, dict[str, torch.Tensor]]:
    """The auxiliary training terms' states of a checkpoint, by term name. Checkpoints written
    before the objective interface kept the CeCo head alone under ``center_head``: it is the
    ``ceco`` term's head."""
    if "terms" in ckpt:
        return ckpt["terms"]
    if "center_head" in ckpt:
        return {"ceco": {f"head.{k}": v for k, v in ckpt["center_head"].items()}}
    return {}
