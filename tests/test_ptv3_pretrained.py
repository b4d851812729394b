"""PT-v3m2 (Sonata, Concerto) and PT-v3m3 (Utonia) against golden outputs of Pointcept's own code
(tests/fixtures/ptv3m2m3, see its README): the same weights, inputs and pooling draws give the
same features and logits."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pcseg.models import build_model
from pcseg.models.pointcept import convert_state_dict, infer_ptv3_spec, ptv3_kwargs_from_config

FIXTURES = Path(__file__).parent / "fixtures" / "ptv3m2m3"
GENERATION = {"m2_seg": "v3m2", "m2_enc": "v3m2", "m3_seg": "v3m3"}


def _load(name: str) -> dict:
    return torch.load(FIXTURES / f"{name}.pt", weights_only=True)


def _model(case: dict, generation: str, state: dict | None = None, **extra) -> torch.nn.Module:
    cfg = case["model_cfg"]
    kwargs = {**ptv3_kwargs_from_config(cfg, generation=generation), **extra}
    name = {"v3m2": "ptv3m2", "v3m3": "ptv3m3"}[generation]
    model = build_model(name, case["num_classes"], in_channels=cfg["in_channels"], device="cpu", **kwargs).eval()
    model.load_state_dict(convert_state_dict(case["state_dict"] if state is None else state, model))
    return model


def _run(model: torch.nn.Module, case: dict, perms: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    x = case["inputs"]
    perms = case["pooling_perms"] if perms is None else perms
    model.backbone.pooling_perms = [None if p is None else list(p) for p in perms]
    with torch.no_grad():
        out = model(x["grid_coord"], x["batch"], x["feat"], x["coord"])
    return out["feat"], out["logits"]


def _tol(logits: torch.Tensor) -> float:
    return 1e-4 * (1 + logits.abs().max().item())


@pytest.mark.parametrize("name", sorted(GENERATION))
def test_matches_pointcept(name: str) -> None:
    case = _load(name)
    feat, logits = _run(_model(case, GENERATION[name]), case)
    assert feat.shape == case["feat"].shape
    assert (feat - case["feat"]).abs().max() <= _tol(case["feat"])
    assert (logits - case["logits"]).abs().max() <= _tol(case["logits"])


def test_decoder_without_rotary_encoding() -> None:
    """dec_rope_enable=False: the decoder's attention has no rotation (Pointcept's m3 option)."""
    case, variant = _load("m3_seg"), _load("m3_dec_norope")
    state = {k: v for k, v in case["state_dict"].items() if not (".dec." in k and k.endswith("rope.inv_freq"))}
    model = _model(case, "v3m3", state, dec_rope_enable=False)
    assert all(b.attn.rope is None for stage in model.backbone.dec for b in stage.blocks)
    _, logits = _run(model, case, variant["pooling_perms"])
    assert (logits - variant["logits"]).abs().max() <= _tol(variant["logits"])


def test_pooled_levels_are_serialized_anew() -> None:
    """Each pooled level's depth and curve orders are Pointcept's (re-serialized, then permuted)."""
    from pcseg.models.ptv3_grid import grid_pool_level
    from pcseg.models.ptv3_level import Level
    from pcseg.models.serialization import serialize

    case = _load("m2_seg")
    x, orders = case["inputs"], tuple(case["model_cfg"]["order"])
    level = Level(x["grid_coord"], x["batch"], serialize(x["grid_coord"], x["batch"], orders), 2, "non_flash",
                  orders=orders)
    for perm, ref in zip(case["pooling_perms"], case["stage_serialization"]):
        level = grid_pool_level(level, 2, perm)
        assert level.ser.depth == ref["depth"]
        # Same cells (rows may come in another order): compare the curve order as coordinates.
        mine = torch.stack([level.grid_coord[o] for o in level.ser.order])
        theirs = torch.stack([ref["grid_coord"][o] for o in ref["order"]])
        assert torch.equal(mine, theirs)


def test_pooling_permutations_matter() -> None:
    """The recorded draws are needed: identity permutations change the logits (the test can fail)."""
    case = _load("m2_seg")
    _, logits = _run(_model(case, "v3m2"), case, [None] * 4)
    assert (logits - case["logits"]).abs().max() > 100 * _tol(case["logits"])


def test_rotary_encoding_needs_coordinates() -> None:
    case = _load("m3_seg")
    model = _model(case, "v3m3")
    x = case["inputs"]
    with pytest.raises(ValueError, match="coord"):
        model(x["grid_coord"], x["batch"], x["feat"])


def test_spec_reads_generation_widths_and_rope_base() -> None:
    m2, enc, m3 = _load("m2_seg"), _load("m2_enc"), _load("m3_seg")
    s2 = infer_ptv3_spec(m2["state_dict"])
    assert (s2.generation, s2.model_name, s2.in_channels, s2.num_classes) == ("v3m2", "ptv3m2", 9, 13)
    assert s2.backbone["enc_channels"] == tuple(m2["model_cfg"]["enc_channels"]) and s2.layer_scale
    assert s2.backbone["dec_channels"] == tuple(m2["model_cfg"]["dec_channels"])
    s_enc = infer_ptv3_spec({k: v for k, v in enc["state_dict"].items() if not k.startswith("seg_head.")})
    assert s_enc.num_classes is None and "dec_channels" not in s_enc.backbone
    s3 = infer_ptv3_spec(m3["state_dict"])
    assert s3.generation == "v3m3" and s3.backbone["rope_base"] == pytest.approx(10.0)


def test_wrong_rope_base_is_refused() -> None:
    """The frequency buffers are not loaded but checked: weights made with another base fail."""
    case = _load("m3_seg")
    cfg = case["model_cfg"]
    model = build_model("ptv3m3", 13, in_channels=9, **{**ptv3_kwargs_from_config(cfg, generation="v3m3"),
                                                          "rope_base": 10000.0})
    with pytest.raises(ValueError, match="rope_base"):
        convert_state_dict(case["state_dict"], model)


def test_options_of_another_generation_are_refused() -> None:
    with pytest.raises(ValueError, match="model.name=ptv3m3"):
        build_model("ptv3m2", 13, preset="tiny", rope_base=10.0)
    with pytest.raises(ValueError, match="ptv3m2"):
        build_model("ptv3", 13, preset="tiny", layer_scale=1.0)
    with pytest.raises(ValueError, match="divisible by 6"):
        build_model("ptv3m3", 13, preset="tiny", enc_channels=[16, 24, 36])
