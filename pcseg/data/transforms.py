"""Point-cloud augmentations and voxelization, configured from YAML.

Every transform is a small class built from keyword arguments and called as
``transform(data, rng)`` on a dict of numpy arrays whose first axis is the point
axis. All randomness comes from the ``rng`` argument, so a scene's augmentation
is reproducible from the seed the dataset derives for it.

Conventions the transforms rely on:

* ``coord`` float32 (N, 3) in metres, ``normal`` float32 (N, 3) unit vectors,
  ``color`` float (N, 3) in 0..255 until :class:`NormalizeColor` runs (so the
  chromatic transforms must come before it), ``segment`` int64 (N,) with -1 = ignore.
* Transforms that drop points index every array whose first axis has length N,
  except the full-resolution keys in :data:`FULL_RESOLUTION_KEYS`.
* After ``GridSample(mode="test")`` the data carries ``inverse`` (one entry per
  original vertex); dropping points after that would leave vertices without a
  prediction, so it raises instead.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Iterable, Sequence

import numpy as np

Data = dict[str, Any]

# Arrays indexed by original vertex, not by current point: never subsampled.
FULL_RESOLUTION_KEYS = frozenset({"inverse", "origin_segment"})


def _num_points(data: Data) -> int:
    return int(data["coord"].shape[0])


def _subset(data: Data, index: np.ndarray, who: str) -> Data:
    """Keep the points ``index`` in every per-point array, so they stay aligned."""
    n = _num_points(data)
    if "inverse" in data:
        raise ValueError(
            f"{who} would drop points after GridSample(mode='test'); the stored 'inverse' "
            "must cover every original vertex, so put point-dropping transforms before it"
        )
    for key, value in data.items():
        if key in FULL_RESOLUTION_KEYS:
            continue
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n:
            data[key] = value[index]
    return data


def _bounds(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column min and max; column-wise reductions are ~20x faster than ``min(0)`` on (N, 3)."""
    columns = [points[:, i] for i in range(points.shape[1])]
    lo = np.array([c.min() for c in columns], dtype=points.dtype)
    hi = np.array([c.max() for c in columns], dtype=points.dtype)
    return lo, hi


def _float_color(data: Data) -> np.ndarray:
    """Colour as float32 0..255 (caches may hold uint8)."""
    return np.asarray(data["color"], dtype=np.float32)


def _finite(value: float, name: str) -> float:
    """A float that is not NaN or inf: NaN passes every ``<= 0`` check and poisons what follows."""
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return x


def _pair(value: Sequence[float], name: str) -> tuple[float, float]:
    lo, hi = (_finite(v, name) for v in value)
    if lo > hi:
        raise ValueError(f"{name} range must be (low, high) with low <= high, got {value!r}")
    return lo, hi


def _probability(p: float, name: str) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: p must lie in [0, 1], got {p}")
    return p


