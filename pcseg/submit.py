"""``python -m pcseg.submit check|eval``: validate a benchmark submission, or score predictions offline.

  check OUT.zip --raw RAW [--split test]     every problem listed; exit 1 if any
  eval PRED_DIR_OR_ZIP --raw RAW --split val  metrics against the raw ground truth

Exit codes: 0 valid / scored; 1 the submission or predictions are invalid (every problem
listed); 2 a usage error (a path that is missing or of the wrong kind, an unreadable manifest,
split lists or release), found before any scene is read where it can be.
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


def _path_problems(args: argparse.Namespace) -> list[str]:
    """Paths that are missing or of the wrong kind, each with the argument that names it."""
    problems = []
    wanted = [("--raw", args.raw, "folder"), ("--splits", args.splits, "folder")]
    if args.command == "check":
        wanted.append(("the submission zip", args.zip, "file"))
    else:
        wanted += [("the predictions", args.pred, "either"), ("--label-map", args.label_map, "file"),
                   ("--manifest", args.manifest, "file")]
    for flag, path, kind in wanted:
        if path is None:
            continue
        if not path.exists():
            problems.append(f"{flag} {path} not found")
        elif kind == "folder" and not path.is_dir():
            problems.append(f"{flag} {path} is not a folder")
        elif kind == "file" and not path.is_file():
            problems.append(f"{flag} {path} is not a file" + (" (it is a folder)" if path.is_dir() else ""))
    out = getattr(args, "out", None)
    if out is not None and out.exists() and not out.is_dir():
        problems.append(f"--out {out} is a file: pass a folder (it is created if missing)")
    return problems


def read_frequency(path: Path, label_set: str, num_classes: int) -> np.ndarray:
    """Training frequency per class from a caches manifest.json; ValueError says what is wrong."""
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"--manifest {path} is not UTF-8 text (invalid byte at offset {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--manifest {path} is not JSON ({exc})") from None
    except OSError as exc:
        raise ValueError(f"--manifest {path} cannot be read ({exc.strerror or exc})") from None
    try:
        counts = np.array(manifest["class_histogram"][label_set]["counts"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"--manifest {path} has no class_histogram.{label_set}.counts list of numbers: pass the "
                         "manifest.json that python data_prep/scannet200.py wrote beside the caches") from None
    if counts.shape != (num_classes,) or not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError(f"--manifest {path}: class_histogram.{label_set}.counts must be {num_classes} counts >= 0, "
                         f"got {counts.size} value(s)")
    return counts.astype(np.int64)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pcseg.data.classes import table as class_table
    from pcseg.data.scannet_raw import RawDataError
    from pcseg.eval.submission import SubmissionError, check_submission, evaluate_predictions

    problems = _path_problems(args)
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr)
        return 2
    freq = None
    if args.command == "eval" and args.manifest is not None:
        try:
            freq = read_frequency(args.manifest, args.label_set, class_table(args.label_set).num_classes)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        if args.command == "check":
            report = check_submission(args.zip, args.raw, args.split, args.splits, args.label_set)
            print(report.format(), file=sys.stdout if report.ok else sys.stderr)
            return 0 if report.ok else 1
        metrics, table = evaluate_predictions(args.pred, args.raw, args.split, args.splits, args.label_map,
                                              args.label_set)
    except SubmissionError as exc:  # the predictions themselves: missing scenes, bad lines
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (RawDataError, OSError) as exc:  # the release, split lists or label map
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from pcseg.eval.metrics import format_table
    from pcseg.utils.atomic import atomic_write_text

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
