"""The room shell and what is fixed to it: structure, openings, ceiling and wall fixtures.

Floor and (partly scanned) ceiling, doors with light switches, windows with sills and
curtains, ceiling lights / smoke detectors / vents, and wall decor (pictures, posters,
clocks, power outlets, unlabelled decals). The walls themselves are built last
(:func:`_finish_walls`), once every opening is known. :func:`.furnish._furnish` calls these.
"""
from __future__ import annotations

import math

import numpy as np

from .geometry import _box, _lathe, _quad, _rx, _rz
from .labels import _color, _label
from .objects import _u
from .room import _Room


def _structure(room: _Room) -> None:
    rng = room.rng
    H = room.H
    floor_c = _color(rng, "floor", 6)
    parts = [_quad((x0, y0, 0), (x1 - x0, 0, 0), (0, y1 - y0, 0), floor_c) for x0, y0, x1, y1 in room.floor_rects]
    room.add("floor", parts, np.eye(3), np.zeros(3), single=False, structure=True)
    room.wall_color = _color(rng, "wall", 5)  # walls are built last, once their openings are known
    # a partly scanned ceiling: strips along some walls
    if rng.random() < 0.85:
        ceil_c = _color(rng, "ceiling", 4)
        parts = []
        for w in room.walls:
            if rng.random() < 0.55:
                width = _u(rng, 0.4, 1.3)
                e, n = w.e, w.n
                o = np.array([*w.p0, H])
                # ceiling faces down: u along the inward normal, v along the wall
                parts.append(_quad(o, n * width, e * w.length, ceil_c))
        if not parts:
            w = room.walls[0]
            parts.append(_quad(np.array([*w.p0, H]), w.n * 0.8, w.e * w.length, ceil_c))
        room.add("ceiling", parts, np.eye(3), np.zeros(3), single=False, structure=True)


def _finish_walls(room: _Room) -> None:
    """Wall quads (with door / window holes), one group per wall as annotators do."""
    for w in room.walls:
        parts = [_quad(np.array([*w.p0, 0.0]), (0, 0, room.H), w.e * w.length, room.wall_color, holes=tuple(w.holes))]
        room.add("wall", parts, np.eye(3), np.zeros(3), single=False, structure=True)


