"""Published Sonata / Concerto / Utonia weights in every layout they ship in: conversion, fine-tuning
from an encoder (train.init_from), linear probing of a frozen encoder, and the full-size key lists of
the published recipes. The weights cannot be downloaded here: the checkpoints are random-weight
ones in the published layouts (names and nesting from Pointcept's code, tests/fixtures/ptv3m2m3)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pcseg import analyze as analyze_cli
from pcseg import convert as convert_cli
from pcseg import test as test_cli
from pcseg.engine.checkpoint import ENCODER_KIND, load_checkpoint
from pcseg.engine.config import load_config
from pcseg.engine.load import load_segmentor
from pcseg.engine.trainer import Trainer
from pcseg.models.from_config import build_model_from_cfg
from pcseg.models.pointcept import ENCODER_PREFIXES, convert_state_dict, pointcept_to_pcseg_name
from tests.conftest import REPO, tiny_overrides

FIXTURES = REPO / "tests" / "fixtures" / "ptv3m2m3"
CFG = REPO / "configs" / "synthetic_ptv3.yaml"


def _case(name: str) -> dict:
    return torch.load(FIXTURES / f"{name}.pt", weights_only=True)


def _overrides(case: dict, name: str = "ptv3m2", **extra: object) -> list[str]:
    """The fixture network as pcseg config overrides (decoder widths from the m2_seg case)."""
    c = case["model_cfg"]
    keys = ("order", "stride", "enc_depths", "enc_channels", "enc_num_head", "enc_patch_size", "mlp_ratio",
            "layer_scale")
    out = {f"model.{k}": json.dumps(list(c[k]) if isinstance(c[k], tuple) else c[k]) for k in keys}
    seg = _case("m2_seg")["model_cfg"]
    for k in ("dec_depths", "dec_channels", "dec_num_head", "dec_patch_size"):
        out[f"model.{k}"] = json.dumps(list(seg[k]))
    out.update({"model.name": name, "model.shuffle_orders": "false", "model.patch_rule": "non_flash",
                "model.in_channels": 9, "data.feat_keys": "[coord,color,normal]", "data.label_set": "segment20"})
    out.update({k: str(v) for k, v in extra.items()})
    return [f"{k}={v}" for k, v in out.items()]


def _encoder_state(case: dict) -> dict[str, torch.Tensor]:
    return {k[len("backbone."):]: v for k, v in case["state_dict"].items() if k.startswith("backbone.")}


def _pretrain_file(tmp_path: Path) -> Path:
    """A Sonata-style pretraining checkpoint: student and teacher backbones (with the mask token),
    the pretraining heads, all under DDP's ``module.``."""
    enc = _encoder_state(_case("m2_enc"))
    enc["embedding.mask_token"] = torch.zeros(1, 12)
    sd = {}
    for who in ("student", "teacher"):
        sd.update({f"module.{who}.backbone.{k}": v + (1.0 if who == "teacher" else 0.0) for k, v in enc.items()})
        for head in ("mask_head", "unmask_head"):
            sd[f"module.{who}.{head}.mlp.0.weight"] = torch.randn(16, 36)
            sd[f"module.{who}.{head}.prototype.parametrizations.weight.original1"] = torch.randn(8, 16)
    path = tmp_path / "pretrain-sonata-v1m1-0-base.pth"
    torch.save({"epoch": 200, "state_dict": sd, "optimizer": {"state": {}, "param_groups": []}}, path)
    return path


def _standalone_file(tmp_path: Path) -> Path:
    """A ``sonata.pth``-style file: the constructor's config and the encoder's state dict, unprefixed."""
    case = _case("m2_enc")
    path = tmp_path / "sonata.pth"
    torch.save({"config": dict(case["model_cfg"], mask_token=True),
                "state_dict": {**_encoder_state(case), "embedding.mask_token": torch.zeros(1, 12)}}, path)
    return path


