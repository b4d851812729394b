"""CeCo in the training engine, zero inference cost, and the neural-collapse analysis command."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from pcseg import analyze as analyze_cli
from pcseg.engine.checkpoint import load_checkpoint
from pcseg.engine.config import load_config
from pcseg.engine.trainer import Trainer, build_model_from_cfg
from pcseg.models.objective import TrainingModel
from tests.conftest import REPO, tiny_overrides

CFG = REPO / "configs" / "synthetic_nc.yaml"


@pytest.fixture(scope="module")
def ceco_run(small_caches, tmp_path_factory):
    out = tmp_path_factory.mktemp("ceco_run")
    cfg = load_config(CFG, tiny_overrides(small_caches, out, **{"ceco.dim": 199, "train.epochs": 2}))
    trainer = Trainer(cfg)
    trainer.fit()
    return cfg, trainer, out


def test_center_loss_is_logged_and_saved(ceco_run) -> None:
    cfg, trainer, out = ceco_run
    assert isinstance(trainer.train_model, TrainingModel) and list(trainer.train_model.terms) == ["ceco"]
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["type"] == "train"]
    assert all("loss_center" in r and r["num_present"] >= 1 for r in train)
    assert all(abs(r["loss"] - r["loss_seg"] - 0.4 * r["loss_center"]) < 1e-3 for r in train)
    assert all("equiangularity_classifier" in r for r in train)
    ckpt = load_checkpoint(out / "last.pth")
    assert "head.etf" in ckpt["terms"]["ceco"]
    assert not any(k.startswith(("terms", "head.etf")) for k in ckpt["model"])  # the segmentor alone


def test_center_head_only_reads_the_features(ceco_run) -> None:
    """The branch must not change what the segmentor computes: in training mode, with the same
    weights and batch, the wrapped model's logits equal the bare segmentor's, while the center
    loss does send gradient into the backbone (it shapes the features) and none into the
    point classifier. A checkpoint's ``model`` entry is the bare segmentor (strict load)."""
    cfg, trainer, out = ceco_run
    ckpt = load_checkpoint(out / "last.pth")
    bare = build_model_from_cfg(cfg)
    bare.load_state_dict(ckpt["model"])  # strict: no CeCo keys
    wrapped = TrainingModel(copy.deepcopy(bare), {"ceco": copy.deepcopy(trainer.objective.terms["ceco"])})
    bare.train()
    wrapped.train()
    batch = next(iter(trainer.train_loader))
    args = (batch["grid_coord"], batch["batch"], batch["feat"])
    a = bare(*args)
    b = wrapped(*args, batch["segment"])
    assert "ceco" in b["terms"] and "terms" not in a
    assert torch.equal(a["logits"], b["logits"])
    b["terms"]["ceco"].loss.backward()
    seg = wrapped.segmentor
    assert seg.head.fc.weight.grad is None or seg.head.fc.weight.grad.abs().sum() == 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in seg.backbone.parameters())


def test_ceco_run_resumes_with_its_head(ceco_run, small_caches, tmp_path) -> None:
    cfg, _, out = ceco_run
    cfg2 = load_config(CFG, tiny_overrides(small_caches, out, **{"ceco.dim": 199, "train.epochs": 2}))
    t = Trainer(cfg2)
    ckpt = load_checkpoint(out / "last.pth")
    for k, v in ckpt["terms"]["ceco"].items():
        assert torch.equal(t.objective.terms["ceco"].state_dict()[k], v), k
    plain = load_config(REPO / "configs" / "synthetic_base.yaml", tiny_overrides(small_caches, tmp_path))
    Trainer(plain).fit()
    with pytest.raises(ValueError, match="ceco.enabled: False -> True"):  # never continued by another setup
        Trainer(load_config(CFG, tiny_overrides(small_caches, tmp_path)))


def test_analyze_writes_every_metric(ceco_run, tmp_path, monkeypatch) -> None:
    cfg, _, out = ceco_run
    from pcseg.engine import checkpoint

    reads = []
    real_load = checkpoint.load_checkpoint
    monkeypatch.setattr(checkpoint, "load_checkpoint", lambda path, *a, **k: reads.append(path) or real_load(path, *a, **k))
    code = analyze_cli.main(["--ckpt", str(out / "last.pth"), "--out", str(tmp_path),
                             f"data.root={cfg.data.root}", "train.progress=false"])
    assert code == 0
    assert reads == [out / "last.pth"]  # the checkpoint is read once, for the config and the weights
    result = json.loads((tmp_path / "nc_metrics.json").read_text())
    nc = result["nc"]
    for base in ("nc1", "nc3", "equinorm_means", "equinorm_classifier", "equiangularity_means",
                 "equiangularity_classifier", "cos_dev_means", "cos_dev_classifier", "maxangle_means",
                 "maxangle_classifier"):
        assert nc[base] is not None, base
        for split in ("head", "common", "tail"):
            assert f"{base}_{split}" in nc, (base, split)
    assert result["segmentation"]["miou"] is not None
    report = (tmp_path / "report.md").read_text()
    assert "cosine_heatmaps.png" in report and "iou_vs_frequency.png" in report
    assert (tmp_path / "cosine_heatmaps.png").stat().st_size > 1000
