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
    loss = SegLoss(lovasz_weight=0.5)(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad[[2, 4]].abs().sum() == 0
    empty = SegLoss()(logits, torch.full((6,), -1))
    assert empty.item() == 0.0


@pytest.mark.parametrize("weighted", [False, True])
def test_seg_loss_with_global_normalizer_sums_shards_to_the_whole_batch(weighted: bool) -> None:
    """The DDP contract: each shard divides its sum by (global count / shards); the mean of the
    shard gradients is then the whole batch's gradient, even for very unequal shards."""
    torch.manual_seed(0)
    w = torch.rand(5) + 0.5 if weighted else None
    crit = SegLoss(weight=w)
    logits = torch.randn(40, 5, requires_grad=True)
    target = torch.randint(-1, 5, (40,))
    crit(logits, target).backward()
    whole = logits.grad.clone()
    logits.grad = None
    shards = [slice(0, 7), slice(7, 40)]  # 7 vs 33 points
    denom = crit.normalizer(target) / len(shards)
    for s in shards:
        (crit(logits[s], target[s], denom) / len(shards)).backward()
    torch.testing.assert_close(logits.grad, whole, rtol=1e-5, atol=1e-7)
    # the per-shard mean (the old behaviour) weighs the small shard's points ~5x more
    logits.grad = None
    for s in shards:
        (crit(logits[s], target[s]) / len(shards)).backward()
    assert not torch.allclose(logits.grad, whole, rtol=1e-3, atol=1e-5)