@pytest.fixture(scope="module")
def encoder_ckpt(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("encoder")
    out = tmp / "sonata_encoder.pth"
    assert convert_cli.main([str(_pretrain_file(tmp)), str(out), "--cfg", str(CFG), *_overrides(_case("m2_enc"))]) == 0
    return out


def test_pretraining_checkpoint_becomes_an_encoder_checkpoint(tmp_path, capsys) -> None:
    out = tmp_path / "enc.pth"
    assert convert_cli.main([str(_pretrain_file(tmp_path)), str(out), "--cfg", str(CFG),
                             *_overrides(_case("m2_enc"))]) == 0
    printed = capsys.readouterr().out
    assert "encoder checkpoint" in printed and "epoch 200" in printed
    # the teacher, the pretraining heads and the mask token are left out and listed
    assert "module.teacher.backbone.*" in printed and "module.student.mask_head.*" in printed
    assert "mask_token" in printed
    ckpt = load_checkpoint(out)
    assert ckpt["kind"] == ENCODER_KIND and all(k.startswith(ENCODER_PREFIXES) for k in ckpt["model"])
    # the student's weights, not the teacher's (which differ by 1)
    ref = _case("m2_enc")["state_dict"]
    assert torch.equal(ckpt["model"]["backbone.stem.linear.weight"], ref["backbone.embedding.stem.linear.weight"])
    assert len(ckpt["model"]) == len([k for k in ref if k.startswith("backbone.")])


def test_standalone_encoder_file_gives_the_same_encoder(encoder_ckpt, tmp_path) -> None:
    out = tmp_path / "enc.pth"
    assert convert_cli.main([str(_standalone_file(tmp_path)), str(out), "--cfg", str(CFG),
                             *_overrides(_case("m2_enc"))]) == 0
    a, b = load_checkpoint(out)["model"], load_checkpoint(encoder_ckpt)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_standalone_file_config_must_agree_on_heads(tmp_path, capsys) -> None:
    """Head counts leave no trace in the shapes; an encoder file's config states them."""
    out = tmp_path / "enc.pth"
    bad = _overrides(_case("m2_enc"), **{"model.enc_num_head": "[1,1,2,2,2]"})
    assert convert_cli.main([str(_standalone_file(tmp_path)), str(out), "--cfg", str(CFG), *bad]) == 2
    err = capsys.readouterr().err
    assert "model.enc_num_head=[1, 2, 2, 2, 2] (the file's config" in err and not out.exists()


def test_encoder_of_another_width_names_the_override(tmp_path, capsys) -> None:
    out = tmp_path / "enc.pth"
    bad = _overrides(_case("m2_enc"), **{"model.enc_channels": "[12,12,12,12,36]"})
    assert convert_cli.main([str(_pretrain_file(tmp_path)), str(out), "--cfg", str(CFG), *bad]) == 2
    err = capsys.readouterr().err
    assert "model.enc_channels=[12, 12, 12, 12, 24]" in err and "nothing was written" in err and not out.exists()


def test_pointcept_segmentor_checkpoint_converts_to_identical_logits(tmp_path) -> None:
    """A Pointcept PT-v3m2 segmentor checkpoint (20-class head) reproduces Pointcept's logits."""
    case = _case("m2_seg")
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(20, 12, generator=g), torch.randn(20, generator=g) * 0.1
    sd = {f"module.{k}": v for k, v in case["state_dict"].items() if not k.startswith("seg_head.")}
    sd.update({"module.seg_head.weight": w, "module.seg_head.bias": b})
    src, out = tmp_path / "model_best.pth", tmp_path / "converted.pth"
    torch.save({"epoch": 800, "state_dict": sd}, src)
    assert convert_cli.main([str(src), str(out), "--cfg", str(CFG), *_overrides(case)]) == 0
    model, cfg = load_segmentor(out)
    assert cfg.model.name == "ptv3m2" and "kind" not in load_checkpoint(out)
    model.backbone.pooling_perms = [list(p) for p in case["pooling_perms"]]
    x = case["inputs"]
    with torch.no_grad():
        logits = model(x["grid_coord"], x["batch"], x["feat"], x["coord"])["logits"]
    expected = case["feat"] @ w.T + b
    assert (logits - expected).abs().max() <= 1e-4 * (1 + expected.abs().max())


def test_linear_probe_checkpoint_needs_the_encoder_only_network(tmp_path, capsys) -> None:
    """A Pointcept linear-probe checkpoint (encoder + seg_head, no decoder) names model.enc_mode, then
    converts to the fixture's logits."""
    case = _case("m2_enc")
    src = tmp_path / "model_best.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in case["state_dict"].items()}}, src)
    out = tmp_path / "lin.pth"
    assert convert_cli.main([str(src), str(out), "--cfg", str(CFG), *_overrides(case)]) == 2
    assert "model.enc_mode=true" in capsys.readouterr().err and not out.exists()
    overrides = _overrides(case, **{"model.enc_mode": "true", "data.label_set": "segment20"})
    # the fixture's head has 13 classes; a 20-class label set needs a 20-row head
    sd = torch.load(src, weights_only=True)["state_dict"]
    g = torch.Generator().manual_seed(1)
    sd["module.seg_head.weight"], sd["module.seg_head.bias"] = torch.randn(20, 72, generator=g), torch.zeros(20)
    torch.save({"state_dict": sd}, src)
    assert convert_cli.main([str(src), str(out), "--cfg", str(CFG), *overrides]) == 0
    model, _ = load_segmentor(out)
    model.backbone.pooling_perms = [list(p) for p in case["pooling_perms"]]
    x = case["inputs"]
    with torch.no_grad():
        logits = model(x["grid_coord"], x["batch"], x["feat"], x["coord"])["logits"]
    expected = case["feat"] @ sd["module.seg_head.weight"].T
    assert (logits - expected).abs().max() <= 1e-4 * (1 + expected.abs().max())


def test_an_encoder_checkpoint_is_not_evaluated(encoder_ckpt) -> None:
    with pytest.raises(ValueError, match="train.init_from"):
        load_segmentor(encoder_ckpt)


def test_finetune_from_an_encoder_with_ceco(encoder_ckpt, small_caches, tmp_path) -> None:
    """train.init_from with an encoder: the encoder's tensors come from it, the decoder and the
    classifier start fresh, and the log says which is which; then pcseg.test runs."""
    run = tmp_path / "ft"
    extra = {"train.init_from": encoder_ckpt, "ceco.enabled": "true", "ceco.dim": 199, "train.max_steps": 2,
             "train.eval_every": 0, "data.point_max": 3000}
    base = tiny_overrides(small_caches, run, **extra)
    cfg = load_config(CFG, base + _overrides(_case("m2_enc"), **{"data.label_set": "segment200"}))
    trainer = Trainer(cfg)
    enc = load_checkpoint(encoder_ckpt)["model"]
    state = trainer.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in enc.items())
    trainer.fit()
    log = (run / "train.log").read_text()
    assert f"initialised from {encoder_ckpt}" in log and "backbone.enc.*" in log
    assert "fresh:" in log and "backbone.dec.*" in log and "head.fc.*" in log
    assert test_cli.main(["--ckpt", str(run / "last.pth"), "--split", "val", "--out", str(tmp_path),
                          "train.progress=false"]) == 0


