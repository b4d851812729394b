"""Serialized patch attention of PTv3: multi-head self-attention inside curve patches.

Each scene's points, taken in one serialization order, are cut into patches
of ``P`` consecutive points. When a scene's count is not a multiple of ``P``,
its last patch is topped up with the points just before its tail, i.e. it is
the scene's last ``P`` points; those repeated points act as extra keys only,
their outputs come from their own patch. Two rules for ``P``, both Pointcept's:

* ``"flash"`` (its flash-attention path, used to train the released
  checkpoints): ``P = patch_size``, and a scene with at most ``P`` points is a
  single patch of its own length.
* ``"non_flash"`` (its fallback path): ``P = min(patch_size, smallest scene)``
  for the whole batch, so every scene is padded to a multiple of ``P``.

The padded layout is fixed per level by the first attention layer that runs
there (an encoder block); later layers, decoder blocks included, reuse it as
Pointcept does, cutting it into their own patch length under ``"non_flash"``.

Full patches go through one batched ``scaled_dot_product_attention`` call
without a mask (flash / memory-efficient kernels on GPU); the few single-patch
scenes shorter than ``P`` go through a second call with a key mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "PATCH_RULES",
    "PatchGather",
    "PatchLayout",
    "SerializedAttention",
    "patch_gather",
    "patch_layout",
]

PATCH_RULES = ("flash", "non_flash")


@dataclass
class PatchLayout:
    """Where each curve position goes for one (scene counts, patch size) pair.

    Positions index the serialized order, in which scenes are contiguous.
    """

    full: torch.Tensor  # (F, P) curve positions of the full-size patches
    short: torch.Tensor | None  # (S, L) positions of short single-patch scenes, padded
    short_mask: torch.Tensor | None  # (S, L) True where ``short`` holds a real point
    home: torch.Tensor  # (N,) row of each curve position in the flattened [full; short] output


@torch.no_grad()
def patch_layout(counts: torch.Tensor, patch_size: int) -> PatchLayout:
    """Patch index tensors for scenes of ``counts`` (B,) points each; no Python loop over scenes."""
    p = int(patch_size)
    if p < 1:
        raise ValueError(f"patch_size must be positive, got {patch_size}")
    device = counts.device
    counts = counts.long()
    n_total = int(counts.sum())
    start = torch.cumsum(counts, 0) - counts  # first curve position of each scene
    scene = torch.repeat_interleave(torch.arange(len(counts), device=device), counts)
    rel = torch.arange(n_total, device=device) - start[scene]

    is_full = counts >= p
    padded = torch.where(is_full, (counts + p - 1) // p * p, torch.zeros_like(counts))
    pad_start = torch.cumsum(padded, 0) - padded
    n_pad = int(padded.sum())
    pad_scene = torch.repeat_interleave(torch.arange(len(counts), device=device), padded)
    q = torch.arange(n_pad, device=device) - pad_start[pad_scene]
    n = counts[pad_scene]
    # Slots past the scene's end repeat the positions one patch earlier.
    full = (start[pad_scene] + torch.where(q < n, q, q - p)).view(-1, p)

    home = pad_start[scene] + rel
    short = short_mask = None
    is_short = (counts > 0) & ~is_full
    if bool(is_short.any()):
        short_ids = torch.nonzero(is_short).squeeze(1)
        short_counts = counts[short_ids]
        length = int(short_counts.max())
        t = torch.arange(length, device=device)
        short_mask = t.unsqueeze(0) < short_counts.unsqueeze(1)
        # Padding slots point at the scene's first point; the mask hides them as keys.
        short = start[short_ids].unsqueeze(1) + torch.where(short_mask, t, torch.zeros_like(t))
        rank = torch.cumsum(is_short.long(), 0) - 1  # row of each short scene in ``short``
        short_home = n_pad + rank[scene] * length + rel
        home = torch.where(is_short[scene], short_home, home)
    return PatchLayout(full, short, short_mask, home)


@dataclass
class PatchGather:
    """Point-row indices for one order: rows to gather per patch and where outputs return."""

    full: torch.Tensor  # (F, P) point rows
    short: torch.Tensor | None  # (S, L) point rows
    short_mask: torch.Tensor | None  # (S, 1, 1, L) key mask for SDPA
    back: torch.Tensor  # (N,) row of each point's output in the flattened [full; short]


@torch.no_grad()
def patch_gather(
    layout: PatchLayout, order: torch.Tensor, inverse: torch.Tensor, chunk: int | None = None
) -> PatchGather:
    """Compose a layout with one serialization order (curve position <-> point row).

    ``chunk`` re-cuts the full patches' padded sequence into patches of that
    length (Pointcept's decoder with a smaller patch than its encoder).
    """
    full = layout.full
    if chunk is not None and full.numel() and chunk != full.shape[1]:
        if full.numel() % chunk:
            raise ValueError(
                f"patch length {chunk} does not divide the level's padded length {full.numel()} "
                f"(laid out with patches of {full.shape[1]})"
            )
        full = full.reshape(-1, chunk)
    short = order[layout.short] if layout.short is not None else None
    mask = layout.short_mask[:, None, None, :] if layout.short_mask is not None else None
    return PatchGather(order[full], short, mask, layout.home[inverse])


class SerializedAttention(nn.Module):
    """Multi-head self-attention within the patches of one serialization order.

    ``order_index`` picks the order (row of the level's codes) this layer uses.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int,
        patch_size: int,
        order_index: int = 0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        rope: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if channels % num_heads != 0:
            raise ValueError(f"channels {channels} not divisible by num_heads {num_heads}")
        self.channels = channels
        self.num_heads = num_heads
        self.patch_size = int(patch_size)
        self.order_index = order_index
        # ``or`` on purpose: Pointcept treats qk_scale=0 like None.
        self.scale = qk_scale or (channels // num_heads) ** -0.5
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(channels, 3 * channels, bias=qkv_bias)
        self.proj = nn.Linear(channels, channels)
        self.proj_drop = nn.Dropout(proj_drop)
        self.rope = rope  # PT-v3m3's rotary position encoding (:mod:`.ptv3_rope`), else None

    def _attend(
        self, qkv: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """SDPA over patches given by ``rows`` (B, L); returns (B * L, C)."""
        b, length = rows.shape
        h, d = self.num_heads, self.channels // self.num_heads
        x = qkv.index_select(0, rows.reshape(-1)).view(b, length, 3, h, d)
        q, k, v = x.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, L, D)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.attn_drop if self.training else 0.0,
            scale=self.scale,
        )
        return out.transpose(1, 2).reshape(b * length, self.channels)

    def forward(
        self, x: torch.Tensor, gather: PatchGather, coord: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x`` (N, C) in point-row order -> (N, C), same rows; ``coord`` (N, 3) feeds ``rope``."""
        qkv = self.qkv(x)
        if self.rope is not None:
            if coord is None:
                raise ValueError("rotary position encoding needs the point coordinates (coord)")
            h, d = self.num_heads, self.channels // self.num_heads
            q, k, v = qkv.view(-1, 3, h, d).unbind(1)
            q, k = self.rope(q, k, coord)
            qkv = torch.stack((q, k, v), 1).view(-1, 3 * self.channels)
        parts = []
        if gather.full.numel():
            parts.append(self._attend(qkv, gather.full, None))
        if gather.short is not None:
            parts.append(self._attend(qkv, gather.short, gather.short_mask))
        out = parts[0] if len(parts) == 1 else torch.cat(parts, 0)
        out = out.index_select(0, gather.back)
        return self.proj_drop(self.proj(out))
