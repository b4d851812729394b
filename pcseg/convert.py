"""``python -m pcseg.convert SRC.pth OUT.pth --cfg CFG [key=value ...]``: Pointcept PTv3 weights -> pcseg.

SRC is any published layout of Pointcept-family PTv3 weights (PT-v3m1, Sonata/Concerto's
PT-v3m2, Utonia's PT-v3m3):

* a Pointcept segmentor checkpoint (``model_best.pth``: ``[module.]backbone.*`` + ``seg_head.*``)
  becomes an ordinary pcseg checkpoint with the same logits, for ``pcseg.test``, ``pcseg.analyze``,
  submission and ``train.init_from``;
* a pretraining checkpoint (``pretrain-*.pth``: ``module.student.backbone.*``) or a standalone
  encoder file (``sonata.pth``, ``concerto_*.pth``, ``utonia.pth``) becomes an *encoder
  checkpoint*: the stem and encoder only, for ``train.init_from`` (decoder and head start fresh).
  The teacher, the pretraining heads and the mask token are left out and listed.

CFG describes the network and its input (e.g. ``configs/scannet200_sonata_ft.yaml``). Every
converted tensor must land on exactly one pcseg tensor of the same shape; otherwise the
unmatched and missing names are listed and nothing is written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pcseg.engine.checkpoint import ENCODER_KIND
from pcseg.engine.config import ConfigError, load_config
from pcseg.models.pointcept import PointceptSpec
from pcseg.models.pointcept_layouts import SourceWeights


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pcseg.convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", type=Path, help="Pointcept checkpoint, pretraining checkpoint or encoder file")
    p.add_argument("out", type=Path, help="pcseg checkpoint to write")
    p.add_argument("--cfg", required=True, help="pcseg config of the same network, e.g. configs/scannet200_ptv3.yaml")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. model.compat=v1.5.1 data.color_range=[0,1]")
    return p.parse_intermixed_args(argv)


def read_weights(path: Path) -> SourceWeights:
    """The weights of ``path`` under Pointcept's segmentor names, whatever its layout."""
    from pcseg.engine.checkpoint import safe_load
    from pcseg.models.pointcept_layouts import split_layout

    obj = safe_load(path, what="Pointcept checkpoint")  # never unpickles code (no unsafe retry)
    return split_layout(obj, what=str(path))


def _effective_backbone(cfg: DictConfig) -> dict[str, Any]:
    """The backbone's constructor arguments: its defaults, then the preset, then ``model.*``."""
    import inspect

    from pcseg.models import MODELS, PRESETS
    from pcseg.models.from_config import model_overrides

    name = str(cfg.model.name).lower()
    presets, default = PRESETS[name]
    defaults = {k: p.default for k, p in inspect.signature(MODELS[name].__init__).parameters.items()
                if p.kind is p.KEYWORD_ONLY}
    return {**defaults, **presets[cfg.model.preset or default], **model_overrides(cfg)}