def test_encoder_of_another_generation_is_refused(encoder_ckpt, small_caches, tmp_path) -> None:
    """PT-v3m2 and m3 weights share names and shapes; the stored network name tells them apart."""
    base = tiny_overrides(small_caches, tmp_path / "m3", **{"train.init_from": encoder_ckpt})
    cfg = load_config(CFG, base + _overrides(_case("m2_enc"), "ptv3m3", **{"data.label_set": "segment200"}))
    with pytest.raises(ValueError, match="model.name=ptv3m2 weights"):
        Trainer(cfg)


def test_linear_probe_keeps_the_encoder_and_reads_every_level(encoder_ckpt, small_caches, tmp_path) -> None:
    """A frozen encoder-only backbone: 2 steps change only the classifier; its features are the
    up-cast concatenation of Pointcept's linear-probing recipes (the fixture's); analyze runs."""
    run = tmp_path / "lin"
    base = tiny_overrides(small_caches, run, **{"train.init_from": encoder_ckpt, "train.max_steps": 2,
                                                "train.eval_every": 0, "data.point_max": 3000})
    cfg = load_config(CFG, base + _overrides(_case("m2_enc"), **{"model.enc_mode": "true",
                                                                  "model.freeze_backbone": "true",
                                                                  "data.label_set": "segment200"}))
    trainer = Trainer(cfg)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    after = load_checkpoint(run / "last.pth")["model"]
    assert all(torch.equal(after[k], v) for k, v in before.items() if k.startswith("backbone."))
    assert not torch.equal(after["head.fc.weight"], before["head.fc.weight"])
    model, _ = load_segmentor(run / "last.pth")
    case = _case("m2_enc")
    model.backbone.pooling_perms = [list(p) for p in case["pooling_perms"]]
    x = case["inputs"]
    with torch.no_grad():
        feat = model(x["grid_coord"], x["batch"], x["feat"], x["coord"])["feat"]
    assert feat.shape[1] == 72 and (feat - case["feat"]).abs().max() <= 1e-4 * (1 + case["feat"].abs().max())
    assert analyze_cli.main(["--ckpt", str(run / "last.pth"), "--out", str(tmp_path / "nc"),
                             f"data.root={small_caches}", "train.progress=false"]) == 0


@pytest.mark.parametrize("recipe, cfg_name, encoder_only", [
    ("sonata_ft", "scannet200_sonata_ft", False),
    ("sonata_encoder", "scannet200_sonata_ft", True),
    ("sonata_encoder", "scannet200_sonata_lin", True),
    ("utonia_ft", "scannet200_utonia_ft", False),
    ("utonia_encoder", "scannet200_utonia_ft", True),
])
def test_published_recipes_map_one_to_one(recipe, cfg_name, encoder_only) -> None:
    """Every tensor name and shape of Pointcept's full-size recipes (read off its code) lands on the
    network the pcseg config builds, and the encoder-only files cover its whole encoder."""
    keys = json.loads((FIXTURES / "keys.json").read_text())[recipe]
    model = build_model_from_cfg(load_config(REPO / "configs" / f"{cfg_name}.yaml"))
    buffers = dict(model.named_buffers())
    src = {}
    for name, shape in keys.items():
        if name.endswith("mask_token"):
            continue  # left out by the layout reader (see test_pretraining_checkpoint_...)
        prefix = "" if recipe.endswith("_ft") else "backbone."
        mine = buffers.get(pointcept_to_pcseg_name(prefix + name) or "")
        src[prefix + name] = mine if mine is not None else torch.zeros(()).expand(*shape)
    mapped = convert_state_dict(src, model, encoder_only=encoder_only)
    target = [k for k in model.state_dict() if not encoder_only or k.startswith(ENCODER_PREFIXES)]
    assert sorted(mapped) == sorted(target)
