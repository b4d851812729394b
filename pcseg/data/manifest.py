"""The cache manifest (``<root>/manifest.json``) that ``pcseg.data.prep`` writes beside the
scene caches: class histograms per label set, which class weights and frequency plots use."""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["read_manifest"]


def read_manifest(root: Path) -> dict | None:
    """The manifest of the caches under ``root``, or None when there is none (hand-made or
    synthetic caches): callers then count the classes themselves or go without."""
    path = root / "manifest.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())
