"""Scenes from the per-scene ``.npy`` caches, with reproducible per-epoch augmentation.

Layout (also what Pointcept's ScanNet preprocessing writes)::

    ROOT/<split>/<scene>/coord.npy     float32 (N, 3)
                         color.npy     uint8 or float (N, 3), 0..255
                         normal.npy    float32 (N, 3)
                         segment200.npy / segment20.npy   int16/32/64 (N,), -1 = ignore
                         instance.npy  int (N,)           (optional)

Only folders with a valid scene name count (:mod:`pcseg.data.scene_names`): hidden
leftovers of an interrupted replacement (``.<scene>.old-<pid>``) are never scenes. Every
scene's array headers are checked when the dataset is built and its values when loaded
(:mod:`pcseg.data.cache_check`); a malformed cache raises SceneDataError naming the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .cache_check import MissingSceneFile, check_scene_headers, load_array, scene_error
from .scene_names import is_scene_name
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
        scenes = sorted(p for p in split_dir.iterdir() if p.is_dir() and is_scene_name(p.name))
        if not scenes:
            raise FileNotFoundError(f"no scenes in {split_dir} (looked for {split_dir / '*' / 'coord.npy'}). "
                                    f"{prep_hint(self.root)}")
        for scene in scenes:
            self._check_headers(scene)
        return scenes

    def _files(self) -> tuple[list[str], list[str]]:
        """(required, optional) files of a scene: only the ones this dataset reads are checked."""
        required = ["coord", "color", "normal"]
        optional = ["instance"] if self.with_instance else []
        (optional if self.split in UNLABELLED_SPLITS else required).append(self.label_set)
        return required, optional

    def _check_headers(self, scene: Path) -> int:
        """Shapes and dtypes of the scene's files (headers only: cheap enough for every scene at start-up)."""
        required, optional = self._files()
        labels = scene / f"{self.label_set}.npy"
        if self.label_set in required and (scene / "coord.npy").exists() and not labels.exists():
            raise MissingSceneFile(
                f"scene folder {scene} of labelled split {self.split!r}: missing labels {self.label_set}.npy. "
                f"Re-run the cache builder, or pick another label_set (choices: {sorted(LABEL_SETS)}). "
                f"{prep_hint(self.root)}")
        return check_scene_headers(scene, required, optional)

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
        # The headers were checked at start-up, but files can change during a run: check again.
        coord = load_array(scene, "coord", None, np.float32)
        n = coord.shape[0]
        data: dict[str, Any] = {
            "coord": coord,
            "color": load_array(scene, "color", n, np.float32),
            "normal": load_array(scene, "normal", n, np.float32),
        }
        if (scene / f"{self.label_set}.npy").exists() or self.split not in UNLABELLED_SPLITS:
            data["segment"] = self._labels(load_array(scene, self.label_set, n), scene)
        else:
            data["segment"] = np.full(n, IGNORE_INDEX, dtype=np.int64)
        if self.with_instance:
            data["instance"] = (load_array(scene, "instance", n).astype(np.int64)
                                if (scene / "instance.npy").exists() else np.full(n, IGNORE_INDEX, dtype=np.int64))
        return data

    def _labels(self, segment: np.ndarray, scene: Path) -> np.ndarray:
        """Labels as int64 with every negative value mapped to the ignore index (integer dtype
        and length were checked by load_array; the range is checked before the cast, so a huge
        unsigned label cannot wrap round to 'ignore')."""
        if segment.size and segment.max() >= self.num_classes:
            raise scene_error(scene, self.label_set, f"holds label {int(segment.max())}, but {self.label_set} "
                              f"has {self.num_classes} classes (0..{self.num_classes - 1}; -1 = ignore)")
        segment = segment.astype(np.int64)
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
