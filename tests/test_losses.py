"""Point losses: class weights from the histogram, Lovasz-softmax, ignore handling."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pcseg.models.losses import SegLoss, class_weights_from_histogram, lovasz_softmax


def test_class_weights_favour_rare_classes() -> None:
    counts = np.array([1000, 100, 10, 0])
    for kind in ("inverse_sqrt", "inverse_log"):
        w = class_weights_from_histogram(counts, kind)
        assert w[3] == 0 and w[0] < w[1] < w[2]
        assert torch.isclose(w[:3].mean(), torch.tensor(1.0))
    assert class_weights_from_histogram(counts, "none") is None
    with pytest.raises(ValueError, match="inverse_sqrt"):
        class_weights_from_histogram(counts, "median")


def test_lovasz_is_zero_for_perfect_and_positive_for_wrong() -> None:
    target = torch.tensor([0, 1, 2, 2, -1])
    perfect = torch.nn.functional.one_hot(target.clamp(min=0), 3).float() * 50
    assert lovasz_softmax(perfect, target).item() < 1e-6
    wrong = torch.nn.functional.one_hot((target.clamp(min=0) + 1) % 3, 3).float() * 50
    assert lovasz_softmax(wrong, target).item() > 0.9


def test_seg_loss_ignores_and_backpropagates() -> None:
    logits = torch.randn(6, 4, requires_grad=True)
    target = torch.tensor([0, 1, -1, 3, -1, 2])
    loss = SegLoss(-1, lovasz_weight=0.5)(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad[[2, 4]].abs().sum() == 0
    empty = SegLoss(-1)(logits, torch.full((6,), -1))
    assert empty.item() == 0.0
