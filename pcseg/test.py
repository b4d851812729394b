"""``python -m pcseg.test --ckpt CKPT [--cfg FILE] [--split val] [--tta rot4] [key=value ...]``.

Predicts every mesh vertex of a split (test-time augmentation, fragments for scenes over
the voxel budget), scores labelled splits by the benchmark protocol and writes
``OUT/metrics_<split>.json``; optionally writes a checked submission zip (``--submit``)
coloured PLY files (``--save-ply``) and one self-contained web page per scene
(``--save-html``: prediction, ground truth and errors in any browser). Runs single-process or under ``torchrun``
(scenes split across ranks, confusion matrices summed).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
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
    p.add_argument("--save-html", type=Path, default=None, metavar="DIR",
                   help="one self-contained web page per scene: prediction, ground truth, errors (any browser)")
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
    for flag, path in (("--out", args.out), ("--save-ply", args.save_ply), ("--save-html", args.save_html)):
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


class Refused(Exception):
    """A set-up problem to report as ``error: ...`` with exit code 2 (nothing is written)."""


class Tally(NamedTuple):
    """What this rank (or, after :meth:`summed`, every rank) predicted."""

    scenes: int
    vertices: int
    passes: int  # network passes: fragments summed over TTA views

    def summed(self) -> "Tally":
        """The totals over ranks (a collective)."""
        from pcseg.utils.dist import all_reduce_sum_array

        return Tally(*(int(v) for v in all_reduce_sum_array(np.array(self, dtype=np.int64))))


def run(args: argparse.Namespace, cfg: DictConfig, ckpt: dict[str, Any], views: list[View],
        info: DistInfo) -> int:
    """Predict the split on this rank's scenes, then reduce, report and write on rank 0."""
    from pcseg.data.classes import table as class_table
    from pcseg.data.dataset import UNLABELLED_SPLITS
    from pcseg.eval.metrics import ConfusionMatrix
    from pcseg.engine import distributed as D
    from pcseg.eval.submission import OFFICIAL_SPLITS

    split = args.split or cfg.data.val_split
    if args.submit is not None and split not in OFFICIAL_SPLITS:
        return _error(f"--submit needs an official split name ({', '.join(OFFICIAL_SPLITS)}), got {split!r}")
    try:
        dataset, predictor = build_predictor(args, cfg, ckpt, split, views)
    except Refused as exc:
        return _error(str(exc))
    table = class_table(cfg.data.label_set)
    labelled = split not in UNLABELLED_SPLITS
    stage = open_stage(args.submit, info)
    conf = ConfusionMatrix(table.num_classes)
    t0 = time.perf_counter()
    tally = predict_scenes(args, cfg, dataset, predictor, split, views, info, conf if labelled else None, stage)
    seconds = time.perf_counter() - t0
    if info.enabled:
        tally = tally.summed()
        conf.all_reduce()
    D.barrier()
    if not info.is_main:
        return 0
    print(f"{split}: {tally.scenes} scenes, {tally.vertices} vertices, {len(views)} TTA view(s), {tally.passes} "
          f"network passes in {seconds:.1f} s ({tally.vertices / max(seconds, 1e-9):,.0f} vertices/s per process)")
    if labelled:
        report_metrics(args, cfg, conf, tally, split, views, seconds)
    else:
        print(f"{split} split has no labels: no metrics")
    if args.save_ply is not None:
        print(f"PLY files -> {args.save_ply}")
    if args.save_html is not None:
        print(f"web pages -> {args.save_html} (open <scene>.html in a browser; #mode=pred|gt|error)")
    if stage is None:
        return 0
    return write_staged_submission(args, cfg, stage, dataset.names, split)


def build_predictor(args: argparse.Namespace, cfg: DictConfig, ckpt: dict[str, Any], split: str,
                    views: list[View]) -> tuple[Any, Any]:
    """The split's scene caches and a predictor running the checkpoint's model on ``train.device``.
    Raises :class:`Refused` for missing caches, an unusable device or weights that do not fit."""
    from pcseg.data.classes import table as class_table
    from pcseg.data.dataset import SceneCacheDataset
    from pcseg.data.pipelines import val_transform_list
    from pcseg.data.transforms import build_transforms
    from pcseg.eval.inference import Predictor
    from pcseg.models.from_config import build_model_from_cfg
    from pcseg.models.spconv_compat import set_conv_algo
    from pcseg.utils.amp import AMP_DTYPES
    from pcseg.utils.device import resolve_device

    d = cfg.data
    try:
        dataset = SceneCacheDataset(d.root, split, label_set=d.label_set)
        device = resolve_device(cfg.train.device)
        model = build_model_from_cfg(cfg)
        model.load_state_dict(ckpt["model"])
    except (FileNotFoundError, KeyError, RuntimeError, ValueError) as exc:
        raise Refused(str(exc)) from exc
    model = set_conv_algo(model.to(device), device).eval()
    num_classes = class_table(d.label_set).num_classes
    tf_cfg = val_transform_list(cfg)
    amp = AMP_DTYPES[cfg.train.amp]  # as given, also on the CPU (unlike training, see pcseg.utils.amp)
    try:
        predictor = Predictor(model, build_transforms(list(tf_cfg)), num_classes, device, views,
                              max_voxels=args.max_voxels, overlap_m=args.overlap, amp_dtype=amp)
    except ValueError as exc:
        raise Refused(str(exc)) from exc
    return dataset, predictor


