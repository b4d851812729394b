"""Checks of the per-scene ``.npy`` cache arrays: a malformed cache is named, never trained on.

Reshaping or casting a wrong array does not fail, it silently trains on garbage: a (3, N)
coord becomes scrambled geometry, one NaN coordinate spreads through whole feature
columns, float labels are truncated (-0.5 becomes class 0). Hence two cheap levels:

* headers (shape and dtype; ``np.load(mmap_mode="r")`` reads no data) of every scene when a
  dataset is built, so a malformed cache is refused before training starts, with the same
  answer on every DDP rank;
* values (finite floats) of one scene when it is loaded: O(N), small next to the transforms.

Arrays are loaded with ``allow_pickle=False``: a cache file is data and never runs code.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np


class SceneDataError(ValueError):
    """A scene cache lacks a file or holds a malformed array; the message names the scene
    folder, the file, what is wrong and how to fix it.

    Constructible from the message alone: torch's DataLoader re-raises a worker's exception
    as ``type(exc)(message)``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)


class MissingSceneFile(SceneDataError, FileNotFoundError):
    """A file of a scene is absent (still a FileNotFoundError, which callers already catch)."""


@dataclass(frozen=True)
class ArraySpec:
    """What one cache file must hold: dtype, ``(N, columns)`` or ``(N,)``, finite values."""

    dtypes: str
    accepts: Callable[[np.dtype], bool]
    columns: int | None
    finite: bool


def _is_float(dtype: np.dtype) -> bool:
    return dtype.kind == "f"


def _is_int(dtype: np.dtype) -> bool:
    return dtype.kind in "iu"


SPECS: dict[str, ArraySpec] = {
    "coord": ArraySpec("float", _is_float, 3, True),
    "color": ArraySpec("uint8 or float", lambda d: d == np.uint8 or _is_float(d), 3, True),
    "normal": ArraySpec("float", _is_float, 3, True),
    "segment200": ArraySpec("integer", _is_int, None, False),
    "segment20": ArraySpec("integer", _is_int, None, False),
    "instance": ArraySpec("integer", _is_int, None, False),
}


def rebuild_hint(scene: Path) -> str:
    """How to rebuild the caches holding ``scene`` (ROOT/<split>/<scene>)."""
    return (f"Re-run data prep with --force to rebuild it: "
            f"`python data_prep/scannet200.py --raw RAW --out {scene.parent.parent} --force`.")


def scene_error(scene: Path, key: str, what: str) -> SceneDataError:
    """The one error format: scene folder, file, what is wrong, the fix."""
    return SceneDataError(f"scene folder {scene}: {key}.npy {what}. {rebuild_hint(scene)}")


def _missing(scene: Path, key: str) -> MissingSceneFile:
    return MissingSceneFile(f"scene folder {scene}: missing {key}.npy. {rebuild_hint(scene)}")


def header_problem(key: str, shape: tuple[int, ...], dtype: np.dtype, n: int | None) -> str | None:
    """What is wrong with an array of ``shape`` and ``dtype`` stored as ``key`` for ``n`` points
    (``n`` None: the array defines N, as coord does), or None."""
    spec = SPECS[key]
    if not spec.accepts(dtype):
        return f"has dtype {dtype}, expected {spec.dtypes}"
    if spec.columns is not None:
        if len(shape) != 2 or shape[1] != spec.columns:
            transposed = " (transposed? it must be one row per point)" if shape[:1] == (spec.columns,) else ""
            return f"has shape {shape}, expected (N, {spec.columns}){transposed}"
    elif len(shape) != 1:
        return f"has shape {shape}, expected (N,): one value per point"
    if n is None and shape[0] == 0:
        return "holds no points"
    if n is not None and shape[0] != n:
        return f"has {shape[0]} rows for the {n} points of coord.npy"
    return None


def values_problem(key: str, arr: np.ndarray) -> str | None:
    """Non-finite values where ``key`` must be finite, or None."""
    if SPECS[key].finite and arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            rows = np.flatnonzero(bad.reshape(len(arr), -1).any(axis=1))
            return f"has NaN or infinite values in {len(rows)} point(s) (first: row {int(rows[0])})"
    return None


def _read(scene: Path, key: str, mmap: bool) -> np.ndarray:
    path = scene / f"{key}.npy"
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise _missing(scene, key) from None
    except (ValueError, OSError, EOFError) as exc:  # truncated, not .npy, pickled objects, a folder
        raise scene_error(scene, key, f"cannot be read as a .npy array ({exc})") from None
    if not isinstance(arr, np.ndarray):  # np.load opens an .npz archive whatever the name
        getattr(arr, "close", lambda: None)()
        raise scene_error(scene, key, "is not a .npy array (an .npz archive?)")
    return arr


def check_scene_headers(scene: Path, required: Sequence[str], optional: Sequence[str] = ()) -> int:
    """The point count N of ``scene``, after checking the headers of coord, of every ``required``
    file (absent: MissingSceneFile) and of the ``optional`` files that exist. Reads no data."""
    coord = _read(scene, "coord", mmap=True)
    shape, dtype = coord.shape, coord.dtype
    del coord  # closes the map
    problem = header_problem("coord", shape, dtype, None)
    if problem:
        raise scene_error(scene, "coord", problem)
    n = int(shape[0])
    for key in (*required, *(k for k in optional if (scene / f"{k}.npy").exists())):
        if key == "coord":
            continue
        arr = _read(scene, key, mmap=True)
        problem = header_problem(key, arr.shape, arr.dtype, n)
        del arr
        if problem:
            raise scene_error(scene, key, problem)
    return n


def load_array(scene: Path, key: str, n: int | None, dtype: type | None = None) -> np.ndarray:
    """``scene/<key>.npy`` after every check (header, then values after the cast to ``dtype``:
    a float64 coordinate beyond float32's range becomes inf only there)."""
    arr = _read(scene, key, mmap=False)
    problem = header_problem(key, arr.shape, arr.dtype, n)
    if problem:
        raise scene_error(scene, key, problem)
    if dtype is not None:
        with np.errstate(over="ignore"):
            arr = arr.astype(dtype, copy=False)
    problem = values_problem(key, arr)
    if problem:
        raise scene_error(scene, key, problem)
    return arr


def array_problems(arrays: Mapping[str, np.ndarray]) -> list[str]:
    """``"<key>: <problem>"`` for each malformed array of a scene about to be written (data prep
    checks its own output with the rules the dataset applies when reading it)."""
    coord = arrays.get("coord")
    if coord is None:
        return ["coord: missing"]
    problem = header_problem("coord", coord.shape, coord.dtype, None)
    if problem:
        return [f"coord: {problem}"]  # the other arrays are checked against its N
    problems = []
    for key, arr in arrays.items():
        if key in SPECS:
            problem = header_problem(key, arr.shape, arr.dtype, None if key == "coord" else len(coord))
            problem = problem or values_problem(key, arr)
            if problem:
                problems.append(f"{key}: {problem}")
    return problems
