"""Load Pointcept ``DefaultSegmentorV2`` + ``PT-v3m1/m2/m3`` weights into pcseg's PTv3 Segmentors.

The networks compute the same function; only parameter names differ
(Pointcept wraps layers in ``PointSequential`` containers, numbered ``.0``,
``.1``...). :func:`convert_state_dict` renames by rule and then insists on a
one-to-one, shape-exact match, so a checkpoint of another architecture (RPE,
PDNorm, other widths) fails loudly instead of loading partially.

What the weights cannot tell: the attention heads, patch sizes, serialization
orders, strides, pre/post-norm, and whether the checkpoint was trained with
Pointcept <= v1.5.1 (same names and shapes, different CPE wiring; see
:mod:`pcseg.models.ptv3`). Those come from the training config;
:func:`infer_ptv3_spec` fills in what the shapes do determine, including the
generation: a 5x5x5 conv stem is PT-v3m1, a Linear stem PT-v3m2, and rotary
frequency buffers (``attn.rope.inv_freq``) PT-v3m3. Those buffers follow from
``rope_base``, so they are compared with the model's instead of loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn

from .ptv3 import PTV3_KEYS, PTV3M2_KEYS, PTV3M3_KEYS

__all__ = [
    "ENCODER_PREFIXES",
    "PointceptSpec",
    "convert_state_dict",
    "infer_ptv3_spec",
    "pointcept_to_pcseg_name",
    "ptv3_kwargs_from_config",
]

# Pointcept arguments that pcseg's PTv3 generations take under the same name and meaning
# (compat and patch_rule are pcseg's: set from the release and from enable_flash).
_SAME_KWARGS = {
    gen: tuple(k for k in keys if k not in ("compat", "patch_rule"))
    for gen, keys in (("v3m1", PTV3_KEYS), ("v3m2", PTV3M2_KEYS), ("v3m3", PTV3M3_KEYS))
}
# pcseg tensors an encoder checkpoint (Sonata, Concerto, Utonia pretraining) provides.
ENCODER_PREFIXES = ("backbone.stem.", "backbone.enc.")
_ROPE_BUFFER = ".attn.rope.inv_freq"
# Arguments that must keep these values (features pcseg does not implement).
_REQUIRED = {
    "enable_rpe": False, "enc_mode": False, "cls_mode": False,
    "pdnorm_bn": False, "pdnorm_ln": False,
}
# Only numerics/bookkeeping, no effect on the function in float32.
_IGNORED = (
    "type", "in_channels", "upcast_attention", "upcast_softmax", "pdnorm_decouple",
    "pdnorm_adaptive", "pdnorm_affine", "pdnorm_conditions",
    # PT-v3m2/m3: bookkeeping, pretraining-only (the mask token) and optimizer-side options
    "traceable", "mask_token", "freeze_encoder",
)

_BLOCK = re.compile(r"^backbone\.(enc|dec)\.\1(\d+)\.block(\d+)\.(.+)$")
_BLOCK_PARTS: list[tuple[str, str]] = [
    ("cpe.0.", "cpe.conv."),
    ("cpe.1.", "cpe.fc."),
    ("cpe.2.", "cpe.norm."),
    ("norm1.0.", "norm1."),
    ("norm2.0.", "norm2."),
    ("ls1.0.", "ls1."),
    ("ls2.0.", "ls2."),
    ("mlp.0.fc1.", "mlp.fc1."),
    ("mlp.0.fc2.", "mlp.fc2."),
    ("attn.qkv.", "attn.qkv."),
    ("attn.proj.", "attn.proj."),
    ("attn.rope.", "attn.rope."),
]
_OTHER: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), r)
    for p, r in (
        (r"^backbone\.embedding\.stem\.(conv|linear|norm)\.(\w+)$", r"backbone.stem.\1.\2"),
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


def rope_base_of(inv_freq: torch.Tensor) -> float | None:
    """The ``rope_base`` of a rotary frequency buffer: entry i is ``base ** (-i / n)`` for n entries.

    None for a single entry (heads of 6 channels), which is 1 whatever the base.
    """
    if inv_freq.numel() < 2:
        return None
    return float(inv_freq[1].double() ** (-inv_freq.numel()))


def convert_state_dict(
    src: Mapping[str, torch.Tensor], model: nn.Module, *, encoder_only: bool = False
) -> dict[str, torch.Tensor]:
    """Pointcept state dict (optionally ``module.``-prefixed) -> ``model.state_dict()`` names.

    Every source tensor must land on exactly one target of the same shape and
    every target must be covered; otherwise a ValueError lists the unmatched
    source names, the missing target names and the shape mismatches.
    ``encoder_only``: the targets are the stem and encoder (``ENCODER_PREFIXES``),
    for pretrained encoders whose decoder and head are trained afresh. Rotary
    frequency buffers are checked against the model's, not returned.
    """
    target = model.state_dict()
    if encoder_only:
        target = {k: v for k, v in target.items() if k.startswith(ENCODER_PREFIXES)}
    buffers = dict(model.named_buffers())
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    unmatched: list[str] = []
    mismatched: list[str] = []
    seen: set[str] = set()  # targets claimed, with or without the right shape
    for name, tensor in src.items():
        new = pointcept_to_pcseg_name(name)
        if new is not None and new.endswith(_ROPE_BUFFER) and new not in target:
            mine = buffers.get(new)
            if mine is None:
                unmatched.append(f"{name} (rotary encoding, which the model lacks: model.rope_base)")
            elif tuple(mine.shape) != tuple(tensor.shape) or not torch.allclose(mine, tensor.to(mine)):
                mismatched.append(f"{name}: rotary frequencies of another rope_base than the model's "
                                  f"(set model.rope_base to the one the weights were trained with)")
            continue
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

    ``generation`` is ``"v3m1"``, ``"v3m2"`` or ``"v3m3"`` (pcseg's ``ptv3``,
    ``ptv3m2``, ``ptv3m3``). ``backbone`` holds PTv3 kwargs: ``enc_depths``,
    ``enc_channels``, ``dec_depths``, ``dec_channels`` (absent for an encoder
    alone), ``mlp_ratio``, ``qkv_bias``, ``rope_base`` (PT-v3m3) and a
    ``stride`` of 2s (its length is known, the values are an assumption).
    ``layer_scale`` says whether the blocks have LayerScale (its initial value
    is not recorded). ``num_classes`` is None without a ``seg_head``. Heads,
    patch sizes, orders, pre_norm and ``compat`` must come from the training
    config.
    """

    in_channels: int
    num_classes: int | None
    backbone: dict[str, Any] = field(default_factory=dict)
    generation: str = "v3m1"
    layer_scale: bool = False

    @property
    def model_name(self) -> str:
        return {"v3m1": "ptv3", "v3m2": "ptv3m2", "v3m3": "ptv3m3"}[self.generation]


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
                     f"{p}block0.norm1.0.weight, so its width is unknown (an incomplete or non-PTv3 checkpoint)")


