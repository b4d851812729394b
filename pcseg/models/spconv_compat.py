"""The single place where spconv is adapted to run on CPU.

Four gaps exist in spconv 2.3 when no GPU is present:

* The CPU build only implements ``ConvAlgo.Native``; the GPU builds default to
  implicit-GEMM kernels, which cannot run on CPU tensors. The algorithm is a
  plain attribute of every conv module, so it is chosen per device here.
* ``spconv.pytorch.ops.indice_conv_backward`` asks for the current CUDA stream
  even for CPU tensors, which raises "Torch not compiled with CUDA enabled" on
  CPU-only torch builds. :func:`install` swaps that lookup for one that returns
  the null stream (0, the value spconv's own CPU forward path uses) when CUDA is
  unavailable and defers to the original otherwise, so GPU runs are unchanged.
* The CPU ``scatter_add_cpu`` kernel used by the Native conv (forward and the
  input-gradient of backward) shares its row pointers between OpenMP threads,
  so with more than one thread a row occasionally receives another row's
  values: CPU results are silently wrong and run-to-run different.
  :func:`install` routes that one call through ``torch.index_add_``, which is
  exact and about as fast. CUDA tensors never reach it.
* A conv with a bias refuses CPU tensors in eval mode ("cpu don't support act
  and bias": the inference path fuses the bias into a GPU-only kernel), while
  the training path adds the bias after the conv and works anywhere.
  :func:`install` makes eval-mode CPU calls take that same route (conv without
  bias, then ``+ bias``), so eval and training give identical numbers; fused
  activations stay unsupported on CPU, GPU calls are untouched.

Nothing else in the package should patch spconv.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Callable

import torch
from cumm import tensorview as tv
from torch import nn

import spconv.pytorch.cppcore as _cppcore
import spconv.pytorch.ops as _ops
from spconv.core import ConvAlgo
from spconv.core_cc.csrc.sparse.all import SpconvOps as _SpconvOps
from spconv.cppconstants import CPU_ONLY_BUILD
from spconv.pytorch.conv import SparseConvolution
from spconv.pytorch.core import SparseConvTensor

__all__ = [
    "ConvAlgo",
    "install",
    "uninstall",
    "is_installed",
    "scatter_add_rows",
    "conv_algo",
    "set_conv_algo",
    "default_gpu_algo",
]

_ORIGINAL_STREAM_FN: Callable[[], int] = _cppcore.get_current_stream
_STREAM_ATTR = "get_current_stream"

# spconv picks implicit GEMM on GPU builds for kernels with at most this many
# offsets (``SparseConvolutionBase.__init__``); larger ones fall back to Native.
_IMPLICIT_GEMM_MAX_KV = 32


def _stream_or_null() -> int:
    """CUDA stream handle when CUDA exists, else the null stream that CPU kernels ignore."""
    if torch.cuda.is_available():
        return _ORIGINAL_STREAM_FN()
    return 0


def _spconv_modules() -> list[ModuleType]:
    """Every loaded spconv module that bound the stream lookup at import time.

    ``from ... import get_current_stream`` copies the function into each
    importer's namespace, so patching ``cppcore`` alone would not reach
    ``ops``/``hash``/``utils`` that were imported before us.
    """
    mods = []
    for name, mod in list(sys.modules.items()):
        if mod is None or not (name == "spconv" or name.startswith("spconv.")):
            continue
        if getattr(mod, _STREAM_ATTR, None) in (_ORIGINAL_STREAM_FN, _stream_or_null):
            mods.append(mod)
    return mods


def scatter_add_rows(out: tv.Tensor, inp: tv.Tensor, inds: tv.Tensor) -> None:
    """``out[inds[i]] += inp[i]`` for ``i < len(inds)`` on CPU tensorview tensors.

    Same contract as spconv's ``scatter_add_cpu`` (``inp`` may have spare rows),
    but exact for any thread count and for repeated indices. The views share
    memory with the spconv buffers, so the update happens in place.
    """
    n = int(inds.dim(0))
    if n == 0:
        return
    out_t = torch.from_numpy(out.numpy_view())
    inp_t = torch.from_numpy(inp.numpy_view())[:n]
    # int64 indices take torch's vectorised index_add path; int32 ones a slow generic loop.
    idx_t = torch.from_numpy(inds.numpy_view()).to(torch.int64)
    out_t.index_add_(0, idx_t, inp_t)


# Raw class-dict entry, so uninstall() restores exactly what was there.
_ORIGINAL_SCATTER = _SpconvOps.__dict__["scatter_add_cpu"]
_SAFE_SCATTER = staticmethod(scatter_add_rows)


_ORIGINAL_CONV_FORWARD = SparseConvolution.__dict__["forward"]


def _conv_forward_cpu_bias(
    self: SparseConvolution, input: SparseConvTensor, add_input: SparseConvTensor | None = None
) -> SparseConvTensor:
    """``SparseConvolution.forward`` that adds the bias outside the kernel for CPU inference.

    Mirrors spconv's training path exactly: conv, ``+ bias``, then ``+ add_input``.
    """
    if (
        self.bias is None
        or self.training
        or input.features.is_cuda
        or self.act_type != tv.gemm.Activation.None_
        or input.is_quantized
    ):
        return _ORIGINAL_CONV_FORWARD(self, input, add_input)
    out = self._conv_forward(
        False,
        input,
        self.weight,
        None,
        None,
        name=self.name,
        sparse_unique_name=self._sparse_unique_name,
    )
    feat = out.features + self.bias
    if add_input is not None:
        feat = feat + add_input.features
    return out.replace_feature(feat)


def install() -> None:
    """Apply the stream, scatter and CPU-bias fixes (idempotent); see the module docstring.

    Modules imported later pick the patched stream lookup up from ``cppcore``.
    """
    for mod in _spconv_modules():
        setattr(mod, _STREAM_ATTR, _stream_or_null)
    # ``ops`` looks the kernel up on the class at call time, so replacing the
    # class attribute reaches every caller.
    _SpconvOps.scatter_add_cpu = _SAFE_SCATTER
    SparseConvolution.forward = _conv_forward_cpu_bias


def uninstall() -> None:
    """Put spconv's originals back; used by tests to show the fixes are needed."""
    for mod in _spconv_modules():
        setattr(mod, _STREAM_ATTR, _ORIGINAL_STREAM_FN)
    _SpconvOps.scatter_add_cpu = _ORIGINAL_SCATTER
    SparseConvolution.forward = _ORIGINAL_CONV_FORWARD


