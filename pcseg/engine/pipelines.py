"""Moved to :mod:`pcseg.data.pipelines` (the models need them and must not import the engine);
re-exported here for code that still imports them from the engine."""
from __future__ import annotations

from pcseg.data.pipelines import train_transform_list, val_transform_list

__all__ = ["train_transform_list", "val_transform_list"]
