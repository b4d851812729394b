"""``python -m pcseg.train --cfg FILE [key=value ...]``: train a segmentation model.

Runs single-process, under ``torchrun`` or as one ``srun`` task per GPU (DDP); only rank 0
writes files. An ``out_dir`` holding a ``last.pth`` of the same config is continued.

Exit codes: 0 done; 2 a user error (config, data, checkpoint; also a scene with bad values found
while training, after saving last.pth); 3 the loss or gradients became NaN/inf; 4 another process
failed or stopped answering; 75 stopped by SIGUSR1 or SIGTERM with the state saved (run the same
command again, e.g. after a requeue).
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from pcseg.engine.config import ConfigError, load_config

EXIT_STOPPED = 75  # EX_TEMPFAIL: try again (the SLURM scripts requeue on it)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pcseg.train", description=__doc__)
    p.add_argument("--cfg", required=True, help="YAML config (may inherit with _base_)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT_DIR/last.pth (the default whenever it exists; kept for scripts)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. data.root=PATH train.epochs=10")
    return p.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.cfg, args.overrides + (["resume=true"] if args.resume else []))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    from pcseg.data.cache_check import SceneDataError
    from pcseg.data.loader import worker_message
    from pcseg.engine import distributed as D
    from pcseg.engine.trainer import STOP_SIGNALS, StopRequested, Trainer, TrainingDiverged

    # A stop signal during set-up (joining the process group, reading the data, building the model)
    # would otherwise kill the process with nothing saved and no requeue: keep it for the loop.
    early: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: early.append(signum)) for sig in STOP_SIGNALS} \
        if threading.current_thread() is threading.main_thread() else {}
    info = D.init_distributed(cfg.train.device, cfg.dist.timeout_s)
    try:
        try:
            trainer = Trainer(cfg, info)
        except (FileNotFoundError, KeyError, ValueError) as exc:  # set-up problems: data, model name, batch
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if early:
            trainer.request_stop(early[-1])
        trainer.fit()
        D.cleanup(wait_for_all=True)
    except SceneDataError as exc:  # bad values in a scene cache, found while training or validating
        print(f"error: {worker_message(exc)}\n{cfg.out_dir}/last.pth holds the state after the last finished "
              "step: fix the scene and run the same command again", file=sys.stderr)
        return 2
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except StopRequested as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return EXIT_STOPPED
    except RuntimeError as exc:
        if not (info.enabled and D.is_collective_failure(exc)):
            raise
        print(f"error: process {info.rank} of {info.world_size} lost the others ({D.describe_failure(exc)}); "
              "another process probably died: its log says why. Within dist.timeout_s "
              f"({cfg.dist.timeout_s:g} s) every process stops.", file=sys.stderr)
        return 4
    finally:
        D.cleanup()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
