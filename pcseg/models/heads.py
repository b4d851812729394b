"""Per-point classification heads."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LinearHead"]


class LinearHead(nn.Module):
    """Single linear classifier on backbone features.

    Kept as one layer on purpose: the neural-collapse analysis reads the
    classifier rows directly as class prototypes.
    """

    def __init__(self, in_channels: int, num_classes: int, bias: bool = True) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.fc = nn.Linear(in_channels, num_classes, bias=bias)

    @property
    def weight(self) -> torch.Tensor:
        """Classifier matrix (K, D), exposed so analyses need not know the submodule name."""
        return self.fc.weight

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.fc(feat)
