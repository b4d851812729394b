"""``python -m pcseg.test --ckpt CKPT [--cfg FILE] [--split val] [--tta rot4] [key=value ...]``.

Predicts every mesh vertex of a split (test-time augmentation, fragments for scenes over
the voxel budget), scores labelled splits by the benchmark protocol and writes
``OUT/metrics_<split>.json``; optionally writes a checked submission zip (``--submit``)
and coloured PLY files (``--save-ply``). Runs single-process or under ``torchrun``
(scenes split across ranks, confusion matrices summed).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from pcseg.engine.config import ConfigError, load_config
from pcseg.engine.distributed import DistInfo
from pcseg.eval.inference import DEFAULT_MAX_VOXELS, DEFAULT_OVERLAP_M, TTA_PRESETS, View, parse_tta


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pcseg.test", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, type=Path, help="checkpoint (best.pth / last.pth of a run)")
    p.add_argument("--cfg", default=None, help="YAML config (default: the config stored in the checkpoint)")
    p.add_argument("--split", default=None, help="cache split to predict: val (default: data.val_split) or test")
    p.add_argument("--tta", default="none",
                   help=f"test-time augmentation: {', '.join(TTA_PRESETS)} or angles, e.g. '0,90,180f' "
                        "(f = x-flip); scores are the mean softmax over the views")
    p.add_argument("--max-voxels", type=int, default=DEFAULT_MAX_VOXELS,
                   help="voxels per network pass; larger scenes are split into overlapping xy fragments")
    p.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP_M,
                   help="fragment overlap in metres (each side)")
    p.add_argument("--submit", type=Path, default=None, metavar="OUT.zip",
                   help="write a benchmark submission zip of the split (checked against --raw)")
    p.add_argument("--raw", type=Path, default=None,
                   help="raw ScanNet release: needed by --submit; gives --save-ply the mesh faces")
    p.add_argument("--splits", type=Path, default=None,
                   help="folder with scannetv2_{train,val,test}.txt (default: RAW)")
    p.add_argument("--save-ply", type=Path, default=None, metavar="DIR",
                   help="write <scene>_pred.ply and <scene>_error.ply per scene")
    p.add_argument("--out", type=Path, default=None, help="folder for metrics_<split>.json (default: the checkpoint's)")
    p.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. data.root=PATH train.device=cpu")
    return p.parse_intermixed_args(argv)


def config_from(args: argparse.Namespace, ckpt: dict[str, Any]) -> DictConfig:
    """The config file given, else the resolved config saved in the checkpoint; overrides on top."""
    if args.cfg is not None:
        return load_config(args.cfg, args.overrides)
    stored = ckpt.get("config")
    if not isinstance(stored, dict):
        raise ConfigError(f"checkpoint {args.ckpt} holds no config: pass --cfg FILE")
    return load_config(stored, args.overrides)


def _error(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.submit is not None and args.raw is None:
        return _error("--submit checks the zip against the raw meshes and the official split list: "
                      "pass --raw RAW (the ScanNet release folder)")
    if args.max_voxels <= 0:
        return _error(f"--max-voxels must be positive, got {args.max_voxels}")
    from math import isfinite

    if not isfinite(args.overlap) or args.overlap < 0:
        return _error(f"--overlap must be a finite number of metres >= 0, got {args.overlap}")
    for flag, path in (("--raw", args.raw), ("--splits", args.splits)):
        if path is not None and not path.is_dir():
            return _error(f"{flag} {path} {'is not a folder' if path.exists() else 'not found'}")
    for flag, path in (("--out", args.out), ("--save-ply", args.save_ply)):
        if path is not None and path.exists() and not path.is_dir():
            return _error(f"{flag} {path} is a file: pass a folder (it is created if missing)")
    if args.submit is not None and args.submit.is_dir():
        return _error(f"--submit {args.submit} is a folder: pass the zip to write, e.g. {args.submit / 'val.zip'}")
    from pcseg.engine.checkpoint import load_checkpoint

    try:
        views = parse_tta(args.tta)
        ckpt = load_checkpoint(args.ckpt)
        cfg = config_from(args, ckpt)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:  # ConfigError is a ValueError
        return _error(str(exc))
    stored_set = ckpt.get("label_set")
    if stored_set is not None and stored_set != cfg.data.label_set:
        return _error(f"the checkpoint was trained on {stored_set} but data.label_set={cfg.data.label_set}")
    if "model" not in ckpt:
        return _error(f"{args.ckpt} has no 'model' weights")
    from pcseg.engine import distributed as D

    from pcseg.data.cache_check import SceneDataError

    info = D.init_distributed(cfg.train.device)
    try:
        try:
            code = run(args, cfg, ckpt, views, info)
        except SceneDataError as exc:  # a scene with bad values, found when it is predicted
            return _error(f"{exc}; nothing was written for it")
        if code == 0:
            D.cleanup(wait_for_all=True)
        return code
    finally:
        D.cleanup()


def run(args: argparse.Namespace, cfg: DictConfig, ckpt: dict[str, Any], views: list[View],
        info: DistInfo) -> int:
    """Predict the split on this rank's scenes, then reduce, report and write on rank 0."""
    from tqdm import tqdm

    from pcseg.data.classes import table as class_table
    from pcseg.data.dataset import UNLABELLED_SPLITS, SceneCacheDataset
    from pcseg.data.manifest import read_manifest
    from pcseg.data.scannet_raw import RawDataError, read_mesh
    from pcseg.data.transforms import build_transforms
    from pcseg.engine import distributed as D
    from pcseg.data.pipelines import val_transform_list
    from pcseg.models.from_config import build_model_from_cfg
    from pcseg.eval.inference import Predictor
    from pcseg.eval.metrics import ConfusionMatrix, format_table
    from pcseg.eval.ply_export import export_scene
    from pcseg.eval.submission import (OFFICIAL_SPLITS, SubmissionError, format_ids, mesh_path, metrics_summary,
                                       write_submission)
    from pcseg.models.spconv_compat import set_conv_algo
    from pcseg.utils.amp import AMP_DTYPES
    from pcseg.utils.atomic import atomic_write_text
    from pcseg.utils.device import resolve_device

    d = cfg.data
    split = args.split or d.val_split
    if args.submit is not None and split not in OFFICIAL_SPLITS:
        return _error(f"--submit needs an official split name ({', '.join(OFFICIAL_SPLITS)}), got {split!r}")
    try:
        dataset = SceneCacheDataset(d.root, split, label_set=d.label_set)
        device = resolve_device(cfg.train.device)
        model = build_model_from_cfg(cfg)
        model.load_state_dict(ckpt["model"])
    except (FileNotFoundError, KeyError, RuntimeError, ValueError) as exc:
        return _error(str(exc))
    model = set_conv_algo(model.to(device), device).eval()
    table = class_table(d.label_set)
    tf_cfg = val_transform_list(cfg)
    amp = AMP_DTYPES[cfg.train.amp]  # as given, also on the CPU (unlike training, see pcseg.utils.amp)
    try:
        predictor = Predictor(model, build_transforms(list(tf_cfg)), table.num_classes, device, views,
                              max_voxels=args.max_voxels, overlap_m=args.overlap, amp_dtype=amp)
    except ValueError as exc:
        return _error(str(exc))
    labelled = split not in UNLABELLED_SPLITS
    out_dir = args.out if args.out is not None else args.ckpt.parent
    stage = None
    if args.submit is not None:
        stage = args.submit.parent / f".{args.submit.name}.parts"
        if info.is_main:
            shutil.rmtree(stage, ignore_errors=True)
            stage.mkdir(parents=True)
        D.barrier()

    conf = ConfusionMatrix(table.num_classes)
    counts = np.zeros(3, dtype=np.int64)  # scenes, vertices, fragment passes
    mine = list(range(len(dataset)))[info.rank::info.world_size]
    t0 = time.perf_counter()
    bar = tqdm(mine, desc=f"{split} ({len(views)} view{'s' if len(views) > 1 else ''})", unit="scene",
               disable=not (info.is_main and cfg.train.progress), dynamic_ncols=True)
    for i in bar:
        name = dataset.names[i]
        data = dataset.load_scene(i)
        result = predictor.predict(data)
        pred = result.pred
        counts += (1, pred.size, sum(result.fragments))
        if labelled:
            conf.update(pred, data["segment"])
        if stage is not None:
            atomic_write_text(stage / f"{name}.txt", format_ids(table.ids[pred]))
        if args.save_ply is not None:
            faces = None
            if args.raw is not None:
                try:
                    coord_raw, _, faces = read_mesh(mesh_path(args.raw, name, split))
                    if len(coord_raw) != pred.size:
                        print(f"warning: {name}: raw mesh has {len(coord_raw)} vertices, cache {pred.size}; "
                              "writing points without faces", file=sys.stderr)
                        faces = None
                except RawDataError as exc:
                    print(f"warning: {name}: no faces ({exc})", file=sys.stderr)
            export_scene(args.save_ply, name, data["coord"], pred, table,
                         data["segment"] if labelled else None, faces)
    bar.close()
    seconds = time.perf_counter() - t0
    if info.enabled:
        counts = D.all_reduce_sum_array(counts)
        conf.all_reduce()
    D.barrier()
    if not info.is_main:
        return 0

    code = 0
    rate = counts[1] / max(seconds, 1e-9)
    print(f"{split}: {counts[0]} scenes, {counts[1]} vertices, {len(views)} TTA view(s), {counts[2]} network "
          f"passes in {seconds:.1f} s ({rate:,.0f} vertices/s per process)")
    if labelled:
        metrics = metrics_summary(conf.matrix, table, num_scenes=int(counts[0]), num_vertices=int(counts[1]))
        metrics.update(split=split, tta=args.tta, views=[str(v) for v in views], checkpoint=str(args.ckpt),
                       label_set=d.label_set, max_voxels=args.max_voxels, seconds=round(seconds, 3))
        manifest = read_manifest(Path(d.root))
        freq = None if manifest is None else np.array(manifest["class_histogram"][d.label_set]["counts"])
        print(format_table(metrics, table, freq))
        path = out_dir / f"metrics_{split}.json"
        atomic_write_text(path, json.dumps(metrics, indent=1))
        print(f"metrics -> {path}")
    else:
        print(f"{split} split has no labels: no metrics")
    if args.save_ply is not None:
        print(f"PLY files -> {args.save_ply}")
    if stage is not None:
        try:
            files = {n: stage / f"{n}.txt" for n in dataset.names}
            report = write_submission(args.submit, files, args.raw, split, args.splits, d.label_set)
            print(report.format())
        except (SubmissionError, RawDataError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = 1
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
