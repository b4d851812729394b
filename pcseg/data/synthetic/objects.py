"""Object builders: tables, chairs, shelves, book rows and tabletop-sized items as parts.

Each builder returns parts in a local frame: footprint centred on the origin, base at z=0,
front towards +y (into the room for things against a wall). Builders only draw sizes and
colours; where a thing goes is decided by the furnishing steps (:mod:`.furnish`, :mod:`.shell`).
"""
from __future__ import annotations

import math

import numpy as np

from .geometry import _box, _cyl, _lathe, _moved, _Part, _rx, _rz, _sphere
from .labels import _COLORS, _color


def _u(rng, lo, hi) -> float:
    """Uniform draw; a collapsed range (tight spots in small rooms) gives its lower end."""
    return float(rng.uniform(lo, hi)) if hi > lo else float(lo)


def _legs(w, d, h, t, color, inset=0.04) -> list[_Part]:
    out = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            cx, cy = sx * (w / 2 - inset - t / 2), sy * (d / 2 - inset - t / 2)
            out += _box((cx - t / 2, cy - t / 2, 0), (cx + t / 2, cy + t / 2, h), color, "fklr")
    return out


def _table(rng, w, d, h, color, top=0.04, leg=0.05):
    parts = _box((-w / 2, -d / 2, h - top), (w / 2, d / 2, h), color, "tbfklr") + _legs(w, d, h - top, leg, color)
    return parts, [(-w / 2, -d / 2, w / 2, d / 2, h, "table")]


def _chair(rng, color):
    s, sh = _u(rng, 0.42, 0.48), _u(rng, 0.43, 0.48)
    back = _u(rng, 0.35, 0.45)
    parts = _box((-s / 2, -s / 2, sh - 0.04), (s / 2, s / 2, sh), color, "tbfklr") + _legs(s, s, sh - 0.04, 0.03, color, 0.01)
    parts += _box((-s / 2, -s / 2, sh), (s / 2, -s / 2 + 0.03, sh + back), color, "tfklr")
    return parts, s, s


def _office_chair(rng, color):
    parts = []
    dark = np.array([30.0, 30, 32])
    for k in range(5):
        a = 2 * math.pi * k / 5
        arm = _box((0, -0.02, 0.03), (0.3, 0.02, 0.06), dark, "tfklr")
        parts += _moved(arm, _rz(a), (0, 0, 0))
    parts.append(_cyl(0, 0, 0.06, 0.025, 0.025, 0.36, dark, cap1=False))
    s = _u(rng, 0.46, 0.52)
    parts += _box((-s / 2, -s / 2, 0.42), (s / 2, s / 2, 0.5), color, "tbfklr")
    bh = _u(rng, 0.45, 0.65)
    parts += _box((-s / 2 + 0.03, -s / 2, 0.55), (s / 2 - 0.03, -s / 2 + 0.07, 0.55 + bh), color, "tbfklr")
    return parts, 0.62, 0.62


def _shelf_unit(rng, w, d, h, color, thick=0.02):
    parts = _box((-w / 2, -d / 2, 0), (-w / 2 + thick, d / 2, h), color)
    parts += _box((w / 2 - thick, -d / 2, 0), (w / 2, d / 2, h), color)
    parts += _box((-w / 2 + thick, -d / 2, h - thick), (w / 2 - thick, d / 2, h), color, "tbf")
    parts += _box((-w / 2 + thick, -d / 2, 0), (w / 2 - thick, -d / 2 + 0.01, h - thick), color, "f")
    n = max(2, int(h / 0.36))
    sup = []
    for k in range(n):
        z = 0.05 + k * (h - 0.05) / n
        parts += _box((-w / 2 + thick, -d / 2 + 0.01, z - thick), (w / 2 - thick, d / 2, z), color, "tbf")
        sup.append((-w / 2 + thick, -d / 2 + 0.01, w / 2 - thick, d / 2, z, f"shelf:{(h - 0.05) / n - thick:.3f}"))
    sup.append((-w / 2, -d / 2, w / 2, d / 2, h, "top"))
    return parts, sup


