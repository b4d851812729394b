"""The spconv CPU shim: needed (backward fails without it) and numerically right (dense reference)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pcseg.models  # noqa: F401  (installs the shim)
import spconv.pytorch as spconv
import spconv.pytorch.cppcore as cppcore
import spconv.pytorch.ops as ops
from pcseg.models import spconv_compat
from spconv.core import ConvAlgo

GRID = 6  # tiny dense grid; even so that stride 2 divides it
C_IN, C_MID = 3, 4
NATIVE = ConvAlgo.Native


def _sparse_input(seed: int = 0, dtype: torch.dtype = torch.float64):
    g = torch.Generator().manual_seed(seed)
    coords = torch.unique(torch.randint(0, GRID, (30, 3), generator=g), dim=0)
    feats = torch.randn(coords.shape[0], C_IN, generator=g, dtype=dtype)
    indices = torch.cat([torch.zeros(len(coords), 1, dtype=torch.long), coords], 1).int()
    return coords, feats, indices


def _dense(feats: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Scatter sparse rows into a (1, C, G, G, G) volume; differentiable in ``feats``."""
    d = feats.new_zeros(GRID, GRID, GRID, feats.shape[1])
    d = d.index_put(tuple(coords.T), feats)
    return d.permute(3, 0, 1, 2).unsqueeze(0)


