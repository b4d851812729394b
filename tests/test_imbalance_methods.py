"""The imbalance methods against brute-force evaluations of their definitions: focal loss, logit
adjustment, region rebalance (also against the released head's golden output)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pcseg.models.losses import SegLoss, log_point_prior
from pcseg.nc.ceco import CenterHead

FIXTURES = Path(__file__).parent / "fixtures" / "ceco"


def _points(seed: int = 0, n: int = 30, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g, dtype=torch.float64).float() * 3
    target = torch.randint(-1, k, (n,), generator=g)
    return logits, target


def _softmax(row: list[float]) -> list[float]:
    m = max(row)
    e = [math.exp(x - m) for x in row]
    return [x / sum(e) for x in e]


@pytest.mark.parametrize("gamma", [0.5, 2.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_focal_loss_is_its_definition(gamma: float, weighted: bool) -> None:
    """FL = sum_i -alpha_t (1 - p_t)^gamma log p_t / sum_i alpha_t over the labelled points."""
    logits, target = _points()
    w = torch.tensor([0.5, 1.0, 2.0, 0.7, 1.3]) if weighted else None
    got = SegLoss(w, focal_gamma=gamma)(logits, target)
    num = den = 0.0
    for row, t in zip(logits.tolist(), target.tolist()):
        if t < 0:
            continue
        p = _softmax(row)[t]
        a = 1.0 if w is None else float(w[t])
        num += -a * (1 - p) ** gamma * math.log(p)
        den += a
    assert got.item() == pytest.approx(num / den, rel=1e-5)
    assert got.item() < SegLoss(w)(logits, target).item()  # focal down-weights easy points: below CE


def test_focal_gamma_zero_is_cross_entropy_and_gradients_flow() -> None:
    logits, target = _points(1)
    logits.requires_grad_(True)
    loss = SegLoss(focal_gamma=2.0)(logits, target)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[target < 0].abs().sum() == 0
    assert SegLoss(focal_gamma=0.0)(logits, target).item() == pytest.approx(SegLoss()(logits, target).item())


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_logit_adjustment_is_its_definition(tau: float) -> None:
    """CE of softmax(z + tau log pi) with pi the point-level class frequency (Menon et al. 2021);
    the model's logits are left as they are."""
    logits, target = _points(2)
    counts = [5000, 800, 60, 7, 0]
    kept = logits.clone()
    got = SegLoss(log_prior=log_point_prior(counts), logit_adjust=tau)(logits, target)
    assert torch.equal(logits, kept)
    total, n = 0.0, 0
    for row, t in zip(logits.tolist(), target.tolist()):
        if t < 0:
            continue
        adj = [z + tau * math.log((c or max(counts)) / sum(counts)) for z, c in zip(row, counts)]
        total += -math.log(_softmax(adj)[t])
        n += 1
    assert got.item() == pytest.approx(total / n, rel=1e-5)
    # the rare class's loss is raised relative to plain CE: the classifier learns a larger margin for it
    rare = target == 3
    assert SegLoss(log_prior=log_point_prior(counts), logit_adjust=tau)(logits[rare], target[rare]) > \
        SegLoss()(logits[rare], target[rare])


def test_logit_adjustment_suppresses_classes_without_training_points() -> None:
    """A class absent from training is adjusted as the most frequent one: its raw logit is pushed
    down (with log 0 it would get no gradient and be predicted at test time)."""
    counts = [5000, 800, 0]
    prior = log_point_prior(counts)
    assert prior[2] == prior[0] and torch.isfinite(prior).all()
    logits = torch.zeros(8, 3, requires_grad=True)
    target = torch.tensor([0, 0, 0, 0, 0, 1, 1, 0])
    SegLoss(log_prior=prior, logit_adjust=1.0)(logits, target).backward()
    assert logits.grad[:, 2].min() > 1e-3  # descending the loss lowers the absent class's logit everywhere


def test_logit_adjustment_needs_a_prior() -> None:
    with pytest.raises(ValueError, match="log_prior"):
        SegLoss(logit_adjust=1.0)
    with pytest.raises(ValueError, match="histogram"):
        log_point_prior([0, 0, 0])


def _rr_head(case: dict, dropout: float = 0.0) -> CenterHead:
    k, c = int(case["num_classes"]), case["feats"].shape[1]
    head = CenterHead(c, k, variant="rr", log_prior=case["log_prior"], dropout=dropout)
    with torch.no_grad():
        head.reduce[0].weight.copy_(case["reduce_weight"])
        head.gain[0].weight.copy_(case["gain_weight"])
        head.gain[0].bias.copy_(case["gain_bias"])
        head.cls.weight.copy_(case["cls_weight"])
        head.cls.bias.copy_(case["cls_bias"])
    return head.train()


def test_rr_equals_the_released_head() -> None:
    """RR (``UPerHead_cecol``) at its released defaults (scale 1, smooth 0.5) gives the released loss."""
    case = torch.load(FIXTURES / "rr.pt", weights_only=True)
    head = _rr_head(case)
    assert head.scale == float(case["scale"]) == 1.0 and head.smooth == float(case["smooth"]) == 0.5
    out = head(case["feats"], case["labels"])
    assert int(out["num_present"]) == case["present"].numel()
    assert torch.allclose(out["loss"], case["loss"], rtol=1e-5, atol=0), (out["loss"].item(), case["loss"].item())
    g = head.gain(case["reduced_centers"])
    assert torch.allclose(head.scale * head.cls(g), case["logits"], rtol=1e-5, atol=1e-5)


def test_rr_loss_is_its_definition() -> None:
    """The smoothed target and prior, evaluated by hand from the released logits."""
    case = torch.load(FIXTURES / "rr.pt", weights_only=True)
    logits = case["logits"].double().numpy() + case["log_prior"].double().numpy()
    present, k, s = case["present"].tolist(), int(case["num_classes"]), float(case["smooth"])
    total = 0.0
    for row, c in zip(logits, present):
        logp = row - np.log(np.exp(row - row.max()).sum()) - row.max()
        total += -sum((s if j == c else (1 - s) / (k - 1)) * logp[j] for j in range(k))
    assert total / len(present) == pytest.approx(float(case["loss"]), rel=1e-5)


def test_rr_is_frozen_and_shares_the_official_projection() -> None:
    rr = CenterHead(8, 5, variant="rr", seed=3)
    official = CenterHead(8, 5, variant="official", seed=3)
    assert all(not p.requires_grad for p in rr.parameters())
    assert torch.equal(rr.reduce[0].weight, official.reduce[0].weight)
    assert torch.equal(rr.gain[0].weight, official.gain[0].weight)
    assert "etf" not in rr.state_dict() and "cls.bias" in rr.state_dict()
    with pytest.raises(ValueError, match="smooth"):
        CenterHead(8, 5, variant="rr", smooth=0.1)  # below 1/K the own class would get the least
