"""One self-contained HTML file per scene: prediction, ground truth and errors in any browser.

The page holds everything it needs, so it can be mailed, archived or opened from ``file://``
with no network: the points (positions quantised to 16 bits per axis over the scene's box,
ground truth and prediction as one byte each, zlib-compressed, base64), the class legend
(official names and colours, the scene's per-class IoU) and the renderer (plain WebGL in
``pcseg/eval/viewer/``, written for pcseg, the only copy). A Content-Security-Policy in the
page forbids any request, so a change that reached for the network would fail visibly.
A ScanNet-size scene (120K vertices) makes a file of about 1 MB.
"""
from __future__ import annotations

import base64
import json
import re
import zlib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from pcseg.data.classes import ClassTable
from pcseg.eval.ply_export import CORRECT, UNLABELLED, WRONG
from pcseg.utils.atomic import atomic_write_text

__all__ = ["MODES", "NONE", "decode_points", "scene_html", "write_scene_html"]

MODES = ("pred", "gt", "error")
NONE = 255  # label byte of an unlabelled point (or a point without prediction)


@cache
def _asset(name: str) -> str:
    return resources.files("pcseg.eval").joinpath("viewer", name).read_text(encoding="utf-8")


def _labels(values: np.ndarray | None, n: int, num_classes: int, what: str) -> np.ndarray | None:
    """Class indices as bytes, ``NONE`` for anything outside ``[0, num_classes)``."""
    if values is None:
        return None
    v = np.asarray(values).reshape(-1)
    if v.shape[0] != n:
        raise ValueError(f"{what} has {v.shape[0]} entries for {n} points")
    if num_classes >= NONE:
        raise ValueError(f"the viewer stores labels in a byte: at most {NONE - 1} classes, got {num_classes}")
    v = v.astype(np.int64)
    return np.where((v >= 0) & (v < num_classes), v, NONE).astype(np.uint8)


def _legend(gt: np.ndarray, pred: np.ndarray | None, table: ClassTable) -> tuple[list[dict[str, Any]], float | None]:
    """Classes present in the ground truth or the prediction, most labelled points first, each with
    this scene's IoU (None where it is undefined: no labelled point and no prediction of it)."""
    k = table.num_classes
    gt_count = np.bincount(gt[gt != NONE], minlength=k)[:k]
    pred_count = np.zeros(k, dtype=np.int64) if pred is None else np.bincount(pred[pred != NONE], minlength=k)[:k]
    iou = np.full(k, np.nan)
    if pred is not None:
        labelled = gt != NONE
        inter = np.bincount(gt[labelled & (gt == pred)], minlength=k)[:k]
        # Predictions on unlabelled points are not counted, as in the benchmark's protocol.
        pred_on_labelled = np.bincount(pred[labelled & (pred != NONE)], minlength=k)[:k]
        union = gt_count + pred_on_labelled - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    present = np.flatnonzero((gt_count > 0) | (pred_count > 0))
    order = sorted(present, key=lambda i: (-gt_count[i], -pred_count[i], i))
    classes = [{"index": int(i), "name": table.names[i], "color": [int(c) for c in table.colors[i]],
                "iou": None if np.isnan(iou[i]) else round(float(iou[i]), 4),
                "gt_points": int(gt_count[i]), "pred_points": int(pred_count[i])} for i in order]
    scored = iou[gt_count > 0]  # classes that occur in the scene, as the benchmark averages
    miou = None if pred is None or not scored.size else round(float(np.nanmean(scored)), 4)
    return classes, miou


def scene_html(coord: np.ndarray, table: ClassTable, gt: np.ndarray | None = None,
               pred: np.ndarray | None = None, *, scene: str = "scene", title: str | None = None) -> str:
    """The page for one scene: ``coord`` (N, 3) metres; ``gt`` and ``pred`` class indices per point
    (-1 or out of range: unlabelled / none). Either may be missing: the page offers the modes
    the data allows (errors need both)."""
    coord = np.asarray(coord, dtype=np.float64).reshape(-1, 3)
    n = coord.shape[0]
    if n == 0:
        raise ValueError(f"scene {scene} has no points")
    if not np.isfinite(coord).all():
        raise ValueError(f"scene {scene}: coordinates are not all finite")
    g = _labels(gt, n, table.num_classes, "ground truth")
    p = _labels(pred, n, table.num_classes, "prediction")
    has_gt = g is not None and bool((g != NONE).any())
    if g is None:
        g = np.full(n, NONE, dtype=np.uint8)
    lo, hi = coord.min(0), coord.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    q = np.rint((coord - lo) / span * 65535).astype("<u2")
    blob = q.tobytes() + g.tobytes() + (p.tobytes() if p is not None else b"")
    points = base64.b64encode(zlib.compress(blob, 9)).decode("ascii")
    classes, miou = _legend(g, p, table)
    meta = {
        "scene": scene, "title": title or scene, "num_points": n, "has_pred": p is not None, "has_gt": has_gt,
        "bbox": [[float(v) for v in lo], [float(v) for v in lo + span]], "classes": classes, "miou": miou,
        "label_set": table.name, "modes": list(MODES),
        "colors": {"correct": list(CORRECT), "wrong": list(WRONG), "unlabelled": list(UNLABELLED)},
    }
    # Inside <script>, "</script" or "<!--" in a name would change how the page parses: JSON's
    # \u escapes keep every "<", ">" and "&" out of the markup.
    meta_json = (json.dumps(meta, separators=(",", ":"))
                 .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))
    fill = {"CSS": _asset("viewer.css"), "JS": _asset("viewer.js"), "TITLE": _escape(title or scene),
            "META": meta_json, "POINTS": points}
    # One pass over the template, so nothing inserted is ever searched for placeholders.
    return re.sub(r"__(CSS|JS|TITLE|META|POINTS)__", lambda m: fill[m.group(1)], _asset("viewer.html"))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def write_scene_html(path: Path | str, coord: np.ndarray, table: ClassTable, gt: np.ndarray | None = None,
                     pred: np.ndarray | None = None, *, scene: str | None = None, title: str | None = None) -> Path:
    """Write :func:`scene_html` atomically to ``path``; returns the path."""
    path = Path(path)
    atomic_write_text(path, scene_html(coord, table, gt, pred, scene=scene or path.stem, title=title))
    return path


def decode_points(page: str) -> dict[str, Any]:
    """The data a page embeds, decoded as the browser does (for tests and tools): ``meta``,
    ``coord`` (dequantised), ``gt`` and ``pred`` (bytes, ``NONE`` = none)."""
    def between(start: str, end: str) -> str:
        i = page.index(start) + len(start)
        return page[i:page.index(end, i)]

    meta = json.loads(between('<script type="application/json" id="meta">', "</script>"))
    raw = zlib.decompress(base64.b64decode(between('<script type="application/octet-stream" id="points">',
                                                   "</script>")))
    n = meta["num_points"]
    q = np.frombuffer(raw[: 6 * n], dtype="<u2").reshape(n, 3).astype(np.float64)
    lo, hi = (np.array(v) for v in meta["bbox"])
    out = {"meta": meta, "coord": lo + q / 65535 * (hi - lo),
           "gt": np.frombuffer(raw[6 * n: 7 * n], dtype=np.uint8)}
    out["pred"] = np.frombuffer(raw[7 * n: 8 * n], dtype=np.uint8) if meta["has_pred"] else None
    return out