def infer_ptv3_spec(src: Mapping[str, torch.Tensor]) -> PointceptSpec:
    """Read generation, channels, depths, in_channels and num_classes off a Pointcept state dict
    (``backbone.*``, with ``seg_head.*`` unless it is an encoder alone)."""
    sd = {_strip(k): v for k, v in src.items()}
    keys = list(sd)
    conv, linear = sd.get("backbone.embedding.stem.conv.weight"), sd.get("backbone.embedding.stem.linear.weight")
    if conv is None and linear is None:
        raise ValueError("not a Pointcept PTv3 state dict: no backbone.embedding.stem.conv.weight (PT-v3m1) or "
                         "backbone.embedding.stem.linear.weight (PT-v3m2/m3)")
    if any(".rpe." in k for k in keys):
        raise ValueError("checkpoint uses relative position encoding (enable_rpe); PTv3 has none")
    rope = next(((k, v) for k, v in sd.items() if k.endswith(_ROPE_BUFFER)), None)
    generation = "v3m1" if conv is not None else ("v3m3" if rope is not None else "v3m2")
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
            enc_channels.append(int(conv.shape[0] if conv is not None else linear.shape[0]))
            continue
        enc_channels.append(_width(sd, s))
    backbone: dict[str, Any] = {
        "stride": (2,) * (n - 1),
        "enc_depths": tuple(enc_depths),
        "enc_channels": tuple(enc_channels),
        "qkv_bias": any(k.endswith(".attn.qkv.bias") for k in keys),
    }
    if any(k.startswith("backbone.dec.") for k in keys):
        dec_channels, dec_depths = [], []
        for s in range(n - 1):
            w = sd.get(f"backbone.dec.dec{s}.up.proj.0.weight")
            if w is None:
                raise ValueError(f"Pointcept state dict: decoder stage {s} has no backbone.dec.dec{s}.up.proj.0.weight")
            dec_channels.append(int(w.shape[0]))
            blocks = _count(keys, rf"^backbone\.dec\.dec{s}\.block(\d+)\.", lambda m: int(m.group(1)))
            dec_depths.append(len(blocks))
        backbone.update(dec_depths=tuple(dec_depths), dec_channels=tuple(dec_channels))
    elif generation == "v3m1":
        raise ValueError("a PT-v3m1 state dict without a decoder: encoder-only PT-v3m1 models are not supported")
    fc1 = next((v for k, v in sd.items() if k.endswith(".mlp.0.fc1.weight")), None)
    if fc1 is not None:
        ratio = fc1.shape[0] / fc1.shape[1]
        backbone["mlp_ratio"] = int(ratio) if ratio == int(ratio) else ratio
    if rope is not None:
        bases = {round(b, 4) for k, v in sd.items() if k.endswith(_ROPE_BUFFER) and (b := rope_base_of(v)) is not None}
        if len(bases) > 1:
            raise ValueError(f"rotary frequency buffers of several bases {sorted(bases)}: not one PT-v3m3 network")
        backbone["rope_base"] = bases.pop() if bases else None
    head = sd.get("seg_head.weight")
    return PointceptSpec(
        in_channels=int(conv.shape[-1] if conv is not None else linear.shape[1]),
        num_classes=None if head is None else int(head.shape[0]),
        backbone=backbone,
        generation=generation,
        layer_scale=any(".ls1." in k for k in keys),
    )


