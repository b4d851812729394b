"""The room being furnished: its shell, placed objects, supports and free-space bookkeeping.

:class:`_Room` draws the outline (rectangular or L-shaped) and holds the walls (:class:`_Wall`,
with their openings and taken spans), the object list (:class:`_Obj`), the surfaces things can
be put on (:class:`_Support`) and the floor occupancy. Its ``*_slot`` methods find free places;
``add`` and ``put_on`` place local-frame parts in the room.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .geometry import _moved, _Part, _part_extent, _rz, _v3
from .labels import _COLORS

if TYPE_CHECKING:
    from .scene import _SizeSpec


@dataclass
class _Obj:
    """One annotated (or deliberately unannotated) thing in the room."""

    label: str | None  # raw category written to its group; None: clutter that no group lists
    parts: list[_Part]
    single: bool  # one segment for the whole object (small things)
    structure: bool = False
    rests_on: int | None = None  # object index of its support, for deliberate group overlaps
    anchor: np.ndarray | None = None  # world point where it touches its support
    coarse: bool = False  # meshed at the structural spacing (large flat things: doors, windows)


@dataclass
class _Support:
    """A horizontal surface things can be put on, in its owner's local frame."""

    obj: int
    rot: np.ndarray
    t: np.ndarray
    rect: tuple[float, float, float, float]
    z: float
    tag: str
    used: list[tuple[float, float, float, float]] = field(default_factory=list)


@dataclass
class _Wall:
    p0: np.ndarray
    p1: np.ndarray
    holes: list[tuple[float, float, float, float]] = field(default_factory=list)  # (z0, z1, u0, u1)
    spans: list[tuple[float, float, float, float]] = field(default_factory=list)  # taken (u0, u1, z0, z1)

    @property
    def length(self) -> float:
        return float(np.linalg.norm(self.p1 - self.p0))

    @property
    def e(self) -> np.ndarray:
        d = (self.p1 - self.p0) / self.length
        return np.array([d[0], d[1], 0.0])

    @property
    def n(self) -> np.ndarray:
        e = self.e
        return np.array([-e[1], e[0], 0.0])  # inward: the room polygon is counter-clockwise

    @property
    def rot(self) -> np.ndarray:
        return np.stack([self.e, self.n, np.array([0.0, 0.0, 1.0])], 1)


def _overlap(a, b, margin: float = 0.0) -> bool:
    return a[0] < b[2] + margin and b[0] < a[2] + margin and a[1] < b[3] + margin and b[1] < a[3] + margin


