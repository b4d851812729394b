"""Starting from other weights and the settings a fine-tune needs: train.init_from, per-group learning
rates, input-feature checks and the colour range of NormalizeColor."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pcseg import train as train_cli
from pcseg.data import transforms as T
from pcseg.engine.checkpoint import load_checkpoint
from pcseg.engine.config import load_config
from pcseg.engine.load import load_segmentor
from pcseg.engine.optim import param_groups
from pcseg.engine.trainer import Trainer
from pcseg.models.from_config import build_model_from_cfg
from tests.conftest import REPO, tiny_overrides

CFG = REPO / "configs" / "synthetic_base.yaml"


@pytest.fixture(scope="module")
def source_run(small_caches, tmp_path_factory):
    out = tmp_path_factory.mktemp("source")
    Trainer(load_config(CFG, tiny_overrides(small_caches, out, **{"train.max_steps": 2, "train.eval_every": 0}))).fit()
    return out / "last.pth"


def test_init_from_loads_weights_but_not_the_schedule(source_run, small_caches, tmp_path) -> None:
    cfg = load_config(CFG, tiny_overrides(small_caches, tmp_path, **{"train.init_from": source_run,
                                                                     "train.eval_every": 0}))
    trainer = Trainer(cfg)
    src = load_checkpoint(source_run)["model"]
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, src[k]), k  # classifier included: same classes
    assert trainer.step == 0 and not trainer.optimizer.state  # a new run, fresh optimizer
    fresh = Trainer(load_config(CFG, tiny_overrides(small_caches, tmp_path / "fresh", **{"train.eval_every": 0})))
    assert not torch.equal(fresh.model.head.fc.weight, trainer.model.head.fc.weight)


def test_init_from_new_classes_restarts_only_the_classifier(source_run, small_caches, tmp_path) -> None:
    cfg = load_config(CFG, tiny_overrides(small_caches, tmp_path, **{
        "train.init_from": source_run, "data.label_set": "segment20", "train.eval_every": 0}))
    trainer = Trainer(cfg)
    src = load_checkpoint(source_run)["model"]
    sd = trainer.model.state_dict()
    assert sd["head.fc.weight"].shape[0] == 20
    assert all(torch.equal(v, src[k]) for k, v in sd.items() if not k.startswith("head."))


def test_init_from_a_different_network_names_the_tensors(source_run, small_caches, tmp_path, capsys) -> None:
    code = train_cli.main(["--cfg", str(CFG), *tiny_overrides(small_caches, tmp_path, **{
        "train.init_from": source_run, "model.channels": "[8,16,16,16,16,16,16,16]"})])
    err = capsys.readouterr().err
    assert code == 2 and "does not fit" in err and "shape mismatches" in err and "backbone" in err


def test_param_groups_scale_the_learning_rate_by_name(small_caches, tmp_path) -> None:
    cfg = load_config(CFG, tiny_overrides(small_caches, tmp_path, **{
        "optim.param_groups": "[{keyword: enc., lr_scale: 0.1}]", "sched.name": "constant"}))
    model = build_model_from_cfg(cfg)
    groups = param_groups(cfg, model.named_parameters())
    named = dict(model.named_parameters())
    in_scaled = {id(p) for p in groups[1]["params"]}
    assert groups[1]["lr"] == pytest.approx(cfg.optim.lr * 0.1) and groups[0]["lr"] == cfg.optim.lr
    assert {id(p) for n, p in named.items() if "enc." in n} == in_scaled
    assert len(groups[0]["params"]) + len(in_scaled) == len(named)
    trainer = Trainer(cfg)  # the schedule keeps the ratio
    assert trainer.optimizer.param_groups[1]["lr"] == pytest.approx(0.1 * trainer.optimizer.param_groups[0]["lr"])
    bad = load_config(CFG, tiny_overrides(small_caches, tmp_path, **{"optim.param_groups": "[{keyword: blokc}]"}))
    with pytest.raises(ValueError, match="blokc"):
        param_groups(bad, model.named_parameters())


def test_onecycle_follows_each_group_peak(small_caches, tmp_path) -> None:
    cfg = load_config(CFG, tiny_overrides(small_caches, tmp_path, **{
        "optim.param_groups": "[{keyword: head, lr_scale: 0.5}]", "sched.name": "onecycle", "train.eval_every": 0}))
    trainer = Trainer(cfg)
    peaks = [0.0, 0.0]
    for _ in range(trainer.total_steps):
        trainer.scheduler.step()
        peaks = [max(a, g["lr"]) for a, g in zip(peaks, trainer.optimizer.param_groups)]
    assert peaks[1] == pytest.approx(0.5 * peaks[0], rel=1e-6)


def test_feature_width_must_match_in_channels(small_caches, tmp_path, capsys) -> None:
    code = train_cli.main(["--cfg", str(CFG), *tiny_overrides(small_caches, tmp_path, **{
        "data.feat_keys": "[color,normal]"})])
    err = capsys.readouterr().err
    assert code == 2 and "6 channels" in err and "model.in_channels=9" in err and "data.feat_keys" in err
    cfg = load_config(CFG, tiny_overrides(small_caches, tmp_path, **{"data.feat_keys": "[color,normal]",
                                                                     "model.in_channels": 6}))
    assert build_model_from_cfg(cfg).backbone.in_channels == 6


def test_model_keys_of_another_backbone_are_refused(small_caches, tmp_path) -> None:
    cfg = load_config(CFG, tiny_overrides(small_caches, tmp_path, **{"model.enc_depths": "[1,1]"}))
    with pytest.raises(ValueError, match="model.enc_depths is a ptv3 setting"):
        build_model_from_cfg(cfg)


def test_load_segmentor_round_trip(source_run) -> None:
    model, cfg = load_segmentor(source_run)
    assert not model.training and cfg.data.label_set == "segment200"
    rng = np.random.default_rng(0)
    grid = torch.from_numpy(rng.integers(0, 40, (500, 3))).int().unique(dim=0)
    feat = torch.randn(len(grid), cfg.model.in_channels)
    logits = model(grid, torch.zeros(len(grid), dtype=torch.int64), feat)["logits"]
    assert logits.shape == (len(grid), 200) and torch.isfinite(logits).all()


@pytest.mark.parametrize("lo,hi", [(-1.0, 1.0), (0.0, 1.0)])
def test_normalize_color_range(lo: float, hi: float) -> None:
    color = np.array([[0, 127, 255], [255, 0, 64]], dtype=np.uint8)
    out = T.NormalizeColor(range=[lo, hi])({"color": color}, np.random.default_rng())["color"]
    expected = color.astype(np.float32) / 127.5 - 1 if lo == -1 else color.astype(np.float32) / 255
    assert out.dtype == np.float32 and np.array_equal(out, expected)  # bit-identical to the usual formulas
    with pytest.raises(ValueError, match="NormalizeColor"):
        T.NormalizeColor(range=[1, 1])


@pytest.mark.parametrize("name", ["spunet", "ptv3"])
def test_bn_momentum_reaches_every_batchnorm(name, small_caches, tmp_path) -> None:
    extra = {"model.name": name, "model.preset": "tiny", "model.bn_momentum": "null"}
    if name == "ptv3":
        extra.update({"data.feat_keys": "[color,normal]", "model.in_channels": 6, "model.channels": "null"})
    default = build_model_from_cfg(load_config(CFG, tiny_overrides(small_caches, tmp_path, **extra)))
    bns = [m for m in default.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and {m.momentum for m in bns} == {0.01}
    cfg = load_config(CFG, tiny_overrides(small_caches, tmp_path, **{**extra, "model.bn_momentum": 0.1}))
    model = build_model_from_cfg(cfg)
    moms = [m.momentum for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(moms) == len(bns) and set(moms) == {0.1}
    with pytest.raises(ValueError, match="model.bn_momentum"):
        build_model_from_cfg(load_config(CFG, tiny_overrides(small_caches, tmp_path, **{"model.bn_momentum": 0})))
