"""Procedural indoor scenes written in the ScanNet v2 release layout.

The real scans are licence-gated, so tests, benchmarks and the demo need stand-in data
that still goes through the real conversion path: the same file names, the same binary
PLY header, the same over-segmentation / aggregation JSON and the same label map. Each
scene also carries its own per-vertex ground truth, computed here from the generator's
internal object model rather than by re-reading the files, so a converter can be checked
against an independent answer.

Scenes are rooms (rectangular or L-shaped) with floor, walls, a partly scanned ceiling
and furniture. Every class has a recognisable signature (shape, size, height, colour) and
classes follow a long-tailed frequency: structure and a few head classes cover most
points, tail classes are small and appear only in some scenes. Like the real release, a
few segments are annotated twice (the later group in the file wins), some clutter is not
annotated at all, and some labels are missing from the label map or map outside the 200
benchmark classes.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from pcseg.data.classes import scannet20, scannet200

__all__ = [
    "ABSENT_LABELS",
    "LABEL_MAP_COLUMNS",
    "SIZES",
    "SyntheticScene",
    "label_map_rows",
    "make_scene",
    "scene_name",
    "scene_seed",
    "split_counts",
    "write_label_map",
    "write_release",
    "write_scene",
]

SIZES = ("small", "default", "scannet")

# Labels the generator writes that the label map deliberately lacks (they must map to -1).
ABSENT_LABELS = ("clutter", "unknown", "wall decal")

LABEL_MAP_COLUMNS = (
    "id", "raw_category", "category", "count", "nyu40id", "eigen13id", "nyuClass", "nyu40class",
    "eigen13class", "ModelNet40", "ModelNet10", "ShapeNetCore55", "synsetoffset", "wnsynsetid",
    "wnsynsetkey", "mpcat40", "mpcat40index",
)

# The rows of the release's label map for every raw category the generator writes (the
# real ids, so ScanNet200 / NYU40 lookups behave as on real data). rug, footstool, globe,
# vase and smoke detector have ids outside the 200 benchmark classes.
_LABEL_ROWS = """\
1	wall	wall	8277	1	12	wall	wall	Wall					n04546855	wall.n.01	wall	1
2	chair	chair	4646	5	4	chair	chair	Chair	chair	chair	chair	3001627	n03001627	chair.n.01	chair	3
22	books	book	1678	23	2	book	books	Books					n02870526	book.n.11	objects	39
3	floor	floor	1553	2	5	floor	floor	Floor					n03365592	floor.n.01	floor	2
5	door	door	1483	8	12	door	door	Wall	door				n03221720	door.n.01	door	4
16	window	window	1209	9	13	window	window	Window					n04587648	window.n.01	window	9
4	table	table	1170	7	10	table	table	Table	table	table	table	4379243	n04379243	table.n.02	table	5
56	trash can	trash can	1090	39	6	garbage bin	otherfurniture	Furniture			trash_bin	2747177	n02747177	ashcan.n.01	objects	39
13	pillow	pillow	937	18	7	pillow	pillow	Objects			pillow	3938244	n03938244	pillow.n.01	cushion	8
15	picture	picture	862	11	8	picture	picture	Picture					n03931044	picture.n.01	picture	6
41	ceiling	ceiling	806	22	3	ceiling	ceiling	Ceiling					n02990373	ceiling.n.01	ceiling	17
26	box	box	775	29	7	box	box	Objects					n02883344	box.n.01	objects	39
19	monitor	monitor	765	40	7	monitor	otherprop	Objects	monitor	monitor	tv or monitor	3211117	n03782190	monitor.n.04	objects	39
7	cabinet	cabinet	731	3	6	cabinet	cabinet	Furniture			cabinet	2933112	n02933112	cabinet.n.01	cabinet	7
9	desk	desk	680	14	10	desk	desk	Table	desk	desk	table	4379243	n03179701	desk.n.01	table	5
10	office chair	office chair	595	5	4	chair	chair	Chair	chair	chair	chair	3001627	n04373704	swivel_chair.n.01	chair	3
6	couch	couch	502	6	9	sofa	sofa	Sofa	sofa	sofa	sofa	4256520	n04256520	sofa.n.01	sofa	10
14	sink	sink	488	34	7	sink	sink	Objects	sink				n04223580	sink.n.01	sink	15
11	bed	bed	370	4	1	bed	bed	Bed	bed	bed	bed	2818832	n02818832	bed.n.01	bed	11
18	bookshelf	bookshelf	360	10	6	bookshelf	bookshelf	Furniture	bookshelf		bookshelf	2871439	n02871439	bookshelf.n.01	shelving	31
21	curtain	curtain	347	16	13	curtain	curtain	Window	curtain				n03151077	curtain.n.01	curtain	12
22	book	book	318	23	2	book	books	Books					n02870526	book.n.11	objects	39
29	kitchen cabinet	kitchen cabinet	310	3	6	cabinet	cabinet	Furniture					n02933112	cabinet.n.01	cabinet	7
29	kitchen cabinets	kitchen cabinet	289	3	6	cabinet	cabinet	Furniture			cabinet	2933112	n02933112	cabinet.n.01	cabinet	7
24	coffee table	coffee table	258	7	10	coffee table	table	Table	table	table	table	4379243	n03063968	coffee_table.n.01	table	5
17	toilet	toilet	256	33	7	toilet	toilet	Objects	toilet	toilet			n04446276	toilet.n.01	toilet	18
46	keyboard	keyboard	246	40	7	keyboard	otherprop	Objects	keyboard		computer keyboard	3085013	n03085013	computer_keyboard.n.01	objects	39
65	bottle	bottle	226	40	7	bottle	otherprop	Objects	bottle		bottle	2876657	n02876657	bottle.n.01	objects	39
34	nightstand	nightstand	224	32	6	night stand	night stand	Furniture	night_stand	night_stand			n03015254	chest_of_drawers.n.01	chest_of_drawers	13
33	tv	tv	219	25	11	television	television	TV			tv or monitor	3211117	n03211117	display.n.06	tv_monitor	22
64	computer tower	computer tower	203	40	7	computer	otherprop	Objects					n03082979	computer.n.01	objects	39
130	cup	cup	157	40	7	cup	otherprop	Objects	cup		cup or mug	3797390	n03797390	mug.n.04	objects	39
27	refrigerator	refrigerator	154	24	6	refridgerator	refridgerator	Furniture					n04070727	refrigerator.n.01	appliances	37
44	end table	end table	147	7	10	table	table	Table	table	table	table	4379243	n04379243	table.n.02	table	5
59	microwave	microwave	141	40	7	microwave	otherprop	Objects			microwave	3761084	n03761084	microwave.n.02	appliances	37
77	laptop	laptop	111	40	7	laptop	otherprop	Objects	laptop		laptop	3642806	n03642806	laptop.n.01	objects	39
67	ottoman	ottoman	111	39	6	ottoman	otherfurniture	Furniture	stool				n03380724	footstool.n.01	stool	19
50	printer	printer	106	40	7	printer	otherprop	Objects			printer	4004475	n04004475	printer.n.03	appliances	37
35	counter	counter	104	12	6	counter	counter	Furniture	table	table	table	4379243	n03116530	counter.n.01	counter	26
100	soap dispenser	soap dispenser	99	40	7		otherprop	Objects					n04254120	soap_dispenser.n.01	objects	39
7	cabinets	cabinet	79	3	6	cabinet	cabinet	Furniture			cabinet	2933112	n02933112	cabinet.n.01	cabinet	7
5	doors	door	76	8	12	door	door	Wall	door				n03221720	door.n.01	door	4
230	tissue box	tissue box	73	40	7	tissue box	otherprop	Objects					n02883344	box.n.01	objects	39
54	blanket	blanket	72	40	7	blanket	otherprop	Objects					n02849154	blanket.n.01	objects	39
232	light switch	light switch	61	38	7	light switch	otherstructure	Objects					n04372370	switch.n.01	misc	40
1168	ceiling light	ceiling light	59	38	7	light	otherstructure	Objects					n03665366	light.n.02	lighting	28
103	clock	clock	58	40	7	clock	otherprop	Objects			clock	3046257	n03046257	clock.n.01	objects	39
140	mat	mat	52	20	5	floor mat	floor mat	Floor					n03727837	mat.n.01	floor	2
202	mouse	mouse	49	40	7	mouse	otherprop	Objects					n03793489	mouse.n.04	objects	39
79	paper	paper	46	26	7	paper	paper	Objects					n14974264	paper.n.01	objects	39
141	windowsill	windowsill	45	38	7		otherstructure	Objects					n04590263	windowsill.n.01	window	9
102	bucket	bucket	45	40	7	bucket	otherprop	Objects					n02909870	bucket.n.01	misc	40
118	speaker	speaker	43	40	7	speaker	otherprop	Objects			speaker	3691459	n03691459	loudspeaker.n.01	objects	39
1173	bathroom cabinet	bathroom cabinet	39	3	6	cabinet	cabinet	Furniture			cabinet	2933112	n02933112	cabinet.n.01	cabinet	7
79	papers	paper	39	26	7	paper	paper	Objects					n14974264	paper.n.01	objects	39
106	laundry basket	laundry basket	37	40	7	laundry basket	otherprop	Objects			basket	2801938	n03050864	clothes_hamper.n.01	objects	39
26	boxes	box	29	29	7	box	box	Objects					n02883344	box.n.01	objects	39
166	fire extinguisher	fire extinguisher	27	40	7	fire extinguisher	otherprop	Objects					n03345837	fire_extinguisher.n.01	misc	40
88	plate	plate	24	40	7	plate	otherprop	Objects					n03959485	plate.n.04	objects	39
562	bowl	bowl	24	40	7	bowl	otherprop	Objects	bowl		bowl	2880940	n02880940	bowl.n.03	objects	39
242	power outlet	power outlet	19	40	7		otherprop	Objects							misc	40
18	bookshelves	bookshelf	17	10	6	bookshelf	bookshelf	Furniture	bookshelf		bookshelf	2871439	n02871439	bookshelf.n.01	shelving	31
572	alarm clock	alarm clock	16	40	7	alarm clock	otherprop	Objects			clock	3046257	n02694662	alarm_clock.n.01	objects	39
408	vent	vent	13	40	7		otherprop	Objects					n04526241	vent.n.01	misc	40
1188	poster	poster	13	11	8	picture	picture	Picture					n03931044	picture.n.01	picture	6
1189	potted plant	potted plant	12	40	7	plant	otherprop	Objects	plant				n00017222	plant.n.02	plant	14
21	curtains	curtain	12	16	13	curtain	curtain	Window	curtain				n03151077	curtain.n.01	curtain	12
269	globe	globe	11	40	7	globe	otherprop	Objects							objects	39
85	footstool	footstool	11	39	6	ottoman	otherfurniture	Furniture	stool				n03380724	footstool.n.01	stool	19
1125	smoke detector	smoke detector	10	40	7		otherprop	Objects							misc	40
13	pillows	pillow	9	18	7	pillow	pillow	Objects			pillow	3938244	n03938244	pillow.n.01	cushion	8
194	vase	vase	8	40	7	vase	otherprop	Objects	vase		jar	3593526	n04522168	vase.n.01	objects	39
61	rug	rug	7	40	7	rug	otherprop	Objects					n04118021	rug.n.01	floor	2
39	couch cushions	cushion	7	18	7	pillow	pillow	Objects					n03151500	cushion.n.03	cushion	8
39	cushion	cushion	6	18	7	pillow	pillow	Objects					n03151500	cushion.n.03	cushion	8
"""

# Alternative raw names an annotator may type for a class (all present in the label map).
_VARIANTS = {
    "door": ("doors",), "curtain": ("curtains",), "cabinet": ("cabinets",),
    "kitchen cabinet": ("kitchen cabinets",), "bookshelf": ("bookshelves",), "book": ("books",),
    "pillow": ("pillows",), "box": ("boxes",), "cushion": ("couch cushions",), "paper": ("papers",),
}

# Base colours (RGB) per raw category; an instance picks one and jitters it.
_COLORS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "floor": ((150, 115, 80), (165, 162, 155), (112, 116, 128)),
    "wall": ((206, 201, 190), (190, 196, 202), (214, 204, 178)),
    "ceiling": ((232, 232, 226),),
    "door": ((128, 86, 52), (200, 198, 190)),
    "window": ((168, 198, 222),),
    "curtain": ((150, 60, 62), (70, 90, 140), (200, 190, 150)),
    "picture": ((60, 45, 35), (30, 30, 30)),
    "cabinet": ((146, 104, 64), (222, 218, 208)),
    "kitchen cabinet": ((186, 160, 128), (236, 234, 228)),
    "counter": ((118, 118, 124), (74, 70, 68)),
    "sink": ((176, 180, 186),),
    "refrigerator": ((228, 228, 230), (168, 172, 176)),
    "bookshelf": ((156, 112, 70), (90, 64, 44)),
    "book": ((160, 40, 40), (40, 80, 150), (40, 120, 60), (200, 170, 60), (90, 50, 120)),
    "desk": ((176, 142, 100), (120, 122, 126)),
    "bed": ((132, 92, 60),),
    "mattress": ((224, 224, 236),),
    "pillow": ((238, 236, 228), (120, 150, 190)),
    "nightstand": ((122, 84, 54),),
    "couch": ((96, 108, 142), (132, 120, 104), (70, 72, 76)),
    "tv": ((26, 26, 30),),
    "toilet": ((242, 242, 240),),
    "trash can": ((92, 92, 96), (50, 52, 58), (60, 100, 170)),
    "table": ((162, 122, 82), (210, 205, 195)),
    "coffee table": ((88, 60, 40), (60, 60, 62)),
    "chair": ((124, 84, 52), (200, 60, 50), (60, 60, 66)),
    "office chair": ((40, 40, 50), (40, 50, 90)),
    "monitor": ((22, 22, 26),),
    "box": ((184, 144, 98), (214, 200, 170)),
    "ceiling light": ((252, 248, 226),),
    "windowsill": ((226, 222, 212),),
    "microwave": ((40, 40, 44), (232, 232, 232)),
    "printer": ((204, 204, 204), (70, 70, 74)),
    "end table": ((140, 100, 64),),
    "ottoman": ((150, 110, 90), (90, 110, 90)),
    "potted plant": ((170, 92, 62),),
    "foliage": ((62, 124, 52), (40, 100, 44)),
    "computer tower": ((34, 34, 38), (190, 190, 192)),
    "mat": ((92, 70, 60), (120, 160, 170)),
    "keyboard": ((36, 36, 40), (226, 226, 226)),
    "laptop": ((182, 182, 188), (44, 44, 48)),
    "bottle": ((40, 130, 60), (170, 200, 220), (140, 60, 40)),
    "cushion": ((190, 90, 60), (230, 200, 120)),
    "blanket": ((110, 130, 170), (170, 90, 100), (140, 150, 110)),
    "bathroom cabinet": ((238, 236, 232), (150, 110, 76)),
    "laundry basket": ((176, 146, 96), (232, 232, 236)),
    "light switch": ((238, 238, 230),),
    "power outlet": ((232, 232, 226),),
    "poster": ((220, 120, 50), (60, 140, 200), (230, 210, 80)),
    "clock": ((246, 246, 240),),
    "fire extinguisher": ((212, 30, 32),),
    "soap dispenser": ((236, 236, 236), (120, 180, 120)),
    "vent": ((166, 166, 166),),
    "mouse": ((30, 30, 34), (220, 220, 222)),
    "cup": ((240, 240, 236), (200, 60, 50), (60, 90, 160)),
    "plate": ((246, 246, 244),),
    "bowl": ((232, 226, 210), (180, 70, 50)),
    "tissue box": ((236, 236, 240), (110, 160, 200)),
    "alarm clock": ((30, 30, 34), (230, 230, 230)),
    "speaker": ((28, 28, 30),),
    "paper": ((248, 248, 246),),
    "bucket": ((60, 110, 190), (200, 60, 50), (120, 120, 120)),
    "rug": ((140, 70, 60), (80, 90, 120), (190, 170, 130)),
    "footstool": ((100, 70, 50),),
    "globe": ((70, 120, 170),),
    "vase": ((60, 120, 140), (210, 200, 180)),
    "smoke detector": ((242, 242, 242),),
    "clutter": ((120, 110, 100), (180, 170, 60), (80, 140, 150), (160, 80, 140)),
}

_ROOM_TYPES = ("bedroom", "office", "living", "kitchen", "bathroom")
_ROOM_WEIGHTS = (0.25, 0.25, 0.2, 0.17, 0.13)
_SCENE_TYPE_TEXT = {
    "bedroom": "Bedroom / Hotel", "office": "Office", "living": "Living room / Lounge",
    "kitchen": "Kitchen", "bathroom": "Bathroom",
}


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


# --------------------------------------------------------------------------- label map


@lru_cache(maxsize=None)
def _label_ids() -> dict[str, tuple[int, int]]:
    """raw category -> (raw id, NYU40 id), from the embedded label-map rows."""
    out: dict[str, tuple[int, int]] = {}
    for line in _LABEL_ROWS.splitlines():
        cols = line.split("\t")
        out[cols[1]] = (int(cols[0]), int(cols[4]))
    return out


def label_map_rows() -> list[dict[str, str]]:
    """The label-map rows :func:`write_label_map` writes, as column -> value dicts."""
    return [dict(zip(LABEL_MAP_COLUMNS, line.split("\t"))) for line in _LABEL_ROWS.splitlines()]


def _label_indices(label: str) -> tuple[int, int]:
    """(ScanNet200 index, ScanNet20 index) of a raw label, -1 where it has none."""
    ids = _label_ids().get(label)
    if ids is None:
        return -1, -1
    lut200, lut20 = scannet200().id_to_index(), scannet20().id_to_index()
    raw, nyu = ids
    return (int(lut200[raw]) if raw < len(lut200) else -1, int(lut20[nyu]) if nyu < len(lut20) else -1)


def write_label_map(path: Path) -> None:
    """Write ``scannetv2-labels.combined.tsv`` with the release's header and the rows used here."""
    text = "\t".join(LABEL_MAP_COLUMNS) + "\n" + _LABEL_ROWS
    _atomic_write(Path(path), text.encode("utf-8"))