def _doors_windows(room: _Room) -> None:
    rng, H = room.rng, room.H
    n_doors = 1 + int(rng.random() < 0.25)
    for _ in range(n_doors):
        w, h = _u(rng, 0.78, 0.95), _u(rng, 1.98, 2.1)
        slot = room.wall_slot(w, 0.04, 0.0, h, gap=-0.02, clearance=0.85)
        if slot is None:
            continue
        rot, t, wi, u0 = slot
        room.claim_wall(wi, u0 - 0.05, w + 0.1, 0.0, h + 0.05)
        room.walls[wi].holes.append((-1.0, h, u0, u0 + w))
        c = _color(rng, "door")
        parts = _box((-w / 2, -0.02, 0), (w / 2, 0.02, h), c, "tflr")
        parts += _box((w / 2 - 0.1, 0.02, 0.95), (w / 2 - 0.04, 0.07, 1.0), (190, 190, 190))
        room.add(_label(rng, "door", 0.1), parts, rot, t, single=False, coarse=True)
        room.occ.append(room.footprint(rot, t, -w / 2, 0, w / 2, 0.9))
        if rng.random() < 0.6:  # light switch beside the door
            side = u0 + w + 0.12 if rng.random() < 0.5 else u0 - 0.2
            s2 = room.wall_slot(0.08, 0.015, _u(rng, 1.05, 1.25), 0.12, floor=False, wall=wi, u_range=(side, side + 0.01))
            if s2:
                r2, t2, _, uu = s2
                room.claim_wall(wi, uu, 0.08, t2[2], 0.12)
                room.add("light switch", _box((-0.04, -0.0075, 0), (0.04, 0.0075, 0.12), _color(rng, "light switch")), r2, t2)
    n_win = int(rng.integers(0, 2)) if room.kind == "bathroom" else 1 + int(rng.random() < 0.45) + int(rng.random() < 0.1)
    for _ in range(n_win):
        w, h = _u(rng, 0.7, 1.7), _u(rng, 0.9, 1.4)
        z0 = min(_u(rng, 0.75, 1.05), H - h - 0.15)
        slot = room.wall_slot(w, 0.04, z0, h, floor=False, gap=-0.06)
        if slot is None:
            continue
        rot, t, wi, u0 = slot
        room.claim_wall(wi, u0 - 0.05, w + 0.1, z0 - 0.1, h + 0.2)
        room.walls[wi].holes.append((z0, z0 + h, u0, u0 + w))
        glass, frame = _color(rng, "window"), np.array([236.0, 236, 232])
        f = 0.05
        parts = _box((-w / 2 + f, -0.01, f), (w / 2 - f, 0.0, h - f), glass, "f")
        parts += _box((-w / 2, -0.02, 0), (-w / 2 + f, 0.04, h), frame, "tfklr") + _box((w / 2 - f, -0.02, 0), (w / 2, 0.04, h), frame, "tfklr")
        parts += _box((-w / 2 + f, -0.02, 0), (w / 2 - f, 0.04, f), frame, "tf") + _box((-w / 2 + f, -0.02, h - f), (w / 2 - f, 0.04, h), frame, "bf")
        parts += _box((-0.02, -0.02, f), (0.02, 0.03, h - f), frame, "flr")
        room.add("window", parts, rot, t, single=False, coarse=True)
        e, n = room.walls[wi].e, room.walls[wi].n
        base = np.array([*room.walls[wi].p0, 0.0])
        if rng.random() < 0.4:  # windowsill below the window, a support for small things
            sw, sd = w + 0.1, _u(rng, 0.14, 0.22)
            st = base + (u0 + w / 2) * e + (sd / 2) * n + np.array([0, 0, z0 - 0.035])
            room.add("windowsill", _box((-sw / 2, -sd / 2, 0), (sw / 2, sd / 2, 0.035), _color(rng, "windowsill"), "tbflr"),
                           room.walls[wi].rot, st, supports=[(-sw / 2, -sd / 2, sw / 2, sd / 2, 0.035, "sill")])
        p_curtain = {"bedroom": 0.7, "living": 0.6, "office": 0.3}.get(room.kind, 0.1)
        if rng.random() < p_curtain:
            top = min(H - 0.05, z0 + h + _u(rng, 0.15, 0.35))
            bottom = _u(rng, 0.03, 0.1) if rng.random() < 0.6 else max(0.05, z0 - 0.2)
            c = _color(rng, "curtain")
            for side in (-1, 1):
                if rng.random() < 0.2:
                    continue
                cw = _u(rng, 0.35, 0.7)
                cu = u0 - cw + 0.2 if side < 0 else u0 + w - 0.2
                if cu < 0.02 or cu + cw > room.walls[wi].length - 0.02:
                    continue
                ct = base + cu * e + 0.12 * n + np.array([0, 0, bottom])
                parts = [_quad((0, 0, 0), (cw, 0, 0), (0, 0, top - bottom), c, wave=_u(rng, 0.02, 0.04), wavelength=_u(rng, 0.12, 0.2))]
                fp = room.footprint(room.walls[wi].rot, ct, 0, -0.05, cw, 0.05)
                room.add(_label(rng, "curtain"), parts, room.walls[wi].rot, ct, single=False)
                if bottom < 0.3:
                    room.occ.append(fp)


def _ceiling_things(room: _Room) -> None:
    rng, H = room.rng, room.H
    n = int(rng.integers(1, 4 if room.W * room.D > 12 else 2)) if rng.random() < 0.7 else 0
    for _ in range(n):
        x, y = _u(rng, 0.5, room.W - 0.5), _u(rng, 0.5, room.D - 0.5)
        if not room.inside((x - 0.3, y - 0.3, x + 0.3, y + 0.3)):
            continue
        c = _color(rng, "ceiling light", 5)
        if rng.random() < 0.5:
            s, th = _u(rng, 0.3, 0.6), _u(rng, 0.04, 0.1)
            parts = _box((-s / 2, -s / 2, -th), (s / 2, s / 2, 0), c, "bfklr")
        else:
            r, th = _u(rng, 0.14, 0.26), _u(rng, 0.05, 0.12)
            parts = [_lathe([r * 0.9, r], [-th, 0.0], c, cap0=True)]
        room.add("ceiling light", parts, _rz(_u(rng, 0, math.pi)), (x, y, H), single=False)
    if rng.random() < 0.3:
        x, y = _u(rng, 0.4, room.W - 0.4), _u(rng, 0.4, room.D - 0.4)
        if room.inside((x - 0.1, y - 0.1, x + 0.1, y + 0.1)):
            room.add("smoke detector", [_lathe([0.06, 0.065], [-0.035, 0.0], _color(rng, "smoke detector"), cap0=True)], np.eye(3), (x, y, H))
    if rng.random() < 0.4:  # vent: a ribbed grate on the ceiling or high on a wall
        w, d = _u(rng, 0.3, 0.55), _u(rng, 0.15, 0.3)
        c = _color(rng, "vent", 6)
        grate = [_quad((-w / 2, d / 2, -0.01), (w, 0, 0), (0, -d, 0), c, wave=0.006, wavelength=0.03)]
        if rng.random() < 0.5:
            x, y = _u(rng, 0.4, room.W - 0.4), _u(rng, 0.4, room.D - 0.4)
            if room.inside((x - w, y - w, x + w, y + w)):
                room.add("vent", grate + _box((-w / 2, -d / 2, -0.01), (w / 2, d / 2, 0.0), c, "fklr"), _rz(_u(rng, 0, math.pi)), (x, y, H))
        else:
            slot = room.wall_slot(w, 0.02, H - d - _u(rng, 0.1, 0.3), d, floor=False)
            if slot:
                rot, t, wi, u0 = slot
                room.claim_wall(wi, u0, w, t[2], d)
                parts = [_quad((-w / 2, 0.01, 0), (w, 0, 0), (0, 0, d), c, wave=0.005, wavelength=0.03)]
                parts += _box((-w / 2, -0.01, 0), (w / 2, 0.01, d), c, "tblr")
                room.add("vent", parts, rot, t)


