"""Point Transformer V3 (Wu et al., CVPR 2024) on spconv, matching Pointcept's PT-v3m1.

Layout, with ``c = enc_channels`` and ``d = dec_channels``::

    stem   SubMConv(k=5) + BN + GELU                    in    -> c[0]
    enc s  [pool: Linear, max over 2x2x2 cells, BN, GELU]  c[s-1] -> c[s]   (s > 0)
           + enc_depths[s] blocks
    dec s  unpool: Linear+BN+GELU(coarse)[parent] + Linear+BN+GELU(skip)    -> d[s]
           + dec_depths[s] blocks                        (s = S-2 .. 0)

    block  x += CPE(x)            SubMConv(k=3, bias) + Linear + LayerNorm
           x += attn(norm1(x))    serialized patch attention, order i % len(order)
           x += mlp(norm2(x))     (each branch through DropPath)

Points are serialized once per level; pooling shifts the codes by 3 bits per
halving, so coarse orders are the fine ones coarsened, as in Pointcept.
Output rows are the input rows, in input order.

Pointcept details reproduced on purpose, because checkpoints were trained
with them:

* The first decoder block's CPE sees only the projected skip features, not
  their sum with the upsampled coarse features.
* ``compat`` picks the Pointcept code generation (same parameter names and
  shapes, so a state dict cannot tell them apart):

  ============  =========================================  ===================
  ``compat``    CPE input of a stage's 2nd, 3rd... block   serialization depth
  ============  =========================================  ===================
  ``"main"``    the previous block's output                bit_length(max + 1)
  ``"v1.5.2"``  the previous block's output                bit_length(max)
  ``"v1.5.1"``  the previous block's MLP branch            bit_length(max)
  ============  =========================================  ===================

  ``"v1.5.1"``: Pointcept up to v1.5.1, before commit 74c4fc1 ("Fix PTv3
  structure", 2024-03-26), whose Block dropped the result of
  ``sparse_conv_feat.replace_feature``. ``"v1.5.2"``: from that commit up to
  v1.6.0 (2025-03). ``"main"``: v1.6.0 and later. The depth only matters when
  a batch's largest grid coordinate plus one is a power of two (Hilbert orders).
* ``patch_rule`` (see :mod:`.ptv3_attention`): ``"flash"`` is Pointcept's
  ``enable_flash=True`` patching (its configs, its checkpoints), ``"non_flash"``
  its fallback, which differs once a scene is smaller than a patch.
* Pointcept's pooling layers shuffle the orders even in eval mode (and so
  does its input serialization when ``shuffle_orders=True``); pcseg shuffles
  only in training. ``pooling_perms`` / ``forward(order_perms=...)`` replay
  given permutations to compare with a recorded Pointcept run.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal, Sequence

import torch
from torch import nn

import spconv.pytorch as spconv
from spconv.core import ConvAlgo

from .common import bn1d, check_voxel_inputs
from .ptv3_attention import PATCH_RULES, SerializedAttention
from .ptv3_level import Level, OrderPerm, permuted, pool_level
from .serialization import ORDERS, serialize
from .spconv_compat import conv_algo

__all__ = ["PTV3_KEYS", "PTV3_PRESETS", "PTv3", "Block"]

Compat = Literal["main", "v1.5.2", "v1.5.1"]
COMPAT = ("main", "v1.5.2", "v1.5.1")
PatchRule = Literal["flash", "non_flash"]

# Pointcept's configs/scannet200/semseg-pt-v3m1-0-base.py backbone.
_SCANNET200: dict[str, Any] = {
    "order": ("z", "z-trans", "hilbert", "hilbert-trans"),
    "stride": (2, 2, 2, 2),
    "enc_depths": (2, 2, 2, 6, 2),
    "enc_channels": (32, 64, 128, 256, 512),
    "enc_num_head": (2, 4, 8, 16, 32),
    "enc_patch_size": (1024,) * 5,
    "dec_depths": (2, 2, 2, 2),
    "dec_channels": (64, 64, 128, 256),
    "dec_num_head": (4, 4, 8, 16),
    "dec_patch_size": (1024,) * 4,
    "mlp_ratio": 4,
    "drop_path": 0.3,
}

PTV3_PRESETS: dict[str, dict[str, Any]] = {
    "scannet200": dict(_SCANNET200),
    # The same network as trained by older Pointcept releases (see ``compat``).
    "scannet200_v152": dict(_SCANNET200, compat="v1.5.2"),
    "scannet200_v151": dict(_SCANNET200, compat="v1.5.1"),
    # Small enough for unit tests and the demo on two CPU cores.
    "tiny": {
        "order": ("z", "z-trans", "hilbert", "hilbert-trans"),
        "stride": (2, 2),
        "enc_depths": (1, 1, 2),
        "enc_channels": (16, 24, 32),
        "enc_num_head": (1, 2, 2),
        "enc_patch_size": (64, 64, 64),
        "dec_depths": (1, 1),
        "dec_channels": (16, 24),
        "dec_num_head": (1, 2),
        "dec_patch_size": (64, 64),
        "mlp_ratio": 2,
        "drop_path": 0.1,
    },
}

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
        y = self.proj(x)
        index = coarse.parent_index.unsqueeze(1).expand_as(y)
        out = y.new_zeros(len(coarse.batch), y.shape[1])
        out = out.scatter_reduce(0, index, y, "amax", include_self=False)
        return coarse, self.act(self.norm(out))


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
    ) -> None:
        super().__init__()
        self.pre_norm = pre_norm
        self.drop_path = float(drop_path)
        self.cpe = CPE(channels, indice_key, algo)
        self.norm1 = nn.LayerNorm(channels)
        self.attn = SerializedAttention(
            channels, num_heads, patch_size, order_index, qkv_bias, qk_scale, attn_drop, proj_drop
        )
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = MLP(channels, int(channels * mlp_ratio), proj_drop)

    def forward(
        self, level: Level, x: torch.Tensor, cpe_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (output, the MLP branch); ``cpe_in`` is what the CPE convolves."""
        gather = level.gather(self.attn.order_index, self.attn.patch_size)
        x = x + self.cpe(level, cpe_in)
        if self.pre_norm:
            x = x + drop_path(self.attn(self.norm1(x), gather), self.drop_path, self.training)
            branch = drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)
            return x + branch, branch
        x = self.norm1(x + drop_path(self.attn(x, gather), self.drop_path, self.training))
        x = self.norm2(x + drop_path(self.mlp(x), self.drop_path, self.training))
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


