"""The transform lists a config asks for: ``data.*_transforms`` verbatim, else the standard recipes
built from ``data.grid_size``, ``point_max``, ``feat_keys`` and ``color_range``.

In the data layer (not the engine) because the models check ``model.in_channels`` against
the features these lists produce, and models must not import the engine."""
from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from pcseg.data.transforms import default_train_transforms, default_val_transforms


def train_transform_list(cfg: DictConfig) -> list[dict]:
    """The training transforms: ``data.train_transforms`` or the standard augmentation recipe."""
    d = cfg.data
    if d.train_transforms is not None:
        return list(OmegaConf.to_container(d.train_transforms))
    return default_train_transforms(d.grid_size, d.point_max, feat_keys=list(d.feat_keys),
                                    color_range=list(d.color_range))


def val_transform_list(cfg: DictConfig) -> list[dict]:
    """The evaluation transforms: ``data.val_transforms`` or the standard test-mode recipe."""
    d = cfg.data
    if d.val_transforms is not None:
        return list(OmegaConf.to_container(d.val_transforms))
    return default_val_transforms(d.grid_size, feat_keys=list(d.feat_keys), color_range=list(d.color_range))
