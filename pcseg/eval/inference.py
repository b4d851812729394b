"""Per-vertex prediction of whole scenes: test-time augmentation and memory-bounded fragments.

Every mesh vertex gets a score vector: each view voxelizes the (augmented) scene in test
mode and the voxel scores are carried back to the vertices through that view's own
``inverse`` map, so no vertex is left out and none is guessed from a neighbour.

Fragments bound the memory of the network pass, not of the per-vertex arrays. A view whose
voxel count exceeds ``max_voxels`` is split by recursive bisection of its voxel set in xy:
the core box of the largest xy extent is cut at the median voxel coordinate until every
core, grown by ``overlap`` voxels on each side in x and y, holds at most ``max_voxels``
voxels. The cores partition the voxels, so every voxel (and vertex) is covered; a voxel in
the grown margins is covered by several fragments and gets the mean of their softmax scores,
so each view contributes one probability vector per vertex however it was cut, and the TTA
result is the plain mean over views.
Fragments are cut from the view's own voxelization, so a voxel has the same grid position
and input features in every fragment; only the context near a fragment border is cut off.
Each fragment is shifted by a multiple of the network's total stride so its stride-2
levels group voxels exactly as a whole-scene pass does.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from pcseg.data.transforms import Compose, GridSample
from pcseg.models.spunet import NUM_STAGES

# Coordinates of a fragment are shifted by a multiple of this so pooling groups match the whole scene.
STRIDE_ALIGN = 2**NUM_STAGES
DEFAULT_MAX_VOXELS = 400_000
DEFAULT_OVERLAP_M = 1.0
_CHUNK = 1 << 16  # vertices per scatter step


@dataclass(frozen=True)
class View:
    """One test-time augmentation: mirror x (optional), then rotate by ``angle`` degrees about z."""

    angle: float = 0.0
    flip: bool = False

    @property
    def is_identity(self) -> bool:
        return not self.flip and self.angle % 360.0 == 0.0

    def __str__(self) -> str:
        return f"{self.angle:g}{'f' if self.flip else ''}"


def _rotations(n: int, flip: bool = False) -> list[View]:
    views = [View(360.0 * i / n) for i in range(n)]
    return views + [View(v.angle, True) for v in views] if flip else views


TTA_PRESETS: dict[str, list[View]] = {
    "none": [View()],
    "flip": [View(), View(0.0, True)],
    "rot2": _rotations(2),
    "rot4": _rotations(4),
    "rot4flip": _rotations(4, flip=True),
    "rot8": _rotations(8),
    "rot8flip": _rotations(8, flip=True),
}

_VIEW_RE = re.compile(r"^(-?\d+(?:\.\d+)?)(f?)$")


def parse_tta(spec: str) -> list[View]:
    """Views of a TTA spec: a preset name or a comma list of angles in degrees, ``f`` = x-flip.

    Examples: ``rot4`` (0, 90, 180, 270), ``rot4flip`` (those plus their mirrors),
    ``0,90,180f``. Repeating a view is allowed (it only reweights the average).
    """
    spec = spec.strip()
    if spec in TTA_PRESETS:
        return list(TTA_PRESETS[spec])
    views = []
    for item in spec.split(","):
        m = _VIEW_RE.match(item.strip())
        if m is None:
            raise ValueError(f"invalid TTA spec {spec!r}: use one of {sorted(TTA_PRESETS)} or a comma list "
                             f"of angles in degrees with an optional 'f' for an x-flip, e.g. '0,90,180f'")
        views.append(View(float(m.group(1)), bool(m.group(2))))
    return views


def _rotation_z(angle_deg: float) -> np.ndarray:
    """Rotation matrix with exact 0/±1 entries at multiples of 90 degrees (no 1e-17 residues)."""
    t = math.radians(angle_deg)
    c, s = math.cos(t), math.sin(t)
    c, s = (0.0 if abs(c) < 1e-12 else c), (0.0 if abs(s) < 1e-12 else s)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=np.float64)


def apply_view(data: dict[str, Any], view: View) -> dict[str, Any]:
    """The scene seen through ``view``: coordinates turned about the xy bounding-box centre.

    Normals turn with the points. The identity view returns the arrays untouched, so a
    list of identity views reproduces the plain prediction bit for bit.
    """
    out = dict(data)
    if view.is_identity:
        return out
    coord = np.asarray(data["coord"], dtype=np.float64)
    lo, hi = coord.min(0), coord.max(0)
    centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, 0.0])
    m = _rotation_z(view.angle)
    if view.flip:
        m = m @ np.diag([-1.0, 1.0, 1.0])
    out["coord"] = ((coord - centre) @ m.T + centre).astype(np.float32)
    if "normal" in data:
        out["normal"] = (np.asarray(data["normal"], dtype=np.float64) @ m.T).astype(np.float32)
    return out


def pipeline_grid_size(transforms: Compose) -> float:
    """The voxel size of the pipeline's test-mode GridSample (to turn metres into voxels)."""
    for t in transforms.transforms:
        if isinstance(t, GridSample):
            if t.mode != "test":
                raise ValueError("the evaluation transforms voxelize with GridSample(mode='train'); "
                                 "per-vertex prediction needs mode='test' (it provides the inverse map)")
            return t.grid_size
    raise ValueError("the evaluation transforms have no GridSample(mode='test'); "
                     "per-vertex prediction needs its inverse map")


