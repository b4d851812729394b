"""The layers of Point Transformer V3 shared by its Pointcept generations (PT-v3m1, v3m2, v3m3).

PT-v3m1's own embedding and pooling live here too (:class:`Stem`,
:class:`SerializedPooling`, :class:`SerializedUnpooling`); PT-v3m2/m3's are in
:mod:`.ptv3_grid`. A block is the same in all three, with two options the later
ones add: LayerScale on both residual branches and rotary position encoding in
the attention (PT-v3m3).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

import spconv.pytorch as spconv
from spconv.core import ConvAlgo

from .common import bn1d
from .ptv3_attention import SerializedAttention
from .ptv3_level import Level, OrderPerm, cell_max, pool_level
from .ptv3_rope import PointRoPE

__all__ = [
    "CPE", "MLP", "Block", "LayerScale", "SerializedPooling", "SerializedUnpooling", "Stage", "Stem",
    "drop_path",
]


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth per point row (each row is a "sample"), rescaled to keep the mean."""
    if p <= 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty(x.shape[0], 1).bernoulli_(keep)
    if keep > 0.0:
        mask.div_(keep)
    return x * mask


class Stem(nn.Module):
    """5x5x5 submanifold conv embedding (no bias), BN, GELU."""

    def __init__(self, in_channels: int, channels: int, algo: ConvAlgo | None) -> None:
        super().__init__()
        self.conv = spconv.SubMConv3d(
            in_channels, channels, 5, padding=2, bias=False, indice_key="stem", algo=algo
        )
        self.norm = bn1d(channels)
        self.act = nn.GELU()

    def forward(self, level: Level, feat: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(level.conv(self.conv, feat)))


class SerializedPooling(nn.Module):
    """Linear, max over each coarse cell, BN, GELU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        super().__init__()
        if stride < 2 or stride & (stride - 1):
            raise ValueError(f"pooling stride must be a power of two >= 2, got {stride}")
        self.shift = (stride - 1).bit_length()  # bits per axis dropped
        self.proj = nn.Linear(in_channels, out_channels)
        self.norm = bn1d(out_channels)
        self.act = nn.GELU()

    def forward(
        self, level: Level, x: torch.Tensor, perm: OrderPerm = None
    ) -> tuple[Level, torch.Tensor]:
        """Pool ``x`` onto the coarser level; ``perm`` reorders its serialization orders."""
        # A level too coarse to halve again keeps its cells (Pointcept's rule).
        shift = self.shift if self.shift <= level.ser.depth else 0
        coarse = pool_level(level, shift, perm)
        return coarse, self.act(self.norm(cell_max(self.proj(x), coarse)))


class SerializedUnpooling(nn.Module):
    """Back to the parent level: projected skip plus projected coarse features of each cell."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_channels, out_channels)
        self.proj_norm = bn1d(out_channels)
        self.skip = nn.Linear(skip_channels, out_channels)
        self.skip_norm = bn1d(out_channels)
        self.act = nn.GELU()

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor, parent_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (fused features, projected skip); the latter feeds the first block's CPE."""
        up = self.act(self.proj_norm(self.proj(x)))
        s = self.act(self.skip_norm(self.skip(skip)))
        return s + up.index_select(0, parent_index), s


class CPE(nn.Module):
    """Conditional positional encoding: 3x3x3 submanifold conv (with bias), Linear, LayerNorm."""

    def __init__(self, channels: int, indice_key: str, algo: ConvAlgo | None) -> None:
        super().__init__()
        self.conv = spconv.SubMConv3d(
            channels, channels, 3, padding=1, bias=True, indice_key=indice_key, algo=algo
        )
        self.fc = nn.Linear(channels, channels)
        self.norm = nn.LayerNorm(channels)

    def forward(self, level: Level, feat: torch.Tensor) -> torch.Tensor:
        return self.norm(self.fc(level.conv(self.conv, feat)))


class MLP(nn.Module):
    def __init__(self, channels: int, hidden: int, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, channels)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class LayerScale(nn.Module):
    """Per-channel learnt scale of a residual branch (PT-v3m2's ``layer_scale``)."""

    def __init__(self, channels: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((channels,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """CPE + serialized attention + MLP, each residual; pre- or post-norm."""

    def __init__(
        self,
        channels: int,
        num_heads: int,
        patch_size: int,
        order_index: int,
        indice_key: str,
        algo: ConvAlgo | None,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        drop_path: float = 0.0,
        pre_norm: bool = True,
        layer_scale: float | None = None,
        rope: PointRoPE | None = None,
    ) -> None:
        """``layer_scale``: initial LayerScale value (None: no LayerScale, as PT-v3m1);
        ``rope``: the attention's rotary position encoding (PT-v3m3)."""
        super().__init__()
        self.pre_norm = pre_norm
        self.drop_path = float(drop_path)
        self.cpe = CPE(channels, indice_key, algo)
        self.norm1 = nn.LayerNorm(channels)
        self.attn = SerializedAttention(
            channels, num_heads, patch_size, order_index, qkv_bias, qk_scale, attn_drop, proj_drop,
            rope,
        )
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = MLP(channels, int(channels * mlp_ratio), proj_drop)
        self.ls1: nn.Module = nn.Identity()
        self.ls2: nn.Module = nn.Identity()
        if layer_scale is not None:
            self.ls1 = LayerScale(channels, layer_scale)
            self.ls2 = LayerScale(channels, layer_scale)

    def forward(
        self, level: Level, x: torch.Tensor, cpe_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (output, the MLP branch); ``cpe_in`` is what the CPE convolves."""
        gather = level.gather(self.attn.order_index, self.attn.patch_size)
        x = x + self.cpe(level, cpe_in)
        p, training = self.drop_path, self.training

        def attn(h: torch.Tensor) -> torch.Tensor:
            return drop_path(self.ls1(self.attn(h, gather, level.coord)), p, training)

        def mlp(h: torch.Tensor) -> torch.Tensor:
            return drop_path(self.ls2(self.mlp(h)), p, training)

        if self.pre_norm:
            x = x + attn(self.norm1(x))
            branch = mlp(self.norm2(x))
            return x + branch, branch
        x = self.norm1(x + attn(x))
        x = self.norm2(x + mlp(x))
        return x, x  # post-norm: the normed output is what Pointcept's next CPE sees


class Stage(nn.Module):
    """Optional resampling layer (``down`` or ``up``) followed by blocks."""

    def __init__(self, blocks: Sequence[Block], resample: nn.Module | None, name: str) -> None:
        super().__init__()
        if resample is not None:
            self.add_module(name, resample)
        self.blocks = nn.ModuleList(blocks)

    def run(
        self, level: Level, x: torch.Tensor, cpe_in: torch.Tensor, legacy: bool
    ) -> torch.Tensor:
        """Blocks in turn; ``legacy`` feeds each CPE the previous MLP branch (v1.5.1)."""
        for block in self.blocks:
            x, branch = block(level, x, cpe_in)
            cpe_in = branch if legacy else x
        return x
