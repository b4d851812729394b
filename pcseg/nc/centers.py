"""Per-class feature centers of a batch, optionally over the global (all-rank) batch.

Scenes are small and long-tailed: a rare class is often present in one GPU's scenes
only, so per-rank centers are noisy and miss classes. Summing the per-class sums and
counts over ranks gives every rank the centers of the whole global batch, and the
autograd-aware all-reduce sends each rank the gradient of those shared centers.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from pcseg.utils.dist import distributed_ready, multi_process

__all__ = ["class_centers", "all_reduce_sum", "distributed_ready"]


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward is again a sum over ranks.

    Every rank's loss depends on the summed tensor, so the gradient with respect to one
    rank's contribution is the sum of all ranks' gradients of the summed tensor.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = x.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        g = grad.contiguous().clone()
        dist.all_reduce(g, op=dist.ReduceOp.SUM)
        return g


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of ``x`` over all ranks (identity without a process group).

    Under DDP, which averages parameter gradients, this yields exactly the gradient of
    the loss computed on the global batch. Every rank must call it (a collective).
    """
    if not multi_process():
        return x
    return _AllReduceSum.apply(x)


def class_centers(
    feats: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    ignore_index: int = -1,
    global_reduce: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class mean features (K, D) and the (K,) bool mask of classes present.

    Absent classes get zero rows. Differentiable with respect to ``feats``. Half
    precision inputs are summed in float32 so large batches cannot overflow. With
    ``global_reduce`` and an initialised process group, sums and counts cover all
    ranks (each rank must then call this, even with no labelled points).
    """
    if feats.dim() != 2:
        raise ValueError(f"feats must be (N, D), got shape {tuple(feats.shape)}")
    labels = labels.reshape(-1)
    if labels.numel() != feats.shape[0]:
        raise ValueError(f"{feats.shape[0]} features but {labels.numel()} labels")
    if feats.dtype in (torch.float16, torch.bfloat16):
        feats = feats.float()
    labels = labels.to(device=feats.device, dtype=torch.long)
    k = int(num_classes)
    valid = labels != ignore_index
    lab = labels[valid]
    if lab.numel() and bool(((lab < 0) | (lab >= k)).any()):
        bad = lab[(lab < 0) | (lab >= k)]
        raise ValueError(
            f"labels must be in 0..{k - 1} or the ignore index {ignore_index}; found {bad.unique()[:8].tolist()}"
        )
    x = feats[valid]
    sums = torch.zeros(k, feats.shape[1], dtype=feats.dtype, device=feats.device).index_add(0, lab, x)
    counts = torch.bincount(lab, minlength=k).to(feats.dtype)
    if global_reduce and multi_process():
        # One collective for both: the counts column carries no gradient of interest.
        packed = all_reduce_sum(torch.cat([sums, counts[:, None]], dim=1))
        sums, counts = packed[:, :-1], packed[:, -1].detach()
    present = counts > 0
    centers = sums / counts.clamp_min(1.0)[:, None]
    return centers, present