def _tuple(v: Sequence[Any] | Any, name: str, n: int) -> tuple[Any, ...]:
    t = tuple(v)
    if len(t) != n:
        raise ValueError(f"{name} needs {n} entries, got {t}")
    return t


class PTv3(nn.Module):
    """Point Transformer V3 backbone returning per-voxel features of width ``dec_channels[0]``."""

    def __init__(
        self,
        in_channels: int = 6,
        device: torch.device | str | None = None,
        *,
        order: Sequence[str] | str = ("z", "z-trans", "hilbert", "hilbert-trans"),
        stride: Sequence[int] = (2, 2, 2, 2),
        enc_depths: Sequence[int] = (2, 2, 2, 6, 2),
        enc_channels: Sequence[int] = (32, 64, 128, 256, 512),
        enc_num_head: Sequence[int] = (2, 4, 8, 16, 32),
        enc_patch_size: Sequence[int] = (1024,) * 5,
        dec_depths: Sequence[int] = (2, 2, 2, 2),
        dec_channels: Sequence[int] = (64, 64, 128, 256),
        dec_num_head: Sequence[int] = (4, 4, 8, 16),
        dec_patch_size: Sequence[int] = (1024,) * 4,
        mlp_ratio: float = 4,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        drop_path: float = 0.3,
        pre_norm: bool = True,
        shuffle_orders: bool = True,
        compat: Compat = "main",
        patch_rule: PatchRule = "flash",
    ) -> None:
        """Same arguments and defaults as Pointcept's ``PT-v3m1`` with ``enable_flash=True``.

        ``shuffle_orders`` permutes which order each block uses, per level and
        per step, in training mode only. ``compat`` and ``patch_rule`` select
        Pointcept variants (module docstring). ``device`` only selects the
        spconv algorithm; move the module with ``.to``.
        """
        super().__init__()
        order = (order,) if isinstance(order, str) else tuple(order)
        for o in order:
            if o not in ORDERS:
                raise ValueError(f"unknown serialization order {o!r}; valid: {ORDERS}")
        if compat not in COMPAT:
            raise ValueError(f"compat must be one of {COMPAT}, got {compat!r}")
        if patch_rule not in PATCH_RULES:
            raise ValueError(f"patch_rule must be one of {PATCH_RULES}, got {patch_rule!r}")
        n = len(enc_depths)
        stride = _tuple(stride, "stride", n - 1)
        enc_channels = _tuple(enc_channels, "enc_channels", n)
        enc_num_head = _tuple(enc_num_head, "enc_num_head", n)
        enc_patch_size = _tuple(enc_patch_size, "enc_patch_size", n)
        dec_depths = _tuple(dec_depths, "dec_depths", n - 1)
        dec_channels = _tuple(dec_channels, "dec_channels", n - 1)
        dec_num_head = _tuple(dec_num_head, "dec_num_head", n - 1)
        dec_patch_size = _tuple(dec_patch_size, "dec_patch_size", n - 1)
        algo = conv_algo(device)
        self.in_channels = in_channels
        self.order = order
        self.shuffle_orders = shuffle_orders
        self.compat: Compat = compat
        self.patch_rule: PatchRule = patch_rule
        self.num_stages = n
        # Permutations to replay at the pooling layers, e.g. the ones a Pointcept run drew.
        self.pooling_perms: Sequence[OrderPerm] | None = None
        self.out_channels = int(dec_channels[0]) if n > 1 else int(enc_channels[0])

        def blocks(
            s: int, depth: int, ch: int, heads: int, patch: int, rates: list[float]
        ) -> list[Block]:
            return [
                Block(
                    ch, heads, patch, i % len(order), f"stage{s}", algo, mlp_ratio, qkv_bias,
                    qk_scale, attn_drop, proj_drop, rates[i], pre_norm,
                )
                for i in range(depth)
            ]

        def rates(depths: Sequence[int], s: int) -> list[float]:
            """Stochastic-depth rates of stage ``s``: a linear ramp over all blocks of the path."""
            ramp = torch.linspace(0, drop_path, sum(depths), device="cpu").tolist()
            return ramp[sum(depths[:s]) : sum(depths[: s + 1])]

        self.stem = Stem(in_channels, enc_channels[0], algo)
        self.enc = nn.ModuleList()
        for s in range(n):
            down = None
            if s > 0:
                down = SerializedPooling(enc_channels[s - 1], enc_channels[s], stride[s - 1])
            layers = blocks(
                s, enc_depths[s], enc_channels[s], enc_num_head[s], enc_patch_size[s],
                rates(enc_depths, s),
            )
            self.enc.append(Stage(layers, down, "down"))
        widths = list(dec_channels) + [enc_channels[-1]]
        self.dec = nn.ModuleList()
        for s in range(n - 1):
            up = SerializedUnpooling(widths[s + 1], enc_channels[s], dec_channels[s])
            # The decoder runs coarse to fine, so its ramp is read backwards within a stage.
            layers = blocks(
                s, dec_depths[s], dec_channels[s], dec_num_head[s], dec_patch_size[s],
                rates(dec_depths, s)[::-1],
            )
            self.dec.append(Stage(layers, up, "up"))

    def _perms(self, order_perms: Sequence[OrderPerm] | None) -> list[OrderPerm]:
        """Order permutation per level: given, replayed, random (training) or none."""
        if order_perms is None and self.pooling_perms is not None:
            order_perms = [None, *self.pooling_perms]
        if order_perms is not None:
            if len(order_perms) != self.num_stages:
                raise ValueError(
                    f"need {self.num_stages} order permutations (input level + one per pooling), "
                    f"got {len(order_perms)}"
                )
            return list(order_perms)
        if self.training and self.shuffle_orders:
            return [torch.randperm(len(self.order)) for _ in range(self.num_stages)]
        return [None] * self.num_stages

    def forward(
        self,
        grid_coord: torch.Tensor,
        batch: torch.Tensor,
        feat: torch.Tensor,
        *,
        order_perms: Sequence[OrderPerm] | None = None,
    ) -> torch.Tensor:
        """Features (N, out_channels) of voxels ``grid_coord`` (N, 3) >= 0 in scenes ``batch`` (N,).

        Voxels should be unique within a scene; rows come back in input order.
        ``order_perms`` (one per level, ``None`` = identity) fixes the order
        permutations instead of shuffling: row j of level s takes row
        ``perm[j]`` of the orders it inherits. Setting ``self.pooling_perms``
        (one per pooling layer) does the same for the pooled levels through
        ``Segmentor.forward``, e.g. to replay Pointcept's eval-mode draws.
        """
        check_voxel_inputs(grid_coord, batch, feat)
        grid_coord = grid_coord.long()
        batch = batch.long()
        perms = self._perms(order_perms)
        legacy_cpe = self.compat == "v1.5.1"
        ser = serialize(grid_coord, batch, self.order, legacy_depth=self.compat != "main")
        num_scenes = int(batch.max()) + 1
        level = Level(grid_coord, batch, permuted(ser, perms[0]), num_scenes, self.patch_rule)

        x = self.stem(level, feat)
        levels: list[Level] = []
        skips: list[torch.Tensor] = []
        for s, stage in enumerate(self.enc):
            if s:
                level, x = stage.down(level, x, perms[s])
            x = stage.run(level, x, x, legacy_cpe)
            levels.append(level)
            skips.append(x)
        for s in reversed(range(self.num_stages - 1)):
            stage = self.dec[s]
            x, skip = stage.up(x, skips[s], levels[s + 1].parent_index)
            x = stage.run(levels[s], x, skip, legacy_cpe)
        return x


# The ``model.*`` config keys a PTv3 takes besides name/preset/in_channels: the constructor's
# keyword-only arguments, read off its signature so the list cannot drift from it.
PTV3_KEYS: tuple[str, ...] = tuple(
    name for name, p in inspect.signature(PTv3.__init__).parameters.items() if p.kind is p.KEYWORD_ONLY
)
