"""Mixed precision: the ``train.amp`` setting as a torch dtype."""
from __future__ import annotations

import torch

__all__ = ["AMP_DTYPES", "amp_dtype"]

# train.amp value -> autocast dtype (None: full fp32).
AMP_DTYPES: dict[str, torch.dtype | None] = {"none": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def amp_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.amp=name`` on ``device``: None (fp32) off CUDA, because
    AMP is a CUDA feature here (``train.amp`` is documented as CUDA only)."""
    dtype = AMP_DTYPES[name]  # an unknown name is an error on every device
    return dtype if device.type == "cuda" else None
