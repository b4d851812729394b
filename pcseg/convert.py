"""``python -m pcseg.convert SRC.pth OUT.pth --cfg CFG [key=value ...]``: Pointcept PTv3 -> pcseg.

SRC is a Pointcept checkpoint (``DefaultSegmentorV2`` with a ``PT-v3m1`` backbone: a dict
with ``state_dict``, keys with or without ``module.``). CFG describes the network and its
input (e.g. ``configs/scannet200_ptv3.yaml``). Every source tensor must land on exactly one
pcseg tensor of the same shape; otherwise the unmatched and missing names are listed and
nothing is written. OUT is an ordinary pcseg checkpoint (weights + resolved config) that
``pcseg.test``, ``pcseg.analyze``, submission and ``train.init_from`` accept.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from pcseg.engine.config import ConfigError, load_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pcseg.convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", type=Path, help="Pointcept checkpoint (model_best.pth / model_last.pth)")
    p.add_argument("out", type=Path, help="pcseg checkpoint to write")
    p.add_argument("--cfg", required=True, help="pcseg config of the same network, e.g. configs/scannet200_ptv3.yaml")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. model.compat=v1.5.1 data.color_range=[0,1]")
    return p.parse_intermixed_args(argv)


def read_pointcept_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict of a Pointcept checkpoint and its other scalar entries (epoch, best metric)."""
    from pcseg.engine.checkpoint import safe_load

    obj = safe_load(path, what="Pointcept checkpoint")  # never unpickles code (no unsafe retry)
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict")
    state = obj.get("state_dict", obj)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} has no 'state_dict' of tensors (keys: {sorted(obj)[:10]})")
    meta = {k: v for k, v in obj.items() if k != "state_dict" and isinstance(v, (int, float, str))}
    return state, meta


def _effective_backbone(cfg: DictConfig) -> dict[str, Any]:
    from pcseg.models import PRESETS
    from pcseg.models.from_config import model_overrides

    presets, default = PRESETS["ptv3"]
    return {**presets[cfg.model.preset or default], **model_overrides(cfg)}


def check_against_config(state: dict[str, torch.Tensor], cfg: DictConfig) -> None:
    """What the weights determine (widths, depths, inputs, classes) must equal the config's;
    the error says which overrides make them agree."""
    from pcseg.data.classes import table as class_table
    from pcseg.models.pointcept import infer_ptv3_spec

    if str(cfg.model.name).lower() != "ptv3":
        raise ValueError(f"model.name={cfg.model.name}: Pointcept PTv3 checkpoints convert to model.name=ptv3 "
                         "(use --cfg configs/scannet200_ptv3.yaml)")
    spec = infer_ptv3_spec(state)
    mine = _effective_backbone(cfg)
    fixes = []
    for key, value in spec.backbone.items():
        if key == "stride":
            continue  # only its length is known, and the depths already fix that
        have = mine.get(key)
        have = tuple(have) if isinstance(have, (list, tuple)) else have
        if have != value:
            fixes.append(f"model.{key}={list(value) if isinstance(value, tuple) else value} (config: {have})")
    if spec.in_channels != cfg.model.in_channels:
        fixes.append(f"model.in_channels={spec.in_channels} (config: {cfg.model.in_channels}) and data.feat_keys "
                     "to match")
    k = class_table(cfg.data.label_set).num_classes
    if spec.num_classes != k:
        fixes.append(f"data.label_set for {spec.num_classes} classes (config: {cfg.data.label_set}, {k} classes)")
    if fixes:
        raise ValueError("the checkpoint's network differs from the config; override:\n  " + "\n  ".join(fixes))


def convert(src: Path, out: Path, cfg: DictConfig) -> dict[str, Any]:
    """Convert, load strictly, and write ``out`` atomically; returns a summary."""
    from pcseg.data.classes import table as class_table
    from pcseg.engine.checkpoint import save_checkpoint
    from pcseg.models.from_config import build_model_from_cfg
    from pcseg.models.pointcept import convert_state_dict

    state, meta = read_pointcept_state(src)
    check_against_config(state, cfg)
    model = build_model_from_cfg(cfg)
    mapped = convert_state_dict(state, model)
    model.load_state_dict(mapped, strict=True)
    save_checkpoint(out, {
        "model": model.state_dict(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "num_classes": class_table(cfg.data.label_set).num_classes,
        "label_set": cfg.data.label_set,
        "converted_from": {"path": str(src), "format": "pointcept DefaultSegmentorV2 + PT-v3m1", **meta},
    })
    return {"tensors": len(mapped), "parameters": sum(p.numel() for p in model.parameters()), **meta}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.out.is_dir() or (args.out.parent.exists() and not args.out.parent.is_dir()):
        print(f"error: OUT {args.out} must be a file path in a folder (it is "
              f"{'a folder' if args.out.is_dir() else 'inside a file'}); nothing was written", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.cfg, args.overrides)
        summary = convert(args.src, args.out, cfg)
    except (ConfigError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"error: {exc}\nnothing was written", file=sys.stderr)
        return 2
    d = cfg.data
    print(f"wrote {args.out}: {summary['tensors']} tensors, {summary['parameters'] / 1e6:.1f} M parameters"
          + (f", Pointcept epoch {summary['epoch']}" if "epoch" in summary else ""))
    print(f"expects feat = {list(d.feat_keys)} with colour mapped to {list(d.color_range)}, {d.grid_size} m voxels; "
          f"block structure: Pointcept {cfg.model.compat or 'main'} (model.compat)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
