"""Furnishing: the room kinds and the steps that place furniture and the things on it.

:func:`_furnish` runs the steps of one room kind in a fixed order. Each step draws sizes,
builds parts (inline or with :mod:`.objects`) and places them through the :class:`_Room`
slot methods or :func:`_against_wall`. Every step consumes the room's random stream, so
adding, removing or reordering a step changes the scene that a given seed generates.
"""
from __future__ import annotations

import math

import numpy as np

from .geometry import _box, _cyl, _lathe, _moved, _quad, _rx, _rz, _scaled
from .labels import _color, _label
from .objects import _book_row, _chair, _legs, _office_chair, _shelf_unit, _small_item, _table, _u
from .room import _overlap, _Room, _Support
from .shell import _ceiling_things, _doors_windows, _finish_walls, _structure, _wall_decor

# Room kinds, their draw weights, and the ``sceneType`` each writes to the .txt.
_ROOM_TYPES = ("bedroom", "office", "living", "kitchen", "bathroom")
_ROOM_WEIGHTS = (0.25, 0.25, 0.2, 0.17, 0.13)
_SCENE_TYPE_TEXT = {
    "bedroom": "Bedroom / Hotel", "office": "Office", "living": "Living room / Lounge",
    "kitchen": "Kitchen", "bathroom": "Bathroom",
}


def _against_wall(room: _Room, label, parts, w, d, h, *, supports=(), single=False, clearance=0.3, wall=None, u_range=None):
    slot = room.wall_slot(w, d, 0.0, h, wall=wall, u_range=u_range, clearance=clearance)
    if slot is None:
        return None
    rot, t, wi, u0 = slot
    room.claim_wall(wi, u0, w, 0.0, h)
    idx = room.add(label, parts, rot, t, supports=supports, single=single,
                   occupy=room.footprint(rot, t, -w / 2, -d / 2, w / 2, d / 2))
    return idx, rot, t, wi, u0


def _cabinet(room: _Room, label="cabinet", color_name="cabinet", w=None, d=None, h=None, tag="cabinet"):
    rng = room.rng
    w = w or _u(rng, 0.5, 1.2)
    d = d or _u(rng, 0.4, 0.6)
    h = h or _u(rng, 0.7, 1.0)
    c = _color(rng, color_name)
    parts = _box((-w / 2, -d / 2, 0), (w / 2, d / 2, h), c)
    nd = max(1, int(round(w / 0.5)))
    for k in range(nd):
        x = -w / 2 + (k + 0.5) * w / nd
        parts += _box((x - 0.01, d / 2, h * 0.55), (x + 0.01, d / 2 + 0.02, h * 0.75), (60, 60, 60), "tfklr")
    return _against_wall(room, _label(rng, label) if label else None, parts, w, d, h,
                         supports=[(-w / 2, -d / 2, w / 2, d / 2, h, tag)])


def _sink_into(room: _Room, sup_obj: int, rot, t, top_z, w_avail, d_avail) -> None:
    """Cut a basin into a counter-like top and add the sink (basin + tap) as its own object."""
    rng = room.rng
    sw, sd, depth = min(w_avail - 0.1, _u(rng, 0.4, 0.6)), min(d_avail - 0.12, _u(rng, 0.32, 0.42)), _u(rng, 0.12, 0.18)
    if sw < 0.25 or sd < 0.2:
        return
    x = _u(rng, -w_avail / 2 + sw / 2 + 0.05, w_avail / 2 - sw / 2 - 0.05)
    y = 0.02
    top = room.objs[sup_obj].parts[0].surf
    # the top quad is the counter's first part, local frame rotated into the room
    lu = float(np.linalg.norm(top.u))
    top.holes = ((x - sw / 2 + lu / 2, x + sw / 2 + lu / 2, y - sd / 2 + d_avail / 2, y + sd / 2 + d_avail / 2),)
    c = _color(rng, "sink", 6)
    parts = _box((x - sw / 2, y - sd / 2, top_z - depth), (x + sw / 2, y + sd / 2, top_z), c, "bfklr")
    for p in parts:  # the basin is seen from inside
        p.surf.u = -p.surf.u
        p.surf.o = p.surf.o - p.surf.u
    parts += _box((x - sw / 2 - 0.02, y - sd / 2 - 0.02, top_z), (x + sw / 2 + 0.02, y + sd / 2 + 0.02, top_z + 0.01), c, "tfklr")
    parts.append(_cyl(x, y - sd / 2 - 0.05, top_z, 0.018, 0.015, 0.25, (190, 190, 196)))
    room.add("sink", parts, rot, t, single=False, rests_on=sup_obj, anchor=rot @ np.array([x, y, top_z]) + t)
    for s in room.supports:
        if s.obj == sup_obj:
            s.used.append((x - sw / 2 - 0.08, y - sd / 2 - 0.1, x + sw / 2 + 0.08, y + sd / 2 + 0.02))


