"""Geometry: parts (quads and surfaces of revolution), primitives, transforms and meshing.

A thing is a list of :class:`_Part` (a surface plus a colour). ``_quad``, ``_box``, ``_lathe``,
``_cyl`` and ``_sphere`` build parts; ``_moved`` and ``_scaled`` transform them; ``_count``,
``_mesh_quad`` and ``_mesh_lathe`` turn them into vertices and faces at a grid spacing.
Nothing here draws random numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class _Quad:
    """A planar rectangle ``o + s*u + t*v`` (s, t in [0, 1]); normal = u x v."""

    o: np.ndarray
    u: np.ndarray
    v: np.ndarray
    wave: float = 0.0  # fold amplitude along the normal (curtains, blankets, vents)
    wavelength: float = 0.2
    holes: tuple[tuple[float, float, float, float], ...] = ()  # (a0, a1, b0, b1) metres along u, v


@dataclass
class _Lathe:
    """A surface of revolution about the local z axis (profile radius r over height z)."""

    r: np.ndarray
    z: np.ndarray
    rot: np.ndarray
    pos: np.ndarray
    cap0: bool = False  # close the first profile end (normal -z)
    cap1: bool = False  # close the last profile end (normal +z)


@dataclass
class _Part:
    surf: _Quad | _Lathe
    color: np.ndarray


def _v3(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _quad(o, u, v, color, **kw) -> _Part:
    return _Part(_Quad(_v3(o), _v3(u), _v3(v), **kw), _v3(color))


def _box(lo, hi, color, faces: str = "tfklr") -> list[_Part]:
    """Axis-aligned box; faces: t(op) b(ottom) f(ront, +y) k (back) l(eft, -x) r(ight); normals outward."""
    x0, y0, z0 = lo
    x1, y1, z1 = hi
    w, d, h = x1 - x0, y1 - y0, z1 - z0
    spec = {
        "t": ((x0, y0, z1), (w, 0, 0), (0, d, 0)),
        "b": ((x0, y1, z0), (w, 0, 0), (0, -d, 0)),
        "f": ((x1, y1, z0), (-w, 0, 0), (0, 0, h)),
        "k": ((x0, y0, z0), (w, 0, 0), (0, 0, h)),
        "r": ((x1, y0, z0), (0, d, 0), (0, 0, h)),
        "l": ((x0, y1, z0), (0, -d, 0), (0, 0, h)),
    }
    return [_quad(*spec[f], color) for f in faces]


def _lathe(r, z, color, pos=(0.0, 0.0, 0.0), rot=None, cap0=False, cap1=False) -> _Part:
    rot = np.eye(3) if rot is None else _v3(rot)
    return _Part(_Lathe(_v3(r), _v3(z), rot, _v3(pos), cap0, cap1), _v3(color))


def _cyl(x, y, z0, r0, r1, h, color, cap0=False, cap1=True) -> _Part:
    return _lathe([r0, r1], [z0, z0 + h], color, pos=(x, y, 0.0), cap0=cap0, cap1=cap1)


def _sphere(x, y, zc, radius, color, squash: float = 1.0) -> _Part:
    phi = np.linspace(0.3, math.pi - 0.3, 10)
    return _lathe(radius * np.sin(phi), zc - squash * radius * np.cos(phi), color, pos=(x, y, 0.0), cap0=True, cap1=True)


def _rz(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _moved(parts: list[_Part], rot: np.ndarray, t, pivot=(0.0, 0.0, 0.0)) -> list[_Part]:
    """Parts rotated by ``rot`` about ``pivot`` and then shifted by ``t``."""
    t, pv = _v3(t), _v3(pivot)
    out = []
    for p in parts:
        s = p.surf
        if isinstance(s, _Quad):
            ns = _Quad(rot @ (s.o - pv) + pv + t, rot @ s.u, rot @ s.v, s.wave, s.wavelength, s.holes)
        else:
            ns = _Lathe(s.r, s.z, rot @ s.rot, rot @ (s.pos - pv) + pv + t, s.cap0, s.cap1)
        out.append(_Part(ns, p.color))
    return out


def _scaled(parts: list[_Part], k: float) -> list[_Part]:
    """Parts uniformly scaled about the local origin (a larger copy of the same thing)."""
    out = []
    for p in parts:
        s = p.surf
        if isinstance(s, _Quad):
            ns = _Quad(s.o * k, s.u * k, s.v * k, s.wave * k, s.wavelength * k, s.holes)
        else:
            ns = _Lathe(s.r * k, s.z * k, s.rot, s.pos * k, s.cap0, s.cap1)
        out.append(_Part(ns, p.color))
    return out


def _part_extent(p: _Part) -> np.ndarray:
    s = p.surf
    if isinstance(s, _Quad):
        return np.stack([s.o, s.o + s.u, s.o + s.v, s.o + s.u + s.v])
    r = float(s.r.max())
    loc = np.array([[-r, -r, s.z.min()], [r, r, s.z.max()]])
    return loc @ s.rot.T + s.pos


def _profile_length(s: _Lathe) -> float:
    return float(np.hypot(np.diff(s.r), np.diff(s.z)).sum())


def _grid_n(length: float, h: float) -> int:
    return max(2, int(math.ceil(length / h - 1e-9)) + 1)


def _ring_n(radius: float, h: float) -> int:
    return max(6, int(math.ceil(2 * math.pi * radius / h - 1e-9)))


def _count(parts: list[tuple[_Part, float]], h: float) -> int:
    """Vertex count of the parts meshed at spacing ``h`` (times each part's factor), holes ignored."""
    n = 0
    for p, f in parts:
        hh = h * f
        s = p.surf
        if isinstance(s, _Quad):
            n += _grid_n(float(np.linalg.norm(s.u)), hh) * _grid_n(float(np.linalg.norm(s.v)), hh)
        else:
            nt = _ring_n(float(s.r.max()), hh)
            n += _grid_n(_profile_length(s), hh) * nt
            for cap, r in ((s.cap0, s.r[0]), (s.cap1, s.r[-1])):
                if cap and r > 0:
                    n += 1 + max(1, int(math.ceil(r / hh))) * nt
    return n


def _grid_faces(nu: int, nv: int) -> np.ndarray:
    idx = np.arange(nu * nv, dtype=np.int64).reshape(nu, nv)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
    return np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])


