"""Sparse residual UNet (the MinkUNet / SpUNet family) on spconv.

Layout, with ``c = channels`` and ``n = layers``::

    stem   SubMConv(k=stem_kernel)                      in  -> base      stride 1
    enc i  SparseConv(k=2, s=2) + n[i] BasicBlocks      ... -> c[i]      stride 2^(i+1)
           (the first block widens to c[i], see ``widen_in_down``)
    dec j  SparseInverseConv(k=2) ++ skip + n[4+j] BB   ... -> c[4+j]    stride 2^(3-j)

Every decoder stage inverts the matching encoder down-sampling through a shared
``indice_key``, so the output rows come back exactly on the input voxels, in
input order.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

import spconv.pytorch as spconv
from spconv.core import ConvAlgo

from .common import BN_EPS, BN_MOMENTUM, bn1d, check_voxel_inputs  # noqa: F401  (BN_* re-exported)
from .spconv_compat import conv_algo

__all__ = ["SPUNET_KEYS", "SPUNET_PRESETS", "BasicBlock", "SpUNet", "bn1d"]

# channels are (enc1, enc2, enc3, enc4, dec1, dec2, dec3, dec4); dec1 is the coarsest.
SPUNET_PRESETS: dict[str, dict[str, tuple[int, ...]]] = {
    "minkunet34c": {
        "channels": (32, 64, 128, 256, 256, 128, 96, 96),
        "layers": (2, 3, 4, 6, 2, 2, 2, 2),
    },
    "minkunet18a": {
        "channels": (32, 64, 128, 256, 128, 128, 96, 96),
        "layers": (2, 2, 2, 2, 2, 2, 2, 2),
    },
    "minkunet14a": {
        "channels": (32, 64, 128, 256, 128, 128, 96, 96),
        "layers": (1, 1, 1, 1, 1, 1, 1, 1),
    },
    # Small enough for unit tests on two CPU cores.
    "tiny": {
        "channels": (16, 16, 32, 32, 32, 32, 16, 16),
        "layers": (1, 1, 1, 1, 1, 1, 1, 1),
    },
}

# The ``model.*`` config keys a SpUNet takes besides name/preset/in_channels (the preset's
# widths and depths; stem_kernel and widen_in_down are not exposed in configs).
SPUNET_KEYS: tuple[str, ...] = ("channels", "layers")

NUM_STAGES = 4
# Coordinates are padded to a multiple of this so every stride-2 level divides evenly.
_TOTAL_STRIDE = 2**NUM_STAGES

class BasicBlock(spconv.SparseModule):
    """Two 3x3x3 submanifold convs with a residual path (projected when widths differ)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        indice_key: str,
        algo: ConvAlgo | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = spconv.SubMConv3d(
            in_channels, out_channels, 3, padding=1, bias=False, indice_key=indice_key, algo=algo
        )
        self.bn1 = bn1d(out_channels)
        self.conv2 = spconv.SubMConv3d(
            out_channels, out_channels, 3, padding=1, bias=False, indice_key=indice_key, algo=algo
        )
        self.bn2 = bn1d(out_channels)
        self.relu = nn.ReLU()
        self.proj: spconv.SparseSequential | None = None
        if in_channels != out_channels:
            # A 1x1x1 submanifold conv is a per-voxel linear map; no neighbourhood needed.
            self.proj = spconv.SparseSequential(
                spconv.SubMConv3d(in_channels, out_channels, 1, bias=False, algo=algo),
                bn1d(out_channels),
            )

    def forward(self, x: spconv.SparseConvTensor) -> spconv.SparseConvTensor:
        identity = x.features if self.proj is None else self.proj(x).features
        out = self.conv1(x)
        out = out.replace_feature(self.relu(self.bn1(out.features)))
        out = self.conv2(out)
        out = out.replace_feature(self.relu(self.bn2(out.features) + identity))
        return out


def _blocks(
    n: int, in_channels: int, out_channels: int, indice_key: str, algo: ConvAlgo | None
) -> spconv.SparseSequential:
    """``n`` BasicBlocks; only the first changes the width."""
    return spconv.SparseSequential(
        *[
            BasicBlock(in_channels if i == 0 else out_channels, out_channels, indice_key, algo)
            for i in range(n)
        ]
    )