def open_stage(submit: Path | None, info: DistInfo) -> Path | None:
    """An empty folder beside the submission zip where every rank writes its scenes' label files
    (None without ``--submit``); rank 0 empties it, the others wait for that."""
    from pcseg.engine import distributed as D

    if submit is None:
        return None
    stage = submit.parent / f".{submit.name}.parts"
    if info.is_main:
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
    D.barrier()
    return stage


def predict_scenes(args: argparse.Namespace, cfg: DictConfig, dataset: Any, predictor: Any, split: str,
                   views: list[View], info: DistInfo, conf: Any | None, stage: Path | None) -> Tally:
    """Predict this rank's share of the scenes: score them into ``conf`` (labelled splits), write
    their label files into ``stage``, their PLY files into ``--save-ply`` and their web pages into
    ``--save-html``."""
    from tqdm import tqdm

    from pcseg.data.classes import table as class_table
    from pcseg.eval.ply_export import export_scene
    from pcseg.eval.scene_html import write_scene_html
    from pcseg.eval.submission import format_ids
    from pcseg.utils.atomic import atomic_write_text

    table = class_table(cfg.data.label_set)
    scenes = vertices = passes = 0
    mine = list(range(len(dataset)))[info.rank::info.world_size]
    bar = tqdm(mine, desc=f"{split} ({len(views)} view{'s' if len(views) > 1 else ''})", unit="scene",
               disable=not (info.is_main and cfg.train.progress), dynamic_ncols=True)
    for i in bar:
        name = dataset.names[i]
        data = dataset.load_scene(i)
        result = predictor.predict(data)
        pred = result.pred
        scenes, vertices, passes = scenes + 1, vertices + pred.size, passes + sum(result.fragments)
        if conf is not None:
            conf.update(pred, data["segment"])
        if stage is not None:
            atomic_write_text(stage / f"{name}.txt", format_ids(table.ids[pred]))
        if args.save_ply is not None:
            faces = raw_faces(args.raw, name, split, pred.size) if args.raw is not None else None
            export_scene(args.save_ply, name, data["coord"], pred, table,
                         data["segment"] if conf is not None else None, faces)
        if args.save_html is not None:
            write_scene_html(args.save_html / f"{name}.html", data["coord"], table,
                             data["segment"] if conf is not None else None, pred, scene=name,
                             title=f"{name} · {args.ckpt.parent.name}/{args.ckpt.name} · {split}")
    bar.close()
    return Tally(scenes, vertices, passes)


def raw_faces(raw: Path, name: str, split: str, num_vertices: int) -> np.ndarray | None:
    """The faces of a scene's raw mesh for its PLY files; None (points only, with a warning) when
    the mesh cannot be read or its vertices do not match the cache's."""
    from pcseg.data.scannet_raw import RawDataError, read_mesh
    from pcseg.eval.submission import mesh_path

    try:
        coord_raw, _, faces = read_mesh(mesh_path(raw, name, split))
    except RawDataError as exc:
        print(f"warning: {name}: no faces ({exc})", file=sys.stderr)
        return None
    if len(coord_raw) != num_vertices:
        print(f"warning: {name}: raw mesh has {len(coord_raw)} vertices, cache {num_vertices}; "
              "writing points without faces", file=sys.stderr)
        return None
    return faces


def report_metrics(args: argparse.Namespace, cfg: DictConfig, conf: Any, tally: Tally, split: str,
                   views: list[View], seconds: float) -> None:
    """Print the benchmark table and write ``metrics_<split>.json`` (rank 0, labelled splits)."""
    from pcseg.data.classes import table as class_table
    from pcseg.data.manifest import read_manifest
    from pcseg.eval.metrics import format_table
    from pcseg.eval.submission import metrics_summary
    from pcseg.utils.atomic import atomic_write_text

    d = cfg.data
    table = class_table(d.label_set)
    metrics = metrics_summary(conf.matrix, table, num_scenes=tally.scenes, num_vertices=tally.vertices)
    metrics.update(split=split, tta=args.tta, views=[str(v) for v in views], checkpoint=str(args.ckpt),
                   label_set=d.label_set, max_voxels=args.max_voxels, seconds=round(seconds, 3))
    manifest = read_manifest(Path(d.root))
    freq = None if manifest is None else np.array(manifest["class_histogram"][d.label_set]["counts"])
    print(format_table(metrics, table, freq))
    out_dir = args.out if args.out is not None else args.ckpt.parent
    path = out_dir / f"metrics_{split}.json"
    atomic_write_text(path, json.dumps(metrics, indent=1))
    print(f"metrics -> {path}")


def write_staged_submission(args: argparse.Namespace, cfg: DictConfig, stage: Path, names: list[str],
                            split: str) -> int:
    """Zip the staged label files into ``--submit`` (checked against the raw release), then remove
    the stage; 1 when the check fails."""
    from pcseg.data.scannet_raw import RawDataError
    from pcseg.eval.submission import SubmissionError, write_submission

    try:
        files = {n: stage / f"{n}.txt" for n in names}
        report = write_submission(args.submit, files, args.raw, split, args.splits, cfg.data.label_set)
        print(report.format())
    except (SubmissionError, RawDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
