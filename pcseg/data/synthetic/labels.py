"""Raw categories: label-map rows, annotator variants, base colours and label ids.

Everything the generator knows about a class *by name* lives here: its row in the release's
``scannetv2-labels.combined.tsv`` (the real ids, so ScanNet200 / NYU40 lookups behave as on
real data), the alternative spellings an annotator may type (:func:`_label`), and the colours
an instance draws from (:func:`_color`).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from pcseg.data.classes import scannet20, scannet200

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


def _label(rng, name: str, variant_p: float = 0.25) -> str:
    """The raw label an annotator writes: usually the class name, sometimes a listed variant."""
    v = _VARIANTS.get(name)
    if v and rng.random() < variant_p:
        return v[int(rng.integers(len(v)))]
    return name


def _color(rng: np.random.Generator, name: str, jitter: float = 10.0) -> np.ndarray:
    pal = _COLORS[name]
    base = np.asarray(pal[int(rng.integers(len(pal)))], dtype=np.float64)
    return np.clip(base + rng.normal(0.0, jitter, 3), 0, 255)
