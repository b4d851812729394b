"""``python -m pcseg.submit check|eval``: validate a benchmark submission, or score predictions offline.

  check OUT.zip --raw RAW [--split test]     every problem listed; exit 1 if any
  eval PRED_DIR_OR_ZIP --raw RAW --split val  metrics against the raw ground truth
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pcseg.submit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def common(q: argparse.ArgumentParser, split: str) -> None:
        q.add_argument("--raw", type=Path, required=True, help="raw ScanNet release (meshes, split lists)")
        q.add_argument("--split", default=split, choices=("train", "val", "test"), help=f"default: {split}")
        q.add_argument("--splits", type=Path, default=None,
                       help="folder with scannetv2_{train,val,test}.txt (default: RAW)")
        q.add_argument("--label-set", default="segment200", choices=("segment200", "segment20"),
                       help="benchmark of the ids: ScanNet200 raw category ids or ScanNet20 NYU40 ids")

    c = sub.add_parser("check", help="validate a submission zip against the split and the meshes")
    c.add_argument("zip", type=Path)
    common(c, "test")
    e = sub.add_parser("eval", help="score a folder or zip of <scene>.txt against the raw ground truth")
    e.add_argument("pred", type=Path)
    common(e, "val")
    e.add_argument("--label-map", type=Path, default=None,
                   help="scannetv2-labels.combined.tsv (default: RAW/scannetv2-labels.combined.tsv)")
    e.add_argument("--manifest", type=Path, default=None,
                   help="caches manifest.json: order the per-class table by training frequency")
    e.add_argument("--out", type=Path, default=None,
                   help="folder for submission_metrics_<split>.json (default: beside PRED)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pcseg.data.scannet_raw import RawDataError
    from pcseg.eval.submission import SubmissionError, check_submission, evaluate_predictions

    try:
        if args.command == "check":
            report = check_submission(args.zip, args.raw, args.split, args.splits, args.label_set)
            print(report.format(), file=sys.stdout if report.ok else sys.stderr)
            return 0 if report.ok else 1
        metrics, table = evaluate_predictions(args.pred, args.raw, args.split, args.splits, args.label_map,
                                              args.label_set)
    except (SubmissionError, RawDataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from pcseg.eval.metrics import format_table
    from pcseg.utils.atomic import atomic_write_text

    freq = None
    if args.manifest is not None:
        freq = np.array(json.loads(args.manifest.read_text())["class_histogram"][args.label_set]["counts"])
    if metrics["invalid_predictions"]:
        print(f"warning: {metrics['invalid_predictions']} predictions are not {args.label_set} ids "
              "(counted as misses)", file=sys.stderr)
    print(f"{args.split}: {metrics['num_scenes']} scenes, {metrics['num_vertices']} vertices from {args.pred}")
    print(format_table(metrics, table, freq))
    out = args.out if args.out is not None else args.pred.resolve().parent
    path = out / f"submission_metrics_{args.split}.json"
    metrics["predictions"] = str(args.pred)
    atomic_write_text(path, json.dumps(metrics, indent=1))
    print(f"metrics -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
