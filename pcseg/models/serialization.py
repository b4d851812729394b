"""Space-filling-curve codes of voxel grids: the point orders PTv3 attends along.

A code packs the scene index above ``3 * depth`` bits of curve position, so
sorting all codes of a batch orders scenes first and voxels along the curve
within a scene. Bit layout of the curve part (shared by both curves): bit
``3*i + 2`` comes from x, ``3*i + 1`` from y, ``3*i`` from z, for bit ``i`` of
the (transformed) coordinates. ``*-trans`` orders swap x and y first.

Everything is integer arithmetic on int64 tensors, so codes are bit-identical
on CPU and CUDA and to Pointcept's ``Point.serialization``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

__all__ = [
    "ORDERS",
    "MAX_DEPTH",
    "Serialized",
    "encode",
    "hilbert_code",
    "serialization_depth",
    "serialize",
    "sort_codes",
    "z_code",
]

ORDERS = ("z", "z-trans", "hilbert", "hilbert-trans")
# Curve codes use at most 48 bits, leaving 15 for the scene index in an int64.
MAX_DEPTH = 16


def _spread_bits(v: torch.Tensor, depth: int) -> torch.Tensor:
    """Move bit ``i`` of ``v`` to bit ``3*i`` for ``i < depth`` (higher bits are dropped)."""
    out = torch.zeros_like(v)
    for i in range(depth):
        out |= ((v >> i) & 1) << (3 * i)
    return out


def _interleave(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, depth: int) -> torch.Tensor:
    return (
        (_spread_bits(x, depth) << 2) | (_spread_bits(y, depth) << 1) | _spread_bits(z, depth)
    )


def z_code(grid_coord: torch.Tensor, depth: int) -> torch.Tensor:
    """Morton (z-order) code of (N, 3) non-negative integer coordinates, ``3*depth`` bits."""
    g = grid_coord.long()
    return _interleave(g[:, 0], g[:, 1], g[:, 2], depth)


def hilbert_code(grid_coord: torch.Tensor, depth: int) -> torch.Tensor:
    """Hilbert-curve code of (N, 3) coordinates in ``[0, 2**depth)``, ``3*depth`` bits.

    Skilling's transform ("Programming the Hilbert curve", 2004) turns the
    coordinates into the transposed Gray code of the curve index, one bit
    plane at a time from the most significant; interleaving the planes and
    undoing the Gray code gives the index. Per-bit ``where`` keeps it
    vectorised over points with only ``3 * depth`` tiny loop steps.
    """
    x = [grid_coord[:, d].long() & ((1 << depth) - 1) for d in range(3)]
    for b in range(depth - 1, 0, -1):
        q = 1 << b
        low = q - 1  # the bits below the current plane
        for d in range(3):
            on = (x[d] & q) != 0
            x[0] = torch.where(on, x[0] ^ low, x[0])  # bit set: invert x0's lower bits
            if d > 0:  # bit clear: exchange the lower bits of x0 and x_d
                t = torch.where(on, torch.zeros_like(x[0]), (x[0] ^ x[d]) & low)
                x[0] = x[0] ^ t
                x[d] = x[d] ^ t
    gray = _interleave(x[0], x[1], x[2], depth)
    # Gray -> binary is a prefix XOR from the top bit; XOR-shifts by 1, 2, ..., 32 cover 64 bits.
    code = gray
    shift = 1
    while shift < 64:
        code = code ^ (code >> shift)
        shift *= 2
    return code


def encode(
    grid_coord: torch.Tensor, batch: torch.Tensor | None, depth: int, order: str
) -> torch.Tensor:
    """Code of every voxel for one ``order``; the scene index goes above ``3*depth`` bits."""
    if order not in ORDERS:
        raise ValueError(f"unknown serialization order {order!r}; valid: {ORDERS}")
    if not 0 <= depth <= MAX_DEPTH:
        raise ValueError(f"serialization depth must be in [0, {MAX_DEPTH}], got {depth}")
    g = grid_coord
    if order.endswith("-trans"):
        g = g[:, [1, 0, 2]]
    code = z_code(g, depth) if order.startswith("z") else hilbert_code(g, depth)
    if batch is not None:
        code = (batch.long() << (3 * depth)) | code
    return code


def serialization_depth(grid_coord: torch.Tensor, legacy: bool = False) -> int:
    """Bits per axis: the smallest cube ``2**depth`` holding every voxel.

    Pointcept uses ``bit_length(max + 1)``; releases up to v1.5.1 used
    ``bit_length(max)``, one bit fewer when ``max + 1`` is a power of two,
    which changes the Hilbert curve (``legacy=True`` reproduces it).
    """
    top = int(grid_coord.max()) if grid_coord.numel() else 0
    return int(top if legacy else top + 1).bit_length()


def sort_codes(code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise ascending order of (K, N) codes and its inverse permutation.

    A stable sort, so equal codes (duplicate voxels) keep input order on every
    device; with unique voxels per scene there are no ties.
    """
    order = torch.argsort(code, dim=-1, stable=True)
    inverse = torch.empty_like(order)
    ar = torch.arange(code.shape[-1], device=code.device).expand_as(order)
    inverse.scatter_(-1, order, ar)
    return order, inverse


@dataclass
class Serialized:
    """Codes of one point set under several orders (row k = order k)."""

    depth: int
    code: torch.Tensor  # (K, N) int64
    order: torch.Tensor  # (K, N): order[k, j] = point at curve position j
    inverse: torch.Tensor  # (K, N): curve position of each point

    def permute(self, perm: torch.Tensor | Sequence[int]) -> "Serialized":
        """Same codes with the orders reshuffled (training-time order shuffling)."""
        return Serialized(self.depth, self.code[perm], self.order[perm], self.inverse[perm])


@torch.no_grad()
def serialize(
    grid_coord: torch.Tensor,
    batch: torch.Tensor,
    orders: Sequence[str] = ORDERS,
    depth: int | None = None,
    legacy_depth: bool = False,
) -> Serialized:
    """Codes, sorted orders and inverses of ``grid_coord`` (N, 3) >= 0 for each order.

    ``depth`` defaults to :func:`serialization_depth`; scenes are told apart by
    ``batch`` (N,), which must fit in the bits above ``3 * depth``.
    """
    if depth is None:
        depth = serialization_depth(grid_coord, legacy=legacy_depth)
    num_scenes = int(batch.max()) + 1 if batch.numel() else 1
    if 3 * depth + num_scenes.bit_length() > 63:
        raise ValueError(f"{num_scenes} scenes at depth {depth} overflow an int64 code")
    code = torch.stack([encode(grid_coord, batch, depth, o) for o in orders])
    order, inverse = sort_codes(code)
    return Serialized(depth, code, order, inverse)