# --------------------------------------------------------------------------- geometry


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


# --------------------------------------------------------------------------- layout


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


def _color(rng: np.random.Generator, name: str, jitter: float = 10.0) -> np.ndarray:
    pal = _COLORS[name]
    base = np.asarray(pal[int(rng.integers(len(pal)))], dtype=np.float64)
    return np.clip(base + rng.normal(0.0, jitter, 3), 0, 255)


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


# --------------------------------------------------------------------------- object builders
# Each builder returns parts in a local frame: footprint centred on the origin, base at z=0,
# front towards +y (into the room for things against a wall).


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


# --------------------------------------------------------------------------- furnishing


def _label(rng, name: str, variant_p: float = 0.25) -> str:
    """The raw label an annotator writes: usually the class name, sometimes a listed variant."""
    v = _VARIANTS.get(name)
    if v and rng.random() < variant_p:
        return v[int(rng.integers(len(v)))]
    return name


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


# --------------------------------------------------------------------------- meshing and annotation


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


# --------------------------------------------------------------------------- writers


def _ply_bytes(vertices: np.ndarray, colors: np.ndarray, faces: np.ndarray) -> bytes:
    """Binary little-endian PLY with ScanNet's ``vh_clean_2`` header (built with numpy, not plyfile, for speed)."""
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment VCGLIB generated\n"
        f"element vertex {len(vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar alpha\n"
        f"element face {len(faces)}\n"
        "property list uchar int vertex_indices\nend_header\n"
    ).encode("ascii")
    v = np.empty(len(vertices), dtype=[("xyz", "<f4", (3,)), ("rgba", "u1", (4,))])
    v["xyz"] = vertices
    v["rgba"] = colors
    f = np.empty(len(faces), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    f["n"] = 3
    f["idx"] = faces
    return header + v.tobytes() + f.tobytes()


def _meta_text(scene: SyntheticScene, rng: np.random.Generator) -> str:
    """``<scene>.txt``: axisAlignment plus the sensor keys a release scene carries."""
    frames = int(rng.integers(800, 5000))
    a = " ".join(f"{x:.6f}" for x in scene.axis_alignment.ravel())
    ext = "0.999977 0.004401 0.005230 -0.037931 -0.004314 0.999852 -0.016630 -0.003321 -0.005303 0.016607 0.999848 -0.021860 -0 0 -0 1"
    lines = [
        f"axisAlignment = {a}",
        "colorHeight = 968",
        f"colorToDepthExtrinsics = {ext}",
        "colorWidth = 1296",
        "depthHeight = 480",
        "depthWidth = 640",
        "fx_color = 1170.187988",
        "fx_depth = 571.623718",
        "fy_color = 1170.187988",
        "fy_depth = 571.623718",
        "mx_color = 647.750000",
        "mx_depth = 319.500000",
        "my_color = 483.750000",
        "my_depth = 239.500000",
        f"numColorFrames = {frames}",
        f"numDepthFrames = {frames}",
        f"numIMUmeasurements = {int(frames * 2.1)}",
        f"sceneType = {scene.scene_type}",
    ]
    return "\n".join(lines) + "\n"


def write_scene(scene: SyntheticScene, scene_dir: Path, labelled: bool = True) -> None:
    """Write one scene's release files into ``scene_dir`` (test scenes: mesh and .txt only)."""
    d = Path(scene_dir)
    d.mkdir(parents=True, exist_ok=True)
    name = scene.name
    (d / f"{name}_vh_clean_2.ply").write_bytes(_ply_bytes(scene.vertices, scene.colors, scene.faces))
    # the .txt carries a few values that do not matter for labels; derive them from the name
    rng = np.random.default_rng(int.from_bytes(name.encode(), "little") % (2**63))
    (d / f"{name}.txt").write_text(_meta_text(scene, rng))
    if not labelled:
        return
    segs = {
        "params": {
            "kThresh": "0.0001", "segMinVerts": "20", "minPoints": "750", "maxPoints": "30000",
            "thinThresh": "0.05", "flatThresh": "0.001", "minLength": "0.02", "maxLength": "1",
        },
        "sceneId": name,
        "segIndices": scene.seg_indices.tolist(),
    }
    (d / f"{name}_vh_clean_2.0.010000.segs.json").write_text(json.dumps(segs))
    agg = {
        "sceneId": f"scannet.{name}",
        "appId": "Aggregator.v2",
        "segGroups": scene.groups,
        "segmentsFile": f"scannet.{name}_vh_clean_2.0.010000.segs.json",
    }
    (d / f"{name}.aggregation.json").write_text(json.dumps(agg, indent=1))


def scene_name(index: int) -> str:
    return f"scene{index:04d}_00"


def scene_seed(seed: int, index: int) -> int:
    """Seed of scene ``index`` in a release generated with ``seed`` (independent streams per scene)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def split_counts(num_scenes: int) -> tuple[int, int, int]:
    """(train, val, test) sizes: about 70/20/10 %, every split non-empty from 3 scenes on."""
    if num_scenes <= 0:
        return 0, 0, 0
    if num_scenes == 1:
        return 1, 0, 0
    if num_scenes == 2:
        return 1, 1, 0
    n_test = max(1, round(0.1 * num_scenes))
    n_val = max(1, round(0.2 * num_scenes))
    return num_scenes - n_val - n_test, n_val, n_test


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_one(args: tuple[Path, int, int, str, bool]) -> str:
    """Generate and write one scene atomically (temp folder + rename): never half a scene on disk."""
    out, index, seed, size, labelled = args
    name = scene_name(index)
    scene = make_scene(name, scene_seed(seed, index), size=size)
    parent = out / ("scans" if labelled else "scans_test")
    other = out / ("scans_test" if labelled else "scans") / name
    final = parent / name
    tmp = parent / f".{name}.tmp-{os.getpid()}"
    old = parent / f".{name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_scene(scene, tmp, labelled=labelled)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    if other.exists():  # a scene that changed split in a re-run
        shutil.rmtree(other, ignore_errors=True)
    return name


def write_release(out: Path, num_scenes: int, seed: int = 0, size: str = "default", workers: int = 1) -> dict[str, list[str]]:
    """Write a whole synthetic release (scenes, label map, split lists) under ``out``.

    Scene ``i`` is ``scene%04d_00`` seeded with ``scene_seed(seed, i)``; the last ~10 % are
    test scenes (no labels, under ``scans_test``), the rest are split train/val at random.
    """
    from tqdm import tqdm

    if size not in _SPECS:
        raise ValueError(f"unknown size {size!r}; expected one of {SIZES}")
    if num_scenes < 0:
        raise ValueError("num_scenes must be >= 0")
    out = Path(out)
    (out / "scans").mkdir(parents=True, exist_ok=True)
    (out / "scans_test").mkdir(parents=True, exist_ok=True)
    write_label_map(out / "scannetv2-labels.combined.tsv")
    n_train, n_val, n_test = split_counts(num_scenes)
    trainval = num_scenes - n_test
    val_idx = set(np.random.default_rng([int(seed), 7]).permutation(trainval)[:n_val].tolist())
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    jobs = []
    for i in range(num_scenes):
        split = "test" if i >= trainval else ("val" if i in val_idx else "train")
        splits[split].append(scene_name(i))
        jobs.append((out, i, int(seed), size, split != "test"))
    with tqdm(total=num_scenes, desc="synthetic scenes", unit="scene") as bar:
        if workers <= 1 or num_scenes <= 1:
            for job in jobs:
                _write_one(job)
                bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for _ in pool.map(_write_one, jobs):
                    bar.update(1)
    for split, names in splits.items():
        _atomic_write(out / f"scannetv2_{split}.txt", "".join(f"{n}\n" for n in names).encode())
    return splits
