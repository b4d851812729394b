"""PTv3: Pointcept's PT-v3m1 function (golden fixtures), checkpoint conversion, CPU and AMP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import spconv.pytorch as spconv
from pcseg.models import PTv3, build_model, spconv_compat
from pcseg.models.pointcept import (
    convert_state_dict,
    infer_ptv3_spec,
    ptv3_kwargs_from_config,
)
from pcseg.models.ptv3 import PTV3_PRESETS
from pcseg.models.ptv3_level import Level, pool_level
from pcseg.models.ptv3_attention import patch_layout
from pcseg.models.serialization import serialize
from spconv.core import ConvAlgo

FIXTURES = Path(__file__).parent / "fixtures" / "ptv3"
CASES = {"main_default": "main", "main_orders": "main", "v151": "v1.5.1"}


def _load(name: str) -> dict:
    return torch.load(FIXTURES / f"{name}.pt", weights_only=True)


def _model_for(case: dict, compat: str, cfg: dict | None = None, **extra) -> torch.nn.Module:
    cfg = case["model_cfg"] if cfg is None else cfg
    kwargs = ptv3_kwargs_from_config(cfg, compat)
    kwargs.update(extra)
    model = build_model(
        "ptv3", case["num_classes"], in_channels=cfg["in_channels"], device="cpu", **kwargs
    ).eval()
    model.load_state_dict(convert_state_dict(case["state_dict"], model))
    return model


def _run(model: torch.nn.Module, case: dict, perms: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and logits through ``Segmentor.forward``, replaying Pointcept's pooling draws."""
    x = case["inputs"]
    model.backbone.pooling_perms = [list(p) for p in perms]
    with torch.no_grad():
        out = model(x["grid_coord"], x["batch"], x["feat"])
    return out["feat"], out["logits"]


def _tol(logits: torch.Tensor) -> float:
    return 1e-4 * (1 + logits.abs().max().item())


def _scenes(sizes: list[int], extent: int = 24, seed: int = 0):
    """Scenes of unique random voxels (grid_coord, batch, feat), rows shuffled within scenes."""
    g = torch.Generator().manual_seed(seed)
    coords, batch = [], []
    for i, n in enumerate(sizes):
        c = torch.unique(torch.randint(0, extent, (n, 3), generator=g), dim=0)
        coords.append(c[torch.randperm(len(c), generator=g)])
        batch.append(torch.full((len(c),), i))
    gc = torch.cat(coords)
    return gc, torch.cat(batch), torch.randn(len(gc), 6, generator=g)


def _tiny(**overrides) -> PTv3:
    torch.manual_seed(0)
    kwargs = dict(PTV3_PRESETS["tiny"], **overrides)
    return PTv3(6, "cpu", **kwargs)


# ---------------------------------------------------------------- golden fixtures


@pytest.mark.parametrize("name", sorted(CASES))
def test_logits_match_pointcept(name: str) -> None:
    case = _load(f"case_{name}")
    model = _model_for(case, CASES[name])
    feat, logits = _run(model, case, case["pooling_perms"])
    diff = (logits - case["logits"]).abs().max().item()
    print(f"case_{name}: max|dlogits| = {diff:.3g}, max|dfeat| = "
          f"{(feat - case['feat']).abs().max().item():.3g}")
    assert diff <= _tol(case["logits"])