def _counter_row(room: _Room, bathroom: bool = False) -> None:
    rng = room.rng
    if bathroom:
        w, d, h = _u(rng, 0.6, 1.0), _u(rng, 0.45, 0.55), _u(rng, 0.8, 0.88)
        res = _cabinet(room, "bathroom cabinet", "bathroom cabinet", w, d, h, tag="counter")
        if res and rng.random() < 0.9:
            idx, rot, t, wi, u0 = res
            # the cabinet's first part is its top
            _sink_into(room, idx, rot, t, h, w, d)
        return
    w_wall = max((wl.length for wl in room.walls), default=3.0)
    w = min(_u(rng, 1.4, 3.2), w_wall - 0.3)
    d, h = 0.6, _u(rng, 0.84, 0.9)
    res = _cabinet(room, "kitchen cabinet", "kitchen cabinet", w, d, h - 0.04, tag="none")
    if res is None:
        return
    idx, rot, t, wi, u0 = res
    ct = rot @ np.array([0, 0.015, h - 0.04]) + t
    cidx = room.add("counter", _box((-w / 2 - 0.01, -d / 2 - 0.015, 0), (w / 2 + 0.01, d / 2 + 0.015, 0.04), _color(rng, "counter"), "tbfklr"),
                    rot, ct, single=False, supports=[(-w / 2, -d / 2, w / 2, d / 2, 0.04, "counter")], rests_on=idx, anchor=ct.copy())
    if rng.random() < 0.85:
        _sink_into(room, cidx, rot, ct, 0.04, w + 0.02, d + 0.03)
    if rng.random() < 0.55:  # wall cabinets above the counter
        uh, ud, z0 = _u(rng, 0.6, 0.8), _u(rng, 0.3, 0.36), _u(rng, 1.4, 1.55)
        uw = min(w, _u(rng, 0.8, 2.0))
        slot = room.wall_slot(uw, ud, z0, uh, floor=False, wall=wi, u_range=(u0, u0 + w - uw))
        if slot:
            r2, t2, _, uu = slot
            room.claim_wall(wi, uu, uw, z0, uh)
            parts = _box((-uw / 2, -ud / 2, 0), (uw / 2, ud / 2, uh), _color(rng, "kitchen cabinet"), "tbfklr")
            room.add(_label(rng, "kitchen cabinet"), parts, r2, t2, single=False)


def _fridge(room: _Room) -> None:
    rng = room.rng
    w, d, h = _u(rng, 0.65, 0.9), _u(rng, 0.65, 0.75), _u(rng, 1.65, 1.9)
    c = _color(rng, "refrigerator", 5)
    parts = _box((-w / 2, -d / 2, 0), (w / 2, d / 2, h), c)
    parts += _box((w / 2 - 0.08, d / 2, h * 0.45), (w / 2 - 0.05, d / 2 + 0.04, h * 0.6), (120, 120, 124), "tfklr")
    parts += _box((-w / 2, d / 2, h * 0.62), (w / 2, d / 2 + 0.004, h * 0.625), (80, 80, 84), "f")
    _against_wall(room, "refrigerator", parts, w, d, h, clearance=0.6,
                  supports=[(-w / 2, -d / 2, w / 2, d / 2, h, "top")])


def _bookshelf(room: _Room) -> None:
    rng = room.rng
    w, d, h = _u(rng, 0.7, 1.2), _u(rng, 0.28, 0.4), _u(rng, 1.2, 2.0)
    parts, sup = _shelf_unit(rng, w, d, h, _color(rng, "bookshelf"))
    res = _against_wall(room, _label(rng, "bookshelf", 0.1), parts, w, d, h, supports=[s for s in sup if s[5] == "top"], clearance=0.4)
    if res is None:
        return
    idx, rot, t, _, _ = res
    for x0, y0, x1, y1, z, tag in sup:
        if not tag.startswith("shelf:"):
            continue
        gap = float(tag.split(":")[1])
        if rng.random() < 0.7:  # a row of books
            length = (x1 - x0) * _u(rng, 0.3, 0.95)
            bx = _u(rng, x0 + length / 2, x1 - length / 2)
            books = _book_row(rng, length, gap - 0.03, d - 0.04)
            if books:
                room.add("books" if rng.random() < 0.8 else "book", books, rot, rot @ np.array([bx, 0.0, z]) + t,
                         single=False, rests_on=idx, anchor=rot @ np.array([bx, 0.0, z]) + t)
                continue
        room.supports.append(_Support(idx, rot, t, (x0, y0, x1, y1), z, "shelf"))