def _rotation(axis: str, theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    if axis == "x":
        m = [[1, 0, 0], [0, c, -s], [0, s, c]]
    elif axis == "y":
        m = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    else:
        m = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    return np.array(m, dtype=np.float32)


def _linear(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``points @ matrix.T`` for (N, 3) without BLAS.

    A BLAS call on a tall, thin array starts a thread pool whose spinning threads
    slow every later step on a shared machine (and oversubscribe loader workers);
    nine column multiply-adds are as fast on one core.
    """
    cols = [points[:, k] for k in range(3)]
    out = np.empty(points.shape, dtype=np.result_type(points.dtype, np.float32))
    for j in range(3):
        out[:, j] = cols[0] * matrix[j, 0] + cols[1] * matrix[j, 1] + cols[2] * matrix[j, 2]
    return out


class Transform:
    """Base class: subclasses take plain keyword arguments so YAML can configure them."""

    def __call__(self, data: Data, rng: np.random.Generator) -> Data:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class CenterShift(Transform):
    """Move the scene's xy bounding-box centre to the origin (and its floor to z=0).

    Rotations and flips then act about the scene centre, and the network sees
    heights measured from the floor.
    """

    def __init__(self, apply_z: bool = True) -> None:
        self.apply_z = bool(apply_z)

    def __call__(self, data: Data, rng: np.random.Generator) -> Data:
        coord = data["coord"]
        lo, hi = _bounds(coord)
        shift = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2] if self.apply_z else 0.0],
                         dtype=coord.dtype)
        data["coord"] = coord - shift
        return data


class RandomDropout(Transform):
    """With probability ``p`` drop a random ``dropout_ratio`` of the points (density augmentation)."""

    def __init__(self, dropout_ratio: float = 0.2, p: float = 0.2) -> None:
        if not 0.0 <= float(dropout_ratio) < 1.0:
            raise ValueError(f"RandomDropout: dropout_ratio must lie in [0, 1), got {dropout_ratio}")
        self.dropout_ratio = float(dropout_ratio)
        self.p = _probability(p, "RandomDropout")

    def __call__(self, data: Data, rng: np.random.Generator) -> Data:
        if rng.random() >= self.p:
            return data
        n = _num_points(data)
        keep = max(1, int(n * (1.0 - self.dropout_ratio)))
        if keep >= n:
            return data
        keep_mask = np.ones(n, dtype=bool)
        keep_mask[rng.choice(n, n - keep, replace=False)] = False
        return _subset(data, np.flatnonzero(keep_mask), "RandomDropout")


class RandomRotate(Transform):
    """With probability ``p`` rotate by an angle drawn from ``angle`` (units of pi) about ``axis``.

    Normals rotate with the points so they stay consistent with the surface.
    ``center=None`` rotates about the bounding-box centre.
    """

    def __init__(self, angle: Sequence[float] = (-1.0, 1.0), axis: str = "z",
                 center: Sequence[float] | None = None, p: float = 0.5) -> None:
        if axis not in ("x", "y", "z"):
            raise ValueError(f"RandomRotate: axis must be 'x', 'y' or 'z', got {axis!r}")
        self.angle = _pair(angle, "RandomRotate angle")
        self.axis = axis
        self.center = None if center is None else [float(c) for c in center]
        self.p = _probability(p, "RandomRotate")

    def __call__(self, data: Data, rng: np.random.Generator) -> Data:
        if rng.random() >= self.p:
            return data
        theta = rng.uniform(*self.angle) * math.pi
        rot = _rotation(self.axis, theta)
        coord = data["coord"]
        if self.center is None:
            lo, hi = _bounds(coord)
            center = (lo + hi) / 2
        else:
            center = np.asarray(self.center, dtype=coord.dtype)
        data["coord"] = (_linear(coord - center, rot) + center).astype(coord.dtype, copy=False)
        if "normal" in data:
            data["normal"] = _linear(data["normal"], rot).astype(data["normal"].dtype, copy=False)
        return data


class RandomScale(Transform):
    """Scale coordinates by a factor from ``scale`` (per axis when ``anisotropic``)."""

    def __init__(self, scale: Sequence[float] = (0.9, 1.1), anisotropic: bool = False) -> None:
        self.scale = _pair(scale, "RandomScale scale")
        if self.scale[0] <= 0:
            raise ValueError(f"RandomScale: scale must be positive, got {scale!r}")
        self.anisotropic = bool(anisotropic)

    def __call__(self, data: Data, rng: np.random.Generator) -> Data:
        factor = rng.uniform(*self.scale, size=3 if self.anisotropic else 1).astype(np.float32)
        data["coord"] = data["coord"] * factor
        if self.anisotropic and "normal" in data:
            # Normals transform with the inverse transpose, then are renormalised.
            normal = data["normal"] / factor
            norm = np.linalg.norm(normal, axis=1, keepdims=True)
            data["normal"] = (normal / np.maximum(norm, 1e-12)).astype(np.float32)
        return data


class RandomFlip(Transform):
    """Mirror x and y independently, each with probability ``p`` (normals flip too)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = _probability(p, "RandomFlip")

    def __call__(self, data: Data, rng: np.random.Generator) -> Data:
        sign = np.ones(3, dtype=np.float32)
        for axis in (0, 1):
            if rng.random() < self.p:
                sign[axis] = -1.0
        if (sign != 1).any():
            data["coord"] = data["coord"] * sign
            if "normal" in data:
                data["normal"] = data["normal"] * sign
        return data


class RandomJitter(Transform):
    """Add clipped Gaussian noise to every coordinate (sensor-noise augmentation)."""

    def __init__(self, sigma: float = 0.005, clip: float = 0.02) -> None:
        if _finite(sigma, "RandomJitter sigma") < 0 or _finite(clip, "RandomJitter clip") <= 0:
            raise ValueError(f"RandomJitter: need sigma >= 0 and clip > 0, got {sigma}, {clip}")
        self.sigma = float(sigma)
        self.clip = float(clip)

    def __call__(self, data: Data, rng: np.random.Generator) -> Data:
        coord = data["coord"]
        noise = rng.standard_normal(coord.shape, dtype=np.float32) * self.sigma
        data["coord"] = coord + np.clip(noise, -self.clip, self.clip)
        return data


def _box_blur(volume: np.ndarray, axis: int) -> np.ndarray:
    """Width-3 mean filter along ``axis`` with zero padding (separable smoothing)."""
    moved = np.moveaxis(volume, axis, 0)
    padded = np.pad(moved, [(1, 1)] + [(0, 0)] * (moved.ndim - 1))
    return np.moveaxis((padded[:-2] + padded[1:-1] + padded[2:]) / 3.0, 0, axis)


def _trilinear(grid: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Sample ``grid`` (X, Y, Z, C) at fractional indices ``t`` (N, 3), clamped to the grid.

    Eight ``np.take`` gathers over the flattened grid; per-axis work is done on 1-D
    columns because axis-0 reductions and 2-D fancy indexing on (N, 3) are slow.
    """
    X, Y, Z, C = grid.shape
    flat = grid.reshape(-1, C)
    index, frac = [], []
    for axis, size in enumerate((X, Y, Z)):
        ta = np.clip(t[:, axis], 0, size - 1)
        ia = np.minimum(ta.astype(np.int64), size - 2)
        index.append(ia)
        frac.append((ta - ia).astype(np.float32))
    base = (index[0] * Y + index[1]) * Z + index[2]
    fx, fy, fz = frac
    out = np.zeros((t.shape[0], C), dtype=np.float32)
    for step_x, wx in ((0, 1 - fx), (Y * Z, fx)):
        for step_y, wy in ((0, 1 - fy), (Z, fy)):
            wxy = wx * wy
            for step_z, wz in ((0, 1 - fz), (1, fz)):
                out += (wxy * wz)[:, None] * np.take(flat, base + (step_x + step_y + step_z), axis=0)
    return out


class ElasticDistortion(Transform):
    """Smoothly warp the scene: add ``magnitude`` x (blurred noise on a ``granularity`` grid).

    ``distortion_params`` is a list of (granularity, magnitude) pairs in metres,
    applied in turn. The noise lives on a coarse lattice covering the scene, is
    smoothed with a separable box filter (twice per axis) and read back at each
    point by trilinear interpolation, so nearby points move together.
    """

    def __init__(self, distortion_params: Sequence[Sequence[float]] = ((0.2, 0.4), (0.8, 1.6)),
                 p: float = 0.95) -> None:
        params = [tuple(_finite(v, "ElasticDistortion distortion_params") for v in pair) for pair in distortion_params]
        if any(len(pair) != 2 or pair[0] <= 0 for pair in params):
            raise ValueError("ElasticDistortion: distortion_params must be [[granularity > 0, "
                             f"magnitude], ...], got {distortion_params!r}")
        self.distortion_params = params
        self.p = _probability(p, "ElasticDistortion")

    @staticmethod
    def _warp(coord: np.ndarray, granularity: float, magnitude: float,
              rng: np.random.Generator) -> np.ndarray:
        lo, hi = _bounds(coord)
        dims = ((hi - lo) // granularity).astype(np.int64) + 3
        noise = rng.standard_normal((*dims, 3), dtype=np.float32)
        for _ in range(2):
            for axis in range(3):
                noise = _box_blur(noise, axis)
        # Lattice node i sits at lo - granularity + i * granularity.
        t = (coord - lo) / granularity + 1.0
        return coord + _trilinear(noise, t) * magnitude

    def __call__(self, data: Data, rng: np.random.Generator) -> Data:
        if rng.random() >= self.p:
            return data
        coord = data["coord"]
        for granularity, magnitude in self.distortion_params:
            coord = self._warp(coord, granularity, magnitude, rng)
        data["coord"] = coord.astype(np.float32, copy=False)
        return data


class ChromaticAutoContrast(Transform):
    """With probability ``p`` blend colours toward their per-channel contrast stretch."""

    def __init__(self, p: float = 0.2, blend_factor: float | None = None) -> None:
        self.p = _probability(p, "ChromaticAutoContrast")
        self.blend_factor = None if blend_factor is None else float(blend_factor)

    def __call__(self, data: Data, rng: np.random.Generator) -> Data:
        if rng.random() >= self.p:
            return data
        color = _float_color(data)
        lo, hi = _bounds(color)
        scale = 255.0 / np.maximum(hi - lo, 1e-6)
        contrast = (color - lo) * scale
        blend = rng.random() if self.blend_factor is None else self.blend_factor
        data["color"] = ((1 - blend) * color + blend * contrast).astype(np.float32)
        return data


class ChromaticTranslation(Transform):
    """With probability ``p`` shift all colours by one offset of up to ``ratio`` x 255 per channel."""

    def __init__(self, p: float = 0.95, ratio: float = 0.05) -> None:
        self.p = _probability(p, "ChromaticTranslation")
        self.ratio = float(ratio)

    def __call__(self, data: Data, rng: np.random.Generator) -> Data:
        if rng.random() >= self.p:
            return data
        shift = (rng.random(3, dtype=np.float32) - 0.5) * 255 * 2 * self.ratio
        data["color"] = np.clip(_float_color(data) + shift, 0, 255)
        return data


class ChromaticJitter(Transform):
    """With probability ``p`` add per-point Gaussian colour noise of ``std`` x 255."""

    def __init__(self, p: float = 0.95, std: float = 0.005) -> None:
        self.p = _probability(p, "ChromaticJitter")
        self.std = float(std)

    def __call__(self, data: Data, rng: np.random.Generator) -> Data:
        if rng.random() >= self.p:
            return data
        color = _float_color(data)
        noise = rng.standard_normal(color.shape, dtype=np.float32) * (self.std * 255)
        data["color"] = np.clip(color + noise, 0, 255)
        return data


class GridSample(Transform):
    """Voxelize: keep one point per ``grid_size`` voxel and emit ``grid_coord``.

    ``grid_coord`` = floor(coord / grid_size) - min (int32, non-negative) is what
    the sparse convolutions index. ``mode="train"`` keeps a random point per voxel
    (a different one each epoch); ``mode="test"`` keeps the first point and stores
    ``inverse`` (int64, one entry per original vertex: the kept row holding its
    voxel) plus ``origin_segment``, so predictions can be scattered back to every
    vertex and scored at full resolution.
    """

    def __init__(self, grid_size: float = 0.02, mode: str = "train") -> None:
        if _finite(grid_size, "GridSample grid_size") <= 0:
            raise ValueError(f"GridSample: grid_size must be positive, got {grid_size}")
        if mode not in ("train", "test"):
            raise ValueError(f"GridSample: mode must be 'train' or 'test', got {mode!r}")
        self.grid_size = float(grid_size)
        self.mode = mode

    def __call__(self, data: Data, rng: np.random.Generator) -> Data:
        coord = data["coord"]
        n = coord.shape[0]
        grid = np.floor(coord / self.grid_size).astype(np.int64)
        grid -= _bounds(grid)[0]
        dims = _bounds(grid)[1] + 1
        if float(dims[0]) * float(dims[1]) * float(dims[2]) >= 2.0**62:
            raise ValueError(f"GridSample: scene spans {dims.tolist()} voxels, too many to hash; "
                             "check the coordinate units or grid_size")
        # Row-major packing is an exact (collision-free) voxel key.
        key = (grid[:, 0] * dims[1] + grid[:, 1]) * dims[2] + grid[:, 2]
        order = np.argsort(key)
        sorted_key = key[order]
        first = np.empty(n, dtype=bool)
        first[:1] = True
        np.not_equal(sorted_key[1:], sorted_key[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        if self.mode == "train":
            counts = np.diff(np.append(starts, n))
            pick = starts + (rng.random(starts.size) * counts).astype(np.int64)
        else:
            pick = starts
        keep = order[pick]
        if self.mode == "test":
            inverse = np.empty(n, dtype=np.int64)
            inverse[order] = np.cumsum(first) - 1
            if "segment" in data:
                data["origin_segment"] = data["segment"]
        data = _subset(data, keep, "GridSample")
        data["grid_coord"] = grid[keep].astype(np.int32)
        if self.mode == "test":
            data["inverse"] = inverse
        return data


class SphereCrop(Transform):
    """Cap the point count at ``point_max`` by keeping the points nearest a centre.

    ``mode="random"`` centres on a random point (train-time crop augmentation);
    ``mode="center"`` uses the bounding-box centre, so evaluation is deterministic.
    """

    def __init__(self, point_max: int = 100000, mode: str = "random") -> None:
        if int(point_max) <= 0:
            raise ValueError(f"SphereCrop: point_max must be positive, got {point_max}")
        if mode not in ("random", "center"):
            raise ValueError(f"SphereCrop: mode must be 'random' or 'center', got {mode!r}")
        self.point_max = int(point_max)
        self.mode = mode

    def __call__(self, data: Data, rng: np.random.Generator) -> Data:
        coord = data["coord"]
        n = coord.shape[0]
        if n <= self.point_max:
            return data
        if self.mode == "random":
            center = coord[rng.integers(n)]
        else:
            lo, hi = _bounds(coord)
            center = (lo + hi) / 2
        dist2 = np.square(coord - center).sum(1)
        index = np.sort(np.argpartition(dist2, self.point_max - 1)[: self.point_max])
        return _subset(data, index, "SphereCrop")


class NormalizeColor(Transform):
    """Map colour 0..255 linearly to float32 ``range`` (default [-1, 1]).

    [-1, 1] is zero-centred like the coordinates (after CenterShift) and the normals, so
    the feature groups enter the first layer on a comparable scale; it is also what
    Pointcept up to v1.5.x used, so its published checkpoints expect it. Pointcept v1.6+
    maps to [0, 1]: pass ``range=[0, 1]`` for models trained that way.
    """

    def __init__(self, range: Sequence[float] = (-1.0, 1.0)) -> None:  # noqa: A002 (the config key)
        lo, hi = _pair(range, "NormalizeColor range")
        if not lo < hi:
            raise ValueError(f"NormalizeColor: range must be [low, high] with low < high, got {range!r}")
        self.low, self.high = lo, hi

    def __call__(self, data: Data, rng: np.random.Generator) -> Data:
        # c / 127.5 - 1 and c / 255 exactly as written by the frameworks whose weights we load
        data["color"] = _float_color(data) / np.float32(255.0 / (self.high - self.low)) + np.float32(self.low)
        return data


class ToFeatures(Transform):
    """Build ``feat`` = concat(``feat_keys``) as float32 and keep only what the model needs.

    The default gives the 9 input channels coord, color, normal. ``keys`` lists what
    survives besides ``feat`` (missing ones are skipped); dtypes are fixed here so
    collation never has to guess.
    """

    DEFAULT_KEYS = ("coord", "grid_coord", "segment", "instance", "inverse", "origin_segment")
    DTYPES = {"grid_coord": np.int32, "segment": np.int64, "instance": np.int64,
              "inverse": np.int64, "origin_segment": np.int64, "coord": np.float32}

    def __init__(self, feat_keys: Sequence[str] = ("coord", "color", "normal"),
                 keys: Sequence[str] = DEFAULT_KEYS) -> None:
        self.feat_keys = tuple(feat_keys)
        self.keys = tuple(keys)
        if not self.feat_keys:
            raise ValueError("ToFeatures: feat_keys must not be empty")

    def __call__(self, data: Data, rng: np.random.Generator) -> Data:
        missing = [k for k in self.feat_keys if k not in data]
        if missing:
            raise KeyError(f"ToFeatures: missing feature arrays {missing}; have {sorted(data)}")
        parts = [np.asarray(data[k], dtype=np.float32).reshape(_num_points(data), -1)
                 for k in self.feat_keys]
        out: Data = {"feat": np.ascontiguousarray(np.concatenate(parts, axis=1))}
        for key in self.keys:
            if key in data:
                value = data[key]
                dtype = self.DTYPES.get(key)
                out[key] = value if dtype is None else np.asarray(value, dtype=dtype)
        return out


class Compose:
    """Apply transforms in order with one shared generator."""

    def __init__(self, transforms: Iterable[Callable[[Data, np.random.Generator], Data]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, data: Data, rng: np.random.Generator) -> Data:
        data = dict(data)  # transforms replace arrays; never touch the caller's dict
        for transform in self.transforms:
            data = transform(data, rng)
        return data

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(t) for t in self.transforms)
        return f"Compose([\n  {inner}\n])"


TRANSFORMS: dict[str, type[Transform]] = {
    "CenterShift": CenterShift,
    "RandomDropout": RandomDropout,
    "RandomRotate": RandomRotate,
    "RandomScale": RandomScale,
    "RandomFlip": RandomFlip,
    "RandomJitter": RandomJitter,
    "ElasticDistortion": ElasticDistortion,
    "ChromaticAutoContrast": ChromaticAutoContrast,
    "ChromaticTranslation": ChromaticTranslation,
    "ChromaticJitter": ChromaticJitter,
    "GridSample": GridSample,
    "SphereCrop": SphereCrop,
    "NormalizeColor": NormalizeColor,
    "ToFeatures": ToFeatures,
}


def _plain(value: Any) -> Any:
    """Turn OmegaConf containers into plain Python so transforms see lists and dicts."""
    try:
        from omegaconf import OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency, but stay usable without
        return value
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def build_transform(cfg: dict[str, Any]) -> Transform:
    """One transform from ``{"type": Name, **kwargs}``; config mistakes raise ValueError."""
    cfg = _plain(cfg)
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise ValueError(f"a transform config must be a mapping with a 'type' key, got {cfg!r}")
    kwargs = dict(cfg)
    name = kwargs.pop("type")
    cls = TRANSFORMS.get(name)
    if cls is None:
        raise ValueError(f"unknown transform type {name!r}; valid types: {', '.join(TRANSFORMS)}")
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        raise ValueError(f"{name}: unknown argument(s) {unknown}; valid arguments: "
                         f"{', '.join(params) if params else '(none)'}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        message = str(err)
        raise ValueError(message if message.startswith(name) else f"{name}: {message}") from err


def build_transforms(cfg_list: Sequence[dict[str, Any]] | None) -> Compose:
    """A :class:`Compose` from a list of transform configs (``None`` = identity)."""
    cfg_list = _plain(cfg_list) or []
    if not isinstance(cfg_list, (list, tuple)):
        raise ValueError(f"transforms must be a list of configs, got {type(cfg_list).__name__}")
    return Compose(build_transform(cfg) for cfg in cfg_list)


# Channels each feature array contributes to ``feat`` (ToFeatures concatenates them).
FEATURE_WIDTHS = {"coord": 3, "color": 3, "normal": 3}
DEFAULT_FEAT_KEYS = ("coord", "color", "normal")


def feature_channels(transforms: Sequence[dict[str, Any]]) -> int | None:
    """Width of ``feat`` produced by a transform list (its last ToFeatures), or None if unknown."""
    keys: Sequence[str] | None = None
    for t in transforms:
        if t.get("type") == "ToFeatures":
            keys = t.get("feat_keys", DEFAULT_FEAT_KEYS)
    if keys is None or any(k not in FEATURE_WIDTHS for k in keys):
        return None
    return sum(FEATURE_WIDTHS[k] for k in keys)


def default_train_transforms(grid_size: float = 0.02, point_max: int = 100000,
                             feat_keys: Sequence[str] = DEFAULT_FEAT_KEYS,
                             color_range: Sequence[float] = (-1.0, 1.0)) -> list[dict[str, Any]]:
    """The standard ScanNet200 training recipe (a fresh list each call, safe to edit)."""
    return [
        {"type": "CenterShift", "apply_z": True},
        {"type": "RandomDropout", "dropout_ratio": 0.2, "p": 0.2},
        {"type": "RandomRotate", "angle": [-1.0, 1.0], "axis": "z", "center": [0, 0, 0], "p": 0.5},
        {"type": "RandomRotate", "angle": [-1 / 64, 1 / 64], "axis": "x", "p": 0.5},
        {"type": "RandomRotate", "angle": [-1 / 64, 1 / 64], "axis": "y", "p": 0.5},
        {"type": "RandomScale", "scale": [0.9, 1.1]},
        {"type": "RandomFlip", "p": 0.5},
        {"type": "RandomJitter", "sigma": 0.005, "clip": 0.02},
        {"type": "ElasticDistortion", "distortion_params": [[0.2, 0.4], [0.8, 1.6]]},
        {"type": "ChromaticAutoContrast", "p": 0.2, "blend_factor": None},
        {"type": "ChromaticTranslation", "p": 0.95, "ratio": 0.05},
        {"type": "ChromaticJitter", "p": 0.95, "std": 0.05},
        {"type": "GridSample", "grid_size": grid_size, "mode": "train"},
        {"type": "SphereCrop", "point_max": point_max, "mode": "random"},
        {"type": "CenterShift", "apply_z": False},
        {"type": "NormalizeColor", "range": [float(v) for v in color_range]},
        {"type": "ToFeatures", "feat_keys": list(feat_keys)},
    ]


def default_val_transforms(grid_size: float = 0.02, feat_keys: Sequence[str] = DEFAULT_FEAT_KEYS,
                           color_range: Sequence[float] = (-1.0, 1.0)) -> list[dict[str, Any]]:
    """The evaluation recipe: no augmentation, test-mode voxelization so every vertex is scored."""
    return [
        {"type": "CenterShift", "apply_z": True},
        {"type": "GridSample", "grid_size": grid_size, "mode": "test"},
        {"type": "CenterShift", "apply_z": False},
        {"type": "NormalizeColor", "range": [float(v) for v in color_range]},
        {"type": "ToFeatures", "feat_keys": list(feat_keys)},
    ]