def test_decoder_reuses_encoder_patches() -> None:
    """Smaller decoder patches cut the encoder's padded layout, as in Pointcept."""
    variant = _load("variant_main_dec_patch")
    case = _load(str(variant.get("base_case", "case_main_orders")).removesuffix(".pt"))
    model = _model_for(case, "main", cfg=variant["model_cfg"])
    _, logits = _run(model, case, variant["pooling_perms"])
    assert (logits - variant["logits"]).abs().max().item() <= _tol(variant["logits"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_levels_match_pointcept(name: str) -> None:
    case = _load(f"case_{name}")
    x, ref = case["inputs"], case["serialization"]
    cfg = case["model_cfg"]
    ser = serialize(x["grid_coord"], x["batch"], cfg["order"], legacy_depth=CASES[name] != "main")
    assert ser.depth == ref["depth"]
    for key in ("code", "order", "inverse"):
        assert torch.equal(getattr(ser, key), ref[key]), key
    level = Level(x["grid_coord"], x["batch"], ser, 2, "non_flash")
    for stride, perm, st in zip(cfg["stride"], case["pooling_perms"], case["stage_serialization"]):
        level = pool_level(level, (stride - 1).bit_length(), perm)
        assert level.ser.depth == st["depth"]
        assert torch.equal(level.batch, st["batch"])
        assert torch.equal(level.ser.order, st["order"])
        assert torch.equal(level.parent_index, st["pooling_inverse"])


def test_compat_and_patch_rule_change_the_function() -> None:
    """The fixtures tell the variants apart, so each option is really exercised."""
    case = _load("case_v151")
    _, logits = _run(_model_for(case, "main"), case, case["pooling_perms"])
    assert (logits - case["logits"]).abs().max().item() > 0.1
    case = _load("case_main_default")  # deep levels hold scenes smaller than a patch
    _, logits = _run(_model_for(case, "main", patch_rule="flash"), case, case["pooling_perms"])
    assert (logits - case["logits"]).abs().max().item() > 0.1


def test_v152_depth_rule_matters_only_at_powers_of_two() -> None:
    """v1.5.2 differs from main only in the serialization depth: bit_length(max) vs (max + 1)."""
    for extent, same in ((20, True), (16, False)):  # max 19: depth 5 either way; max 15: 4 vs 5
        gc, batch, feat = _scenes([400, 300], extent=extent)
        assert int(gc.max()) == extent - 1
        outs = []
        for compat in ("main", "v1.5.2"):
            model = _tiny(compat=compat, order=("hilbert", "z")).eval()  # z ignores the depth
            with torch.no_grad():
                outs.append(model(gc, batch, feat))
        assert torch.equal(outs[0], outs[1]) == same


# ---------------------------------------------------------------- conversion


def test_convert_reports_every_problem() -> None:
    case = _load("case_main_default")
    model = _model_for(case, "main")
    src = dict(case["state_dict"])
    del src["backbone.enc.enc1.down.proj.weight"]
    src["backbone.enc.enc0.block0.attn.rpe.rpe_table"] = torch.zeros(3, 1)
    src["backbone.dec.dec0.block0.mlp.0.fc1.bias"] = torch.zeros(5)
    with pytest.raises(ValueError) as err:
        convert_state_dict(src, model)
    msg = str(err.value)
    assert "unmatched source names (1)" in msg and "attn.rpe.rpe_table" in msg
    assert "missing target names (1)" in msg and "backbone.enc.1.down.proj.weight" in msg
    assert "shape mismatches (1)" in msg and "dec.dec0.block0.mlp.0.fc1.bias (5,)" in msg


def test_convert_accepts_ddp_prefix_and_is_one_to_one() -> None:
    case = _load("case_main_orders")
    model = _model_for(case, "main")
    src = {f"module.{k}": v for k, v in case["state_dict"].items()}
    out = convert_state_dict(src, model)
    assert set(out) == set(model.state_dict())
    assert len(out) == len(src)
    src["module.seg_head.weight.extra"] = torch.zeros(1)
    with pytest.raises(ValueError, match="seg_head.weight.extra"):
        convert_state_dict(src, model)


@pytest.mark.parametrize("name", sorted(CASES))
def test_infer_spec_from_shapes(name: str) -> None:
    case = _load(f"case_{name}")
    cfg = case["model_cfg"]
    spec = infer_ptv3_spec(case["state_dict"])
    assert spec.in_channels == cfg["in_channels"]
    assert spec.num_classes == case["num_classes"]
    for key in ("enc_depths", "enc_channels", "dec_depths", "dec_channels"):
        assert spec.backbone[key] == tuple(cfg[key]), key
    assert spec.backbone["mlp_ratio"] == cfg["mlp_ratio"]
    assert spec.backbone["qkv_bias"] == cfg["qkv_bias"]
    assert len(spec.backbone["stride"]) == len(cfg["stride"])


@pytest.mark.parametrize("layout", ["main", "v151"])
def test_scannet200_checkpoint_layout(layout: str) -> None:
    path = FIXTURES / "keys_scannet200.json"
    shapes = json.loads(path.read_text())[layout]
    src = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    with torch.device("meta"):
        model = build_model("ptv3", 200, in_channels=6, preset="scannet200", device=None)
    assert set(convert_state_dict(src, model)) == set(model.state_dict())
    spec = infer_ptv3_spec(src)
    assert (spec.in_channels, spec.num_classes) == (6, 200)
    for key in ("enc_depths", "enc_channels", "dec_depths", "dec_channels", "mlp_ratio"):
        assert spec.backbone[key] == PTV3_PRESETS["scannet200"][key]


def test_config_mapping_rejects_unsupported_options() -> None:
    with pytest.raises(ValueError, match="enable_rpe"):
        ptv3_kwargs_from_config({"enable_rpe": True})
    with pytest.raises(ValueError, match="frobnicate"):
        ptv3_kwargs_from_config({"frobnicate": 1})
    assert ptv3_kwargs_from_config({"enable_flash": True, "order": "z"})["order"] == ("z",)


# ---------------------------------------------------------------- patches and behaviour


Patches = list[list[int]]


def _reference_patches(counts: list[int], p: int) -> tuple[Patches, Patches, list[int]]:
    """Pointcept's flash-path padding as a plain loop: full patches, short ones, positions' homes.

    Home = row of the position's own (first) slot in the flattened [full; short (padded)] output.
    """
    full, short, start = [], [], 0
    for n in counts:
        if 0 < n <= p:
            short.append(list(range(start, start + n)))
        elif n > p:
            # Slots past the end repeat the positions one patch earlier.
            padded = [i if i < n else i - p for i in range(n + (-n % p))]
            full += [[start + j for j in padded[i : i + p]] for i in range(0, len(padded), p)]
        start += n
    if any(len(q) == p for q in short):  # a scene of exactly p points is a full patch
        full_set = [q for q in short if len(q) == p]
        short = [q for q in short if len(q) < p]
        full = sorted(full + full_set, key=lambda q: q[0])
    width = max((len(q) for q in short), default=0)
    home: dict[int, int] = {}
    for r, patch in enumerate(full):
        for c, pos in enumerate(patch):
            home.setdefault(pos, r * p + c)
    for r, patch in enumerate(short):
        for c, pos in enumerate(patch):
            home[pos] = len(full) * p + r * width + c
    return full, short, [home[i] for i in range(start)]


@pytest.mark.parametrize(
    "counts,p", [([5, 100, 64, 1, 65], 16), ([7, 3], 8), ([40, 0, 9], 16), ([128, 64], 64)]
)
def test_patch_layout_matches_reference(counts: list[int], p: int) -> None:
    layout = patch_layout(torch.tensor(counts), p)
    full, short, home = _reference_patches(counts, p)
    assert layout.full.tolist() == full
    if short:
        assert [row[m].tolist() for row, m in zip(layout.short, layout.short_mask)] == short
    else:
        assert layout.short is None
    assert layout.home.tolist() == home


def test_scene_smaller_than_patch_and_independence() -> None:
    """Flash rule: a scene's output does not depend on the other scenes in the batch."""
    model = _tiny().eval()
    gc, batch, feat = _scenes([600, 12])  # 12 points: one patch, deeper levels 1-2 points
    with torch.no_grad():
        both = model(gc, batch, feat)
        for i in (0, 1):
            rows = batch == i
            alone = model(gc[rows], torch.zeros(int(rows.sum()), dtype=torch.long), feat[rows])
            torch.testing.assert_close(both[rows], alone, rtol=1e-5, atol=1e-5)
    # The non-flash rule shrinks every patch to the smallest scene, so scenes interact.
    model.patch_rule = "non_flash"
    with torch.no_grad():
        assert (model(gc, batch, feat) - both).abs().max() > 1e-3


def test_output_rows_follow_input_order() -> None:
    model = _tiny().eval()
    gc, batch, feat = _scenes([300, 200])
    perm = torch.randperm(len(gc), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model(gc, batch, feat)
        out_perm = model(gc[perm], batch[perm], feat[perm])
    torch.testing.assert_close(out_perm, out[perm], rtol=1e-5, atol=1e-5)


def test_orders_shuffle_only_in_training() -> None:
    gc, batch, feat = _scenes([400, 300])

    def run(model: PTv3, seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        with torch.no_grad():
            return model(gc, batch, feat)

    model = _tiny(drop_path=0.0).eval()
    ref = run(model, 0)
    assert torch.equal(run(model, 1), ref)
    assert torch.equal(model(gc, batch, feat, order_perms=[None] * 3), ref)
    model.pooling_perms = [[1, 0, 3, 2], [3, 2, 1, 0]]  # replayed draws override, in any mode
    replayed = model(gc, batch, feat, order_perms=[None, *model.pooling_perms])
    assert torch.equal(run(model, 0), replayed) and not torch.equal(replayed, ref)
    model.pooling_perms = None
    model.train()  # BN uses batch statistics, which are deterministic; only the orders vary
    assert not torch.allclose(run(model, 0), run(model, 1))
    model.shuffle_orders = False
    assert torch.equal(run(model, 0), run(model, 1))


def test_cpu_forward_backward_reaches_every_parameter() -> None:
    model = build_model("ptv3", 5, in_channels=6, preset="tiny", device="cpu").train()
    gc, batch, feat = _scenes([500, 40])
    out = model(gc, batch, feat)
    out["logits"].square().mean().backward()
    for name, p in model.named_parameters():
        # DDP (without find_unused_parameters) needs every parameter in the graph.
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.backbone.out_channels == PTV3_PRESETS["tiny"]["dec_channels"][0]


def test_cpu_autocast_bf16() -> None:
    model = _tiny().eval()
    gc, batch, feat = _scenes([300, 100])
    with torch.no_grad():
        ref = model(gc, batch, feat)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(gc, batch, feat)
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.1 * (1 + ref.abs().max())


def test_eval_conv_with_bias_on_cpu_needs_the_shim() -> None:
    """spconv refuses a biased conv on CPU in eval mode; the shim adds the bias as training does."""
    g = torch.Generator().manual_seed(0)
    coords = torch.unique(torch.randint(0, 8, (60, 3), generator=g), dim=0)
    idx = torch.cat([torch.zeros(len(coords), 1, dtype=torch.long), coords], 1).int()
    feat = torch.randn(len(coords), 4, generator=g)
    torch.manual_seed(0)
    conv = spconv.SubMConv3d(4, 5, 3, bias=True, algo=ConvAlgo.Native)
    torch.nn.init.normal_(conv.bias)

    def run() -> torch.Tensor:
        return conv(spconv.SparseConvTensor(feat, idx, [8, 8, 8], 1)).features

    conv.train()
    train_out = run()
    conv.eval()
    if not torch.cuda.is_available():  # with CUDA, spconv would not get this far on CPU either
        spconv_compat.uninstall()
        try:
            with pytest.raises(AssertionError, match="cpu don't support act and bias"):
                run()
        finally:
            spconv_compat.install()
    assert spconv_compat.is_installed()
    assert torch.equal(run(), train_out)
