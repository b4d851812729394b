"""3D rotary position encoding of PT-v3m3 (Utonia): queries and keys rotated by point coordinates.

Each head's channels are split in three equal chunks, one per axis; chunk ``a``
is rotated by angles ``coord[a] * base ** (-2i / chunk)`` (the RoFormer rotation
with its halves, ``rotate_half``), as Pointcept's ``Point3DRoPE``. The rotation
of a point depends only on its own coordinates, so it is applied to point rows
before they are gathered into patches: the same result as rotating inside each
patch, with no work repeated for padded rows.

In training, the coordinates can be shifted, jittered per axis and rescaled
(``shift_coords``, ``jitter_coords``, ``rescale_coords``), each attention layer
drawing its own values per forward pass, as Pointcept does.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["PointRoPE"]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the last dimension's halves."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class PointRoPE(nn.Module):
    """Rotates (N, H, D) queries and keys by (N, 3) coordinates."""

    def __init__(
        self,
        head_dim: int,
        base: float = 10000.0,
        shift_coords: float | None = None,
        jitter_coords: float | None = None,
        rescale_coords: float | None = None,
    ) -> None:
        super().__init__()
        if head_dim % 6:
            raise ValueError(f"rotary position encoding needs channels per head divisible by 6 (three axes, "
                             f"each rotated in pairs), got {head_dim}: change the widths or the head counts")
        if not base > 0:
            raise ValueError(f"rope_base must be positive, got {base}")
        self.head_dim = head_dim
        self.chunk = head_dim // 3
        self.base = float(base)
        self.shift_coords = shift_coords
        self.jitter_coords = jitter_coords
        self.rescale_coords = rescale_coords
        inv_freq = 1.0 / (self.base ** (torch.arange(0, self.chunk, 2).float() / self.chunk))
        # Not saved: it follows from ``base``; conversion checks a checkpoint's copy against it.
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def augment(self, coord: torch.Tensor) -> torch.Tensor:
        """Training-time shift, per-axis jitter and global rescale of the coordinates."""
        dd = {"device": coord.device, "dtype": coord.dtype}
        if self.shift_coords is not None and self.shift_coords > 0:
            coord = coord + torch.empty(3, **dd).uniform_(-self.shift_coords, self.shift_coords)
        if self.jitter_coords is not None and self.jitter_coords > 1.0:
            m = math.log(self.jitter_coords)
            coord = coord * torch.empty(3, **dd).uniform_(-m, m).exp()
        if self.rescale_coords is not None and self.rescale_coords > 1.0:
            m = math.log(self.rescale_coords)
            coord = coord * torch.empty(1, **dd).uniform_(-m, m).exp()
        return coord

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, coord: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training:
            coord = self.augment(coord)
        angles = coord.to(self.inv_freq.dtype).unsqueeze(-1) * self.inv_freq  # (N, 3, chunk/2)
        angles = torch.cat((angles, angles), dim=-1).reshape(coord.shape[0], 1, self.head_dim)
        cos, sin = angles.cos().to(q.dtype), angles.sin().to(q.dtype)

        def rotate(x: torch.Tensor) -> torch.Tensor:
            parts = x.split(self.chunk, dim=-1)
            halves = torch.cat([rotate_half(p) for p in parts], dim=-1)
            return x * cos + halves * sin

        return rotate(q), rotate(k)
