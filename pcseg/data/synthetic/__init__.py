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

Modules, from the bottom up:

- ``labels``: per raw category: label-map row, annotator variants, base colours, label ids.
- ``geometry``: parts (quads, lathes), primitives, transforms, meshing.
- ``room``: the room outline, walls, supports, placed objects and free-space queries.
- ``objects``: reusable builders (tables, chairs, shelves, books, tabletop-sized items).
- ``shell``: floor, ceiling, walls, doors, windows and what is fixed to walls and ceiling.
- ``furnish``: room kinds and the furnishing steps of each (``_furnish``).
- ``scene``: size presets, :class:`SyntheticScene` and :func:`make_scene` (meshing,
  over-segmentation, annotation groups, ground truth).
- ``release``: the release files and :func:`write_release`.

To add a furniture class:

1. ``labels.py``: add its row to ``_LABEL_ROWS`` (the real ScanNet ids), any spellings an
   annotator may use to ``_VARIANTS``, and its base colours to ``_COLORS``.
2. ``objects.py``: a builder returning local-frame parts if the shape is reusable, or a
   branch in ``_small_item`` for a tabletop-sized thing.
3. ``furnish.py``: a step that places it (``_against_wall``, ``room.free_slot``,
   ``room.put_on``, ...) and a call from ``_furnish`` for the room kinds it appears in
   (things fixed to a wall or the ceiling go to ``shell.py``).

A new random draw shifts every later draw of the scene's random stream, so the same seed
then writes a different scene: releases are byte-stable only while the generator is unchanged.
"""
from __future__ import annotations

from .labels import ABSENT_LABELS, LABEL_MAP_COLUMNS, label_map_rows
from .release import _ply_bytes  # noqa: F401  (tests build PLY bytes directly)
from .release import scene_name, scene_seed, split_counts, write_label_map, write_release, write_scene
from .scene import SIZES, SyntheticScene, make_scene

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
