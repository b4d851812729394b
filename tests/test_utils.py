"""The small shared helpers: device names, AMP dtypes and the cache manifest."""
from __future__ import annotations

import json

import pytest
import torch

from pcseg.data.manifest import read_manifest
from pcseg.utils.amp import AMP_DTYPES, amp_dtype
from pcseg.utils.device import resolve_device


def test_resolve_device_without_cuda(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match=r"train.device=cuda .*use train.device=cpu or auto"):
        resolve_device("cuda")
    with pytest.raises(RuntimeError, match=r"--device=cpu or auto"):
        resolve_device("cuda", "--device")


def test_amp_dtype_is_cuda_only() -> None:
    assert AMP_DTYPES == {"none": None, "fp16": torch.float16, "bf16": torch.bfloat16}
    assert amp_dtype("bf16", torch.device("cuda", 0)) is torch.bfloat16
    assert amp_dtype("fp16", torch.device("cpu")) is None
    assert amp_dtype("none", torch.device("cuda", 0)) is None
    with pytest.raises(KeyError):
        amp_dtype("fp8", torch.device("cpu"))


def test_read_manifest(tmp_path) -> None:
    assert read_manifest(tmp_path) is None
    (tmp_path / "manifest.json").write_text(json.dumps({"class_histogram": {}}))
    assert read_manifest(tmp_path) == {"class_histogram": {}}