def _desk(room: _Room) -> None:
    rng = room.rng
    w, d, h = _u(rng, 1.0, 1.6), _u(rng, 0.6, 0.8), _u(rng, 0.72, 0.76)
    c = _color(rng, "desk")
    parts = _box((-w / 2, -d / 2, h - 0.03), (w / 2, d / 2, h), c, "tbfklr")
    parts += _box((-w / 2, -d / 2, 0), (-w / 2 + 0.03, d / 2, h - 0.03), c, "fklr") + _box((w / 2 - 0.03, -d / 2, 0), (w / 2, d / 2, h - 0.03), c, "fklr")
    parts += _box((-w / 2 + 0.03, -d / 2 + 0.02, h - 0.4), (w / 2 - 0.03, -d / 2 + 0.04, h - 0.03), c, "fk")
    res = _against_wall(room, "desk", parts, w, d, h, clearance=0.75, supports=[])
    if res is None:
        return
    idx, rot, t, wi, u0 = res
    desk_fp = room.occ[-1]
    sup = _Support(idx, rot, t, (-w / 2, -d / 2, w / 2, d / 2), h, "desk")
    room.supports.append(sup)
    used = sup.used
    if room.kind == "office" and rng.random() < 0.8 or rng.random() < 0.35:
        nm = 1 + int(rng.random() < 0.25 and w > 1.3)
        for k in range(nm):
            parts_m, mw, md = _small_item(rng, "monitor")
            mx = (k - (nm - 1) / 2) * (mw + 0.05) + _u(rng, -0.05, 0.05)
            if abs(mx) + mw / 2 > w / 2:
                continue
            my = -d / 2 + md / 2 + 0.05
            mt = rot @ np.array([mx, my, h]) + t
            room.add("monitor", parts_m, rot, mt, single=False, rests_on=idx, anchor=mt.copy())
            used.append((mx - mw / 2, my - md / 2, mx + mw / 2, my + md / 2))
        if rng.random() < 0.8:
            kp, kw, kd = _small_item(rng, "keyboard")
            ky = _u(rng, 0.0, d / 2 - kd / 2 - 0.04)
            kt = rot @ np.array([0, ky, h]) + t
            room.add("keyboard", kp, rot @ _rz(_u(rng, -0.08, 0.08)), kt, single=False, rests_on=idx, anchor=kt.copy())
            used.append((-kw / 2, ky - kd / 2, kw / 2, ky + kd / 2))
            if rng.random() < 0.6 and w / 2 > kw / 2 + 0.15:
                mp, _, _ = _small_item(rng, "mouse")
                mx = kw / 2 + 0.1
                mt = rot @ np.array([mx, ky, h]) + t
                room.add("mouse", mp, rot @ _rz(_u(rng, -0.3, 0.3)), mt, rests_on=idx, anchor=mt.copy())
                used.append((mx - 0.04, ky - 0.06, mx + 0.04, ky + 0.06))
        if rng.random() < 0.5:  # computer tower on the floor beside the desk
            tw, td, th = _u(rng, 0.18, 0.22), _u(rng, 0.4, 0.48), _u(rng, 0.36, 0.46)
            ux = u0 + (w - tw - 0.1 if rng.random() < 0.5 else 0.05)
            cpart = _box((-tw / 2, -td / 2, 0), (tw / 2, td / 2, th), _color(rng, "computer tower"))
            cpart += _box((-tw / 2 + 0.03, td / 2, th - 0.1), (tw / 2 - 0.03, td / 2 + 0.003, th - 0.06), (90, 90, 90), "f")
            ct = rot @ np.array([ux - u0 - w / 2 + tw / 2, -d / 2 + td / 2 + 0.06, 0]) + t
            room.add("computer tower", cpart, rot, ct, single=False)
        if rng.random() < 0.15:
            for side in (-1, 1):
                sp, sw, sd_ = _small_item(rng, "speaker")
                sx = side * (w / 2 - sw / 2 - 0.03)
                r = (sx - sw / 2, -d / 2 + 0.02, sx + sw / 2, -d / 2 + 0.02 + sd_)
                if not any(_overlap(r, u_, 0.01) for u_ in used):
                    used.append(r)
                    st = rot @ np.array([sx, -d / 2 + 0.02 + sd_ / 2, h]) + t
                    room.add("speaker", sp, rot, st, rests_on=idx, anchor=st.copy())
    elif rng.random() < 0.5:
        lp, lw, ld = _small_item(rng, "laptop")
        room.put_on(("desk",), "laptop", lp, lw, ld, single=False)
    # a chair in front of the desk
    chair_name = "office chair" if (room.kind == "office" or rng.random() < 0.4) else "chair"
    if rng.random() < 0.85:
        cp, cw, cd = (_office_chair if chair_name == "office chair" else _chair)(rng, _color(rng, chair_name))
        cy = d / 2 + cd / 2 + _u(rng, -0.2, 0.15)
        cx = _u(rng, -w / 4, w / 4)
        cr = rot @ _rz(math.pi + _u(rng, -0.5, 0.5))
        tt = rot @ np.array([cx, cy, 0]) + t
        fp = room.footprint(cr, tt, -cw / 2, -cd / 2, cw / 2, cd / 2)
        if room.free(fp, 0.0, ignore=desk_fp):
            room.add(chair_name, cp, cr, tt, single=False, occupy=fp)