class _Box(NamedTuple):
    """A region still to cover in :func:`plan_fragments`."""

    lo: np.ndarray  # xy voxel corner of the core, inclusive
    hi: np.ndarray  # xy voxel corner of the core, exclusive
    candidates: np.ndarray  # voxel indices: a superset of those in the core grown by the overlap


def plan_fragments(grid_coord: np.ndarray, max_voxels: int, overlap: int) -> list[np.ndarray]:
    """Voxel index sets, each of at most ``max_voxels`` voxels, whose cores cover every voxel.

    Recursive median bisection in xy (see the module docstring); ``overlap`` is the margin
    in voxels. A single fragment holding everything is returned when the view fits.
    """
    n = int(grid_coord.shape[0])
    if max_voxels <= 0:
        raise ValueError(f"max_voxels must be positive, got {max_voxels}")
    if n <= max_voxels:
        return [np.arange(n, dtype=np.int64)]
    xy = np.asarray(grid_coord[:, :2], dtype=np.int64)
    m = int(overlap)
    stack = [_Box(xy.min(0), xy.max(0) + 1, np.arange(n, dtype=np.int64))]
    fragments: list[np.ndarray] = []
    while stack:
        lo, hi, cand = stack.pop()
        p = xy[cand]
        core = np.all((p >= lo) & (p < hi), axis=1)
        if not core.any():
            continue  # nothing of the scene to cover here
        grown = cand[np.all((p >= lo - m) & (p < hi + m), axis=1)]
        if grown.size <= max_voxels:
            fragments.append(grown)
            continue
        axis = int(np.argmax(hi - lo))
        if hi[axis] - lo[axis] <= 1:
            raise ValueError(f"cannot split the scene into fragments of at most {max_voxels} voxels with an "
                             f"overlap of {m} voxels: raise --max-voxels or lower --overlap")
        cut = int(np.median(p[core, axis]))
        cut = min(max(cut, int(lo[axis]) + 1), int(hi[axis]) - 1)
        hi_a, lo_b = hi.copy(), lo.copy()
        hi_a[axis] = cut
        lo_b[axis] = cut
        pg = xy[grown]
        for a, b in ((lo_b, hi), (lo, hi_a)):
            keep = np.all((pg >= a - m) & (pg < b + m), axis=1)
            stack.append(_Box(a, b, grown[keep]))
    return fragments


