"""ScanNet200 and ScanNet20 class tables (benchmark facts, kept in ``meta/*.tsv``).

The training label of a point is the class *index* (0..199 or 0..19); the benchmark
speaks of raw category ids (ScanNet200: 1..1191) and NYU40 ids (ScanNet20). Every
mapping between the two lives here so no other module hard-codes ids.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

SPLITS = ("head", "common", "tail")


@dataclass(frozen=True)
class ClassTable:
    """One benchmark's classes, ordered by training index."""

    name: str
    ids: np.ndarray  # benchmark id per index (raw category id or NYU40 id)
    names: tuple[str, ...]
    split: tuple[str, ...]  # head/common/tail per class ("" when the benchmark has none)
    in_val: np.ndarray  # bool per class (True when unknown)
    colors: np.ndarray  # uint8 (K, 3)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def id_to_index(self, max_id: int | None = None) -> np.ndarray:
        """Lookup array: benchmark id -> class index, -1 for ids outside the table."""
        size = int(max(self.ids.max(), max_id or 0)) + 1
        lut = np.full(size, -1, dtype=np.int16)
        lut[self.ids] = np.arange(self.num_classes, dtype=np.int16)
        return lut

    def split_indices(self, split: str) -> np.ndarray:
        """Class indices of the head, common or tail split."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return np.array([i for i, s in enumerate(self.split) if s == split], dtype=np.int64)


def _read_tsv(filename: str) -> list[dict[str, str]]:
    text = resources.files("pcseg.data").joinpath("meta", filename).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines(), delimiter="\t"))


@lru_cache(maxsize=None)
def scannet200() -> ClassTable:
    """The 200 ScanNet200 classes with their raw ids, head/common/tail split and colours."""
    rows = _read_tsv("scannet200_classes.tsv")
    return ClassTable(
        name="scannet200",
        ids=np.array([int(r["raw_id"]) for r in rows], dtype=np.int64),
        names=tuple(r["name"] for r in rows),
        split=tuple(r["split"] for r in rows),
        in_val=np.array([r["in_val"] == "1" for r in rows], dtype=bool),
        colors=np.array([[int(c) for c in r["color_rgb"].split(",")] for r in rows], dtype=np.uint8),
    )


@lru_cache(maxsize=None)
def scannet20() -> ClassTable:
    """The 20 ScanNet v2 benchmark classes with their NYU40 ids (colours from ScanNet200 names)."""
    rows = _read_tsv("scannet20_classes.tsv")
    t200 = scannet200()
    palette = {n: c for n, c in zip(t200.names, t200.colors)}
    colors = np.array(
        [palette.get(r["name"], np.array([(37 * i) % 256, (91 * i) % 256, (151 * i) % 256])) for i, r in enumerate(rows)],
        dtype=np.uint8,
    )
    return ClassTable(
        name="scannet20",
        ids=np.array([int(r["nyu40_id"]) for r in rows], dtype=np.int64),
        names=tuple(r["name"] for r in rows),
        split=tuple("" for _ in rows),
        in_val=np.ones(len(rows), dtype=bool),
        colors=colors,
    )


def table(label_set: str) -> ClassTable:
    """The class table of a label set name: ``segment200``/``scannet200`` or ``segment20``/``scannet20``."""
    if label_set in ("segment200", "scannet200"):
        return scannet200()
    if label_set in ("segment20", "scannet20"):
        return scannet20()
    raise ValueError(f"unknown label set {label_set!r}; expected 'segment200' or 'segment20'")
