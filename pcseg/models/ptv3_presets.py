"""Named PTv3 configurations: Pointcept's published ScanNet200 recipes and small ones for CPU tests.

Each entry is constructor keyword arguments (:mod:`.ptv3`); ``model.preset``
picks one and ``model.*`` keys override single values.
"""
from __future__ import annotations

from typing import Any

__all__ = ["PTV3_PRESETS", "PTV3M2_PRESETS", "PTV3M3_PRESETS"]

_ORDERS = ("z", "z-trans", "hilbert", "hilbert-trans")

# Pointcept's configs/scannet200/semseg-pt-v3m1-0-base.py backbone.
_SCANNET200: dict[str, Any] = {
    "order": _ORDERS,
    "stride": (2, 2, 2, 2),
    "enc_depths": (2, 2, 2, 6, 2),
    "enc_channels": (32, 64, 128, 256, 512),
    "enc_num_head": (2, 4, 8, 16, 32),
    "enc_patch_size": (1024,) * 5,
    "dec_depths": (2, 2, 2, 2),
    "dec_channels": (64, 64, 128, 256),
    "dec_num_head": (4, 4, 8, 16),
    "dec_patch_size": (1024,) * 4,
    "mlp_ratio": 4,
    "drop_path": 0.3,
}

# Small enough for unit tests and the demo on two CPU cores. Every head is 6k channels wide,
# so the same sizes work with PT-v3m3's rotary encoding.
_TINY: dict[str, Any] = {
    "order": _ORDERS,
    "stride": (2, 2),
    "enc_depths": (1, 1, 2),
    "enc_channels": (12, 24, 36),
    "enc_num_head": (1, 2, 2),
    "enc_patch_size": (64, 64, 64),
    "dec_depths": (1, 1),
    "dec_channels": (12, 24),
    "dec_num_head": (1, 2),
    "dec_patch_size": (64, 64),
    "mlp_ratio": 2,
    "drop_path": 0.1,
}

PTV3_PRESETS: dict[str, dict[str, Any]] = {
    "scannet200": dict(_SCANNET200),
    # The same network as trained by older Pointcept releases (see ``compat``).
    "scannet200_v152": dict(_SCANNET200, compat="v1.5.2"),
    "scannet200_v151": dict(_SCANNET200, compat="v1.5.1"),
    "tiny": {
        **_TINY,
        "enc_channels": (16, 24, 32),
        "dec_channels": (16, 24),
    },
}

# Sonata's encoder (Pointcept configs/sonata/pretrain-sonata-v1m1-0-base.py), which Concerto's
# base model shares (configs/concerto/pretrain-concerto-v1m1-0-base.py).
_SONATA_ENC: dict[str, Any] = {
    "order": _ORDERS,
    "stride": (2, 2, 2, 2),
    "enc_depths": (3, 3, 3, 12, 3),
    "enc_channels": (48, 96, 192, 384, 512),
    "enc_num_head": (3, 6, 12, 24, 32),
    "enc_patch_size": (1024,) * 5,
    "mlp_ratio": 4,
    "drop_path": 0.3,
}
# The fresh decoder of the ScanNet200 fine-tuning recipes (semseg-sonata-v1m1-1c-scannet200-ft.py,
# semseg-ptv3-base-v1m1-1c-scannet200-ft.py, semseg-ptv3-large-v1m1-1c-scannet200-ft.py).
_FT_DEC: dict[str, Any] = {
    "dec_depths": (2, 2, 2, 2),
    "dec_channels": (64, 96, 192, 384),
    "dec_num_head": (4, 6, 12, 24),
    "dec_patch_size": (1024,) * 4,
}
_CONCERTO_LARGE_ENC: dict[str, Any] = {
    **_SONATA_ENC,
    "enc_channels": (64, 128, 256, 512, 768),
    "enc_num_head": (4, 8, 16, 32, 48),
}

PTV3M2_PRESETS: dict[str, dict[str, Any]] = {
    "sonata": {**_SONATA_ENC, **_FT_DEC},
    "sonata_lin": {**_SONATA_ENC, "enc_mode": True},
    "concerto_base": {**_SONATA_ENC, **_FT_DEC},
    "concerto_base_lin": {**_SONATA_ENC, "enc_mode": True},
    "concerto_large": {**_CONCERTO_LARGE_ENC, **_FT_DEC},
    "concerto_large_lin": {**_CONCERTO_LARGE_ENC, "enc_mode": True},
    "tiny": dict(_TINY),
    "tiny_lin": {**_TINY, "enc_mode": True},
}

# Utonia (configs/utonia/semseg-utonia-v1m1-1c-scannet200-ft.py and its pretraining config).
_UTONIA_ROPE: dict[str, Any] = {"rope_base": 10.0, "jitter_coords": 1.1, "rescale_coords": 1.2}
_UTONIA_ENC: dict[str, Any] = {**_SONATA_ENC, "enc_channels": (54, 108, 216, 432, 576), **_UTONIA_ROPE}
_UTONIA_DEC: dict[str, Any] = {**_FT_DEC, "dec_channels": (54, 108, 216, 432), "dec_num_head": (3, 6, 12, 24)}

PTV3M3_PRESETS: dict[str, dict[str, Any]] = {
    "utonia": {**_UTONIA_ENC, **_UTONIA_DEC},
    "utonia_lin": {**_UTONIA_ENC, "enc_mode": True},
    "tiny": {**_TINY, **_UTONIA_ROPE},
    "tiny_lin": {**_TINY, **_UTONIA_ROPE, "enc_mode": True},
}
