"""The official CeCo branch: the released head's layout and frozen weights, its scene prior, and
where the gradient goes (golden equivalence with the released code: test_ceco_golden.py)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from pcseg.engine.config import load_config
from pcseg.engine.trainer import Trainer
from pcseg.nc.ceco import CenterHead
from pcseg.nc.prior import log_scene_prior, scene_counts
from tests.conftest import REPO, tiny_overrides

CFG = REPO / "configs" / "synthetic_nc.yaml"


def test_state_dict_follows_the_released_layout_and_nothing_trains() -> None:
    head = CenterHead(16, 12, variant="official", log_prior=torch.zeros(12))
    sd = head.state_dict()
    assert tuple(sd["reduce.0.weight"].shape) == (128, 16) and "reduce.0.bias" not in sd
    assert {"reduce.1.weight", "reduce.1.bias", "reduce.1.running_mean", "reduce.1.running_var"} <= set(sd)
    assert tuple(sd["gain.0.weight"].shape) == (512, 128) and tuple(sd["gain.0.bias"].shape) == (512,)
    assert tuple(sd["etf"].shape) == (512, 12) and torch.allclose(sd["etf"].norm(dim=0), torch.ones(12))
    assert tuple(sd["log_prior"].shape) == (12,)
    assert torch.equal(sd["reduce.1.weight"], torch.ones(128)) and torch.equal(sd["reduce.1.bias"], torch.zeros(128))
    assert not [n for n, p in head.named_parameters() if p.requires_grad]
    assert (head.scale, head.dim, head.global_centers) == (5.0, 512, False)


def test_weights_depend_on_the_seed_only() -> None:
    a = CenterHead(8, 5, variant="official", seed=3)
    torch.manual_seed(123)
    b = CenterHead(8, 5, variant="official", seed=3)
    c = CenterHead(8, 5, variant="official", seed=4)
    assert torch.equal(a.reduce[0].weight, b.reduce[0].weight)
    assert not torch.equal(a.reduce[0].weight, c.reduce[0].weight)


def test_loss_by_its_definition_and_gradient_only_to_the_features() -> None:
    """Brute force: BatchNorm over all points, means over the labelled, gain, normalise, ETF x 5,
    + log prior, mean cross-entropy over the present classes."""
    torch.manual_seed(0)
    k, n, c = 6, 80, 10
    prior = torch.log(torch.tensor([5.0, 1, 2, 3, 1, 8]) / 20 + 1e-12)
    head = CenterHead(c, k, variant="official", log_prior=prior, dropout=0.0).train()
    x = torch.randn(n, c, requires_grad=True)
    y = torch.randint(0, 4, (n,))
    y[:7] = -1  # unlabelled points still shape the BatchNorm statistics
    out = head(x, y)
    z = x @ head.reduce[0].weight.T
    z = (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5)
    loss, present = 0.0, sorted(set(y[y >= 0].tolist()))
    for cls in present:
        g = torch.relu(head.gain[0](z[y == cls].mean(0)))
        logits = 5.0 * (g / g.norm()) @ head.etf + prior
        loss = loss - torch.log_softmax(logits, 0)[cls]
    assert torch.allclose(out["loss"], loss / len(present), rtol=1e-5)
    before = {k: v.clone() for k, v in head.state_dict().items() if "running" not in k and "num_batches" not in k}
    out["loss"].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in head.parameters())
    assert all(torch.equal(v, head.state_dict()[k]) for k, v in before.items())


def test_scene_prior_by_definition() -> None:
    labels = [np.array([0, 0, 2, -1]), np.array([2, 3]), np.array([-1, -1]), np.array([0, 2, 2])]
    counts = scene_counts(labels, 5)
    assert counts.tolist() == [2, 0, 3, 1, 0]
    expect = np.log(np.array([2, 0, 3, 1, 0]) / 6 + 1e-12)
    assert np.allclose(log_scene_prior(counts).numpy(), expect, rtol=1e-6)
    with pytest.raises(ValueError):
        log_scene_prior([0, 0])


def test_trainer_prior_from_the_manifest_or_else_the_caches(small_caches, tmp_path) -> None:
    """Data prep records scenes per class; without them the trainer reads the caches (same prior)."""
    manifest = json.loads((small_caches / "manifest.json").read_text())
    recorded = manifest["class_histogram"]["segment200"]["scenes"]
    trainer = Trainer(load_config(CFG, tiny_overrides(small_caches, tmp_path / "a")))
    from_manifest = trainer.objective.terms["ceco"].head.log_prior.clone()
    assert torch.allclose(from_manifest, log_scene_prior(recorded))
    assert sum(recorded) > 0 and max(recorded) <= manifest["splits"]["train"]["num_scenes"]
    data = tmp_path / "caches"
    shutil.copytree(small_caches, data)
    for entry in manifest["class_histogram"].values():
        if isinstance(entry, dict):
            entry.pop("scenes", None)
    (data / "manifest.json").write_text(json.dumps(manifest))
    again = Trainer(load_config(CFG, tiny_overrides(data, tmp_path / "b")))
    assert torch.equal(again.objective.terms["ceco"].head.log_prior, from_manifest)
    assert "read from the" in (tmp_path / "b" / "train.log").read_text()
    off = Trainer(load_config(CFG, tiny_overrides(small_caches, tmp_path / "c", **{"ceco.prior": "none"})))
    assert torch.equal(off.objective.terms["ceco"].head.log_prior, torch.zeros(200))


def test_a_training_step_leaves_the_branch_unchanged(small_caches, tmp_path) -> None:
    trainer = Trainer(load_config(CFG, tiny_overrides(small_caches, tmp_path, **{"train.eval_every": 0})))
    head = trainer.objective.terms["ceco"].head
    assert not set(map(id, head.parameters())) & set(map(id, trainer.params))  # nothing of it is optimised
    frozen = {k: v.clone() for k, v in head.state_dict().items() if "running" not in k and "num_batches" not in k}
    seg_before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    logs = trainer.train_step(next(iter(trainer.train_loader)))
    assert logs["loss_center"] > 0
    assert all(torch.equal(v, head.state_dict()[k]) for k, v in frozen.items())
    assert any(not torch.equal(v, trainer.model.state_dict()[k]) for k, v in seg_before.items())


def test_stored_configs_from_before_the_variants_are_the_learned_head() -> None:
    stored = {"ceco": {"enabled": True, "dim": 256, "scale": 10.0, "global_centers": True}}
    assert load_config(stored).ceco.variant == "learned"
    assert load_config({"ceco": {"enabled": True, "variant": "official"}}).ceco.variant == "official"
    assert load_config(CFG).ceco.variant == "official"


def test_ceco_settings_are_inert_when_the_branch_is_off() -> None:
    """A CE run continues (or is reused by a study) whatever ceco.* says, but not with CeCo turned on."""
    from pcseg.engine.config import resume_differences

    stored = {"ceco": {"enabled": False, "dim": 256, "scale": 10.0}}  # an earlier version's CE run
    assert resume_differences(stored, load_config(None, ["ceco.weight=0.8"])) == []
    assert resume_differences(stored, load_config(None, ["ceco.enabled=true"]))


def test_trainable_projection_ablation_is_optimised(small_caches, tmp_path) -> None:
    trainer = Trainer(load_config(CFG, tiny_overrides(small_caches, tmp_path, **{
        "train.eval_every": 0, "ceco.trainable_projection": "true"})))
    head = trainer.objective.terms["ceco"].head
    assert set(map(id, head.parameters())) <= set(map(id, trainer.params))
    before = head.gain[0].weight.clone()
    trainer.train_step(next(iter(trainer.train_loader)))
    assert not torch.equal(before, head.gain[0].weight)