@torch.no_grad()
def forward_scores(model: nn.Module, grid_coord: np.ndarray, feat: np.ndarray, device: torch.device,
                   amp_dtype: torch.dtype | None = None, coord: np.ndarray | None = None) -> torch.Tensor:
    """Softmax scores (V, K) float32 on ``device`` for one voxel set, run as a single scene.

    ``coord`` (V, 3), the voxels' point coordinates, reaches only models that read them.
    """
    grid = np.asarray(grid_coord, dtype=np.int64)
    shift = (grid.min(0) // STRIDE_ALIGN) * STRIDE_ALIGN
    gc = torch.from_numpy((grid - shift).astype(np.int32)).to(device)
    f = torch.from_numpy(np.ascontiguousarray(feat, dtype=np.float32)).to(device)
    batch = torch.zeros(gc.shape[0], dtype=torch.int64, device=device)
    with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        if coord is not None and getattr(model, "uses_coord", False):
            c = torch.from_numpy(np.ascontiguousarray(coord, dtype=np.float32)).to(device)
            logits = model(gc, batch, f, c)["logits"]
        else:  # models that do not read coordinates keep the (grid_coord, batch, feat) call
            logits = model(gc, batch, f)["logits"]
    return torch.softmax(logits.float(), dim=1)


@dataclass
class Prediction:
    """Per-vertex result of one scene (rows in mesh order)."""

    scores: torch.Tensor  # float32 (N, K) on the CPU: mean over views of each view's per-vertex softmax
    coverage: np.ndarray  # int32 (N,): fragments covering the vertex, summed over views (diagnostic)
    fragments: list[int] = field(default_factory=list)  # fragment count per view
    voxels: list[int] = field(default_factory=list)  # voxel count per view

    @property
    def pred(self) -> np.ndarray:
        """Class index per vertex (int64)."""
        return self.scores.argmax(1).numpy()


class Predictor:
    """Model + evaluation transforms + TTA views + fragment budget: scene arrays in, scores out."""

    def __init__(self, model: nn.Module, transforms: Compose, num_classes: int, device: torch.device,
                 views: Sequence[View] = (View(),), max_voxels: int = DEFAULT_MAX_VOXELS,
                 overlap_m: float = DEFAULT_OVERLAP_M, amp_dtype: torch.dtype | None = None) -> None:
        if not views:
            raise ValueError("at least one TTA view is needed")
        if not math.isfinite(overlap_m) or overlap_m < 0:
            raise ValueError(f"overlap must be >= 0 metres, got {overlap_m}")
        self.model = model.eval()
        self.transforms = transforms
        self.num_classes = int(num_classes)
        self.device = device
        self.views = list(views)
        self.max_voxels = int(max_voxels)
        self.overlap = int(math.ceil(overlap_m / pipeline_grid_size(transforms)))
        self.amp_dtype = amp_dtype if device.type == "cuda" else None

    def voxelize(self, data: dict[str, Any], view: View = View()) -> dict[str, Any]:
        """Run the evaluation transforms on one view; checks that every vertex has a voxel."""
        n = int(np.asarray(data["coord"]).shape[0])
        sample = self.transforms(apply_view(data, view), np.random.default_rng(0))
        inverse = sample.get("inverse")
        if inverse is None:
            raise ValueError("the evaluation transforms dropped 'inverse': keep it in ToFeatures(keys=...)")
        inverse = np.asarray(inverse, dtype=np.int64)
        if inverse.shape != (n,):
            raise ValueError(f"inverse map has {inverse.shape[0]} entries for {n} vertices "
                             "(a transform before GridSample dropped points)")
        sample["inverse"] = inverse
        return sample

    def predict(self, data: dict[str, Any]) -> Prediction:
        """Scores for every vertex of a scene given as raw arrays (``coord``, ``color``, ``normal``)."""
        n = int(np.asarray(data["coord"]).shape[0])
        scores = torch.zeros(n, self.num_classes, dtype=torch.float32)
        coverage = np.zeros(n, dtype=np.int32)
        result = Prediction(scores, coverage)
        for view in self.views:
            sample = self.voxelize(data, view)
            grid, feat, inverse = sample["grid_coord"], sample["feat"], sample["inverse"]
            fragments = plan_fragments(grid, self.max_voxels, self.overlap)
            voxel_scores = torch.zeros(grid.shape[0], self.num_classes, dtype=torch.float32)
            voxel_cover = np.zeros(grid.shape[0], dtype=np.int32)
            for idx in fragments:
                coord = sample["coord"][idx] if "coord" in sample else None
                probs = forward_scores(self.model, grid[idx], feat[idx], self.device, self.amp_dtype, coord)
                voxel_scores.index_add_(0, torch.from_numpy(idx), probs.cpu())
                voxel_cover[idx] += 1
            # Overlapping fragments are averaged, so every view weighs the same for every vertex.
            voxel_scores /= torch.from_numpy(voxel_cover).to(voxel_scores.dtype)[:, None]
            inv = torch.from_numpy(inverse)
            for start in range(0, n, _CHUNK):  # chunks: no second (N, K) temporary
                scores[start:start + _CHUNK] += voxel_scores.index_select(0, inv[start:start + _CHUNK])
            coverage += voxel_cover[inverse]
            result.fragments.append(len(fragments))
            result.voxels.append(int(grid.shape[0]))
        if len(self.views) > 1:
            scores /= len(self.views)
        return result