class SpUNet(nn.Module):
    """Sparse residual UNet returning per-voxel features of width ``channels[-1]``."""

    def __init__(
        self,
        in_channels: int = 9,
        base_channels: int = 32,
        channels: Sequence[int] = SPUNET_PRESETS["minkunet34c"]["channels"],
        layers: Sequence[int] = SPUNET_PRESETS["minkunet34c"]["layers"],
        stem_kernel: int = 5,
        widen_in_down: bool = False,
        device: torch.device | str | None = "cpu",
    ) -> None:
        """Build the network; nothing here depends on the input size.

        ``widen_in_down=False`` is the original MinkUNet layout (the strided conv
        keeps the width, the first residual block widens through its 1x1
        projection; minkunet34c has ~37.9 M parameters). ``True`` widens in the
        strided conv instead, as some spconv re-implementations do (~39.2 M).
        ``device`` only selects the spconv algorithm; move the module with
        ``.to`` as usual and call
        :func:`pcseg.models.spconv_compat.set_conv_algo` if the device type changes.
        """
        super().__init__()
        channels = tuple(int(c) for c in channels)
        layers = tuple(int(n) for n in layers)
        if len(channels) != 2 * NUM_STAGES or len(layers) != 2 * NUM_STAGES:
            raise ValueError(
                f"channels and layers need {2 * NUM_STAGES} entries, got {channels} and {layers}"
            )
        if stem_kernel not in (3, 5):
            raise ValueError(f"stem_kernel must be 3 or 5, got {stem_kernel}")
        algo = conv_algo(device)
        self.in_channels = in_channels
        self.base_channels = base_channels
        self.channels = channels
        self.layers = layers
        self.widen_in_down = widen_in_down
        self.out_channels = channels[-1]

        self.stem = spconv.SparseSequential(
            spconv.SubMConv3d(
                in_channels,
                base_channels,
                stem_kernel,
                padding=stem_kernel // 2,
                bias=False,
                indice_key="stem",
                algo=algo,
            ),
            bn1d(base_channels),
            nn.ReLU(),
        )

        self.down = nn.ModuleList()
        self.enc = nn.ModuleList()
        skip_channels = [base_channels]  # width at stride 1, 2, 4, 8, 16
        prev = base_channels
        for i in range(NUM_STAGES):
            down_out = channels[i] if widen_in_down else prev
            self.down.append(
                spconv.SparseSequential(
                    spconv.SparseConv3d(
                        prev, down_out, 2, stride=2, bias=False, indice_key=f"down{i}", algo=algo
                    ),
                    bn1d(down_out),
                    nn.ReLU(),
                )
            )
            self.enc.append(_blocks(layers[i], down_out, channels[i], f"subm{i + 1}", algo))
            prev = channels[i]
            skip_channels.append(prev)

        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for j in range(NUM_STAGES):
            level = NUM_STAGES - 1 - j  # resolution index the decoder stage returns to
            out = channels[NUM_STAGES + j]
            self.up.append(
                spconv.SparseSequential(
                    spconv.SparseInverseConv3d(
                        prev, out, 2, bias=False, indice_key=f"down{level}", algo=algo
                    ),
                    bn1d(out),
                    nn.ReLU(),
                )
            )
            self.dec.append(
                _blocks(
                    layers[NUM_STAGES + j],
                    out + skip_channels[level],
                    out,
                    f"subm{level}",
                    algo,
                )
            )
            prev = out
        self._init_weights()

    def _init_weights(self) -> None:
        """BN starts as identity; spconv weights keep their Kaiming-uniform default."""
        for m in self.modules():
            if isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def spatial_shape(grid_coord: torch.Tensor) -> list[int]:
        """Per-axis extent rounded up to the total stride, so no voxel falls off a stride-2 grid."""
        extent = grid_coord.max(0).values.to(torch.int64) + 1
        padded = (extent + _TOTAL_STRIDE - 1) // _TOTAL_STRIDE * _TOTAL_STRIDE
        return [int(v) for v in padded.tolist()]

    def forward(
        self, grid_coord: torch.Tensor, batch: torch.Tensor, feat: torch.Tensor
    ) -> torch.Tensor:
        """Features (N, channels[-1]) for voxels given as ``grid_coord`` (N, 3) >= 0,
        sorted scene index ``batch`` (N,) and input features ``feat`` (N, in_channels).

        Voxels must be unique within a scene.
        """
        check_voxel_inputs(grid_coord, batch, feat, refuse_empty=False)
        indices = torch.cat([batch.view(-1, 1), grid_coord], dim=1).to(torch.int32).contiguous()
        batch_size = int(batch.max().item()) + 1
        x = spconv.SparseConvTensor(feat, indices, self.spatial_shape(grid_coord), batch_size)

        x = self.stem(x)
        skips = [x]
        for down, enc in zip(self.down, self.enc):
            x = enc(down(x))
            skips.append(x)
        x = skips.pop()  # bottleneck
        for up, dec in zip(self.up, self.dec):
            x = up(x)
            skip = skips.pop()
            x = x.replace_feature(torch.cat([x.features, skip.features], dim=1))
            x = dec(x)
        return x.features