class _Room:
    """Room shell, occupancy bookkeeping and the growing object list."""

    def __init__(self, rng: np.random.Generator, spec: _SizeSpec, kind: str, small: bool) -> None:
        self.rng, self.kind, self.small = rng, kind, small
        lo, hi = spec.room
        if kind == "bathroom":
            hi = min(hi, lo + 1.6)
        while True:
            w, d = rng.uniform(lo, hi, 2)
            if w * d <= spec.max_area:
                break
        self.W, self.D = float(w), float(d)
        self.H = float(rng.uniform(2.5, 3.0))
        self.cut: tuple[float, float] | None = None
        if not small and min(self.W, self.D) >= 4.5 and rng.random() < 0.35:
            self.cut = (float(rng.uniform(1.2, self.W - 2.6)), float(rng.uniform(1.2, self.D - 2.6)))
        W, D = self.W, self.D
        if self.cut:
            cw, cd = self.cut
            poly = [(0, 0), (W, 0), (W, D - cd), (W - cw, D - cd), (W - cw, D), (0, D)]
            self.floor_rects = [(0.0, 0.0, W, D - cd), (0.0, D - cd, W - cw, D)]
        else:
            poly = [(0, 0), (W, 0), (W, D), (0, D)]
            self.floor_rects = [(0.0, 0.0, W, D)]
        pts = [np.array(p, dtype=np.float64) for p in poly]
        self.walls = [_Wall(pts[i], pts[(i + 1) % len(pts)]) for i in range(len(pts))]
        self.objs: list[_Obj] = []
        self.occ: list[tuple[float, float, float, float]] = []
        self.supports: list[_Support] = []
        self.wall_color = np.array(_COLORS["wall"][0], dtype=np.float64)

    # ---- occupancy
    def inside(self, r) -> bool:
        eps = 1e-6
        if r[0] < -eps or r[1] < -eps or r[2] > self.W + eps or r[3] > self.D + eps:
            return False
        if self.cut:
            cw, cd = self.cut
            if _overlap(r, (self.W - cw + eps, self.D - cd + eps, self.W, self.D)):
                return False
        return True

    def free(self, r, margin: float = 0.04, ignore=None) -> bool:
        return self.inside(r) and not any(_overlap(r, o, margin) for o in self.occ if o is not ignore)

    @staticmethod
    def footprint(rot: np.ndarray, t: np.ndarray, x0, y0, x1, y1) -> tuple[float, float, float, float]:
        c = np.array([[x0, y0, 0], [x1, y0, 0], [x1, y1, 0], [x0, y1, 0]], dtype=np.float64) @ rot.T + t
        return (float(c[:, 0].min()), float(c[:, 1].min()), float(c[:, 0].max()), float(c[:, 1].max()))

    # ---- slots
    def wall_slot(self, w, d, z0, h, *, floor=True, wall=None, u_range=None, gap=0.0, clearance=0.0, tries=30):
        """A place against a wall: (rot, t, wall index, u0) or None. Local +y faces into the room."""
        rng = self.rng
        for _ in range(tries):
            wi = int(rng.integers(len(self.walls))) if wall is None else wall
            wl = self.walls[wi]
            lo, hi = (0.05, wl.length - w - 0.05) if u_range is None else (max(0.05, u_range[0]), min(wl.length - w - 0.05, u_range[1]))
            if hi < lo:
                if wall is not None and u_range is None:
                    return None
                continue
            u0 = float(rng.uniform(lo, hi))
            span = (u0, z0, u0 + w, z0 + h)
            if any(_overlap(span, (s[0], s[2], s[1], s[3]), 0.03) for s in wl.spans):
                continue
            rot = wl.rot
            t = np.array([*wl.p0, 0.0]) + (u0 + w / 2) * wl.e + (d / 2 + gap) * wl.n + np.array([0, 0, z0])
            if floor:
                # from the wall plane (a negative gap sinks the thing into the wall) to the clearance in front
                fp = self.footprint(rot, t, -w / 2, -d / 2 - min(0.0, gap), w / 2, d / 2 + clearance)
                if not self.free(fp):
                    continue
            return rot, t, wi, u0
        return None

    def claim_wall(self, wi, u0, w, z0, h) -> None:
        self.walls[wi].spans.append((u0, u0 + w, z0, z0 + h))

    def free_slot(self, w, d, *, yaw=None, near=None, tries=40, margin=0.04):
        """A free floor place (rot, t); ``near`` = (x, y, radius) restricts the centre."""
        rng = self.rng
        for _ in range(tries):
            if near is None:
                x, y = rng.uniform(0, self.W), rng.uniform(0, self.D)
            else:
                a = rng.uniform(0, 2 * math.pi)
                x, y = near[0] + near[2] * math.cos(a), near[1] + near[2] * math.sin(a)
            rot = _rz(float(rng.uniform(0, 2 * math.pi)) if yaw is None else yaw)
            t = np.array([x, y, 0.0])
            fp = self.footprint(rot, t, -w / 2, -d / 2, w / 2, d / 2)
            if self.free(fp, margin):
                return rot, t
        return None

    def support_slot(self, tags, w, d, *, tries=12):
        """A place on a support with one of ``tags``: (support, rot, t, local rect) or None."""
        rng = self.rng
        cands = [s for s in self.supports if s.tag in tags]
        if not cands:
            return None
        for _ in range(tries):
            s = cands[int(rng.integers(len(cands)))]
            x0, y0, x1, y1 = s.rect
            if x1 - x0 < w + 0.02 or y1 - y0 < d + 0.02:
                continue
            x = rng.uniform(x0 + w / 2 + 0.01, x1 - w / 2 - 0.01)
            y = rng.uniform(y0 + d / 2 + 0.01, y1 - d / 2 - 0.01)
            r = (x - w / 2, y - d / 2, x + w / 2, y + d / 2)
            if any(_overlap(r, u, 0.02) for u in s.used):
                continue
            yaw = float(rng.normal(0.0, 0.15))
            return s, s.rot @ _rz(yaw), s.rot @ np.array([x, y, s.z]) + s.t, r
        return None

    # ---- objects
    def add(self, label, parts, rot, t, *, single=None, supports=(), rests_on=None, anchor=None,
            structure=False, occupy=None, coarse=False) -> int:
        """Place local-frame parts in the room; ``supports`` are (x0, y0, x1, y1, z, tag) in the local frame."""
        world = _moved(parts, rot, t)
        if single is None:
            pts = np.concatenate([_part_extent(p) for p in parts])
            single = float((pts.max(0) - pts.min(0)).max()) < 0.35
        idx = len(self.objs)
        self.objs.append(_Obj(label, world, bool(single), structure, rests_on, anchor, coarse or structure))
        for x0, y0, x1, y1, z, tag in supports:
            self.supports.append(_Support(idx, rot, _v3(t), (x0, y0, x1, y1), z, tag))
        if occupy is not None:
            self.occ.append(occupy)
        return idx

    def put_on(self, tags, label, parts, w, d, *, single=None, supports=()) -> int | None:
        slot = self.support_slot(tags, w, d)
        if slot is None:
            return None
        s, rot, t, r = slot
        s.used.append(r)
        return self.add(label, parts, rot, t, single=single, supports=supports, rests_on=s.obj, anchor=t.copy())
