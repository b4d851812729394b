"""Point Transformer V3 (Wu et al., CVPR 2024) on spconv: Pointcept's PT-v3m1, v3m2 and v3m3.

``PTv3`` is PT-v3m1 (Pointcept's supervised ScanNet200 recipe). ``PTv3M2`` is
PT-v3m2, the encoder of Sonata and Concerto; ``PTv3M3`` is PT-v3m3 (Utonia):
PT-v3m2 plus rotary position encoding. The later generations change the
embedding, pooling and norms (:mod:`.ptv3_grid`), add LayerScale
(``layer_scale``) and an encoder-only mode (``enc_mode``) whose output is every
level's features carried up to the voxels and concatenated, as Pointcept's
linear-probing recipes read them.

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

from .common import check_voxel_inputs
from .ptv3_attention import PATCH_RULES
from .ptv3_grid import GridPooling, GridUnpooling, LinearStem
from .ptv3_layers import Block, SerializedPooling, SerializedUnpooling, Stage, Stem
from .ptv3_level import Level, OrderPerm, permuted
from .ptv3_presets import PTV3_PRESETS, PTV3M2_PRESETS, PTV3M3_PRESETS
from .ptv3_rope import PointRoPE
from .serialization import ORDERS, serialize
from .spconv_compat import conv_algo

__all__ = [
    "PTV3_KEYS", "PTV3M2_KEYS", "PTV3M3_KEYS", "PTV3_PRESETS", "PTV3M2_PRESETS", "PTV3M3_PRESETS",
    "PTv3", "PTv3M2", "PTv3M3", "Block",
]

Compat = Literal["main", "v1.5.2", "v1.5.1"]
COMPAT = ("main", "v1.5.2", "v1.5.1")
PatchRule = Literal["flash", "non_flash"]

# Options only some generations have: name -> (generations, the value that means "off").
_GENERATION_OPTIONS: dict[str, tuple[tuple[str, ...], Any]] = {
    "compat": (("v3m1",), "main"),
    "layer_scale": (("v3m2", "v3m3"), None),
    "enc_mode": (("v3m2", "v3m3"), False),
    "rope_base": (("v3m3",), None),
    "shift_coords": (("v3m3",), None),
    "jitter_coords": (("v3m3",), None),
    "rescale_coords": (("v3m3",), None),
    "dec_rope_enable": (("v3m3",), True),
}
_MODEL_NAME = {"v3m1": "ptv3", "v3m2": "ptv3m2", "v3m3": "ptv3m3"}


def _tuple(v: Sequence[Any] | Any, name: str, n: int) -> tuple[Any, ...]:
    t = tuple(v)
    if len(t) != n:
        raise ValueError(f"{name} needs {n} entries, got {t}")
    return t


class PTv3(nn.Module):
    """Point Transformer V3 backbone returning per-voxel features of width ``out_channels``.

    ``out_channels`` is ``dec_channels[0]``, or ``sum(enc_channels)`` in encoder-only mode.
    """

    generation = "v3m1"
    # The backbone reads point coordinates (``forward(coord=...)``): PT-v3m3's rotary encoding.
    uses_coord = False

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
        layer_scale: float | None = None,
        enc_mode: bool = False,
        rope_base: float | None = None,
        shift_coords: float | None = None,
        jitter_coords: float | None = None,
        rescale_coords: float | None = None,
        dec_rope_enable: bool = True,
    ) -> None:
        """Same arguments and defaults as Pointcept's ``PT-v3m1`` with ``enable_flash=True``.

        ``shuffle_orders`` permutes which order each block uses, per level and
        per step, in training mode only. ``compat`` and ``patch_rule`` select
        Pointcept variants (module docstring). ``device`` only selects the
        spconv algorithm; move the module with ``.to``. The options of later
        generations (``layer_scale``, ``enc_mode``; ``rope_base`` and the
        coordinate augmentations) are refused where that generation lacks them.
        """
        super().__init__()
        given = dict(compat=compat, layer_scale=layer_scale, enc_mode=enc_mode, rope_base=rope_base,
                     shift_coords=shift_coords, jitter_coords=jitter_coords, rescale_coords=rescale_coords,
                     dec_rope_enable=dec_rope_enable)
        for key, (generations, off) in _GENERATION_OPTIONS.items():
            if self.generation not in generations and given[key] != off:
                names = ", ".join(f"model.name={_MODEL_NAME[g]}" for g in generations)
                raise ValueError(f"{key}={given[key]!r} is a setting of {names}, not of "
                                 f"model.name={_MODEL_NAME[self.generation]}: remove it")
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
        if not enc_mode:
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
        self.enc_mode = bool(enc_mode)
        self.num_stages = n
        self.uses_coord = bool(rope_base)
        # Permutations to replay at the pooling layers, e.g. the ones a Pointcept run drew.
        self.pooling_perms: Sequence[OrderPerm] | None = None
        if self.enc_mode:
            self.out_channels = int(sum(enc_channels))
        else:
            self.out_channels = int(dec_channels[0]) if n > 1 else int(enc_channels[0])

        def blocks(
            s: int, depth: int, ch: int, heads: int, patch: int, rates: list[float], rope: bool
        ) -> list[Block]:
            return [
                Block(
                    ch, heads, patch, i % len(order), f"stage{s}", algo, mlp_ratio, qkv_bias,
                    qk_scale, attn_drop, proj_drop, rates[i], pre_norm, layer_scale,
                    PointRoPE(ch // heads, rope_base, shift_coords, jitter_coords, rescale_coords)
                    if rope and rope_base else None,
                )
                for i in range(depth)
            ]

        def rates(depths: Sequence[int], s: int) -> list[float]:
            """Stochastic-depth rates of stage ``s``: a linear ramp over all blocks of the path."""
            ramp = torch.linspace(0, drop_path, sum(depths), device="cpu").tolist()
            return ramp[sum(depths[:s]) : sum(depths[: s + 1])]

        self.stem = self._stem(in_channels, enc_channels[0], algo)
        self.enc = nn.ModuleList()
        for s in range(n):
            down = self._down(enc_channels[s - 1], enc_channels[s], stride[s - 1]) if s else None
            layers = blocks(
                s, enc_depths[s], enc_channels[s], enc_num_head[s], enc_patch_size[s],
                rates(enc_depths, s), True,
            )
            self.enc.append(Stage(layers, down, "down"))
        self.dec = nn.ModuleList()
        if self.enc_mode:
            return
        widths = list(dec_channels) + [enc_channels[-1]]
        for s in range(n - 1):
            up = self._up(widths[s + 1], enc_channels[s], dec_channels[s])
            # The decoder runs coarse to fine, so its ramp is read backwards within a stage.
            layers = blocks(
                s, dec_depths[s], dec_channels[s], dec_num_head[s], dec_patch_size[s],
                rates(dec_depths, s)[::-1], dec_rope_enable,
            )
            self.dec.append(Stage(layers, up, "up"))

    # The layers in which the generations differ.
    def _stem(self, in_channels: int, channels: int, algo: Any) -> nn.Module:
        return Stem(in_channels, channels, algo)

    def _down(self, in_channels: int, out_channels: int, stride: int) -> nn.Module:
        return SerializedPooling(in_channels, out_channels, stride)

    def _up(self, in_channels: int, skip_channels: int, out_channels: int) -> nn.Module:
        return SerializedUnpooling(in_channels, skip_channels, out_channels)

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
        coord: torch.Tensor | None = None,
        order_perms: Sequence[OrderPerm] | None = None,
    ) -> torch.Tensor:
        """Features (N, out_channels) of voxels ``grid_coord`` (N, 3) >= 0 in scenes ``batch`` (N,).

        Voxels should be unique within a scene; rows come back in input order.
        ``coord`` (N, 3) are the points' coordinates, read by the rotary
        encoding only (``uses_coord``). ``order_perms`` (one per level,
        ``None`` = identity) fixes the order permutations instead of shuffling:
        row j of level s takes row ``perm[j]`` of the orders it inherits.
        Setting ``self.pooling_perms`` (one per pooling layer) does the same
        for the pooled levels through ``Segmentor.forward``, e.g. to replay
        Pointcept's eval-mode draws.
        """
        check_voxel_inputs(grid_coord, batch, feat)
        if self.uses_coord:
            if coord is None or tuple(coord.shape) != (grid_coord.shape[0], 3):
                raise ValueError("this PTv3 reads point coordinates (rotary position encoding): pass coord "
                                 f"(N, 3) with the voxels' rows, got {None if coord is None else tuple(coord.shape)}")
            coord = coord.float()
        else:
            coord = None
        grid_coord = grid_coord.long()
        batch = batch.long()
        perms = self._perms(order_perms)
        legacy_cpe = self.compat == "v1.5.1"
        ser = serialize(grid_coord, batch, self.order, legacy_depth=self.compat != "main")
        num_scenes = int(batch.max()) + 1
        level = Level(grid_coord, batch, permuted(ser, perms[0]), num_scenes, self.patch_rule,
                      coord=coord, orders=self.order)

        x = self.stem(level, feat)
        levels: list[Level] = []
        skips: list[torch.Tensor] = []
        for s, stage in enumerate(self.enc):
            if s:
                level, x = stage.down(level, x, perms[s])
            x = stage.run(level, x, x, legacy_cpe)
            levels.append(level)
            skips.append(x)
        if self.enc_mode:
            # Every level's features carried up to the voxels, finest first (Pointcept's linear probe).
            for s in reversed(range(self.num_stages - 1)):
                x = torch.cat([skips[s], x.index_select(0, levels[s + 1].parent_index)], 1)
            return x
        for s in reversed(range(self.num_stages - 1)):
            stage = self.dec[s]
            x, cpe_in = stage.up(x, skips[s], levels[s + 1].parent_index)
            x = stage.run(levels[s], x, cpe_in, legacy_cpe)
        return x


class PTv3M2(PTv3):
    """PT-v3m2, the Sonata and Concerto encoder: Linear embedding, LayerNorms, grid pooling
    with re-serialization, optional LayerScale and encoder-only output (:mod:`.ptv3_grid`)."""

    generation = "v3m2"

    def _stem(self, in_channels: int, channels: int, algo: Any) -> nn.Module:
        return LinearStem(in_channels, channels)

    def _down(self, in_channels: int, out_channels: int, stride: int) -> nn.Module:
        return GridPooling(in_channels, out_channels, stride)

    def _up(self, in_channels: int, skip_channels: int, out_channels: int) -> nn.Module:
        return GridUnpooling(in_channels, skip_channels, out_channels)


class PTv3M3(PTv3M2):
    """PT-v3m3 (Utonia): PT-v3m2 with 3D rotary position encoding in every attention
    (``rope_base``; the decoder's only if ``dec_rope_enable``), which reads ``coord``."""

    generation = "v3m3"


def _keyword_only(cls: type) -> list[str]:
    return [name for name, p in inspect.signature(cls.__init__).parameters.items() if p.kind is p.KEYWORD_ONLY]


def _keys(generation: str) -> tuple[str, ...]:
    """The ``model.*`` keys of one generation: the keyword-only arguments it accepts."""
    return tuple(k for k in _keyword_only(PTv3)
                 if k not in _GENERATION_OPTIONS or generation in _GENERATION_OPTIONS[k][0])


# The ``model.*`` config keys each PTv3 generation takes besides name/preset/in_channels: the
# constructor's keyword-only arguments, read off its signature so the lists cannot drift from it.
PTV3_KEYS: tuple[str, ...] = _keys("v3m1")
PTV3M2_KEYS: tuple[str, ...] = _keys("v3m2")
PTV3M3_KEYS: tuple[str, ...] = _keys("v3m3")
