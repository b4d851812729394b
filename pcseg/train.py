"""``python -m pcseg.train --cfg FILE [--resume] [key=value ...]``: train a segmentation model.

Runs single-process or under ``torchrun`` (DDP); only rank 0 writes files.
"""
from __future__ import annotations

import argparse
import sys

from pcseg.engine.config import ConfigError, load_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pcseg.train", description=__doc__)
    p.add_argument("--cfg", required=True, help="YAML config (may inherit with _base_)")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/last.pth (same as resume=true)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. data.root=PATH train.epochs=10")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.cfg, args.overrides + (["resume=true"] if args.resume else []))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    from pcseg.engine import distributed as D
    from pcseg.engine.trainer import Trainer, TrainingDiverged

    info = D.init_distributed(cfg.train.device)
    try:
        try:
            trainer = Trainer(cfg, info)
        except (FileNotFoundError, KeyError, ValueError) as exc:  # set-up problems: data, model name, batch
            print(f"error: {exc}", file=sys.stderr)
            return 2
        trainer.fit()
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    finally:
        D.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
