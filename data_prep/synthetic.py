"""Write a synthetic ScanNet-style release (procedural rooms) for tests, benchmarks and the demo.

    python data_prep/synthetic.py --out RAW --scenes N [--seed S] [--size default|small|scannet] [--workers W]

The output has the release layout (scans/, scans_test/, scannetv2-labels.combined.tsv,
scannetv2_{train,val,test}.txt), so data_prep/scannet200.py converts it like real data.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import pcseg  # noqa: F401
except ImportError:  # run as a script from a source checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pcseg.data.synthetic import SIZES, write_release  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="release root to write (created if missing)")
    p.add_argument("--scenes", type=int, required=True, help="number of scenes (about 70/20/10 %% train/val/test)")
    p.add_argument("--seed", type=int, default=0, help="release seed; the same seed writes the same bytes")
    p.add_argument("--size", choices=SIZES, default="default",
                   help="small: ~4K vertices (unit tests); default: 50K-150K; scannet: ~120K vertices / ~220K faces")
    p.add_argument("--workers", type=int, default=1, help="processes generating scenes in parallel")
    args = p.parse_args(argv)
    if args.scenes < 0:
        p.error("--scenes must be >= 0")
    splits = write_release(args.out, args.scenes, seed=args.seed, size=args.size, workers=args.workers)
    print(" ".join(f"{k}={len(v)}" for k, v in splits.items()), f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
