"""SpUNet / Segmentor on CPU: shapes, row order, gradients, presets and algo-independent weights."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import spconv.constants
from pcseg.models import MODELS, Segmentor, SpUNet, build_model, set_conv_algo, spconv_compat
from pcseg.models.spunet import BN_EPS, BN_MOMENTUM, SPUNET_PRESETS
from spconv.core import ConvAlgo
from spconv.pytorch.conv import SparseConvolution

NUM_CLASSES = 7
IN_CH = 9


def _scene(seed: int, n: int = 2000, extent: int = 37) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique random voxels in an odd-sized box (so the stride padding matters) + features."""
    g = torch.Generator().manual_seed(seed)
    coords = torch.unique(torch.randint(0, extent, (n, 3), generator=g), dim=0)
    coords[-1] = extent  # a voxel on the far edge must survive all four stride-2 levels
    coords = torch.unique(coords, dim=0)
    return coords, torch.randn(len(coords), IN_CH, generator=g)


def _batch(*scenes: tuple[torch.Tensor, torch.Tensor]):
    coords = torch.cat([c for c, _ in scenes])
    feats = torch.cat([f for _, f in scenes])
    batch = torch.cat([torch.full((len(c),), i, dtype=torch.long) for i, (c, _) in enumerate(scenes)])
    return coords, batch, feats


def _tiny(seed: int = 0) -> Segmentor:
    torch.manual_seed(seed)
    return build_model("spunet", NUM_CLASSES, in_channels=IN_CH, preset="tiny")


@pytest.fixture(scope="module")
def tiny_model() -> Segmentor:
    return _tiny()


@pytest.mark.parametrize("batch_size", [1, 2])
def test_forward_shapes(tiny_model: Segmentor, batch_size: int) -> None:
    coords, batch, feats = _batch(*[_scene(s) for s in range(batch_size)])
    out = tiny_model(coords, batch, feats)
    n = coords.shape[0]
    assert set(out) == {"feat", "logits"}
    assert out["feat"].shape == (n, SPUNET_PRESETS["tiny"]["channels"][-1])
    assert out["logits"].shape == (n, NUM_CLASSES)
    assert torch.isfinite(out["logits"]).all()


def test_spatial_shape_is_padded_to_the_total_stride() -> None:
    coords = torch.tensor([[0, 0, 0], [16, 31, 33]])
    assert SpUNet.spatial_shape(coords) == [32, 32, 48]


def test_scene_output_does_not_depend_on_batch_mates(tiny_model: Segmentor) -> None:
    tiny_model.eval()
    a, b = _scene(1), _scene(2, n=2500)
    with torch.no_grad():
        alone = tiny_model(*_batch(a))
        together = tiny_model(*_batch(a, b))
    n_a = a[0].shape[0]
    for key in ("feat", "logits"):
        torch.testing.assert_close(together[key][:n_a], alone[key], rtol=1e-5, atol=1e-5)


def test_output_rows_follow_input_order(tiny_model: Segmentor) -> None:
    tiny_model.eval()
    coords, feats = _scene(3)
    perm = torch.randperm(len(coords), generator=torch.Generator().manual_seed(0))
    zeros = torch.zeros(len(coords), dtype=torch.long)
    with torch.no_grad():
        ref = tiny_model(coords, zeros, feats)["feat"]
        shuffled = tiny_model(coords[perm], zeros, feats[perm])["feat"]
    torch.testing.assert_close(shuffled, ref[perm], rtol=1e-5, atol=1e-5)


def test_backward_reaches_every_parameter() -> None:
    model = _tiny(seed=1).train()
    out = model(*_batch(_scene(4), _scene(5)))
    loss = nn.functional.cross_entropy(
        out["logits"], torch.randint(0, NUM_CLASSES, (out["logits"].shape[0],))
    )
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert any(p.grad.abs().sum() > 0 for p in model.backbone.stem.parameters())


