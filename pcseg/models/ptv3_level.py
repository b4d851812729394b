"""One resolution of PTv3's point hierarchy: serialized orders, spconv maps, patches, pooling.

A :class:`Level` lives for one forward pass and carries what every layer at
that resolution shares, so kernel maps, sort orders and patch index tensors
are computed once per level and reused by the matching decoder stage.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

import spconv.pytorch as spconv

from .ptv3_attention import PatchGather, PatchLayout, patch_gather, patch_layout
from .serialization import Serialized, sort_codes

__all__ = ["Level", "OrderPerm", "cell_max", "cells", "permuted", "pool_level"]

class Level:
    """One resolution of the point hierarchy during a forward pass.

    Holds what every layer at this resolution shares: coordinates, serialized
    orders, the spconv tensor (whose kernel maps are computed once and reused
    by the decoder) and the attention patches, laid out once per level.
    """

    def __init__(
        self,
        grid_coord: torch.Tensor,
        batch: torch.Tensor,
        ser: Serialized,
        num_scenes: int,
        patch_rule: str,
        parent_index: torch.Tensor | None = None,
        coord: torch.Tensor | None = None,
        orders: tuple[str, ...] = (),
    ) -> None:
        self.grid_coord = grid_coord
        self.coord = coord  # (N, 3) point coordinates, for rotary position encoding (PT-v3m3)
        self.orders = orders  # names of the serialization orders, for levels that re-serialize
        self.batch = batch
        self.ser = ser
        self.num_scenes = num_scenes
        self.patch_rule = patch_rule
        self.parent_index = parent_index  # parent row -> row here (for unpooling)
        self.counts = torch.bincount(batch, minlength=num_scenes)
        self.sparse: spconv.SparseConvTensor | None = None
        self._layout: PatchLayout | None = None
        self._smallest: int | None = None
        self._gathers: dict[tuple[int, int], PatchGather] = {}

    def conv(self, module: nn.Module, feat: torch.Tensor) -> torch.Tensor:
        """Apply a spconv module to ``feat`` on this level's voxels, caching its kernel map."""
        if self.sparse is None:
            indices = torch.cat([self.batch.view(-1, 1), self.grid_coord], 1).int().contiguous()
            shape = (self.grid_coord.max(0).values + 1).tolist()
            self.sparse = spconv.SparseConvTensor(feat, indices, shape, self.num_scenes)
        if feat.is_cuda:  # spconv handles CUDA autocast itself
            self.sparse = module(self.sparse.replace_feature(feat))
        else:  # its CPU kernels are float32/64 only, so run them outside CPU autocast
            with torch.autocast("cpu", enabled=False):
                feat = feat.to(module.weight.dtype)
                self.sparse = module(self.sparse.replace_feature(feat))
        return self.sparse.features

    def gather(self, order_index: int, patch_size: int) -> PatchGather:
        """Patch indices for one order and a layer's nominal patch size (see ptv3_attention).

        The first call fixes the padded layout; under ``"non_flash"`` later
        calls cut it into their own patch length, under ``"flash"`` they reuse it.
        """
        size = patch_size
        if self.patch_rule == "non_flash":
            if self._smallest is None:
                self._smallest = int(self.counts[self.counts > 0].min())
            size = min(patch_size, self._smallest)
        if self._layout is None:
            self._layout = patch_layout(self.counts, size)
        chunk = size if self.patch_rule == "non_flash" else self._layout.full.shape[1]
        key = (order_index, chunk)
        if key not in self._gathers:
            k = order_index % self.ser.code.shape[0]
            self._gathers[key] = patch_gather(
                self._layout, self.ser.order[k], self.ser.inverse[k], chunk
            )
        return self._gathers[key]


OrderPerm = torch.Tensor | Sequence[int] | None


def permuted(ser: Serialized, perm: OrderPerm) -> Serialized:
    """``ser`` with its orders reordered: row j becomes row ``perm[j]``; None keeps it."""
    if perm is None:
        return ser
    return ser.permute(torch.as_tensor(perm, dtype=torch.long, device=ser.code.device))


@torch.no_grad()
def cells(key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Group rows by an integer cell ``key``: ``(cluster, head)``, each row's cell (cells sorted by
    key) and each cell's first row, which carries the cell's coordinates and batch index."""
    _, cluster = torch.unique(key, sorted=True, return_inverse=True)
    m = int(cluster.max()) + 1 if cluster.numel() else 0
    rows = torch.arange(cluster.numel(), device=cluster.device)
    head = torch.full((m,), cluster.numel(), dtype=torch.long, device=cluster.device)
    return cluster, head.scatter_reduce(0, cluster, rows, "amin")


def cell_max(x: torch.Tensor, coarse: Level) -> torch.Tensor:
    """Per-channel max of ``x`` (rows of the finer level) over each cell of ``coarse``."""
    index = coarse.parent_index.unsqueeze(1).expand_as(x)
    out = x.new_zeros(len(coarse.batch), x.shape[1])
    return out.scatter_reduce(0, index, x, "amax", include_self=False)


@torch.no_grad()
def pool_level(level: Level, shift: int, perm: OrderPerm = None) -> Level:
    """The coarser level: one point per occupied ``2**shift`` cell, codes shifted by ``3*shift``."""
    code = level.ser.code >> (3 * shift)
    # Equal codes in one order mean the same cell; cells come out sorted by that order.
    cluster, head = cells(code[0])
    code = code[:, head]
    order, inverse = sort_codes(code)
    ser = Serialized(level.ser.depth - shift, code, order, inverse)
    return Level(
        level.grid_coord[head] >> shift,
        level.batch[head],
        permuted(ser, perm),
        level.num_scenes,
        level.patch_rule,
        parent_index=cluster,
        orders=level.orders,
    )
