"""Run logging: console + ``train.log``, ``metrics.jsonl`` and wandb, all from rank 0 only."""
from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import DictConfig, OmegaConf

from pcseg.utils.atomic import atomic_write_text, fsync_file


def get_logger(out_dir: Path | None = None, is_main: bool = True, name: str = "pcseg") -> logging.Logger:
    """A logger writing to the console and (on rank 0) to ``out_dir/train.log``."""
    log = logging.getLogger(name)
    log.setLevel(logging.INFO if is_main else logging.WARNING)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(fmt)
    log.addHandler(console)
    if out_dir is not None and is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(out_dir / "train.log")
        fh.setFormatter(fmt)
        log.addHandler(fh)
    return log


class MetricsLine(NamedTuple):
    """One line of ``metrics.jsonl`` as written, with its record when it parses."""

    number: int  # 1-based, for messages
    text: str  # verbatim, so a rewrite keeps the records byte for byte
    record: dict | None  # None: not JSON (blank, or torn by a crash mid-write)
    error: str = ""  # why ``record`` is None


def metrics_lines(path: Path) -> list[MetricsLine]:
    """Every line of a ``metrics.jsonl``, parsed where it parses and kept verbatim."""
    out = []
    for n, text in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        try:
            out.append(MetricsLine(n, text, json.loads(text)))
        except ValueError as e:
            out.append(MetricsLine(n, text, None, str(e)))
    return out


def read_metrics(path: Path | str) -> list[dict]:
    """The records of a ``metrics.jsonl``, in file order; blank lines skipped.

    A run killed mid-write leaves a partial last line: it is dropped. A bad line anywhere
    else means the file is not what the trainer wrote: ValueError naming ``path:line``.
    """
    path = Path(path)
    lines = metrics_lines(path)
    records = []
    for line in lines:
        if not line.text.strip():
            continue
        if line.record is None:
            if line.number == len(lines):
                break
            raise ValueError(f"{path}:{line.number}: not JSON ({line.error})")
        records.append(line.record)
    return records


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


class MetricsWriter:
    """Append-only ``metrics.jsonl`` (one object per logged step / validation) mirrored to wandb."""

    def __init__(self, out_dir: Path, cfg: DictConfig, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = out_dir / "metrics.jsonl"
        self._wandb = None
        if not enabled:
            return
        mode = cfg.wandb.mode
        if mode != "disabled":
            try:
                import wandb

                self._wandb = wandb.init(
                    project=cfg.wandb.project, entity=cfg.wandb.entity, name=cfg.wandb.name or out_dir.name,
                    mode=mode, dir=str(out_dir), config=OmegaConf.to_container(cfg, resolve=True),
                    resume="allow", reinit="finish_previous")
            except Exception as exc:  # logging must never kill a training run
                logging.getLogger("pcseg").warning("wandb disabled (%s); metrics still go to %s", exc, self.path)
                self._wandb = None

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")
        if self._wandb is not None:
            kind = record.get("type", "train")
            data = {f"{kind}/{k}": v for k, v in record.items()
                    if isinstance(v, (int, float)) and k not in ("step", "type")}
            self._wandb.log(data, step=int(record.get("step", 0)))

    def sync(self) -> None:
        """Put the records so far on disk: called before a checkpoint, so that after a crash the
        file holds at least every record up to the checkpoint's step (a resumed run adds the rest)."""
        if self.enabled and self.path.is_file():
            fsync_file(self.path)

    def keep_until(self, step: int, keep_val: bool = True) -> None:
        """Drop the records written after the checkpoint a run resumes from (at ``step``), and that
        step's validation too when it is still to come, so the resumed run's records continue the
        file without repeats (a crash after a record but before the checkpoint writes them twice)."""
        if not self.enabled or not self.path.is_file():
            return
        lines = metrics_lines(self.path)
        keep = []
        for line in lines:
            rec = line.record
            if rec is None:
                continue  # a line torn by a crash
            at = int(rec.get("step", 0))
            if at < step or (at == step and (keep_val or rec.get("type") != "val")):
                keep.append(line.text)
        if len(keep) != len(lines):
            atomic_write_text(self.path, "".join(f"{line}\n" for line in keep))

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
