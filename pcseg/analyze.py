"""``python -m pcseg.analyze --cfg FILE --ckpt CKPT [--split val] [--out DIR] [key=value ...]``

Neural-collapse analysis of a trained model: streams the last-layer features of a split
(per-class sums, counts and second moments; features are never all held in memory) and
writes ``DIR/nc_metrics.json`` and ``DIR/report.md`` with the cosine heatmaps (classes
sorted by training frequency) and per-class IoU against training frequency.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pcseg.engine.config import ConfigError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pcseg.analyze", description=__doc__)
    p.add_argument("--cfg", default=None, help="config (default: the one stored in the checkpoint)")
    p.add_argument("--ckpt", required=True, type=Path)
    p.add_argument("--split", default="val")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <ckpt folder>/nc_<split>)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. data.root=PATH")
    return p.parse_args(argv)


def analyze(cfg, ckpt_path: Path, split: str, out_dir: Path, progress: bool = True,
            ckpt: dict[str, Any] | None = None) -> dict[str, Any]:
    """Collect features over ``split``, compute NC metrics and per-class IoU, write the report.
    ``ckpt``: the checkpoint at ``ckpt_path`` when the caller has already read it (read once)."""
    from pcseg.data.classes import table as class_table
    from pcseg.data.dataset import SceneCacheDataset
    from pcseg.data.loader import build_loader
    from pcseg.data.manifest import read_manifest
    from pcseg.data.transforms import build_transforms
    from pcseg.engine import distributed as D
    from pcseg.engine.checkpoint import load_checkpoint
    from pcseg.data.pipelines import val_transform_list
    from pcseg.models.from_config import build_model_from_cfg
    from pcseg.eval.metrics import ConfusionMatrix, summarize
    from pcseg.models import set_conv_algo
    from pcseg.nc.metrics import FeatureStats
    from pcseg.nc.plots import plot_cosine_heatmaps, plot_iou_vs_frequency
    from pcseg.nc.report import write_report
    from pcseg.utils.device import resolve_device

    info = D.current()
    device = resolve_device(cfg.train.device)
    table = class_table(cfg.data.label_set)
    model = build_model_from_cfg(cfg)
    model.load_state_dict((ckpt if ckpt is not None else load_checkpoint(ckpt_path))["model"])
    model.to(device).eval()
    set_conv_algo(model, device)
    tf = val_transform_list(cfg)
    ds = SceneCacheDataset(Path(cfg.data.root), split, label_set=cfg.data.label_set, transforms=build_transforms(tf))
    shard = list(range(len(ds)))[info.rank::info.world_size]
    loader = build_loader(ds, 1, shuffle=False, num_workers=cfg.data.num_workers, seed=cfg.seed, sampler=shard)
    stats = FeatureStats.for_table(table, model.feat_dim, device="cpu")
    conf = ConfusionMatrix(table.num_classes)
    with torch.no_grad():
        for batch in tqdm(loader, desc=f"features ({split})", disable=not (progress and info.is_main)):
            coord = batch["coord"].to(device) if "coord" in batch else None
            out = model(batch["grid_coord"].to(device), batch["batch"].to(device), batch["feat"].to(device), coord)
            stats.update(out["feat"].float().cpu(), batch["segment"])  # one row per voxel
            conf.update(out["logits"].argmax(1).cpu()[batch["inverse"]], batch["origin_segment"])
    stats.all_reduce()
    conf.all_reduce()
    nc = stats.metrics(classifier=model.head.weight.detach().cpu(), table=table)
    seg = summarize(conf.matrix, table)
    manifest = read_manifest(Path(cfg.data.root))
    freq = np.array(manifest["class_histogram"][cfg.data.label_set]["counts"]) if manifest else np.bincount(
        [], minlength=table.num_classes)
    if not info.is_main:
        return {}
    out_dir.mkdir(parents=True, exist_ok=True)
    order = np.argsort(-freq, kind="stable")
    present = [i for i in order if freq[i] > 0] or list(order)
    plots = {
        "Pairwise cosines of class means and classifier vectors (classes by training frequency)":
            plot_cosine_heatmaps(nc["cos_means"], nc["cos_classifier"], present, table.names,
                                 out_dir / "cosine_heatmaps.png"),
        "Per-class IoU against training frequency":
            plot_iou_vs_frequency([seg["per_class"][n] for n in table.names], freq, table.split,
                                  out_dir / "iou_vs_frequency.png", names=table.names),
    }
    scalars = {k: v for k, v in nc.items() if not isinstance(v, np.ndarray)}
    result = {"checkpoint": str(ckpt_path), "split": split, "nc": scalars,
              "segmentation": {k: v for k, v in seg.items()},
              "train_frequency": {n: int(c) for n, c in zip(table.names, freq)}}
    from pcseg.utils.atomic import atomic_write_text

    atomic_write_text(out_dir / "nc_metrics.json", json.dumps(result, indent=1))
    seg_line = " | ".join(f"{k} {100 * seg[k]:.1f}" if seg[k] is not None else f"{k} -"
                          for k in ("miou", "miou_head", "miou_common", "miou_tail"))
    write_report(out_dir, scalars, plots, {"Segmentation (benchmark protocol)": seg_line,
                                            "Inputs": f"checkpoint `{ckpt_path}`, split `{split}`, "
                                                      f"{len(ds)} scenes"})
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pcseg.data.cache_check import SceneDataError
    from pcseg.data.loader import worker_message
    from pcseg.engine import distributed as D
    from pcseg.engine.checkpoint import load_checkpoint
    from pcseg.test import config_from

    out = args.out or args.ckpt.parent / f"nc_{args.split}"
    if out.exists() and not out.is_dir():
        print(f"error: the output folder {out} is a file: pass --out DIR (created if missing)", file=sys.stderr)
        return 2
    try:
        ckpt = load_checkpoint(args.ckpt)
        cfg = config_from(args, ckpt)
    except (ConfigError, FileNotFoundError, ValueError) as exc:  # CheckpointError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    D.init_distributed(cfg.train.device)
    try:
        result = analyze(cfg, args.ckpt, args.split, out, ckpt=ckpt)
    except (FileNotFoundError, SceneDataError) as exc:  # missing caches; a scene with bad values
        print(f"error: {worker_message(exc)}", file=sys.stderr)
        return 2
    finally:
        D.cleanup()
    if result:
        nc = result["nc"]
        print(f"NC1 {nc['nc1']:.4g} | equiangularity means {nc['equiangularity_means']:.4g} "
              f"classifier {nc['equiangularity_classifier']:.4g} | NC3 {nc['nc3']:.4g}")
        print(f"wrote {out / 'nc_metrics.json'} and {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