def _at(volume: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    return volume[0][:, coords[:, 0], coords[:, 1], coords[:, 2]].T


def _krsc_to_oidhw(w: torch.Tensor) -> torch.Tensor:
    """spconv stores (out, kD, kH, kW, in); torch conv3d wants (out, in, kD, kH, kW)."""
    return w.permute(0, 4, 1, 2, 3)


def _make_layers(kind: str) -> tuple[nn.Module, ...]:
    torch.manual_seed(1)
    if kind == "subm":
        return (spconv.SubMConv3d(C_IN, C_MID, 3, padding=1, bias=False, algo=NATIVE).double(),)
    down = spconv.SparseConv3d(C_IN, C_MID, 2, stride=2, bias=False, indice_key="k", algo=NATIVE)
    if kind == "down":
        return (down.double(),)
    inv = spconv.SparseInverseConv3d(C_MID, C_IN, 2, bias=False, indice_key="k", algo=NATIVE)
    return down.double(), inv.double()


def _sparse_forward(layers, feats, indices, weights):
    """Run the spconv layers with the given weights; returns (features, output indices)."""
    x = spconv.SparseConvTensor(feats, indices, [GRID] * 3, 1)
    for layer, w in zip(layers, weights):
        x = torch.func.functional_call(layer, {"weight": w}, (x,))
    return x.features, x.indices


def _dense_forward(kind, feats, coords, weights, out_coords):
    """Brute-force reference on the dense grid, read back at the sparse output sites."""
    vol = _dense(feats, coords)
    if kind == "subm":
        # Inactive sites hold zeros, so a dense conv equals the submanifold conv on active sites.
        return _at(F.conv3d(vol, _krsc_to_oidhw(weights[0]), padding=1), out_coords)
    y = F.conv3d(vol, _krsc_to_oidhw(weights[0]), stride=2)
    if kind == "down":
        return _at(y, out_coords)
    # Inverse conv = transpose of the strided conv, read back on the original sites.
    w_t = weights[1].permute(4, 0, 1, 2, 3)  # (in, out, kD, kH, kW)
    return _at(F.conv_transpose3d(y, w_t, stride=2), out_coords)


def test_install_is_idempotent_and_reaches_ops() -> None:
    spconv_compat.install()
    spconv_compat.install()
    assert spconv_compat.is_installed()
    assert ops.get_current_stream is cppcore.get_current_stream
    if not torch.cuda.is_available():
        assert ops.get_current_stream() == 0


def test_conv_algo_by_device() -> None:
    assert spconv_compat.conv_algo("cpu") is ConvAlgo.Native
    assert spconv_compat.conv_algo(torch.device("cpu")) is ConvAlgo.Native
    assert spconv_compat.conv_algo("cuda") is None


def test_set_conv_algo_switches_every_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    model = spconv.SparseSequential(
        spconv.SubMConv3d(3, 4, 5, bias=False, indice_key="s5", algo=NATIVE),
        spconv.SubMConv3d(4, 4, 3, bias=False, indice_key="s3", algo=NATIVE),
        spconv.SparseConv3d(4, 4, 2, stride=2, bias=False, indice_key="d", algo=NATIVE),
        spconv.SparseInverseConv3d(4, 4, 2, bias=False, indice_key="d", algo=NATIVE),
    )
    # Pretend to be a GPU build so the GPU branch is exercised on this machine.
    monkeypatch.setattr(spconv_compat, "CPU_ONLY_BUILD", False)
    spconv_compat.set_conv_algo(model, "cuda")
    algos = [m.algo for m in model]
    # 125 kernel offsets exceed spconv's implicit-GEMM limit, so that layer stays Native.
    assert algos == [NATIVE] + [ConvAlgo.MaskImplicitGemm] * 3
    spconv_compat.set_conv_algo(model, "cpu")
    assert all(m.algo is NATIVE for m in model)


@pytest.mark.parametrize("kind", ["subm", "down", "inverse"])
def test_backward_matches_dense_reference(kind: str) -> None:
    coords, feats, indices = _sparse_input()
    layers = _make_layers(kind)
    weights = [l.weight.detach().clone().requires_grad_(True) for l in layers]
    f_sp = feats.clone().requires_grad_(True)
    out_sp, out_idx = _sparse_forward(layers, f_sp, indices, weights)
    out_coords = out_idx[:, 1:].long()
    if kind == "inverse":
        assert torch.equal(out_idx, indices)  # the inverse conv restores the input sites

    f_d = feats.clone().requires_grad_(True)
    w_d = [w.detach().clone().requires_grad_(True) for w in weights]
    out_d = _dense_forward(kind, f_d, coords, w_d, out_coords)
    torch.testing.assert_close(out_sp, out_d, rtol=1e-10, atol=1e-10)

    probe = torch.randn(out_sp.shape, dtype=out_sp.dtype, generator=torch.Generator().manual_seed(2))
    (out_sp * probe).sum().backward()
    (out_d * probe).sum().backward()
    torch.testing.assert_close(f_sp.grad, f_d.grad, rtol=1e-10, atol=1e-10)
    for ws, wd in zip(weights, w_d):
        torch.testing.assert_close(ws.grad, wd.grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["subm", "down", "inverse"])
def test_backward_matches_finite_differences(kind: str) -> None:
    _, feats, indices = _sparse_input(seed=3)
    feats = feats[:12]
    indices = indices[:12]
    layers = _make_layers(kind)
    weights = tuple(l.weight.detach().clone().requires_grad_(True) for l in layers)
    f = feats.clone().requires_grad_(True)

    def fn(f_: torch.Tensor, *ws: torch.Tensor) -> torch.Tensor:
        return _sparse_forward(layers, f_, indices, ws)[0]

    assert torch.autograd.gradcheck(fn, (f, *weights), eps=1e-6, atol=1e-6)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the failure only exists without CUDA")
def test_backward_fails_without_the_shim() -> None:
    _, feats, indices = _sparse_input(dtype=torch.float32)
    layer = spconv.SubMConv3d(C_IN, C_MID, 3, padding=1, bias=False, algo=NATIVE)
    x = spconv.SparseConvTensor(feats.requires_grad_(True), indices, [GRID] * 3, 1)
    spconv_compat.uninstall()
    try:
        assert not spconv_compat.is_installed()
        out = layer(x)  # spconv's CPU forward passes stream 0 itself
        with pytest.raises((AssertionError, RuntimeError), match="CUDA"):
            out.features.sum().backward()
    finally:
        spconv_compat.install()
    assert spconv_compat.is_installed()
    layer(x).features.sum().backward()
    assert x.features.grad is not None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scatter_add_rows_matches_index_add(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(4)
    out = torch.randn(50, 8, generator=g, dtype=dtype)
    inp = torch.randn(40, 8, generator=g, dtype=dtype)  # spare rows beyond len(inds) are ignored
    inds = torch.randint(0, 50, (30,), generator=g, dtype=torch.int32)  # with repeats
    expected = out.clone().index_add_(0, inds.long(), inp[:30])
    to_tv = cppcore.torch_tensor_to_tv
    spconv_compat.scatter_add_rows(to_tv(out), to_tv(inp), to_tv(inds))
    torch.testing.assert_close(out, expected)


def test_native_conv_is_exact_and_repeatable() -> None:
    """spconv's own CPU scatter races between OpenMP threads; the routed one must not."""
    assert ops.SpconvOps.scatter_add_cpu is spconv_compat.scatter_add_rows  # routed by install()
    g = torch.Generator().manual_seed(5)
    coords = torch.unique(torch.randint(0, 16, (1500, 3), generator=g), dim=0)
    idx = torch.cat([torch.zeros(len(coords), 1, dtype=torch.long), coords], 1).int()
    feats = torch.randn(len(coords), 8, generator=g, dtype=torch.float64)
    torch.manual_seed(6)
    layer = spconv.SubMConv3d(8, 8, 3, padding=1, bias=False, algo=NATIVE).double()
    w = _krsc_to_oidhw(layer.weight.detach())
    vol = feats.new_zeros(16, 16, 16, 8).index_put(tuple(coords.T), feats)
    ref = F.conv3d(vol.permute(3, 0, 1, 2).unsqueeze(0), w, padding=1)[0]
    ref = ref[:, coords[:, 0], coords[:, 1], coords[:, 2]].T
    for _ in range(10):
        out = layer(spconv.SparseConvTensor(feats, idx, [16] * 3, 1)).features
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