def _mesh_quad(q: _Quad, h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vertices, faces, per-vertex normals and in-plane coordinates (metres) of a gridded quad."""
    lu, lv = float(np.linalg.norm(q.u)), float(np.linalg.norm(q.v))
    nu, nv = _grid_n(lu, h), _grid_n(lv, h)
    s, t = np.meshgrid(np.linspace(0.0, 1.0, nu), np.linspace(0.0, 1.0, nv), indexing="ij")
    s, t = s.reshape(-1), t.reshape(-1)
    normal = np.cross(q.u, q.v)
    normal /= np.linalg.norm(normal)
    verts = q.o + s[:, None] * q.u + t[:, None] * q.v
    if q.wave:
        verts += normal * (q.wave * np.sin(2 * math.pi * s * lu / q.wavelength))[:, None]
    uv = np.stack([s * lu, t * lv], 1)
    faces = _grid_faces(nu, nv)
    if q.holes:
        drop = np.zeros(len(verts), dtype=bool)
        for a0, a1, b0, b1 in q.holes:
            drop |= (uv[:, 0] > a0) & (uv[:, 0] < a1) & (uv[:, 1] > b0) & (uv[:, 1] < b1)
        faces = faces[~drop[faces].any(1)]
        used = np.zeros(len(verts), dtype=bool)
        used[faces] = True
        remap = np.cumsum(used) - 1
        verts, uv, faces = verts[used], uv[used], remap[faces]
    return verts, faces, np.broadcast_to(normal, verts.shape), uv


def _mesh_lathe(l: _Lathe, h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vertices, faces, normals and (arc, height) coordinates of a surface of revolution with caps."""
    seg = np.hypot(np.diff(l.r), np.diff(l.z))
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    n_p = _grid_n(float(arc[-1]), h)
    rmax = float(l.r.max())
    nt = _ring_n(rmax, h)
    a = np.linspace(0.0, arc[-1], n_p)
    r, z = np.interp(a, arc, l.r), np.interp(a, arc, l.z)
    th = np.linspace(0.0, 2 * math.pi, nt, endpoint=False)
    ct, st = np.cos(th), np.sin(th)
    verts = [np.stack([(r[:, None] * ct).ravel(), (r[:, None] * st).ravel(), np.repeat(z, nt)], 1)]
    normals = [np.stack([np.tile(ct, n_p), np.tile(st, n_p), np.zeros(n_p * nt)], 1)]
    uv = [np.stack([np.tile(th * rmax, n_p), np.repeat(a, nt)], 1)]
    i = np.arange(n_p - 1)[:, None] * nt
    j = np.arange(nt)[None, :]
    j1 = (j + 1) % nt
    va, vb, vc, vd = i + j, i + nt + j, i + nt + j1, i + j1
    faces = [np.stack([va, vd, vc], -1).reshape(-1, 3), np.stack([va, vc, vb], -1).reshape(-1, 3)]
    base = n_p * nt
    for cap, rr, zz, up in ((l.cap0, r[0], z[0], False), (l.cap1, r[-1], z[-1], True)):
        if not cap or rr <= 0:
            continue
        nr = max(1, int(math.ceil(rr / h)))
        rad = rr * np.arange(1, nr + 1) / nr
        cv = np.concatenate([[[0.0, 0.0, zz]], np.stack([(rad[:, None] * ct).ravel(), (rad[:, None] * st).ravel(), np.full(nr * nt, zz)], 1)])
        verts.append(cv)
        normals.append(np.tile([0.0, 0.0, 1.0 if up else -1.0], (len(cv), 1)))
        # cap coordinates continue the lateral (arc, height) chart past its end
        off = np.array([math.pi * rmax, a[-1] + rr]) if up else np.array([math.pi * rmax, -rr])
        uv.append(cv[:, :2] * (1.0 if up else -1.0) + off)
        ring = 1 + np.arange(nr)[:, None] * nt
        fan = np.stack([np.zeros(nt, dtype=np.int64), ring[0] + j[0], ring[0] + j1[0]], 1)
        ra, rb = ring[:-1] + j, ring[1:] + j
        rc, rd = ring[1:] + j1, ring[:-1] + j1
        quads = np.concatenate([np.stack([ra, rb, rc], -1).reshape(-1, 3), np.stack([ra, rc, rd], -1).reshape(-1, 3)])
        cf = np.concatenate([fan, quads])
        if not up:
            cf = cf[:, ::-1]
        faces.append(cf + base)
        base += len(cv)
    v = np.concatenate(verts) @ l.rot.T + l.pos
    nrm = np.concatenate(normals) @ l.rot.T
    return v, np.concatenate(faces), nrm, np.concatenate(uv)
