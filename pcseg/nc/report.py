"""The markdown report of a neural-collapse analysis (``report.md``): the metrics as an
all/head/common/tail table, the plots and free-form sections."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np

from pcseg.data.classes import SPLITS
from pcseg.utils.atomic import atomic_write_text

__all__ = ["write_report"]

def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "nan" if math.isnan(float(v)) else f"{float(v):.4g}"
    return str(v)


def _is_scalar(v: object) -> bool:
    return v is None or isinstance(v, (int, float, bool, np.integer, np.floating, np.bool_, str))


def write_report(
    out_dir: Path | str,
    metrics: Mapping[str, object],
    plots: Mapping[str, Path | str] | None = None,
    extra_sections: Mapping[str, str] | None = None,
) -> Path:
    """Write ``out_dir/report.md``: metrics as an all/head/common/tail table, the plots
    (linked relative to ``out_dir``) and free-form sections {title: markdown}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scalars = {k: v for k, v in metrics.items() if _is_scalar(v)}
    suffixes = tuple(f"_{s}" for s in SPLITS)
    split_keys = {k for k in scalars if k.endswith(suffixes)}
    bases = [k for k in scalars if k not in split_keys]
    tabled = [b for b in bases if any(f"{b}{s}" in scalars for s in suffixes)]
    lines = ["# Neural-collapse report", ""]
    if tabled:
        cols = [s for s in SPLITS if any(f"{b}_{s}" in scalars for b in tabled)]
        lines += ["| metric | all | " + " | ".join(cols) + " |", "|---" * (2 + len(cols)) + "|"]
        for b in tabled:
            lines.append(f"| {b} | {_fmt(scalars[b])} | " + " | ".join(_fmt(scalars.get(f'{b}_{s}')) for s in cols) + " |")
        lines.append("")
    rest = [b for b in bases if b not in tabled] + sorted(k for k in split_keys if k[: k.rfind("_")] not in tabled)
    if rest:
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {_fmt(scalars[k])} |" for k in rest] + [""]
    for caption, p in (plots or {}).items():
        p = Path(p)
        try:
            rel = p.resolve().relative_to(out_dir.resolve())
        except ValueError:
            rel = p
        lines += [f"## {caption}", "", f"![{caption}]({rel.as_posix()})", ""]
    for title, body in (extra_sections or {}).items():
        lines += [f"## {title}", "", body.rstrip(), ""]
    path = out_dir / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
