"""The class prior of the official CeCo branch: how many training scenes contain each class.

The released head adds ``log(p + 1e-12)`` to its center logits, with p the share of training
images containing each class (image-level, not pixel-level, frequency). For 3D the image is
a scene: p_k = (training scenes containing k) / (the sum of those counts over all classes).
Data prep records the per-class scene counts in ``manifest.json``; for caches made before
that, :func:`scene_counts` reads them from the label arrays. Both are deterministic in the
files, so every DDP rank computes the same prior.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

__all__ = ["log_scene_prior", "scene_counts"]

EPS = 1e-12  # as released: a class in no training scene gets log(1e-12), not -inf


def scene_counts(label_arrays: Iterable[np.ndarray], num_classes: int) -> np.ndarray:
    """(K,) number of arrays (scenes) in which each class occurs (negative labels ignored)."""
    counts = np.zeros(num_classes, dtype=np.int64)
    for labels in label_arrays:
        present = np.unique(labels[(labels >= 0) & (labels < num_classes)])
        counts[present] += 1
    return counts


def log_scene_prior(counts: np.ndarray | list[int]) -> torch.Tensor:
    """``log(p + 1e-12)`` with p = counts / counts.sum(), float32 (K,)."""
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or not np.isfinite(c).all() or (c < 0).any() or c.sum() <= 0:
        raise ValueError(f"scene counts must be non-negative with a positive sum, got {c.tolist()[:10]}...")
    return torch.from_numpy(np.log(c / c.sum() + EPS)).float()