def ptv3_kwargs_from_config(cfg: Mapping[str, Any], compat: str = "main",
                            generation: str = "v3m1") -> dict[str, Any]:
    """PTv3 kwargs (without ``in_channels``) for a Pointcept ``PT-v3m1/m2/m3`` backbone config dict.

    ``enable_flash`` maps to ``patch_rule``; ``compat`` names the Pointcept
    release PT-v3m1 weights come from (not recorded in configs or checkpoints).
    Unsupported options (RPE, PDNorm, PT-v3m1's encoder-only mode) raise ValueError.
    """
    same = _SAME_KWARGS[generation]
    kwargs: dict[str, Any] = {k: cfg[k] for k in same if k in cfg}
    required = {k: v for k, v in _REQUIRED.items() if k not in same}
    known = {*same, *required, *_IGNORED, "enable_flash"}
    bad = [f"{k}={cfg[k]!r}" for k, v in required.items() if k in cfg and bool(cfg[k]) != v]
    bad += [f"{k} (unknown)" for k in cfg if k not in known]
    if bad:
        raise ValueError(f"unsupported PT-{generation} options: {bad}")
    if isinstance(kwargs.get("order"), str):
        kwargs["order"] = (kwargs["order"],)
    kwargs["patch_rule"] = "flash" if cfg.get("enable_flash", True) else "non_flash"
    if generation == "v3m1":
        kwargs["compat"] = compat
    return kwargs
