"""BatchNorm statistics over the whole DDP batch (``train.sync_bn``), on GPU and on CPU.

torch's ``SyncBatchNorm`` only runs on CUDA tensors. On CPU/gloo each BatchNorm1d is replaced
by :class:`AllReduceBatchNorm1d`, which computes the batch mean and variance over all ranks
with differentiable all-reduces, so forward and backward are those of one BatchNorm over
the concatenated batch: N processes at batch b train like one process at batch N*b. The
parameters and buffers keep their names, so checkpoints load with or without it.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class _SumOverRanks(torch.autograd.Function):
    """all_reduce(SUM) with its gradient: the gradient of a sum over ranks is the sum over
    ranks of the incoming gradients (every rank's loss depends on every rank's input)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = grad.clone()
        dist.all_reduce(out)
        return out


def sum_over_ranks(x: torch.Tensor) -> torch.Tensor:
    return _SumOverRanks.apply(x)


class AllReduceBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d over (N, C) rows whose training statistics are those of all ranks' rows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        if x.dim() != 2:
            raise ValueError(f"AllReduceBatchNorm1d expects (N, C) features, got shape {tuple(x.shape)}")
        xf = x.float()
        c = xf.shape[1]
        # Two passes (mean, then centred squares) for the same accuracy as a local BatchNorm.
        stats = sum_over_ranks(torch.cat([xf.sum(0), xf.new_tensor([xf.shape[0]])]))
        n = stats[c]
        if n.item() < 2:
            raise ValueError("sync BatchNorm needs at least 2 rows over all processes")
        mean = stats[:c] / n
        var = sum_over_ranks((xf - mean).square().sum(0)) / n  # biased, as BatchNorm normalises
        y = (xf - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            y = y * self.weight + self.bias
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)), alpha=m)
        return y.to(x.dtype)


def convert_sync_bn(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every BatchNorm synchronised across ranks (torch's on CUDA, ours on CPU)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _replace_bn1d(module)


def _replace_bn1d(module: nn.Module) -> nn.Module:
    if type(module) is nn.BatchNorm1d:
        new = AllReduceBatchNorm1d(module.num_features, module.eps, module.momentum, module.affine,
                                   module.track_running_stats)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new.to(next(module.buffers(), torch.empty(0)).device)
    for name, child in module.named_children():
        setattr(module, name, _replace_bn1d(child))
    return module