def _bed(room: _Room) -> None:
    rng = room.rng
    w, L = _u(rng, 1.0, 1.9), _u(rng, 1.95, 2.15)
    fh, mh = _u(rng, 0.25, 0.35), _u(rng, 0.18, 0.26)
    if room.small:
        w, L = min(w, room.W - 1.0, room.D - 1.0), min(L, max(room.W, room.D) - 0.8)
    fc, mc = _color(rng, "bed"), _color(rng, "mattress", 6)
    parts = _box((-w / 2, -L / 2, 0), (w / 2, L / 2, fh), fc)
    parts += _box((-w / 2 + 0.02, -L / 2 + 0.06, fh), (w / 2 - 0.02, L / 2 - 0.02, fh + mh), mc)
    hb = _u(rng, 0.8, 1.15)
    parts += _box((-w / 2, -L / 2, 0), (w / 2, -L / 2 + 0.06, hb), fc, "tfklr")
    res = _against_wall(room, "bed", parts, w, L, hb, clearance=0.4)
    if res is None:
        return
    idx, rot, t, wi, u0 = res
    top = fh + mh
    room.supports.append(_Support(idx, rot, t, (-w / 2 + 0.05, -L / 2 + 0.1, w / 2 - 0.05, L / 2 - 0.05), top, "bed"))
    npil = int(rng.integers(1, 3)) if rng.random() < 0.9 else 0
    for k in range(npil):
        pw = min(_u(rng, 0.5, 0.7), (w - 0.1) / max(1, npil))
        px = (k - (npil - 1) / 2) * (pw + 0.04)
        pt = rot @ np.array([px, -L / 2 + 0.3, top]) + t
        pp = _box((-pw / 2, -0.18, 0), (pw / 2, 0.18, _u(rng, 0.1, 0.16)), _color(rng, "pillow"))
        room.add(_label(rng, "pillow"), pp, rot @ _rz(_u(rng, -0.1, 0.1)), pt, single=False, rests_on=idx, anchor=pt.copy())
    if rng.random() < 0.6:
        bl = L * _u(rng, 0.45, 0.7)
        bt = rot @ np.array([-w / 2 - 0.03, L / 2 - bl, top + 0.015]) + t
        parts_b = [_quad((0, 0, 0), (w + 0.06, 0, 0), (0, bl + 0.02, 0), _color(rng, "blanket"), wave=0.012, wavelength=_u(rng, 0.2, 0.35))]
        parts_b += [_quad((0, bl + 0.02, 0), (w + 0.06, 0, 0), (0, 0, -0.25), _color(rng, "blanket"))]
        room.add("blanket", parts_b, rot, bt, single=False, rests_on=idx, anchor=rot @ np.array([0, L / 2 - bl / 2, top]) + t)
    # nightstands beside the head of the bed
    for side in (-1, 1):
        if rng.random() < 0.6:
            nw, nd, nh = _u(rng, 0.4, 0.55), _u(rng, 0.35, 0.45), _u(rng, 0.45, 0.62)
            c = _color(rng, "nightstand")
            parts = _box((-nw / 2, -nd / 2, 0), (nw / 2, nd / 2, nh), c) + _box((-0.05, nd / 2, nh * 0.6), (0.05, nd / 2 + 0.02, nh * 0.66), (200, 180, 120), "tfklr")
            uu = u0 - nw - 0.05 if side < 0 else u0 + w + 0.05
            _against_wall(room, "nightstand", parts, nw, nd, nh, wall=wi, u_range=(uu, uu + 0.01), clearance=0.2,
                          supports=[(-nw / 2, -nd / 2, nw / 2, nd / 2, nh, "nightstand")])
    for name, p in (("alarm clock", 0.4), ("tissue box", 0.15), ("book", 0.25), ("vase", 0.12), ("cup", 0.1)):
        if rng.random() < p:
            ip, iw, idp = _small_item(rng, name)
            room.put_on(("nightstand",), _label(rng, name), ip, iw, idp)