def is_installed() -> bool:
    """Whether the conv ops currently see all the fixes."""
    return (
        getattr(_ops, _STREAM_ATTR) is _stream_or_null
        and _SpconvOps.__dict__["scatter_add_cpu"] is _SAFE_SCATTER
        and SparseConvolution.__dict__["forward"] is _conv_forward_cpu_bias
    )


def _as_device(device: torch.device | str | None) -> torch.device:
    if device is None:
        return torch.device("cpu")
    return torch.device(device)


def conv_algo(device: torch.device | str | None) -> ConvAlgo | None:
    """Algorithm to pass to spconv conv constructors for ``device``.

    ``Native`` on CPU (the only one implemented there); ``None`` elsewhere so
    spconv keeps choosing its fast GPU default.
    """
    if _as_device(device).type == "cpu":
        return ConvAlgo.Native
    return None


def default_gpu_algo(layer: SparseConvolution) -> ConvAlgo:
    """The algorithm spconv would have picked for ``layer`` had it been built with ``algo=None``.

    Needed because ``None`` is only resolved in the constructor; the attribute
    itself must always hold a concrete ``ConvAlgo``.
    """
    kv = 1
    for k in layer.kernel_size:
        kv *= int(k)
    if CPU_ONLY_BUILD or kv > _IMPLICIT_GEMM_MAX_KV:
        return ConvAlgo.Native
    return ConvAlgo.MaskImplicitGemm


def set_conv_algo(module: nn.Module, device: torch.device | str | None) -> nn.Module:
    """Set ``.algo`` of every spconv conv in ``module`` for the device it will run on.

    The weight layout (KRSC) does not depend on the algorithm in spconv 2.3,
    so this only changes which kernels run, never the parameters or the
    state_dict. Layers that share an ``indice_key`` get the same algorithm,
    which spconv requires. Returns ``module`` for chaining.
    """
    algo = conv_algo(device)
    for m in module.modules():
        if isinstance(m, SparseConvolution):
            m.algo = algo if algo is not None else default_gpu_algo(m)
    return module
