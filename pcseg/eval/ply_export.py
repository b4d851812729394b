"""Coloured PLY files of predictions and errors, for any mesh viewer (MeshLab, Blender, Open3D).

Binary little-endian PLY with the scene's vertices in mesh order and, when the raw mesh is
at hand, its triangles, so the result looks like the scan rather than a point cloud.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement

from pcseg.data.classes import ClassTable
from pcseg.utils.atomic import atomic_path

CORRECT = (170, 170, 170)  # grey
WRONG = (220, 30, 30)  # red
UNLABELLED = (40, 40, 40)  # dark


def write_ply(path: Path | str, coord: np.ndarray, colors: np.ndarray, faces: np.ndarray | None = None) -> None:
    """Write a binary coloured mesh (or point cloud when ``faces`` is None/empty) atomically."""
    coord = np.asarray(coord, dtype=np.float32).reshape(-1, 3)
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    if colors.shape[0] != coord.shape[0]:
        raise ValueError(f"{colors.shape[0]} colours for {coord.shape[0]} vertices")
    vert = np.empty(coord.shape[0], dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                           ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for i, k in enumerate("xyz"):
        vert[k] = coord[:, i]
    for i, k in enumerate(("red", "green", "blue")):
        vert[k] = colors[:, i]
    elements = [PlyElement.describe(vert, "vertex")]
    if faces is not None and len(faces):
        faces = np.asarray(faces, dtype=np.int32).reshape(-1, 3)
        if faces.min() < 0 or faces.max() >= coord.shape[0]:
            raise ValueError(f"face indices outside 0..{coord.shape[0] - 1}")
        face = np.empty(faces.shape[0], dtype=[("vertex_indices", "<i4", (3,))])
        face["vertex_indices"] = faces
        elements.append(PlyElement.describe(face, "face", len_types={"vertex_indices": "u1"}))
    with atomic_path(path) as tmp:
        PlyData(elements, text=False, byte_order="<").write(str(tmp))


def prediction_colors(pred: np.ndarray, table: ClassTable) -> np.ndarray:
    """Benchmark palette colour per vertex (unlabelled/out-of-range predictions dark)."""
    pred = np.asarray(pred, dtype=np.int64)
    out = np.tile(np.array(UNLABELLED, dtype=np.uint8), (pred.size, 1))
    ok = (pred >= 0) & (pred < table.num_classes)
    out[ok] = table.colors[pred[ok]]
    return out


def error_colors(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """Grey where right, red where wrong, dark where the ground truth is unlabelled."""
    pred = np.asarray(pred, dtype=np.int64)
    target = np.asarray(target, dtype=np.int64)
    labelled = (target >= 0) & (target < num_classes)
    out = np.empty((pred.size, 3), dtype=np.uint8)
    out[:] = WRONG
    out[labelled & (pred == target)] = CORRECT
    out[~labelled] = UNLABELLED
    return out


def export_scene(out_dir: Path | str, name: str, coord: np.ndarray, pred: np.ndarray, table: ClassTable,
                 target: np.ndarray | None = None, faces: np.ndarray | None = None) -> list[Path]:
    """``<name>_pred.ply`` and, when labels exist, ``<name>_error.ply``; returns the paths written."""
    out_dir = Path(out_dir)
    paths = [out_dir / f"{name}_pred.ply"]
    write_ply(paths[0], coord, prediction_colors(pred, table), faces)
    if target is not None and (np.asarray(target) >= 0).any():
        paths.append(out_dir / f"{name}_error.ply")
        write_ply(paths[1], coord, error_colors(pred, target, table.num_classes), faces)
    return paths