def _couch(room: _Room) -> None:
    rng = room.rng
    w, d, h = _u(rng, 1.6, 2.4), _u(rng, 0.85, 1.0), _u(rng, 0.75, 0.9)
    if room.small:
        w = min(w, max(room.W, room.D) - 1.0)
    c = _color(rng, "couch")
    seat = 0.42
    arm = 0.18
    parts = _box((-w / 2 + arm, -d / 2 + 0.2, 0), (w / 2 - arm, d / 2, seat), c)
    parts += _box((-w / 2, -d / 2, 0), (w / 2, -d / 2 + 0.2, h), c)
    parts += _box((-w / 2, -d / 2 + 0.2, 0), (-w / 2 + arm, d / 2, 0.62), c) + _box((w / 2 - arm, -d / 2 + 0.2, 0), (w / 2, d / 2, 0.62), c)
    res = _against_wall(room, "couch", parts, w, d, h, clearance=0.5)
    if res is None:
        return
    idx, rot, t, wi, u0 = res
    room.supports.append(_Support(idx, rot, t, (-w / 2 + arm, -d / 2 + 0.2, w / 2 - arm, d / 2), seat, "couch"))
    taken: list[float] = []
    for _ in range(int(rng.integers(0, 4))):
        name = "pillow" if rng.random() < 0.5 else "cushion"
        pw = _u(rng, 0.38, 0.5)
        px = _u(rng, -w / 2 + arm + pw / 2, w / 2 - arm - pw / 2)
        if any(abs(px - q) < pw for q in taken):
            continue
        taken.append(px)
        pt = rot @ np.array([px, -d / 2 + 0.3, seat]) + t
        pp = _box((-pw / 2, -0.07, 0), (pw / 2, 0.07, pw * 0.9), _color(rng, name))
        room.add(_label(rng, name), _moved(pp, _rx(-0.25), (0, 0, 0)), rot, pt, single=False, rests_on=idx, anchor=pt.copy())
    # coffee table (on a rug) in front, end table beside
    if rng.random() < 0.75:
        cw, cd, ch = _u(rng, 0.8, 1.3), _u(rng, 0.45, 0.7), _u(rng, 0.38, 0.46)
        cw = min(cw, w)
        tt = rot @ np.array([0, d / 2 + 0.35 + cd / 2, 0]) + t
        if rng.random() < 0.5:
            rw, rd = _u(rng, 1.4, 2.4), _u(rng, 1.0, 1.7)
            rfp = room.footprint(rot, tt, -rw / 2, -rd / 2, rw / 2, rd / 2)
            if room.inside(rfp):
                room.add("rug", _box((-rw / 2, -rd / 2, 0), (rw / 2, rd / 2, 0.012), _color(rng, "rug"), "tfklr"), rot, tt, single=False)
        fp = room.footprint(rot, tt, -cw / 2, -cd / 2, cw / 2, cd / 2)
        if room.free(fp, 0.0):
            tp, sup = _table(rng, cw, cd, ch, _color(rng, "coffee table"), top=0.03, leg=0.04)
            room.add("coffee table", tp, rot, tt, single=False, occupy=fp,
                     supports=[(s[0], s[1], s[2], s[3], s[4], "coffee") for s in sup])
            for name, p in (("book", 0.35), ("cup", 0.3), ("bowl", 0.2), ("plate", 0.1), ("vase", 0.1), ("paper", 0.1)):
                if rng.random() < p:
                    ip, iw, idp = _small_item(rng, name)
                    room.put_on(("coffee",), _label(rng, name), ip, iw, idp)
    if rng.random() < 0.35:
        ew, eh = _u(rng, 0.4, 0.55), _u(rng, 0.5, 0.62)
        uu = u0 - ew - 0.05 if rng.random() < 0.5 else u0 + w + 0.05
        tp, sup = _table(rng, ew, ew, eh, _color(rng, "end table"), top=0.03, leg=0.035)
        _against_wall(room, "end table", tp, ew, ew, eh, wall=wi, u_range=(uu, uu + 0.01),
                      supports=[(s[0], s[1], s[2], s[3], s[4], "nightstand") for s in sup])


