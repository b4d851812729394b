"""PT-v3m2/m3's embedding and grid pooling (Pointcept's Sonata, Concerto and Utonia encoders).

What differs from PT-v3m1 (:mod:`.ptv3_layers`), each reproduced because the
published weights were trained with it:

* the embedding is a Linear + LayerNorm + GELU per point, not a 5x5x5 conv;
* every norm outside the blocks is a LayerNorm, so there are no batch statistics;
* pooling groups voxels by ``grid_coord // stride`` and *re-serializes* the
  coarse level from scratch (depth from its own largest coordinate), where
  PT-v3m1 shifts the fine codes; for Hilbert orders the two differ;
* pooled coordinates are the mean of the merged points (PT-v3m3's rotary
  encoding reads them);
* unpooling passes the sum of the skip and the upsampled features to the next
  block's CPE (PT-v3m1 passed the skip alone).
"""

from __future__ import annotations

import torch
from torch import nn

from .ptv3_level import Level, OrderPerm, cell_max, cells, permuted
from .serialization import serialize

__all__ = ["GridPooling", "GridUnpooling", "LinearStem", "grid_pool_level"]


class LinearStem(nn.Module):
    """Per-point Linear, LayerNorm, GELU."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels, channels)
        self.norm = nn.LayerNorm(channels)
        self.act = nn.GELU()

    def forward(self, level: Level, feat: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.linear(feat)))


@torch.no_grad()
def grid_pool_level(level: Level, stride: int, perm: OrderPerm = None) -> Level:
    """The coarser level: one point per occupied cell of ``stride`` voxels per axis, serialized anew."""
    grid = torch.div(level.grid_coord, stride, rounding_mode="floor")
    # One integer per (scene, cell); the coordinates are >= 0, so the packing is exact.
    dims = grid.max(0).values + 1
    key = ((level.batch * dims[0] + grid[:, 0]) * dims[1] + grid[:, 1]) * dims[2] + grid[:, 2]
    cluster, head = cells(key)
    m = len(head)
    coarse_grid, batch = grid[head], level.batch[head]
    coord = None
    if level.coord is not None:  # mean of the merged points
        counts = torch.bincount(cluster, minlength=m).to(level.coord.dtype).unsqueeze(1)
        coord = level.coord.new_zeros(m, 3).index_add_(0, cluster, level.coord) / counts
    ser = serialize(coarse_grid, batch, level.orders)
    return Level(
        coarse_grid, batch, permuted(ser, perm), level.num_scenes, level.patch_rule,
        parent_index=cluster, coord=coord, orders=level.orders,
    )


class GridPooling(nn.Module):
    """Linear, max over each coarse cell, LayerNorm, GELU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        super().__init__()
        if int(stride) < 2:
            raise ValueError(f"pooling stride must be an integer >= 2, got {stride}")
        self.stride = int(stride)
        self.proj = nn.Linear(in_channels, out_channels)
        self.norm = nn.LayerNorm(out_channels)
        self.act = nn.GELU()

    def forward(
        self, level: Level, x: torch.Tensor, perm: OrderPerm = None
    ) -> tuple[Level, torch.Tensor]:
        """Pool ``x`` onto the coarser level; ``perm`` reorders its serialization orders."""
        coarse = grid_pool_level(level, self.stride, perm)
        return coarse, self.act(self.norm(cell_max(self.proj(x), coarse)))


class GridUnpooling(nn.Module):
    """Back to the parent level: projected skip plus projected coarse features of each cell."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_channels, out_channels)
        self.proj_norm = nn.LayerNorm(out_channels)
        self.skip = nn.Linear(skip_channels, out_channels)
        self.skip_norm = nn.LayerNorm(out_channels)
        self.act = nn.GELU()

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor, parent_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (fused features, what the first block's CPE sees: the same sum)."""
        up = self.act(self.proj_norm(self.proj(x)))
        fused = self.act(self.skip_norm(self.skip(skip))) + up.index_select(0, parent_index)
        return fused, fused
