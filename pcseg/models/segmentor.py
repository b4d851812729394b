"""Backbone + point classifier, the unit the training loop optimises."""

from __future__ import annotations

import torch
from torch import nn

from .heads import LinearHead

__all__ = ["Segmentor"]


class Segmentor(nn.Module):
    """Sparse backbone followed by a per-voxel linear classifier.

    ``forward`` returns the last-layer features as well as the logits because
    feature-space regularisers and analyses need both from one pass.
    """

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.feat_dim: int = int(backbone.out_channels)
        self.head = LinearHead(self.feat_dim, num_classes)

    @property
    def uses_coord(self) -> bool:
        """Whether ``forward`` needs ``coord`` (PT-v3m3's rotary position encoding)."""
        return bool(getattr(self.backbone, "uses_coord", False))

    def forward(
        self,
        grid_coord: torch.Tensor,
        batch: torch.Tensor,
        feat: torch.Tensor,
        coord: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``feat``: (N, D) last-layer features; ``logits``: (N, K), rows in input order.

        ``coord`` (N, 3), the voxels' point coordinates, is passed on only to a backbone that
        reads them (``uses_coord``).
        """
        if self.uses_coord:
            f = self.backbone(grid_coord, batch, feat, coord=coord)
        else:
            f = self.backbone(grid_coord, batch, feat)
        return {"feat": f, "logits": self.head(f)}