def _table_with_chairs(room: _Room) -> None:
    rng = room.rng
    w, d, h = _u(rng, 0.8, 1.8), _u(rng, 0.6, 1.0), _u(rng, 0.72, 0.77)
    if room.small:
        w = min(w, 1.0)
    yaw = float(rng.integers(4)) * math.pi / 2 + _u(rng, -0.1, 0.1)
    slot = room.free_slot(w + 0.9, d + 0.9, yaw=yaw, margin=0.0)
    if slot is None:
        slot = room.free_slot(w, d, yaw=yaw)
        if slot is None:
            return
    rot, t = slot
    tp, sup = _table(rng, w, d, h, _color(rng, "table"))
    fp = room.footprint(rot, t, -w / 2, -d / 2, w / 2, d / 2)
    room.add("table", tp, rot, t, single=False, supports=sup, occupy=fp)
    chair_c = _color(rng, "chair")
    n = int(rng.integers(2, 7))
    for _ in range(n):
        side = int(rng.integers(4))
        cp, cw, cd = _chair(rng, chair_c)
        if side < 2:
            x, y = _u(rng, -w / 2 + 0.25, w / 2 - 0.25) if w > 0.5 else 0.0, (d / 2 + 0.32) * (1 if side == 0 else -1)
        else:
            x, y = (w / 2 + 0.32) * (1 if side == 2 else -1), _u(rng, -d / 2 + 0.25, d / 2 - 0.25) if d > 0.5 else 0.0
        # turn the chair's front (+y) toward the table
        face = (math.pi, 0.0, math.pi / 2, -math.pi / 2)[side]
        cr = rot @ _rz(face + _u(rng, -0.12, 0.12))
        tt = rot @ np.array([x, y, 0]) + t
        cfp = room.footprint(cr, tt, -cw / 2, -cd / 2, cw / 2, cd / 2)
        if room.free(cfp, 0.02):
            room.add(_label(rng, "chair", 0.0), cp, cr, tt, single=False, occupy=cfp)
    for name, p in (("cup", 0.4), ("bottle", 0.3), ("plate", 0.25), ("bowl", 0.2), ("laptop", 0.15), ("paper", 0.25),
                    ("book", 0.2), ("vase", 0.1), ("tissue box", 0.1), ("potted plant", 0.1)):
        if rng.random() < p:
            for _ in range(1 + int(rng.random() < 0.3)):
                ip, iw, idp = _small_item(rng, name)
                room.put_on(("table",), _label(rng, name), ip, iw, idp, single=None if name != "laptop" else False)


def _toilet(room: _Room) -> None:
    rng = room.rng
    c = _color(rng, "toilet", 3)
    tw, td, th = _u(rng, 0.36, 0.44), _u(rng, 0.16, 0.2), _u(rng, 0.34, 0.4)
    L = _u(rng, 0.62, 0.72)
    parts = _box((-tw / 2, -L / 2, 0.4), (tw / 2, -L / 2 + td, 0.4 + th), c, "tbfklr")
    parts += _box((-0.1, -L / 2 + 0.02, 0), (0.1, -L / 2 + td, 0.4), c, "fklr")
    by = -L / 2 + td + 0.2
    parts.append(_lathe([0.12, 0.14, 0.19, 0.2], [0.0, 0.15, 0.35, 0.41], c, pos=(0, by, 0), cap1=True))
    _against_wall(room, "toilet", parts, tw + 0.02, L, 0.4 + th, clearance=0.4, supports=[(-tw / 2, -L / 2, tw / 2, -L / 2 + td, 0.4 + th, "top")])


