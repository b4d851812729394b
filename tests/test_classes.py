"""The package's class tables against the official reference tables."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from pcseg.data.classes import scannet20, scannet200, table
from tests.conftest import REPO

REFERENCE = REPO / "tests" / "reference"  # copies of the official tables, so nothing skips


def _rows(name: str) -> list[dict[str, str]]:
    with open(REFERENCE / name, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_scannet200_shape_and_splits() -> None:
    t = scannet200()
    assert t.num_classes == 200
    assert len(set(t.ids.tolist())) == 200 and t.ids.min() >= 1 and t.ids.max() <= 1191
    sizes = {s: len(t.split_indices(s)) for s in ("head", "common", "tail")}
    assert sum(sizes.values()) == 200 and min(sizes.values()) > 50
    lut = t.id_to_index()
    assert (lut[t.ids] == np.arange(200)).all()
    assert int((lut >= 0).sum()) == 200
    assert t.colors.shape == (200, 3) and t.colors.dtype == np.uint8
    assert int((~t.in_val).sum()) == 11


def test_table_lookup_errors() -> None:
    assert table("segment20").num_classes == 20
    with pytest.raises(ValueError, match="segment200"):
        table("segment13")
    with pytest.raises(ValueError, match="head"):
        scannet200().split_indices("rare")


def test_scannet200_matches_reference() -> None:
    t = scannet200()
    rows = _rows("scannet200_classes.tsv")
    assert len(rows) == 200
    for i, r in enumerate(rows):
        assert int(r["index"]) == i
        assert int(r["raw_id"]) == t.ids[i], r
        assert r["name"] == t.names[i]
        assert r["split"] == t.split[i]
        assert (r["in_val"] == "1") == bool(t.in_val[i])
        assert [int(c) for c in r["color_rgb"].split(",")] == t.colors[i].tolist()


def test_scannet20_matches_reference() -> None:
    t = scannet20()
    rows = _rows("scannet20_classes.tsv")
    assert [int(r["nyu40_id"]) for r in rows] == t.ids.tolist()
    assert [r["name"] for r in rows] == list(t.names)


def test_class_names_agree_with_the_release_label_map() -> None:
    """An independent source: the release's label map gives each raw id its category name,
    and each NYU40 id its class name."""
    label_map = _rows("scannetv2-labels.combined.tsv")
    names_of_id: dict[int, set[str]] = {}
    nyu40_name: dict[int, set[str]] = {}
    for r in label_map:
        names_of_id.setdefault(int(r["id"]), set()).update((r["raw_category"], r["category"]))
        nyu40_name.setdefault(int(r["nyu40id"]), set()).add(r["nyu40class"])
    t = scannet200()
    for raw_id, name in zip(t.ids.tolist(), t.names):
        assert name in names_of_id.get(raw_id, set()), (raw_id, name)
    spelled = {"refrigerator": "refridgerator"}  # the label map's own spelling
    for nyu_id, name in zip(scannet20().ids.tolist(), scannet20().names):
        assert spelled.get(name, name) in nyu40_name[nyu_id], (nyu_id, name)