def _book_row(rng, length, max_h, depth):
    """Upright books side by side (one annotated group, each book its own colour)."""
    parts, x = [], 0.0
    while True:
        t = _u(rng, 0.02, 0.05)
        if x + t > length:
            break
        bh = min(max_h, _u(rng, 0.16, 0.3))
        bd = min(depth, _u(rng, 0.14, 0.24))
        parts += _box((x - length / 2, -bd / 2, 0), (x + t - length / 2, bd / 2, bh), _color(rng, "book", 18))
        x += t + (0.002 if rng.random() < 0.9 else _u(rng, 0.01, 0.06))
    return parts


def _small_item(rng, name: str):
    """Tabletop-sized things: (parts, width, depth) in the local frame."""
    c = _color(rng, name) if name in _COLORS else _color(rng, "clutter", 25)
    if name == "cup":
        r, h = _u(rng, 0.035, 0.045), _u(rng, 0.08, 0.12)
        return [_cyl(0, 0, 0, r, r * 1.12, h, c, cap1=False)], 2.3 * r, 2.3 * r
    if name == "bottle":
        r, h = _u(rng, 0.03, 0.042), _u(rng, 0.2, 0.3)
        prof_r = [r, r, r * 0.95, r * 0.4, r * 0.4]
        prof_z = [0, h * 0.6, h * 0.72, h * 0.85, h]
        return [_lathe(prof_r, prof_z, c, cap1=True)], 2 * r, 2 * r
    if name == "plate":
        r = _u(rng, 0.1, 0.13)
        return [_lathe([r * 0.6, r, r], [0, 0.012, 0.02], c, cap1=True)], 2 * r, 2 * r
    if name == "bowl":
        r = _u(rng, 0.07, 0.1)
        return [_lathe([r * 0.5, r * 0.85, r], [0, r * 0.45, r * 0.7], c)], 2 * r, 2 * r
    if name == "tissue box":
        w, d, h = _u(rng, 0.22, 0.26), _u(rng, 0.11, 0.13), _u(rng, 0.08, 0.11)
        return _box((-w / 2, -d / 2, 0), (w / 2, d / 2, h), c) + _box((-0.03, -0.02, h), (0.03, 0.02, h + 0.04), (245, 245, 245)), w, d
    if name == "alarm clock":
        w, d, h = _u(rng, 0.1, 0.14), _u(rng, 0.05, 0.07), _u(rng, 0.08, 0.1)
        return _box((-w / 2, -d / 2, 0), (w / 2, d / 2, h), c) + _box((-w / 3, d / 2, h * 0.3), (w / 3, d / 2 + 0.005, h * 0.8), (230, 60, 40), "f"), w, d
    if name == "speaker":
        w, d, h = _u(rng, 0.12, 0.18), _u(rng, 0.12, 0.18), _u(rng, 0.2, 0.3)
        return _box((-w / 2, -d / 2, 0), (w / 2, d / 2, h), c) + [_lathe([0.0, w * 0.35], [0, 0.001], (70, 70, 74), pos=(0, d / 2, h * 0.35), rot=_rx(-math.pi / 2), cap1=True)], w, d
    if name == "paper":
        w, d = _u(rng, 0.2, 0.22), _u(rng, 0.28, 0.31)
        return _box((-w / 2, -d / 2, 0), (w / 2, d / 2, _u(rng, 0.002, 0.02)), c), w, d
    if name == "book":
        w, d, h = _u(rng, 0.14, 0.22), _u(rng, 0.2, 0.28), _u(rng, 0.02, 0.05)
        return _box((-w / 2, -d / 2, 0), (w / 2, d / 2, h), c), w, d
    if name == "mouse":
        return _box((-0.03, -0.055, 0), (0.03, 0.055, 0.025), c) + _box((-0.022, -0.04, 0.025), (0.022, 0.04, 0.036), c, "tfklr"), 0.06, 0.11
    if name == "keyboard":
        w, d = _u(rng, 0.42, 0.46), _u(rng, 0.13, 0.16)
        return _box((-w / 2, -d / 2, 0), (w / 2, d / 2, 0.025), c), w, d
    if name == "laptop":
        w, d = _u(rng, 0.31, 0.36), _u(rng, 0.22, 0.25)
        base = _box((-w / 2, -d / 2, 0), (w / 2, d / 2, 0.02), c)
        lid = _box((-w / 2, -0.006, 0), (w / 2, 0.006, d), c, "tbfklr")
        lid = _moved(lid, _rx(_u(rng, -0.35, -0.15)), (0, -d / 2 + 0.006, 0.02))
        return base + lid, w, d + 0.06
    if name == "monitor":
        w = _u(rng, 0.48, 0.66)
        h = w * _u(rng, 0.56, 0.64)
        z0 = _u(rng, 0.08, 0.14)
        parts = _box((-0.1, -0.08, 0), (0.1, 0.08, 0.015), c) + _box((-0.025, -0.02, 0.015), (0.025, 0.0, z0), c, "fklr")
        parts += _box((-w / 2, 0.0, z0), (w / 2, 0.035, z0 + h), c, "tbfklr")
        return parts, w, 0.16
    if name == "printer":
        w, d, h = _u(rng, 0.4, 0.5), _u(rng, 0.35, 0.45), _u(rng, 0.2, 0.3)
        return _box((-w / 2, -d / 2, 0), (w / 2, d / 2, h), c) + _box((-w / 3, d / 2, h * 0.2), (w / 3, d / 2 + 0.08, h * 0.28), c, "tbflr"), w, d + 0.08
    if name == "microwave":
        w, d, h = _u(rng, 0.45, 0.55), _u(rng, 0.34, 0.4), _u(rng, 0.27, 0.32)
        return _box((-w / 2, -d / 2, 0), (w / 2, d / 2, h), c) + _box((-w / 2 + 0.03, d / 2, 0.04), (w * 0.2, d / 2 + 0.004, h - 0.04), (20, 20, 24), "f"), w, d
    if name == "potted plant":
        r = _u(rng, 0.06, 0.1)
        parts = [_cyl(0, 0, 0, r * 0.75, r, r * 1.6, c, cap1=True)]
        parts.append(_sphere(0, 0, r * 1.6 + r * 1.2, r * _u(rng, 1.4, 1.9), _color(rng, "foliage"), squash=_u(rng, 0.8, 1.2)))
        return parts, 2 * r, 2 * r
    if name == "globe":
        r = _u(rng, 0.1, 0.14)
        dark = (60, 50, 40)
        return [_cyl(0, 0, 0, 0.08, 0.08, 0.02, dark), _cyl(0, 0, 0.02, 0.012, 0.012, 0.08, dark, cap1=False), _sphere(0, 0, 0.1 + r, r, c)], 0.2, 0.2
    if name == "vase":
        r, h = _u(rng, 0.05, 0.08), _u(rng, 0.18, 0.35)
        return [_lathe([r * 0.7, r * 1.3, r * 0.6, r * 0.8], [0, h * 0.4, h * 0.85, h], c)], 2.6 * r, 2.6 * r
    if name == "soap dispenser":
        return _box((-0.04, -0.04, 0), (0.04, 0.04, 0.14), c) + [_cyl(0, 0, 0.14, 0.012, 0.012, 0.05, (60, 60, 60))], 0.08, 0.08
    if name == "box":
        w, d, h = _u(rng, 0.15, 0.35), _u(rng, 0.12, 0.3), _u(rng, 0.08, 0.25)
        return _box((-w / 2, -d / 2, 0), (w / 2, d / 2, h), c), w, d
    # anything else: a random small block or can (clutter)
    if rng.random() < 0.5:
        w, d, h = _u(rng, 0.05, 0.25), _u(rng, 0.05, 0.2), _u(rng, 0.03, 0.2)
        return _box((-w / 2, -d / 2, 0), (w / 2, d / 2, h), c), w, d
    r = _u(rng, 0.03, 0.08)
    return [_cyl(0, 0, 0, r, r, _u(rng, 0.05, 0.25), c)], 2 * r, 2 * r