def _floor_things(room: _Room) -> None:
    """Free-standing or wall-side small furniture and containers on the floor."""
    rng, kind = room.rng, room.kind
    if rng.random() < {"bathroom": 0.6, "kitchen": 0.9}.get(kind, 0.65):
        r, h = _u(rng, 0.12, 0.18), _u(rng, 0.3, 0.5)
        c = _color(rng, "trash can")
        if rng.random() < 0.7:
            parts, w = [_cyl(0, 0, 0, r * 0.85, r, h, c, cap1=False)], 2 * r
        else:
            parts, w = _box((-r, -r * 0.8, 0), (r, r * 0.8, h), c, "fklr"), 2 * r
        _against_wall(room, "trash can", parts, w, w, h, clearance=0.2, single=False)
    if rng.random() < 0.45:
        for _ in range(int(rng.integers(1, 4))):
            w, d, h = _u(rng, 0.25, 0.6), _u(rng, 0.2, 0.5), _u(rng, 0.2, 0.55)
            parts = _box((-w / 2, -d / 2, 0), (w / 2, d / 2, h), _color(rng, "box"))
            _against_wall(room, _label(rng, "box"), parts, w, d, h, clearance=0.1, single=False,
                          supports=[(-w / 2, -d / 2, w / 2, d / 2, h, "box")])
    if kind in ("bedroom", "bathroom") and rng.random() < 0.2 or rng.random() < 0.04:
        w, d, h = _u(rng, 0.4, 0.55), _u(rng, 0.32, 0.4), _u(rng, 0.35, 0.5)
        c = _color(rng, "laundry basket")
        parts = _box((-w / 2, -d / 2, 0), (w / 2, d / 2, h), c, "fklr") + _box((-w / 2 + 0.02, -d / 2 + 0.02, h * 0.5), (w / 2 - 0.02, d / 2 - 0.02, h * 0.5 + 0.01), (220, 220, 220), "t")
        slot = room.free_slot(w, d)
        if slot:
            room.add("laundry basket", parts, *slot, single=False, occupy=room.footprint(*slot, -w / 2, -d / 2, w / 2, d / 2))
    if rng.random() < 0.12:
        r = _u(rng, 0.12, 0.15)
        _against_wall(room, "bucket", [_cyl(0, 0, 0, r * 0.8, r, _u(rng, 0.25, 0.32), _color(rng, "bucket"), cap1=False)], 2 * r, 2 * r, 0.3, clearance=0.1)
    if rng.random() < {"office": 0.25, "kitchen": 0.25}.get(kind, 0.08):
        r, h = _u(rng, 0.065, 0.085), _u(rng, 0.45, 0.6)
        c = _color(rng, "fire extinguisher", 6)
        parts = [_cyl(0, 0, 0, r, r, h, c), _cyl(0, 0, h, 0.02, 0.02, 0.06, (40, 40, 40))]
        _against_wall(room, "fire extinguisher", parts, 2 * r, 2 * r, h + 0.06, clearance=0.1)
    if rng.random() < 0.3:
        pp, pw, pd = _small_item(rng, "potted plant")
        if rng.random() < 0.5:
            room.put_on(("sill", "table", "desk", "shelf", "cabinet", "top"), "potted plant", pp, pw, pd, single=False)
        else:
            scale = _u(rng, 1.6, 2.2)
            big = _scaled(pp, scale)
            _against_wall(room, "potted plant", big, pw * scale, pd * scale, 0.8, clearance=0.1)
    if kind in ("living", "bedroom") and rng.random() < 0.3:
        s, h = _u(rng, 0.45, 0.7), _u(rng, 0.38, 0.46)
        c = _color(rng, "ottoman")
        parts = _box((-s / 2, -s / 2, 0), (s / 2, s / 2, h), c) if rng.random() < 0.6 else [_cyl(0, 0, 0, s / 2, s / 2, h, c)]
        slot = room.free_slot(s, s)
        if slot:
            room.add("ottoman", parts, *slot, single=False, occupy=room.footprint(*slot, -s / 2, -s / 2, s / 2, s / 2))
    if rng.random() < 0.08:
        w, d, h = _u(rng, 0.35, 0.45), _u(rng, 0.28, 0.35), _u(rng, 0.2, 0.3)
        slot = room.free_slot(w, d)
        if slot:
            parts = _box((-w / 2, -d / 2, 0.06), (w / 2, d / 2, h), _color(rng, "footstool")) + _legs(w, d, 0.06, 0.03, (40, 30, 20), 0.02)
            room.add("footstool", parts, *slot, single=False, occupy=room.footprint(*slot, -w / 2, -d / 2, w / 2, d / 2))
    if kind in ("bathroom", "kitchen") and rng.random() < 0.5 or rng.random() < 0.08:
        w, d = _u(rng, 0.5, 0.9), _u(rng, 0.35, 0.6)
        slot = room.free_slot(w, d, yaw=float(rng.integers(4)) * math.pi / 2)
        if slot:
            room.add("mat", _box((-w / 2, -d / 2, 0), (w / 2, d / 2, 0.012), _color(rng, "mat"), "tfklr"), *slot, single=False)
    if kind in ("bedroom", "living") and rng.random() < 0.25:
        rw, rd = _u(rng, 1.3, 2.2), _u(rng, 0.9, 1.5)
        slot = room.free_slot(rw, rd, yaw=float(rng.integers(4)) * math.pi / 2, margin=-1.0)
        if slot:
            room.add("rug", _box((-rw / 2, -rd / 2, 0), (rw / 2, rd / 2, 0.01), _color(rng, "rug"), "tfklr"), *slot, single=False)


def _tabletop_extras(room: _Room) -> None:
    rng, kind = room.rng, room.kind
    items = [("bottle", 0.2), ("cup", 0.25), ("paper", 0.2), ("book", 0.25), ("tissue box", 0.1), ("box", 0.15),
             ("globe", 0.05), ("printer", 0.15 if kind == "office" else 0.03), ("laptop", 0.1), ("alarm clock", 0.08)]
    if kind == "kitchen":
        items += [("microwave", 0.65), ("bottle", 0.5), ("bowl", 0.35), ("plate", 0.35), ("cup", 0.4), ("soap dispenser", 0.45)]
    if kind == "bathroom":
        items += [("soap dispenser", 0.55), ("tissue box", 0.2), ("bottle", 0.3), ("cup", 0.2)]
    tags = ("counter", "cabinet", "desk", "table", "top", "shelf", "sill", "box", "nightstand")
    for name, p in items:
        if rng.random() < p:
            ip, iw, idp = _small_item(rng, name)
            t2 = ("counter", "cabinet", "desk", "table") if name in ("microwave", "printer") else tags
            room.put_on(t2, _label(rng, name), ip, iw, idp, single=False if name in ("microwave", "printer", "laptop") else None)
    if kind == "bathroom" and rng.random() < 0.3:  # a wall-mounted soap dispenser
        slot = room.wall_slot(0.1, 0.09, _u(rng, 1.0, 1.2), 0.18, floor=False)
        if slot:
            rot, t, wi, u0 = slot
            room.claim_wall(wi, u0, 0.1, t[2], 0.18)
            room.add("soap dispenser", _box((-0.05, -0.045, 0), (0.05, 0.045, 0.18), _color(rng, "soap dispenser"), "tbfklr"), rot, t)


