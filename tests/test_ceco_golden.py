"""pcseg's official CeCo branch against golden outputs of the released head (``UPerHead_ceco``),
recorded once from the authors' code on a 1 x C x 1 x N point layout (tests/fixtures/ceco/README.md)."""
from __future__ import annotations

from pathlib import Path

import torch

from pcseg.nc.ceco import CenterHead

FIXTURES = Path(__file__).parent / "fixtures" / "ceco"


def _head(case: dict) -> CenterHead:
    k, c = int(case["num_classes"]), case["feats"].shape[1]
    head = CenterHead(c, k, variant="official", log_prior=case["log_prior"], dropout=0.0, scale=float(case["scale"]))
    with torch.no_grad():
        head.reduce[0].weight.copy_(case["reduce_weight"])
        head.gain[0].weight.copy_(case["gain_weight"])
        head.gain[0].bias.copy_(case["gain_bias"])
        head.etf.copy_(case["etf"])
    return head.train()


def test_official_loss_equals_the_released_head() -> None:
    case = torch.load(FIXTURES / "official.pt", weights_only=True)
    assert float(case["smooth"]) == 1.0 and float(case["img_cls_weight"]) == 1.0  # the unweighted loss
    head = _head(case)
    out = head(case["feats"], case["labels"])
    assert int(out["num_present"]) == case["present"].numel()
    ref = case["loss"]
    assert torch.allclose(out["loss"], ref, rtol=1e-5, atol=0), (out["loss"].item(), ref.item())


def test_official_centers_and_logits_equal_the_released_head() -> None:
    """The intermediate steps too, so a wrong step cannot hide behind a matching loss."""
    case = torch.load(FIXTURES / "official.pt", weights_only=True)
    head = _head(case)
    from pcseg.nc.centers import class_centers

    z = head.reduce(case["feats"])
    centers, present = class_centers(z, case["labels"], int(case["num_classes"]))
    assert torch.equal(present.nonzero().squeeze(1), case["present"])
    assert torch.allclose(centers[present], case["reduced_centers"], rtol=1e-5, atol=1e-6)
    unit = torch.nn.functional.normalize(head.gain(centers[present]), dim=1)
    logits = head.scale * unit @ head.etf
    assert torch.allclose(logits, case["logits"], rtol=1e-5, atol=1e-5)
