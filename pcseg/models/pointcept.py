"""Load Pointcept ``DefaultSegmentorV2`` + ``PT-v3m1`` checkpoints into pcseg's PTv3 Segmentor.

The networks compute the same function; only parameter names differ
(Pointcept wraps layers in ``PointSequential`` containers, numbered ``.0``,
``.1``...). :func:`convert_state_dict` renames by rule and then insists on a
one-to-one, shape-exact match, so a checkpoint of another architecture (RPE,
PDNorm, other widths) fails loudly instead of loading partially.

What the weights cannot tell: the attention heads, patch sizes, serialization
orders, strides, pre/post-norm, and whether the checkpoint was trained with
Pointcept <= v1.5.1 (same names and shapes, different CPE wiring; see
:mod:`pcseg.models.ptv3`). Those come from the training config;
:func:`infer_ptv3_spec` fills in what the shapes do determine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn

from .ptv3 import PTV3_KEYS

__all__ = [
    "PointceptSpec",
    "convert_state_dict",
    "infer_ptv3_spec",
    "pointcept_to_pcseg_name",
    "ptv3_kwargs_from_config",
]

# PT-v3m1 arguments that PTv3 takes under the same name and meaning.
# (compat and patch_rule are pcseg's: set from the release and from enable_flash).
_SAME_KWARGS = tuple(k for k in PTV3_KEYS if k not in ("compat", "patch_rule"))
# Arguments that must keep these values (features pcseg does not implement).
_REQUIRED = {
    "enable_rpe": False, "enc_mode": False, "cls_mode": False,
    "pdnorm_bn": False, "pdnorm_ln": False,
}
# Only numerics/bookkeeping, no effect on the function in float32.
_IGNORED = (
    "type", "in_channels", "upcast_attention", "upcast_softmax", "pdnorm_decouple",
    "pdnorm_adaptive", "pdnorm_affine", "pdnorm_conditions",
)

_BLOCK = re.compile(r"^backbone\.(enc|dec)\.\1(\d+)\.block(\d+)\.(.+)$")
_BLOCK_PARTS: list[tuple[str, str]] = [
    ("cpe.0.", "cpe.conv."),
    ("cpe.1.", "cpe.fc."),
    ("cpe.2.", "cpe.norm."),
    ("norm1.0.", "norm1."),
    ("norm2.0.", "norm2."),
    ("mlp.0.fc1.", "mlp.fc1."),
    ("mlp.0.fc2.", "mlp.fc2."),
    ("attn.qkv.", "attn.qkv."),
    ("attn.proj.", "attn.proj."),
]
_OTHER: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), r)
    for p, r in (
        (r"^backbone\.embedding\.stem\.(conv|norm)\.(\w+)$", r"backbone.stem.\1.\2"),
        (r"^backbone\.enc\.enc(\d+)\.down\.proj\.(\w+)$", r"backbone.enc.\1.down.proj.\2"),
        (r"^backbone\.enc\.enc(\d+)\.down\.norm\.0\.(\w+)$", r"backbone.enc.\1.down.norm.\2"),
        (r"^backbone\.dec\.dec(\d+)\.up\.proj\.0\.(\w+)$", r"backbone.dec.\1.up.proj.\2"),
        (r"^backbone\.dec\.dec(\d+)\.up\.proj\.1\.(\w+)$", r"backbone.dec.\1.up.proj_norm.\2"),
        (r"^backbone\.dec\.dec(\d+)\.up\.proj_skip\.0\.(\w+)$", r"backbone.dec.\1.up.skip.\2"),
        (r"^backbone\.dec\.dec(\d+)\.up\.proj_skip\.1\.(\w+)$", r"backbone.dec.\1.up.skip_norm.\2"),
        (r"^seg_head\.(weight|bias)$", r"head.fc.\1"),
    )
]


def _strip(name: str) -> str:
    return name[len("module.") :] if name.startswith("module.") else name


def pointcept_to_pcseg_name(name: str) -> str | None:
    """pcseg Segmentor parameter/buffer name for a Pointcept one, or None if no rule applies."""
    name = _strip(name)
    m = _BLOCK.match(name)
    if m:
        part, stage, block, rest = m.groups()
        for src, dst in _BLOCK_PARTS:
            if rest.startswith(src) and "." not in rest[len(src) :]:
                return f"backbone.{part}.{stage}.blocks.{block}.{dst}{rest[len(src):]}"
        return None
    for pattern, repl in _OTHER:
        if pattern.match(name):
            return pattern.sub(repl, name)
    return None


def convert_state_dict(
    src: Mapping[str, torch.Tensor], model: nn.Module
) -> dict[str, torch.Tensor]:
    """Pointcept state dict (optionally ``module.``-prefixed) -> ``model.state_dict()`` names.

    Every source tensor must land on exactly one target of the same shape and
    every target must be covered; otherwise a ValueError lists the unmatched
    source names, the missing target names and the shape mismatches.
    """
    target = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    unmatched: list[str] = []
    mismatched: list[str] = []
    seen: set[str] = set()  # targets claimed, with or without the right shape
    for name, tensor in src.items():
        new = pointcept_to_pcseg_name(name)
        if new is None or new not in target:
            unmatched.append(name if new is None else f"{name} (-> {new}, not in the model)")
            continue
        if new in seen:
            unmatched.append(f"{name} (-> {new}, already given by {origin[new]})")
            continue
        seen.add(new)
        origin[new] = name
        if tuple(tensor.shape) != tuple(target[new].shape):
            mismatched.append(f"{name} {tuple(tensor.shape)} -> {new} {tuple(target[new].shape)}")
            continue
        out[new] = tensor
    missing = [k for k in target if k not in seen]
    if unmatched or missing or mismatched:
        lines = ["Pointcept state dict does not match the pcseg model:"]
        for title, items in (
            ("unmatched source names", unmatched),
            ("missing target names", missing),
            ("shape mismatches", mismatched),
        ):
            if items:
                lines.append(f"  {title} ({len(items)}):")
                lines.extend(f"    {i}" for i in items)
        raise ValueError("\n".join(lines))
    return out


@dataclass
class PointceptSpec:
    """What a Pointcept PTv3 state dict's shapes determine.

    ``backbone`` holds PTv3 kwargs: ``enc_depths``, ``enc_channels``,
    ``dec_depths``, ``dec_channels``, ``mlp_ratio``, ``qkv_bias`` and a
    ``stride`` of 2s (its length is known, the values are an assumption).
    Heads, patch sizes, orders, pre_norm and ``compat`` must come from the
    training config (PTv3's defaults are Pointcept's ScanNet200 config).
    """

    in_channels: int
    num_classes: int
    backbone: dict[str, Any] = field(default_factory=dict)


def _count(keys: list[str], pattern: str, key: Callable[[re.Match[str]], Any]) -> set[Any]:
    rx = re.compile(pattern)
    return {key(m) for k in keys if (m := rx.match(k))}


def _width(sd: Mapping[str, torch.Tensor], stage: int) -> int:
    """Channels of encoder ``stage`` (> 0): from its down-projection, else from another tensor of
    the stage, so a checkpoint lacking just that tensor is reported by convert_state_dict with
    every other missing name, not as a bare KeyError here."""
    p = f"backbone.enc.enc{stage}."
    for name in (f"{p}down.proj.weight", f"{p}down.norm.0.weight", f"{p}block0.norm1.0.weight"):
        if name in sd:
            return int(sd[name].shape[0])
    raise ValueError(f"Pointcept state dict: encoder stage {stage} has neither {p}down.proj.weight nor "
                     f"{p}block0.norm1.0.weight, so its width is unknown (an incomplete or non-PT-v3m1 checkpoint)")


def infer_ptv3_spec(src: Mapping[str, torch.Tensor]) -> PointceptSpec:
    """Read channels, depths, in_channels and num_classes off a Pointcept state dict."""
    sd = {_strip(k): v for k, v in src.items()}
    keys = list(sd)
    if "backbone.embedding.stem.conv.weight" not in sd or "seg_head.weight" not in sd:
        raise ValueError("not a Pointcept DefaultSegmentorV2 + PT-v3m1 state dict (no stem or seg_head)")
    if any(".rpe." in k for k in keys):
        raise ValueError("checkpoint uses relative position encoding (enable_rpe); PTv3 has none")
    stem = sd["backbone.embedding.stem.conv.weight"]  # (out, k, k, k, in)
    enc_stages = _count(keys, r"^backbone\.enc\.enc(\d+)\.", lambda m: int(m.group(1)))
    # The stages are the unbroken run enc0, enc1, ...: tensors of a stage after a gap (enc9 in a
    # 5-stage network) fit no model, so they are left to convert_state_dict, which lists them
    # among the unmatched names instead of failing here on a missing key.
    n = 1
    while n in enc_stages:
        n += 1
    enc_channels, enc_depths = [], []
    for s in range(n):
        blocks = _count(keys, rf"^backbone\.enc\.enc{s}\.block(\d+)\.", lambda m: int(m.group(1)))
        enc_depths.append(len(blocks))
        if s == 0:
            enc_channels.append(int(stem.shape[0]))
            continue
        enc_channels.append(_width(sd, s))
    dec_channels, dec_depths = [], []
    for s in range(n - 1):
        w = sd.get(f"backbone.dec.dec{s}.up.proj.0.weight")
        if w is None:
            raise ValueError(f"decoder stage {s} missing: encoder-only models are not supported")
        dec_channels.append(int(w.shape[0]))
        blocks = _count(keys, rf"^backbone\.dec\.dec{s}\.block(\d+)\.", lambda m: int(m.group(1)))
        dec_depths.append(len(blocks))
    fc1 = next((v for k, v in sd.items() if k.endswith(".mlp.0.fc1.weight")), None)
    backbone: dict[str, Any] = {
        "stride": (2,) * (n - 1),
        "enc_depths": tuple(enc_depths),
        "enc_channels": tuple(enc_channels),
        "dec_depths": tuple(dec_depths),
        "dec_channels": tuple(dec_channels),
        "qkv_bias": any(k.endswith(".attn.qkv.bias") for k in keys),
    }
    if fc1 is not None:
        ratio = fc1.shape[0] / fc1.shape[1]
        backbone["mlp_ratio"] = int(ratio) if ratio == int(ratio) else ratio
    return PointceptSpec(
        in_channels=int(stem.shape[-1]),
        num_classes=int(sd["seg_head.weight"].shape[0]),
        backbone=backbone,
    )


def ptv3_kwargs_from_config(cfg: Mapping[str, Any], compat: str = "main") -> dict[str, Any]:
    """PTv3 kwargs (without ``in_channels``) for a Pointcept ``PT-v3m1`` backbone config dict.

    ``enable_flash`` maps to ``patch_rule``; ``compat`` names the Pointcept
    release the weights come from (not recorded in configs or checkpoints).
    Unsupported options (RPE, PDNorm, encoder-only mode) raise ValueError.
    """
    kwargs: dict[str, Any] = {k: cfg[k] for k in _SAME_KWARGS if k in cfg}
    known = {*_SAME_KWARGS, *_REQUIRED, *_IGNORED, "enable_flash"}
    bad = [f"{k}={cfg[k]!r}" for k, v in _REQUIRED.items() if k in cfg and bool(cfg[k]) != v]
    bad += [f"{k} (unknown)" for k in cfg if k not in known]
    if bad:
        raise ValueError(f"unsupported PT-v3m1 options: {bad}")
    if isinstance(kwargs.get("order"), str):
        kwargs["order"] = (kwargs["order"],)
    kwargs["patch_rule"] = "flash" if cfg.get("enable_flash", True) else "non_flash"
    kwargs["compat"] = compat
    return kwargs