def _tv(room: _Room) -> None:
    rng = room.rng
    w = _u(rng, 0.8, 1.4)
    h = w * 0.58
    c = _color(rng, "tv", 3)
    parts = _box((-w / 2, -0.03, 0), (w / 2, 0.03, h), c, "tbfklr")
    if rng.random() < 0.5:
        slot = room.wall_slot(w, 0.06, _u(rng, 1.0, 1.3), h, floor=False)
        if slot:
            rot, t, wi, u0 = slot
            room.claim_wall(wi, u0, w, t[2], h)
            room.add("tv", parts, rot, t, single=False)
            return
    sw = w + _u(rng, 0.1, 0.5)
    res = _cabinet(room, "cabinet", "cabinet", sw, _u(rng, 0.4, 0.5), _u(rng, 0.45, 0.6), tag="tvstand")
    if res:
        idx, rot, t, _, _ = res
        sup = next(s for s in room.supports if s.obj == idx)
        stand = _box((-0.15, -0.1, 0), (0.15, 0.1, 0.02), c) + _box((-0.03, -0.02, 0.02), (0.03, 0.0, 0.08), c, "fklr")
        tt = rot @ np.array([0, 0, sup.z]) + t
        room.add("tv", stand + _moved(parts, np.eye(3), (0, 0, 0.08)), rot, tt, single=False, rests_on=idx, anchor=tt.copy())
        sup.used.append((-sw / 2, -0.12, sw / 2, 0.12))


def _clutter(room: _Room) -> None:
    """Unannotated things (no group) and a few annotated with labels the label map lacks."""
    rng = room.rng
    for _ in range(int(rng.integers(2, 7))):
        label = None if rng.random() < 0.65 else ("clutter" if rng.random() < 0.6 else "unknown")
        ip, iw, idp = _small_item(rng, "clutter")
        if rng.random() < 0.5:
            room.put_on(("counter", "cabinet", "desk", "table", "top", "shelf", "box", "sill", "coffee"), label, ip, iw, idp)
        else:
            slot = room.free_slot(iw, idp)
            if slot:
                room.add(label, ip, *slot, occupy=room.footprint(*slot, -iw / 2, -idp / 2, iw / 2, idp / 2))


def _furnish(room: _Room) -> None:
    rng, kind = room.rng, room.kind
    _structure(room)
    _doors_windows(room)
    if kind == "bedroom":
        _bed(room)
        if rng.random() < 0.4:
            _cabinet(room)
        if rng.random() < 0.35:
            _desk(room)
        if rng.random() < 0.3:
            _bookshelf(room)
        if rng.random() < 0.25:
            _tv(room)
    elif kind == "office":
        for _ in range(int(rng.integers(1, 4))):
            _desk(room)
        if rng.random() < 0.5:
            _bookshelf(room)
        for _ in range(int(rng.integers(0, 3))):
            _cabinet(room)
        if rng.random() < 0.35:
            _table_with_chairs(room)
    elif kind == "living":
        _couch(room)
        if rng.random() < 0.6:
            _tv(room)
        if rng.random() < 0.35:
            _bookshelf(room)
        if rng.random() < 0.45:
            _table_with_chairs(room)
        if rng.random() < 0.3:
            _cabinet(room)
    elif kind == "kitchen":
        _counter_row(room)
        if rng.random() < 0.8:
            _fridge(room)
        if rng.random() < 0.6:
            _table_with_chairs(room)
        if rng.random() < 0.3:
            _cabinet(room)
    else:  # bathroom
        if rng.random() < 0.95:
            _toilet(room)
        if rng.random() < 0.9:
            _counter_row(room, bathroom=True)
        if rng.random() < 0.3:
            _cabinet(room, "cabinet", "bathroom cabinet", d=_u(rng, 0.3, 0.45))
    _floor_things(room)
    _tabletop_extras(room)
    _wall_decor(room)
    _ceiling_things(room)
    _clutter(room)
    _finish_walls(room)
