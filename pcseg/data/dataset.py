"""Scenes from the per-scene ``.npy`` caches, with reproducible per-epoch augmentation.

Layout (also what Pointcept's ScanNet preprocessing writes)::

    ROOT/<split>/<scene>/coord.npy     float32 (N, 3)
                         color.npy     uint8 or float (N, 3), 0..255
                         normal.npy    float32 (N, 3)
                         segment200.npy / segment20.npy   int16/32/64 (N,), -1 = ignore
                         instance.npy  int (N,)           (optional)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .transforms import Compose, build_transforms

LABEL_SETS = {"segment200": 200, "segment20": 20}
IGNORE_INDEX = -1
# Splits whose scenes may come without labels (filled with IGNORE_INDEX).
UNLABELLED_SPLITS = ("test",)


def prep_hint(root: str | Path) -> str:
    """How to create the caches, with the root the user asked for filled in."""
    return (f"Build the caches first with `python data_prep/scannet200.py --raw RAW --out {root}` "
            "(for synthetic data, run `python data_prep/synthetic.py --out RAW --scenes N` before that).")


Transforms = Compose | Callable[[dict[str, Any], np.random.Generator], dict[str, Any]]


class SceneCacheDataset(Dataset):
    """One item per scene (times ``loop``), transformed with a generator seeded by
    (seed, epoch, index): augmentations change every epoch yet any run can be replayed.
    """

    def __init__(self, root: str | Path, split: str, label_set: str = "segment200",
                 transforms: Transforms | Sequence[dict[str, Any]] | None = None,
                 seed: int = 0, loop: int = 1, with_instance: bool = False) -> None:
        if label_set not in LABEL_SETS:
            raise ValueError(f"unknown label_set {label_set!r}; expected one of {sorted(LABEL_SETS)}")
        if int(loop) < 1:
            raise ValueError(f"loop must be >= 1, got {loop}")
        self.root = Path(root)
        self.split = split
        self.label_set = label_set
        self.num_classes = LABEL_SETS[label_set]
        self.seed = int(seed)
        self.loop = int(loop)
        self.with_instance = with_instance
        if transforms is None or callable(transforms):
            self.transforms = transforms
        else:
            self.transforms = build_transforms(transforms)
        # Shared memory, so set_epoch reaches persistent DataLoader workers too.
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self.scene_dirs = self._find_scenes()

    def _find_scenes(self) -> list[Path]:
        if not self.root.is_dir():
            raise FileNotFoundError(f"scene cache root {self.root} does not exist. {prep_hint(self.root)}")
        split_dir = self.root / self.split
        if not split_dir.is_dir():
            found = sorted(p.name for p in self.root.iterdir() if p.is_dir())
            raise FileNotFoundError(f"split folder {split_dir} does not exist (found splits: {found}). "
                                    f"{prep_hint(self.root)}")
        scenes = sorted(p.parent for p in split_dir.glob("*/coord.npy"))
        if not scenes:
            raise FileNotFoundError(f"no scenes in {split_dir} (looked for {split_dir / '*' / 'coord.npy'}). "
                                    f"{prep_hint(self.root)}")
        return scenes

    @property
    def names(self) -> list[str]:
        """Scene names in dataset order (one per scene, not per loop)."""
        return [p.name for p in self.scene_dirs]

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's augmentations; call before iterating the loader for that epoch."""
        self._epoch.fill_(int(epoch))

    def __len__(self) -> int:
        return len(self.scene_dirs) * self.loop

    def load_scene(self, index: int) -> dict[str, Any]:
        """The untransformed arrays of scene ``index % num_scenes``, in the transforms' dtypes."""
        scene = self.scene_dirs[index % len(self.scene_dirs)]

        def read(name: str) -> np.ndarray:
            path = scene / f"{name}.npy"
            if not path.is_file():
                raise FileNotFoundError(f"scene {scene.name}: missing {path}. {prep_hint(self.root)}")
            return np.load(path)

        coord = read("coord").astype(np.float32, copy=False).reshape(-1, 3)
        n = coord.shape[0]
        data: dict[str, Any] = {
            "coord": coord,
            "color": read("color").astype(np.float32, copy=False).reshape(n, 3),
            "normal": read("normal").astype(np.float32, copy=False).reshape(n, 3),
        }
        label_path = scene / f"{self.label_set}.npy"
        if label_path.is_file():
            data["segment"] = self._labels(np.load(label_path).reshape(-1), scene.name, n)
        elif self.split in UNLABELLED_SPLITS:
            data["segment"] = np.full(n, IGNORE_INDEX, dtype=np.int64)
        else:
            raise FileNotFoundError(
                f"scene {scene.name} of labelled split {self.split!r}: missing labels {label_path}. "
                f"Re-run the cache builder, or pick another label_set (choices: {sorted(LABEL_SETS)}). "
                f"{prep_hint(self.root)}")
        if self.with_instance:
            instance_path = scene / "instance.npy"
            data["instance"] = (np.load(instance_path).reshape(-1).astype(np.int64)
                                if instance_path.is_file() else np.full(n, IGNORE_INDEX, dtype=np.int64))
        return data

    def _labels(self, segment: np.ndarray, name: str, n: int) -> np.ndarray:
        """Labels as int64 with every negative value mapped to the ignore index."""
        if segment.shape[0] != n:
            raise ValueError(f"scene {name}: {self.label_set} has {segment.shape[0]} labels for {n} points")
        segment = segment.astype(np.int64)
        if segment.size and segment.max() >= self.num_classes:
            raise ValueError(f"scene {name}: {self.label_set} holds label {int(segment.max())}, "
                             f"but the set has {self.num_classes} classes (0..{self.num_classes - 1})")
        segment[segment < 0] = IGNORE_INDEX
        return segment

    def rng(self, index: int) -> np.random.Generator:
        """The generator for item ``index`` at the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        data = self.load_scene(index)
        if self.transforms is not None:
            data = self.transforms(data, self.rng(index))
        data["name"] = self.scene_dirs[index % len(self.scene_dirs)].name
        return data

    def __repr__(self) -> str:
        return (f"SceneCacheDataset(root={str(self.root)!r}, split={self.split!r}, "
                f"label_set={self.label_set!r}, scenes={len(self.scene_dirs)}, loop={self.loop})")
