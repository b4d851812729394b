"""Readers for the raw ScanNet release (meshes, over-segmentation, aggregation, label map).

Kept apart from the conversion driver because evaluation reads the same raw files
(vertex counts and ground truth for submission checks).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from plyfile import PlyData

from pcseg.data.classes import scannet20, scannet200


class RawDataError(Exception):
    """A raw input file is missing or malformed; the message names the file and what is wrong."""


@dataclass(frozen=True)
class SceneFiles:
    """Paths of one scene's raw files in the release layout."""

    name: str
    folder: Path

    @property
    def mesh(self) -> Path:
        return self.folder / f"{self.name}_vh_clean_2.ply"

    @property
    def segs(self) -> Path:
        return self.folder / f"{self.name}_vh_clean_2.0.010000.segs.json"

    @property
    def aggregation(self) -> Path:
        return self.folder / f"{self.name}.aggregation.json"

    @property
    def meta(self) -> Path:
        return self.folder / f"{self.name}.txt"


def _require(path: Path) -> None:
    if not path.is_file():
        raise RawDataError(f"missing file {path}")


def read_mesh(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices (float32 N x 3), colours (uint8 N x 3) and triangles (int64 F x 3) of a PLY mesh.

    The triangle fast path (fixed list length) reads a ScanNet mesh in milliseconds;
    meshes with other polygons fall back to the general reader and are fan-triangulated.
    """
    _require(path)
    try:
        try:
            ply = PlyData.read(str(path), known_list_len={"face": {"vertex_indices": 3}})
            faces_el = ply["face"] if "face" in ply else None
            faces = None if faces_el is None else np.asarray(faces_el["vertex_indices"])
            if faces is not None and (faces.ndim != 2 or faces.shape[1] != 3):
                raise ValueError("non-triangle faces")
        except Exception:
            ply = PlyData.read(str(path), mmap=False)
            faces = None
            if "face" in ply:
                faces = _triangulate(ply["face"].data["vertex_indices"])
        vert = ply["vertex"].data
    except RawDataError:
        raise
    except Exception as exc:  # plyfile raises many types for truncated or corrupt files
        raise RawDataError(f"cannot read mesh {path}: corrupt or truncated PLY ({exc})") from exc
    names = vert.dtype.names or ()
    missing = [p for p in ("x", "y", "z", "red", "green", "blue") if p not in names]
    if missing:
        raise RawDataError(f"mesh {path} lacks vertex properties {missing}")
    if len(vert) == 0:
        raise RawDataError(f"mesh {path} has no vertices (an empty scene cannot be trained on or scored)")
    with np.errstate(over="ignore"):  # a double beyond float32's range becomes inf, caught below
        coord = np.stack([vert["x"], vert["y"], vert["z"]], axis=1).astype(np.float32)
    if not np.isfinite(coord).all():
        rows = np.flatnonzero(~np.isfinite(coord).all(axis=1))
        raise RawDataError(f"mesh {path} has non-finite vertex coordinates (NaN or inf) at {len(rows)} of "
                           f"{len(coord)} vertices, first: vertex {int(rows[0])}")
    color = np.stack([vert["red"], vert["green"], vert["blue"]], axis=1)
    if color.dtype != np.uint8:
        color = np.clip(color, 0, 255).astype(np.uint8)
    if faces is None:
        faces = np.zeros((0, 3), dtype=np.int64)
    faces = faces.astype(np.int64, copy=False)
    if faces.size and (faces.min() < 0 or faces.max() >= len(coord)):
        raise RawDataError(f"mesh {path} has face indices outside 0..{len(coord) - 1}")
    return coord, np.ascontiguousarray(color), faces


def _triangulate(polys: np.ndarray) -> np.ndarray:
    """Fan-triangulate a ragged array of polygons (rare: ScanNet meshes are triangles)."""
    tris = [np.stack([np.full(len(p) - 2, p[0]), p[1:-1], p[2:]], axis=1) for p in polys if len(p) >= 3]
    return np.concatenate(tris).astype(np.int64) if tris else np.zeros((0, 3), dtype=np.int64)


def vertex_normals(coord: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit area-weighted vertex normals (float32 N x 3).

    Each face's cross product has length twice its area, so summing it onto the face's
    vertices weights by area. Vectorised with bincount: the per-face Python loop of
    other preprocessors is the slowest part of their conversion. Vertices on no face
    (or only on degenerate faces) get a zero normal.
    """
    n = len(coord)
    v = coord.astype(np.float64)
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    idx = faces.reshape(-1)
    normal = np.empty((n, 3), dtype=np.float64)
    for axis in range(3):
        normal[:, axis] = np.bincount(idx, weights=np.repeat(fn[:, axis], 3), minlength=n)
    length = np.linalg.norm(normal, axis=1, keepdims=True)
    np.divide(normal, length, out=normal, where=length > 0)
    normal[length[:, 0] == 0] = 0.0
    return normal.astype(np.float32)


def _read_json(path: Path) -> dict:
    _require(path)
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RawDataError(f"cannot parse JSON {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise RawDataError(f"{path}: expected a JSON object at the top level")
    return data


def read_segments(path: Path, num_vertices: int) -> np.ndarray:
    """Per-vertex segment ids (int64) from a ``*.segs.json`` file, checked against the mesh."""
    data = _read_json(path)
    if "segIndices" not in data:
        raise RawDataError(f"{path}: no 'segIndices' key")
    try:
        seg = np.asarray(data["segIndices"], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise RawDataError(f"{path}: 'segIndices' must be a list of integers ({exc})") from exc
    if seg.ndim != 1 or len(seg) != num_vertices:
        raise RawDataError(
            f"{path}: {seg.size} segIndices for a mesh of {num_vertices} vertices (must be one per vertex)"
        )
    return seg


def read_aggregation(path: Path) -> list[dict]:
    """The object groups (``segGroups``) of an ``*.aggregation.json`` file, validated."""
    data = _read_json(path)
    groups = data.get("segGroups")
    if not isinstance(groups, list):
        raise RawDataError(f"{path}: no 'segGroups' list")
    for i, g in enumerate(groups):
        if not isinstance(g, dict):
            raise RawDataError(f"{path}: segGroups[{i}] is not an object")
        gid, label, segs = g.get("id", g.get("objectId")), g.get("label"), g.get("segments")
        if not isinstance(gid, int) or isinstance(gid, bool) or not 0 <= gid < 2**31:
            raise RawDataError(f"{path}: segGroups[{i}] has id {gid!r}, expected an integer in 0..2^31-1")
        if not isinstance(label, str):
            raise RawDataError(f"{path}: segGroups[{i}] has label {label!r}, expected a category name")
        if not isinstance(segs, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in segs):
            raise RawDataError(f"{path}: segGroups[{i}] 'segments' must be a list of integers")
    return groups


def read_axis_alignment(path: Path) -> np.ndarray:
    """The 4x4 ``axisAlignment`` matrix of a scene's ``<scene>.txt`` (identity when absent)."""
    _require(path)
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "axisAlignment":
            try:
                values = [float(x) for x in value.split()]
            except ValueError as exc:
                raise RawDataError(f"{path}: axisAlignment is not 16 numbers ({exc})") from exc
            if len(values) != 16:
                raise RawDataError(f"{path}: axisAlignment has {len(values)} numbers, expected 16")
            if not all(np.isfinite(values)):
                raise RawDataError(f"{path}: axisAlignment holds a non-finite number (nan or inf)")
            return np.array(values, dtype=np.float64).reshape(4, 4)
    return np.eye(4)


@dataclass(frozen=True)
class LabelMap:
    """``scannetv2-labels.combined.tsv``: raw category name -> ScanNet200 index and ScanNet20 index."""

    to200: dict[str, int]
    to20: dict[str, int]

    @classmethod
    def read(cls, path: Path) -> "LabelMap":
        if not path.is_file():
            raise RawDataError(
                f"label map {path} not found: it ships with the ScanNet release as "
                "scannetv2-labels.combined.tsv (pass --label-map PATH if it lives elsewhere)"
            )
        lut200 = scannet200().id_to_index()
        lut20 = scannet20().id_to_index()
        to200: dict[str, int] = {}
        to20: dict[str, int] = {}
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise RawDataError(f"label map {path} is not UTF-8 text (invalid byte at offset {exc.start}); "
                               "use the scannetv2-labels.combined.tsv of the ScanNet release") from None
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t")
            columns = set(reader.fieldnames or ())
            missing = {"raw_category", "id", "nyu40id"} - columns
            if missing:
                raise RawDataError(f"label map {path} lacks columns {sorted(missing)} (the first line must be the "
                                   "tab-separated header of scannetv2-labels.combined.tsv)")
            for row in reader:
                line = reader.line_num
                name, raw, nyu_text = row["raw_category"], row["id"], row["nyu40id"]
                if name is None or raw is None or nyu_text is None:
                    raise RawDataError(f"label map {path} line {line}: fewer columns than the header (no "
                                       "raw_category, id or nyu40id value; is the file tab-separated?)")
                try:
                    raw_id = int(raw)
                    nyu = int(nyu_text) if nyu_text.strip() else 0
                except ValueError:
                    raise RawDataError(f"label map {path} line {line}: non-integer id (id {raw!r}, "
                                       f"nyu40id {nyu_text!r})") from None
                if raw_id < 0 or nyu < 0:
                    raise RawDataError(f"label map {path} line {line}: negative id")
                # Later rows win, as in the official reader (a plain dict); the duplicated
                # 'object' rows of the release agree anyway.
                to200[name] = int(lut200[raw_id]) if raw_id < len(lut200) else -1
                to20[name] = int(lut20[nyu]) if nyu < len(lut20) else -1
        except csv.Error as exc:
            raise RawDataError(f"label map {path}: not a valid tab-separated file ({exc})") from None
        return cls(to200=to200, to20=to20)


def vertex_labels(
    seg: np.ndarray, groups: list[dict], label_map: LabelMap
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-vertex ScanNet200 index, ScanNet20 index and instance (group id); -1 where unlabelled.

    Groups are applied in file order so the later group wins where they overlap, as in
    the official ScanNet200 preprocessing. Work is per unique segment, not per vertex.
    """
    seg_ids, inverse = np.unique(seg, return_inverse=True)
    n_seg = len(seg_ids)
    lab200 = np.full(n_seg, -1, dtype=np.int16)
    lab20 = np.full(n_seg, -1, dtype=np.int16)
    inst = np.full(n_seg, -1, dtype=np.int32)
    for g in groups:
        members = np.asarray(g["segments"], dtype=np.int64)
        pos = _match(seg_ids, members)
        lab200[pos] = label_map.to200.get(g["label"], -1)
        lab20[pos] = label_map.to20.get(g["label"], -1)
        inst[pos] = g.get("id", g.get("objectId"))
    return lab200[inverse], lab20[inverse], inst[inverse]


def _match(seg_ids: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Positions in sorted ``seg_ids`` of the members that exist there."""
    pos = np.searchsorted(seg_ids, members)
    ok = pos < len(seg_ids)
    ok[ok] = seg_ids[pos[ok]] == members[ok]
    return pos[ok]
