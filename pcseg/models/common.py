"""What the sparse backbones (SpUNet, PTv3) share: their BatchNorm and their input checks.

One copy, so both families normalise alike (Pointcept's recipe) and refuse bad input with
the same messages.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["BN_EPS", "BN_MOMENTUM", "bn1d", "check_voxel_inputs"]

BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def bn1d(channels: int) -> nn.BatchNorm1d:
    """BatchNorm with the slow running statistics customary for sparse UNets on small batches."""
    return nn.BatchNorm1d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def check_voxel_inputs(grid_coord: torch.Tensor, batch: torch.Tensor, feat: torch.Tensor, *,
                       refuse_empty: bool = True) -> None:
    """Refuse what the backbones cannot take: ``grid_coord`` not (N, 3), row counts that
    differ, an empty cloud, negative voxel coordinates.

    ``refuse_empty=False`` (SpUNet) leaves an empty cloud to torch's own error, as before.
    """
    if grid_coord.ndim != 2 or grid_coord.shape[1] != 3:
        raise ValueError(f"grid_coord must be (N, 3), got {tuple(grid_coord.shape)}")
    if feat.shape[0] != grid_coord.shape[0] or batch.shape[0] != grid_coord.shape[0]:
        raise ValueError("grid_coord, batch and feat must have the same number of rows")
    if refuse_empty and grid_coord.shape[0] == 0:
        raise ValueError("empty point cloud")
    if int(grid_coord.min()) < 0:
        raise ValueError("grid_coord must be non-negative; shift each scene by its minimum")
