"""One scene: size presets, meshing, over-segmentation, annotation and ground truth.

:func:`make_scene` picks a room kind, furnishes the room, chooses the grid spacing that
meets the size's vertex budget (:func:`_choose_spacing`), meshes every part, cuts it into
irregular patches (:func:`_patches`, the over-segmentation), writes annotation groups with
a few deliberate overlaps, derives per-vertex ground truth and moves the mesh into a
random scanner frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .furnish import _ROOM_TYPES, _ROOM_WEIGHTS, _SCENE_TYPE_TEXT, _furnish
from .geometry import _count, _mesh_lathe, _mesh_quad, _Quad, _rz
from .labels import _label_indices
from .objects import _u
from .room import _Obj, _Room

SIZES = ("small", "default", "scannet")


@dataclass(frozen=True)
class _SizeSpec:
    """Room size and mesh density of one scene size."""

    room: tuple[float, float]  # side length range (m)
    max_area: float  # floor area cap (m^2), keeps large rooms inside the vertex budget
    target: tuple[int, int]  # vertex count range the grid spacing is tuned to
    spacing: tuple[float, float]  # allowed structural grid spacing (m)
    object_factor: float  # objects are meshed this much finer than structure
    noise: float  # positional noise (m), the scanner's jitter


_SPECS = {
    "small": _SizeSpec((2.8, 4.2), 15.0, (4000, 5600), (0.06, 0.4), 1.25, 0.004),
    "default": _SizeSpec((3.0, 8.0), 46.0, (70_000, 120_000), (0.02, 0.045), 0.7, 0.003),
    "scannet": _SizeSpec((5.0, 7.0), 40.0, (123_000, 123_000), (0.01, 0.08), 0.7, 0.003),
}


@dataclass
class SyntheticScene:
    """One generated scene: the mesh as written (unaligned frame), its annotation and its ground truth.

    ``axis_alignment`` maps the written vertices to the aligned room frame (floor at z=0, walls
    along the axes), exactly as ScanNet's ``axisAlignment``. Ground truth follows the official
    ScanNet200 preprocessing: groups applied in file order (later wins), labels looked up in
    the label map (-1 when absent or outside the benchmark), instance = winning group ``id``.
    """

    name: str
    vertices: np.ndarray  # float32 (N, 3)
    colors: np.ndarray  # uint8 (N, 4) RGBA, alpha 255
    faces: np.ndarray  # int32 (F, 3)
    seg_indices: np.ndarray  # int64 (N,)
    groups: list[dict]  # segGroups as written
    axis_alignment: np.ndarray  # float64 (4, 4)
    segment200: np.ndarray  # int16 (N,)
    segment20: np.ndarray  # int16 (N,)
    instance: np.ndarray  # int32 (N,)
    scene_type: str = "Apartment"  # the .txt ``sceneType`` (room kind)


def _patches(uv: np.ndarray, size: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Irregular patches of about ``size`` metres: nearest seed of a jittered seed grid.

    Real over-segmentations have ragged, unequal segments; a jittered grid keeps that look
    at O(9 N) cost (only the 3 x 3 neighbouring seeds are compared).
    """
    lo = uv.min(0)
    ext = uv.max(0) - lo
    n = np.maximum(1, np.rint(ext / size)).astype(np.int64)
    cell = np.where(ext > 0, ext / n, 1.0)
    grid = np.stack(np.meshgrid(np.arange(n[0]), np.arange(n[1]), indexing="ij"), -1)
    seeds = (grid + 0.5 + rng.uniform(-0.45, 0.45, grid.shape)) * cell
    p = uv - lo
    c = np.minimum((p // cell).astype(np.int64), n - 1)
    best = np.full(len(uv), np.inf)
    lab = np.zeros(len(uv), dtype=np.int64)
    for di in (-1, 0, 1):
        ci = np.clip(c[:, 0] + di, 0, n[0] - 1)
        for dj in (-1, 0, 1):
            cj = np.clip(c[:, 1] + dj, 0, n[1] - 1)
            d2 = ((p - seeds[ci, cj]) ** 2).sum(1)
            better = d2 < best
            best = np.where(better, d2, best)
            lab = np.where(better, ci * n[1] + cj, lab)
    return lab, int(n[0] * n[1])


def _choose_spacing(objs: list[_Obj], spec: _SizeSpec, target: int) -> float:
    """Structural grid spacing whose vertex count is closest to ``target`` (bisection in log space)."""
    parts = [(p, 1.0 if o.coarse else spec.object_factor) for o in objs for p in o.parts]
    lo, hi = math.log(spec.spacing[0]), math.log(spec.spacing[1])
    if _count(parts, math.exp(lo)) <= target:
        return math.exp(lo)
    if _count(parts, math.exp(hi)) >= target:
        return math.exp(hi)
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if _count(parts, math.exp(mid)) > target:
            lo = mid
        else:
            hi = mid
    return math.exp(hi)


def make_scene(name: str, seed: int, size: str = "default") -> SyntheticScene:
    """Generate one scene deterministically from ``seed`` (same seed, same arrays and bytes)."""
    if size not in _SPECS:
        raise ValueError(f"unknown size {size!r}; expected one of {SIZES}")
    spec = _SPECS[size]
    rng = np.random.default_rng(seed)
    kind = _ROOM_TYPES[int(rng.choice(len(_ROOM_TYPES), p=_ROOM_WEIGHTS))]
    room = _Room(rng, spec, kind, small=size == "small")
    _furnish(room)
    objs = room.objs
    target = int(rng.integers(spec.target[0], spec.target[1] + 1))
    h = _choose_spacing(objs, spec, target)

    # mesh every part; a patch key per vertex gives the over-segmentation
    verts, faces, normals, colors, keys = [], [], [], [], []
    obj_of_key: list[int] = []
    n = 0
    for oi, o in enumerate(objs):
        hh = h if o.coarse else h * spec.object_factor
        # patches of 20-50 cm, but never only a handful of vertices on coarse meshes
        patch = max(_u(rng, 0.2, 0.5) if not o.structure else _u(rng, 0.3, 0.5), 3.5 * hh)
        small_key = -1
        if o.single:
            small_key = len(obj_of_key)
            obj_of_key.append(oi)
        for p in o.parts:
            s = p.surf
            v, f, nr, uv = _mesh_quad(s, hh) if isinstance(s, _Quad) else _mesh_lathe(s, hh)
            area = float(np.prod(uv.max(0) - uv.min(0))) if len(uv) else 0.0
            if o.single or area < 0.03:
                if small_key < 0:
                    small_key = len(obj_of_key)
                    obj_of_key.append(oi)
                k = np.full(len(v), small_key, dtype=np.int64)
            else:
                local, kk = _patches(uv, patch, rng)
                k = len(obj_of_key) + local
                obj_of_key.extend([oi] * kk)
            verts.append(v)
            faces.append(f + n)
            normals.append(nr)
            colors.append(np.broadcast_to(p.color, v.shape))
            keys.append(k)
            n += len(v)
    V = np.concatenate(verts)
    F = np.concatenate(faces)
    Nrm = np.concatenate(normals)
    key = np.concatenate(keys)
    V = V + rng.normal(0.0, min(spec.noise, 0.08 * h), V.shape)
    shade = 0.9 + 0.1 * Nrm[:, 2]
    rgb = np.concatenate(colors) * shade[:, None] + rng.normal(0.0, 4.0, V.shape)
    rgba = np.empty((len(V), 4), dtype=np.uint8)
    rgba[:, :3] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    rgba[:, 3] = 255

    # segment id = smallest vertex index of the patch (sparse ids, as in the release)
    ukeys, first, inv = np.unique(key, return_index=True, return_inverse=True)
    seg_indices = first[inv].astype(np.int64)
    obj_of_seg = np.asarray(obj_of_key, dtype=np.int64)[ukeys]
    seg_ids = first  # one id per used patch, aligned with obj_of_seg

    # groups: labelled objects in a shuffled (annotation) order; a few structure segments missed
    labelled = [i for i, o in enumerate(objs) if o.label is not None]
    order = [labelled[i] for i in rng.permutation(len(labelled))]
    pos_of_obj = {oi: p for p, oi in enumerate(order)}
    members: dict[int, list[int]] = {oi: [] for oi in order}
    for sid, oi in zip(seg_ids.tolist(), obj_of_seg.tolist()):
        if oi in members:
            members[oi].append(sid)
    for oi in order:
        if objs[oi].structure and len(members[oi]) > 3:
            keep = rng.random(len(members[oi])) >= 0.03
            keep[int(rng.integers(len(keep)))] = True
            members[oi] = [s for s, k in zip(members[oi], keep) if k]
    owner = {s: pos_of_obj[oi] for oi in order for s in members[oi]}

    # deliberate overlaps: a segment listed by two groups, the later group wins
    extra: dict[int, list[int]] = {oi: [] for oi in order}
    pairs = [(i, o.rests_on) for i, o in enumerate(objs) if o.rests_on is not None and i in pos_of_obj and o.rests_on in pos_of_obj]
    cand = []
    for item, sup in pairs:
        if members[item] and members[sup]:
            cand.append((item, sup))
    if not cand:  # fall back to floor vs. a wall
        floor = next(i for i, o in enumerate(objs) if o.label == "floor")
        walls = [i for i, o in enumerate(objs) if o.label == "wall"]
        cand = [(floor, walls[int(rng.integers(len(walls)))])]
    picks = rng.permutation(len(cand))[: 1 + int(rng.random() < 0.6) + int(rng.random() < 0.3)]
    seg_pos = {s: i for i, s in enumerate(seg_ids.tolist())}
    centroid = np.zeros((len(seg_ids), 3))
    np.add.at(centroid, inv, V)
    centroid /= np.bincount(inv, minlength=len(seg_ids))[:, None]
    for j, pi in enumerate(picks):
        a, b = cand[pi]
        early, late = (a, b) if pos_of_obj[a] < pos_of_obj[b] else (b, a)
        src, dst = (early, late) if j == 0 or rng.random() < 0.7 else (late, early)
        anchor = objs[a].anchor if objs[a].anchor is not None else centroid[[seg_pos[s] for s in members[dst]]].mean(0)
        cands = members[src]
        dist = np.linalg.norm(centroid[[seg_pos[s] for s in cands]] - anchor, axis=1)
        s = cands[int(dist.argmin())]
        if s not in members[dst] and s not in extra[dst]:
            extra[dst].append(s)
            owner[s] = max(owner[s], pos_of_obj[dst])

    groups = []
    for p, oi in enumerate(order):
        segs = sorted(members[oi] + extra[oi])
        groups.append({"id": p, "objectId": p, "segments": segs, "label": objs[oi].label})

    # ground truth from the object model: per segment the winning group
    lab200 = np.array([_label_indices(g["label"])[0] for g in groups] + [-1], dtype=np.int16)
    lab20 = np.array([_label_indices(g["label"])[1] for g in groups] + [-1], dtype=np.int16)
    win = np.array([owner.get(s, -1) for s in seg_ids.tolist()], dtype=np.int64)
    win_v = win[inv]
    segment200 = lab200[win_v]
    segment20 = lab20[win_v]
    instance = np.where(win_v >= 0, win_v, -1).astype(np.int32)

    # scanner frame: a random rotation about z plus a translation, stored as ScanNet does
    yaw = rng.uniform(0, 2 * math.pi)
    A = np.eye(4)
    A[:3, :3] = _rz(yaw)
    A[:3, 3] = [rng.uniform(-4, 4), rng.uniform(-4, 4), rng.uniform(-0.1, 0.1)]
    A = np.array([float(f"{x:.6f}") for x in A.ravel()]).reshape(4, 4)
    Ainv = np.linalg.inv(A)
    stored = (V @ Ainv[:3, :3].T + Ainv[:3, 3]).astype(np.float32)

    return SyntheticScene(
        name=name,
        vertices=stored,
        colors=rgba,
        faces=F.astype(np.int32),
        seg_indices=seg_indices,
        groups=groups,
        axis_alignment=A,
        segment200=segment200.astype(np.int16),
        segment20=segment20.astype(np.int16),
        instance=instance,
        scene_type=_SCENE_TYPE_TEXT[kind],
    )
