"""The training objective interface: the trainer runs whatever terms the builder gives it, keeps
their state in checkpoints, and still reads checkpoints that stored the CeCo head alone."""
from __future__ import annotations

import json

import pytest
import torch

from pcseg.engine import trainer as trainer_module
from pcseg.engine.checkpoint import load_checkpoint
from pcseg.engine.config import load_config
from pcseg.engine.objective import build_objective
from pcseg.engine.trainer import Trainer
from pcseg.models.objective import AuxTerm, Objective, TermOutput
from tests.conftest import REPO, tiny_overrides

BASE = REPO / "configs" / "synthetic_base.yaml"
NC = REPO / "configs" / "synthetic_nc.yaml"


class FeatureNorm(AuxTerm):
    """A made-up method the trainer has never heard of: a learned target norm for the features."""

    def __init__(self, weight: float) -> None:
        super().__init__(weight)
        self.target = torch.nn.Parameter(torch.tensor(1.0))

    def forward(self, feats: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor) -> TermOutput:
        loss = (feats.norm(dim=1).mean() - self.target) ** 2
        return TermOutput(loss, {"loss_featnorm": float(loss.detach())})


def test_a_new_term_plugs_in_without_touching_the_trainer(small_caches, tmp_path, monkeypatch) -> None:
    def with_featnorm(cfg, ctx, manifest, reduce_normalizer=None) -> Objective:
        base = build_objective(cfg, ctx, manifest, reduce_normalizer)
        return Objective(base.point_loss, {"featnorm": FeatureNorm(0.5)}, reduce_normalizer)

    monkeypatch.setattr(trainer_module, "build_objective", with_featnorm)
    out = tmp_path / "run"
    trainer = Trainer(load_config(BASE, tiny_overrides(small_caches, out, **{"train.epochs": 1})))
    term = trainer.objective.terms["featnorm"]
    assert set(map(id, term.parameters())) <= set(map(id, trainer.params))  # optimised and clipped
    trainer.fit()
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["type"] == "train"]
    assert train and all(abs(r["loss"] - r["loss_seg"] - 0.5 * r["loss_featnorm"]) < 1e-4 for r in train)
    ckpt = load_checkpoint(out / "last.pth")
    assert float(ckpt["terms"]["featnorm"]["target"]) != 1.0  # it trained, and its state was saved


def test_rr_trains_through_the_builder(small_caches, tmp_path) -> None:
    out = tmp_path / "rr"
    trainer = Trainer(load_config(BASE, tiny_overrides(small_caches, out, **{"rr.enabled": "true",
                                                                            "train.epochs": 1})))
    assert list(trainer.objective.terms) == ["rr"] and trainer.objective.terms["rr"].head.variant == "rr"
    trainer.fit()
    train = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in train if r["type"] == "train"]
    assert train and all(abs(r["loss"] - r["loss_seg"] - 1.0 * r["loss_rr"]) < 1e-4 for r in train)


def test_point_loss_options_reach_the_trainer(small_caches, tmp_path) -> None:
    trainer = Trainer(load_config(BASE, tiny_overrides(small_caches, tmp_path, **{
        "loss.focal_gamma": 2.0, "loss.logit_adjust": 1.0, "train.eval_every": 0})))
    loss = trainer.objective.point_loss
    assert loss.focal_gamma == 2.0 and loss.logit_adjust == 1.0 and loss.log_prior.shape == (200,)
    assert not trainer.objective.terms
    logs = trainer.train_step(next(iter(trainer.train_loader)))
    assert logs["loss"] == logs["loss_seg"] > 0


def test_logit_adjustment_without_a_manifest_names_the_file(small_caches, tmp_path) -> None:
    import shutil

    data = tmp_path / "caches"
    shutil.copytree(small_caches, data)
    (data / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="loss.logit_adjust.*manifest.json"):
        Trainer(load_config(BASE, tiny_overrides(data, tmp_path / "run", **{"loss.logit_adjust": 1.0})))


def test_checkpoints_with_the_center_head_alone_still_resume(small_caches, tmp_path) -> None:
    """Checkpoints written before the objective interface stored the CeCo head as ``center_head``."""
    out = tmp_path / "run"
    over = tiny_overrides(small_caches, out, **{"ceco.variant": "learned", "ceco.dim": 199, "train.epochs": 2,
                                                "train.max_steps": 1})
    Trainer(load_config(NC, over)).fit()
    ckpt = load_checkpoint(out / "last.pth")
    state = ckpt.pop("terms")["ceco"]
    ckpt["center_head"] = {k.removeprefix("head."): v for k, v in state.items()}
    torch.save(ckpt, out / "last.pth")
    resumed = Trainer(load_config(NC, over[:-1] + ["train.max_steps=2"]))
    assert resumed.step == 1
    for k, v in state.items():
        assert torch.equal(resumed.objective.terms["ceco"].state_dict()[k], v), k
    resumed.fit()
    assert "ceco" in load_checkpoint(out / "last.pth")["terms"]


def test_rr_settings_are_inert_when_it_is_off() -> None:
    from pcseg.engine.config import resume_differences

    stored = {"ceco": {"enabled": False}}  # a CE run of a version without the rr section
    assert resume_differences(stored, load_config(None, ["rr.weight=0.3"])) == []
    assert resume_differences(stored, load_config(None, ["rr.enabled=true"])) == ["rr.enabled: False -> True"]
    assert resume_differences(stored, load_config(None, ["loss.focal_gamma=2"]))