def _wall_decor(room: _Room) -> None:
    rng = room.rng
    for _ in range(int(rng.integers(0, 4)) if rng.random() < 0.65 else 0):
        w, h = _u(rng, 0.3, 1.0), _u(rng, 0.25, 0.8)
        z0 = _u(rng, 1.25, 1.7) - h / 2 + 0.3
        slot = room.wall_slot(w, 0.03, z0, h, floor=False)
        if slot:
            rot, t, wi, u0 = slot
            room.claim_wall(wi, u0, w, z0, h)
            fr = _color(rng, "picture")
            parts = _box((-w / 2, -0.015, 0), (w / 2, 0.015, h), fr, "tbflr")
            parts += _box((-w / 2 + 0.04, 0.015, 0.04), (w / 2 - 0.04, 0.017, h - 0.04), _color(rng, "clutter", 40), "f")
            room.add(_label(rng, "picture", 0.05), parts, rot, t, single=False)
    if rng.random() < 0.25:
        w, h = _u(rng, 0.4, 0.7), _u(rng, 0.55, 0.95)
        slot = room.wall_slot(w, 0.004, _u(rng, 1.0, 1.4), h, floor=False)
        if slot:
            rot, t, wi, u0 = slot
            room.claim_wall(wi, u0, w, t[2], h)
            room.add("poster", _box((-w / 2, -0.002, 0), (w / 2, 0.002, h), _color(rng, "poster", 25), "f"), rot, t, single=False)
    if rng.random() < 0.22:
        r = _u(rng, 0.12, 0.18)
        slot = room.wall_slot(2 * r, 0.04, _u(rng, 1.8, 2.1), 2 * r, floor=False)
        if slot:
            rot, t, wi, u0 = slot
            room.claim_wall(wi, u0, 2 * r, t[2], 2 * r)
            face = _lathe([r * 0.92, r], [0.0, 0.04], (40, 40, 44), pos=(0, -0.02, r), rot=_rx(-math.pi / 2))
            dial = _lathe([0.0, r * 0.92], [0.035, 0.036], _color(rng, "clock"), pos=(0, -0.02, r), rot=_rx(-math.pi / 2), cap1=True)
            room.add("clock", [face, dial], rot, t, single=True)
    for _ in range(int(rng.integers(1, 4)) if rng.random() < 0.55 else 0):
        slot = room.wall_slot(0.08, 0.01, _u(rng, 0.25, 0.4), 0.08, floor=False)
        if slot:
            rot, t, wi, u0 = slot
            room.claim_wall(wi, u0, 0.08, t[2], 0.08)
            room.add("power outlet", _box((-0.04, -0.005, 0), (0.04, 0.005, 0.08), _color(rng, "power outlet", 4)), rot, t)
    if rng.random() < 0.12:  # an annotated thing whose label the label map lacks
        w, h = _u(rng, 0.2, 0.5), _u(rng, 0.2, 0.5)
        slot = room.wall_slot(w, 0.003, _u(rng, 0.9, 1.8), h, floor=False)
        if slot:
            rot, t, wi, u0 = slot
            room.claim_wall(wi, u0, w, t[2], h)
            room.add("wall decal", _box((-w / 2, -0.0015, 0), (w / 2, 0.0015, h), _color(rng, "clutter", 30), "f"), rot, t)