def test_no_conv_bias_where_bn_follows() -> None:
    backbone = _tiny().backbone
    convs = [m for m in backbone.modules() if isinstance(m, SparseConvolution)]
    bns = [m for m in backbone.modules() if isinstance(m, nn.BatchNorm1d)]
    assert convs and len(convs) == len(bns)  # every conv in the backbone has its own BN
    assert all(c.bias is None for c in convs)
    assert all(b.eps == BN_EPS and b.momentum == BN_MOMENTUM for b in bns)
    assert BN_EPS == 1e-3 and BN_MOMENTUM == 0.01


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("preset", "low", "high"),
    [
        ("minkunet34c", 37.5e6, 38.3e6),
        ("minkunet18a", 15.2e6, 15.8e6),
        ("minkunet14a", 7.8e6, 8.3e6),
        ("tiny", 0.3e6, 0.6e6),
    ],
)
def test_preset_parameter_counts(preset: str, low: float, high: float) -> None:
    backbone = SpUNet(in_channels=IN_CH, **SPUNET_PRESETS[preset])
    assert low <= _n_params(backbone) <= high


def test_widen_in_down_variant_is_larger() -> None:
    kwargs = dict(in_channels=IN_CH, **SPUNET_PRESETS["minkunet34c"])
    assert 39.0e6 <= _n_params(SpUNet(widen_in_down=True, **kwargs)) <= 39.4e6


def test_state_dict_is_interchangeable_between_algos(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model prepared for a GPU build has the same state-dict names, shapes and weight layout
    as a CPU one, so checkpoints move between devices. (That the GPU kernels then compute the
    same numbers is spconv's contract; it needs a GPU to check.)"""
    # Weight layout in spconv 2.3 is KRSC for every algorithm; the claim below rests on it.
    assert spconv.constants.ALL_WEIGHT_IS_KRSC
    native = _tiny(seed=2)
    assert all(
        m.algo is ConvAlgo.Native for m in native.modules() if isinstance(m, SparseConvolution)
    )
    buf = io.BytesIO()
    torch.save(native.state_dict(), buf)

    # Emulate a model prepared for a GPU build: spconv's default (implicit GEMM) algos.
    gpu_like = _tiny(seed=3)
    monkeypatch.setattr(spconv_compat, "CPU_ONLY_BUILD", False)
    set_conv_algo(gpu_like, "cuda")
    assert any(
        m.algo is ConvAlgo.MaskImplicitGemm
        for m in gpu_like.modules()
        if isinstance(m, SparseConvolution)
    )
    sd_native, sd_gpu = native.state_dict(), gpu_like.state_dict()
    assert list(sd_native) == list(sd_gpu)
    assert all(sd_native[k].shape == sd_gpu[k].shape for k in sd_native)

    buf.seek(0)
    gpu_like.load_state_dict(torch.load(buf, weights_only=True), strict=True)
    for k, v in gpu_like.state_dict().items():
        assert torch.equal(v, sd_native[k]), k



def test_build_model_rejects_unknown_names() -> None:
    with pytest.raises(KeyError, match="spunet"):
        build_model("pointnet", NUM_CLASSES)
    with pytest.raises(KeyError, match="minkunet34c"):
        build_model("spunet", NUM_CLASSES, preset="minkunet999")
    assert MODELS["spunet"] is SpUNet


def test_build_model_overrides_win_over_preset() -> None:
    model = build_model(
        "spunet", NUM_CLASSES, preset="tiny", base_channels=8, layers=(1, 1, 1, 1, 1, 1, 1, 2)
    )
    assert model.backbone.base_channels == 8
    assert model.backbone.layers[-1] == 2
    assert model.head.fc.out_features == NUM_CLASSES
    assert model.feat_dim == model.backbone.out_channels == 16


def test_every_backbone_key_is_a_config_field() -> None:
    """PTV3_KEYS / SPUNET_KEYS are the source of truth; the config schema must offer each key."""
    from dataclasses import fields

    from pcseg.engine.config import ModelConfig
    from pcseg.models.from_config import BACKBONE_KEYS

    names = {f.name for f in fields(ModelConfig)}
    assert not {k for keys in BACKBONE_KEYS.values() for k in keys} - names