def check_against_config(spec: PointceptSpec, cfg: DictConfig, encoder_only: bool = False,
                         stored: dict[str, Any] | None = None) -> None:
    """What the weights determine (generation, widths, depths, inputs, classes), and what an
    encoder file's ``stored`` constructor arguments say of orders, strides and heads, must equal
    the config's; the error says which overrides make them agree."""
    from pcseg.data.classes import table as class_table

    name = str(cfg.model.name).lower()
    if name != spec.model_name:
        example = {"ptv3": "scannet200_ptv3", "ptv3m2": "scannet200_sonata_ft", "ptv3m3": "scannet200_utonia_ft"}
        raise ValueError(f"model.name={cfg.model.name}: these are PT-{spec.generation} weights, which convert to "
                         f"model.name={spec.model_name} (e.g. --cfg configs/{example[spec.model_name]}.yaml)")
    mine = _effective_backbone(cfg)
    fixes = []
    for key, value in spec.backbone.items():
        if key == "stride" or (encoder_only and key.startswith("dec_")):
            continue  # the stride's values are not recorded; an encoder says nothing of the decoder
        have = mine.get(key)
        have = tuple(have) if isinstance(have, (list, tuple)) else have
        if key == "rope_base":
            if value is not None and (have is None or abs(float(have) - value) > 1e-3 * value):
                fixes.append(f"model.rope_base={value:g} (config: {have})")
            continue
        if have != value:
            fixes.append(f"model.{key}={list(value) if isinstance(value, tuple) else value} (config: {have})")
    has_decoder = "dec_channels" in spec.backbone
    if not encoder_only and spec.generation != "v3m1" and has_decoder == bool(mine.get("enc_mode")):
        fixes.append("model.enc_mode=false (the weights have a decoder)" if has_decoder else
                     "model.enc_mode=true (the weights have no decoder: a linear probe, e.g. model.preset=sonata_lin)")
    if spec.generation != "v3m1" and spec.layer_scale != (mine.get("layer_scale") is not None):
        fixes.append("model.layer_scale=1.0e-5 (the weights have LayerScale)" if spec.layer_scale
                     else "model.layer_scale=null (the weights have no LayerScale)")
    if stored:
        # An encoder file's own constructor arguments: what the shapes cannot tell must agree too.
        for key in ("order", "stride", "enc_num_head", "pre_norm", "mlp_ratio"):
            if key in stored:
                want, have = stored[key], mine.get(key)
                want = tuple(want) if isinstance(want, (list, tuple)) else want
                have = tuple(have) if isinstance(have, (list, tuple)) else have
                if want != have:
                    fixes.append(f"model.{key}={list(want) if isinstance(want, tuple) else want} (the file's config; "
                                 f"config: {list(have) if isinstance(have, tuple) else have})")
    if spec.in_channels != cfg.model.in_channels:
        fixes.append(f"model.in_channels={spec.in_channels} (config: {cfg.model.in_channels}) and data.feat_keys "
                     "to match")
    k = class_table(cfg.data.label_set).num_classes
    if not encoder_only and spec.num_classes != k:
        fixes.append(f"data.label_set for {spec.num_classes} classes (config: {cfg.data.label_set}, {k} classes)")
    if fixes:
        raise ValueError("the checkpoint's network differs from the config; override:\n  " + "\n  ".join(fixes))


def convert(src: Path, out: Path, cfg: DictConfig) -> dict[str, Any]:
    """Convert, load strictly, and write ``out`` atomically; returns a summary."""
    from pcseg.data.classes import table as class_table
    from pcseg.engine.checkpoint import save_checkpoint
    from pcseg.models.from_config import build_model_from_cfg
    from pcseg.models.pointcept import convert_state_dict, infer_ptv3_spec

    weights = read_weights(src)
    spec = infer_ptv3_spec(weights.state)
    encoder_only = not weights.has_head
    check_against_config(spec, cfg, encoder_only, weights.config)
    model = build_model_from_cfg(cfg)
    mapped = convert_state_dict(weights.state, model, encoder_only=encoder_only)
    model.load_state_dict(mapped, strict=not encoder_only)
    fmt = f"pointcept {weights.layout}, PT-{spec.generation}" + (" encoder" if encoder_only else "")
    ckpt: dict[str, Any] = {
        "model": mapped if encoder_only else model.state_dict(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "num_classes": class_table(cfg.data.label_set).num_classes,
        "label_set": cfg.data.label_set,
        "converted_from": {"path": str(src), "format": fmt, "ignored": weights.ignored, **weights.meta},
    }
    if encoder_only:
        ckpt["kind"] = ENCODER_KIND
    save_checkpoint(out, ckpt)
    return {"tensors": len(mapped), "parameters": sum(v.numel() for v in mapped.values()),
            "encoder_only": encoder_only, "format": fmt, "ignored": weights.ignored, **weights.meta}


def main(argv: list[str] | None = None) -> int:
    from pcseg.models.pointcept_layouts import summarize_names

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
    what = "encoder checkpoint (stem + encoder; fine-tune it with train.init_from)" if summary["encoder_only"] else "checkpoint"
    print(f"wrote {args.out}: {what} from a {summary['format']}, {summary['tensors']} tensors, "
          f"{summary['parameters'] / 1e6:.1f} M parameters"
          + (f", Pointcept epoch {summary['epoch']}" if "epoch" in summary else ""))
    if summary["ignored"]:
        print(f"left out {len(summary['ignored'])} tensors: {summarize_names(summary['ignored'])}")
    print(f"expects feat = {list(d.feat_keys)} with colour mapped to {list(d.color_range)}, {d.grid_size} m voxels"
          + (f"; block structure: Pointcept {cfg.model.compat or 'main'} (model.compat)"
             if str(cfg.model.name).lower() == "ptv3" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
