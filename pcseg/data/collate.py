"""Batch several scenes into one point set (the sparse-convolution layout).

Scenes are concatenated along the point axis instead of padded, because sparse
convolutions work on a flat list of voxels tagged with their scene index.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

# Per-point arrays concatenated across scenes, with the dtype the model expects.
POINT_KEYS: dict[str, np.dtype] = {
    "grid_coord": np.dtype(np.int32),
    "feat": np.dtype(np.float32),
    "segment": np.dtype(np.int64),
    "coord": np.dtype(np.float32),
    "instance": np.dtype(np.int64),
}
# Per-vertex arrays (original resolution) that only test-mode voxelization produces.
VERTEX_KEYS: dict[str, np.dtype] = {"origin_segment": np.dtype(np.int64)}
REQUIRED_KEYS = ("grid_coord", "feat")


def _array(value: Any, dtype: np.dtype) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.numpy()
    return np.asarray(value, dtype=dtype)


def _cat(arrays: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.concatenate(arrays, axis=0)))


def collate(samples: list[dict[str, Any]]) -> dict[str, torch.Tensor | list]:
    """Concatenate scenes into one batch.

    Returns ``grid_coord`` int32 (N, 3), ``feat`` float32 (N, C), ``segment`` int64 (N,),
    ``batch`` int64 (N,) scene index per row, ``offset`` int64 (B,) with offset[i] the
    end row of scene i, and ``name`` (list). When the samples carry ``inverse`` (test
    mode) it is shifted by each scene's first row so it indexes batch rows directly,
    and ``num_points`` int64 (B,) gives each scene's original vertex count. Keys that
    are not per-point arrays are returned as per-scene lists.
    """
    if not samples:
        raise ValueError("collate needs at least one sample")
    for key in REQUIRED_KEYS:
        missing = [i for i, s in enumerate(samples) if key not in s]
        if missing:
            raise KeyError(f"collate: samples {missing} lack {key!r}; end the transforms with "
                           "GridSample and ToFeatures")
    counts = np.array([len(s["grid_coord"]) for s in samples], dtype=np.int64)
    offset = np.cumsum(counts)
    starts = offset - counts
    batch: dict[str, torch.Tensor | list] = {}

    for key, dtype in POINT_KEYS.items():
        present = [key in s for s in samples]
        if not any(present):
            continue
        if not all(present):
            raise KeyError(f"collate: {key!r} present in only some samples")
        arrays = [_array(s[key], dtype) for s in samples]
        for i, (array, count) in enumerate(zip(arrays, counts)):
            if array.shape[0] != count:
                raise ValueError(f"collate: sample {i} has {array.shape[0]} {key!r} rows "
                                 f"but {count} grid_coord rows")
        batch[key] = _cat(arrays)
    batch["batch"] = torch.from_numpy(np.repeat(np.arange(len(samples), dtype=np.int64), counts))
    batch["offset"] = torch.from_numpy(offset)

    with_inverse = ["inverse" in s for s in samples]
    if any(with_inverse):
        if not all(with_inverse):
            raise KeyError("collate: 'inverse' present in only some samples (mixed train/test modes)")
        inverses = [_array(s["inverse"], np.dtype(np.int64)) for s in samples]
        batch["inverse"] = _cat([inv + start for inv, start in zip(inverses, starts)])
        batch["num_points"] = torch.tensor([len(inv) for inv in inverses], dtype=torch.int64)
        for key, dtype in VERTEX_KEYS.items():
            if all(key in s for s in samples):
                batch[key] = _cat([_array(s[key], dtype) for s in samples])

    handled = set(POINT_KEYS) | set(VERTEX_KEYS) | {"inverse"}
    extra = sorted({k for s in samples for k in s} - handled)
    for key in extra:
        batch[key] = [s.get(key) for s in samples]
    batch.setdefault("name", [f"scene{i}" for i in range(len(samples))])
    return batch
