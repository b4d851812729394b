"""python -m pcseg.convert: a Pointcept PTv3 checkpoint becomes an ordinary pcseg checkpoint whose
logits equal Pointcept's (golden fixture), and every way a checkpoint can fail to fit is refused
with the names and nothing written."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from pcseg import convert as convert_cli
from pcseg.engine.checkpoint import load_checkpoint
from pcseg.engine.load import load_segmentor
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "ptv3"
CFG = REPO / "configs" / "synthetic_ptv3.yaml"


def _case(name: str = "case_main_default") -> dict:
    return torch.load(FIXTURES / f"{name}.pt", weights_only=True)


def _overrides(case: dict) -> list[str]:
    """The fixture's Pointcept constructor arguments as pcseg config overrides."""
    c = case["model_cfg"]
    keys = ("order", "stride", "enc_depths", "enc_channels", "enc_num_head", "enc_patch_size", "dec_depths",
            "dec_channels", "dec_num_head", "dec_patch_size", "mlp_ratio", "qkv_bias", "pre_norm")
    out = [f"model.{k}={json.dumps(list(c[k]) if isinstance(c[k], tuple) else c[k])}" for k in keys]
    # the fixtures come from Pointcept's non-flash attention path
    return out + ["model.shuffle_orders=false", "model.patch_rule=non_flash", "model.in_channels=6",
                  "data.label_set=segment20"]


def _pointcept_checkpoint(tmp_path: Path, case: dict, prefix: str = "module.") -> tuple[Path, torch.Tensor]:
    """The fixture's weights as Pointcept writes them, with a 20-class head (pcseg's label sets have
    200 or 20 classes); the expected logits follow from the fixture's backbone features."""
    g = torch.Generator().manual_seed(0)
    sd = {k: v for k, v in case["state_dict"].items() if not k.startswith("seg_head.")}
    w = torch.randn(20, case["feat"].shape[1], generator=g)
    b = torch.randn(20, generator=g) * 0.1
    sd.update({"seg_head.weight": w, "seg_head.bias": b})
    path = tmp_path / "model_best.pth"
    torch.save({"epoch": 17, "state_dict": {prefix + k: v for k, v in sd.items()}, "best_metric_value": 0.3}, path)
    return path, case["feat"] @ w.T + b


def test_converted_checkpoint_reproduces_pointcept_logits(tmp_path: Path, capsys) -> None:
    case = _case()
    src, expected = _pointcept_checkpoint(tmp_path, case)
    out = tmp_path / "converted.pth"
    assert convert_cli.main([str(src), str(out), "--cfg", str(CFG), *_overrides(case)]) == 0
    printed = capsys.readouterr().out
    assert "epoch 17" in printed and "['color', 'normal']" in printed
    model, cfg = load_segmentor(out)
    assert cfg.model.name == "ptv3" and load_checkpoint(out)["converted_from"]["epoch"] == 17
    # Pointcept's eval-mode pooling permutes its order list at random; the fixture recorded the draws
    model.backbone.pooling_perms = [list(p) for p in case["pooling_perms"]]
    x = case["inputs"]
    with torch.no_grad():
        logits = model(x["grid_coord"], x["batch"], x["feat"])["logits"]
    tol = 1e-4 * (1 + expected.abs().max())
    assert (logits - expected).abs().max() <= tol


def test_unmatched_names_are_listed_and_nothing_is_written(tmp_path: Path, capsys) -> None:
    case = _case()
    src, _ = _pointcept_checkpoint(tmp_path, case, prefix="")
    ckpt = torch.load(src, weights_only=True)
    sd = ckpt["state_dict"]
    sd["backbone.extra.weight"] = torch.zeros(3)
    del sd["backbone.enc.enc0.block0.attn.qkv.bias"]
    torch.save(ckpt, src)
    out = tmp_path / "converted.pth"
    assert convert_cli.main([str(src), str(out), "--cfg", str(CFG), *_overrides(case)]) == 2
    err = capsys.readouterr().err
    assert "backbone.extra.weight" in err and "attn.qkv.bias" in err and "nothing was written" in err
    assert not out.exists() and not list(tmp_path.glob("converted*"))


def test_config_that_differs_from_the_weights_says_which_overrides(tmp_path: Path, capsys) -> None:
    case = _case()
    src, _ = _pointcept_checkpoint(tmp_path, case)
    out = tmp_path / "converted.pth"
    args = [a for a in _overrides(case) if not a.startswith("model.enc_channels")]
    assert convert_cli.main([str(src), str(out), "--cfg", str(CFG), *args]) == 2
    err = capsys.readouterr().err
    assert "model.enc_channels=[8, 8, 8, 16, 16]" in err and not out.exists()
    assert convert_cli.main([str(src), str(out), "--cfg", str(REPO / "configs" / "synthetic_base.yaml")]) == 2
    assert "model.name=ptv3" in capsys.readouterr().err


def test_not_a_checkpoint(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a pickle")
    assert convert_cli.main([str(bad), str(tmp_path / "o.pth"), "--cfg", str(CFG)]) == 2
    assert "cannot be read" in capsys.readouterr().err


def test_tensor_of_a_stage_the_config_lacks_is_listed(tmp_path: Path, capsys) -> None:
    case = _case()
    src, _ = _pointcept_checkpoint(tmp_path, case)
    ckpt = torch.load(src)
    sd = ckpt["state_dict"]
    stray = ["module.backbone.enc.enc9.down.proj.weight", "module.backbone.enc.enc9.block0.attn.qkv.bias"]
    for name in stray:  # the fixture network has 5 stages (enc0..enc4)
        sd[name] = torch.zeros(4, 4)
    torch.save(ckpt, src)
    out = tmp_path / "converted.pth"
    assert convert_cli.main([str(src), str(out), "--cfg", str(CFG), *_overrides(case)]) == 2
    err = capsys.readouterr().err
    assert "unmatched source names (2)" in err and all(name in err for name in stray), err
    assert "nothing was written" in err and not out.exists() and not list(tmp_path.glob("converted*"))


def test_stage_without_its_down_projection_is_named(tmp_path: Path, capsys) -> None:
    case = _case()
    src, _ = _pointcept_checkpoint(tmp_path, case, prefix="")
    ckpt = torch.load(src)
    del ckpt["state_dict"]["backbone.enc.enc2.down.proj.weight"]
    torch.save(ckpt, src)
    out = tmp_path / "converted.pth"
    assert convert_cli.main([str(src), str(out), "--cfg", str(CFG), *_overrides(case)]) == 2
    err = capsys.readouterr().err
    assert "missing target names (1)" in err and "backbone.enc.2.down.proj.weight" in err
    assert "nothing was written" in err and not out.exists()


def test_an_output_path_that_cannot_be_a_file_is_refused_first(tmp_path: Path, capsys) -> None:
    src, _ = _pointcept_checkpoint(tmp_path, _case())
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in (tmp_path, afile / "o.pth"):
        assert convert_cli.main([str(src), str(out), "--cfg", str(CFG)]) == 2
        err = capsys.readouterr().err
        assert "OUT" in err and "Traceback" not in err, err
