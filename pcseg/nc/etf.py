"""Simplex equiangular tight frames (ETF): the fixed class prototypes of the CeCo branch.

A simplex ETF is the geometry neural collapse converges to under balanced training: K
unit vectors whose pairwise cosines all equal the smallest possible common value,
-1/(K-1). Fixing the center classifier to it gives every class, frequent or rare, the
same angular margin, which is exactly what class imbalance takes away.
"""
from __future__ import annotations

import math

import torch

__all__ = ["simplex_etf"]


def _orthonormal(rows: int, cols: int, gen: torch.Generator) -> torch.Tensor:
    """Seeded (rows x cols) matrix with orthonormal columns, float64.

    The signs of R's diagonal are folded into Q so the result does not depend on the
    LAPACK build's sign convention, only on the seed.
    """
    a = torch.randn(rows, cols, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(a, mode="reduced")
    d = torch.sign(torch.diagonal(r))
    d[d == 0] = 1.0
    return q * d


def _sum_zero_basis(k: int) -> torch.Tensor:
    """(k, k-1) orthonormal basis of {x in R^k : sum(x) = 0} (Helmert columns), float64.

    Closed form rather than a factorisation, so the K-1 dimensional ETF is exact.
    """
    b = torch.zeros(k, k - 1, dtype=torch.float64)
    for j in range(1, k):
        b[:j, j - 1] = 1.0
        b[j, j - 1] = -float(j)
        b[:, j - 1] /= math.sqrt(j * (j + 1))
    return b


def simplex_etf(num_classes: int, dim: int, seed: int = 0) -> torch.Tensor:
    """(dim, num_classes) simplex ETF: unit columns, every pairwise cosine -1/(K-1).

    ``dim >= K``: ``sqrt(K/(K-1)) U (I - 11^T/K)`` with U a seeded random orthonormal
    (dim x K) frame. ``dim == K-1``: the smallest space that holds a K-simplex; the
    K-dimensional ETF is written in a basis of the sum-zero subspace (where it lies)
    and then turned by a seeded rotation, so the seed matters here too. Built in
    float64 so the cosines are exact to float32 precision after the cast.
    """
    k = int(num_classes)
    if k < 2:
        raise ValueError(f"a simplex ETF needs at least 2 classes, got {k}")
    if dim < k - 1:
        raise ValueError(f"a simplex ETF of {k} classes needs dim >= K-1: the minimum dim is {k - 1}, got {dim}")
    gen = torch.Generator().manual_seed(int(seed))
    scale = math.sqrt(k / (k - 1))
    if dim >= k:
        u = _orthonormal(dim, k, gen)
        centering = torch.eye(k, dtype=torch.float64) - torch.full((k, k), 1.0 / k, dtype=torch.float64)
        w = scale * (u @ centering)
    else:
        # The ETF columns sqrt(K/(K-1)) (e_i - 1/K) expressed in the Helmert basis B are
        # sqrt(K/(K-1)) B^T e_i, because B^T 1 = 0.
        rot = _orthonormal(k - 1, k - 1, gen)
        w = scale * (rot @ _sum_zero_basis(k).T)
    # Remove the last rounding error of the norms (cosines are unaffected to float64 eps).
    w = w / w.norm(dim=0, keepdim=True)
    return w.to(torch.float32).contiguous()
