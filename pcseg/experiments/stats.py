"""Statistics of paired seed studies: Student-t intervals of mean paired differences, and how many
seed pairs a difference of a given size needs to be resolved.

Self-contained (no scipy): the t quantiles are tabulated for df <= 30 and expanded beyond.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["t_quantile_975", "t_interval", "pairs_needed", "describe", "paired"]

# Two-sided 95 % quantiles t_{0.975, df} of Student's t, df = 1..30.
T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
        2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
        2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)
Z975 = 1.959963984540054


def t_quantile_975(df: int) -> float:
    """t_{0.975, df}: the table for df <= 30, the Cornish-Fisher expansion beyond (error < 1e-4)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(T975):
        return T975[df - 1]
    z = Z975
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    return z + g1 / df + g2 / df ** 2 + g3 / df ** 3


def t_interval(values: list[float]) -> tuple[float, float] | None:
    """95 % t-interval of the mean of ``values``; None with fewer than two values."""
    n = len(values)
    if n < 2:
        return None
    x = np.asarray(values, dtype=np.float64)
    half = t_quantile_975(n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    m = float(x.mean())
    return m - half, m + half


def pairs_needed(sd: float | None, effect: float | None, max_pairs: int = 10_000) -> int | None:
    """Seed pairs a study needs for the 95 % t-interval of the mean paired difference to exclude 0
    when the true difference is ``effect`` and the per-seed differences spread by ``sd``: the
    smallest n >= 2 with t(0.975, n-1) * sd / sqrt(n) < |effect| (a planning figure: it takes
    the observed sd as the truth). None when undefined (no sd, or no effect); ``max_pairs`` caps it."""
    if sd is None or effect is None or effect == 0 or not math.isfinite(sd):
        return None
    if sd == 0:
        return 2
    for n in range(2, max_pairs + 1):
        if t_quantile_975(n - 1) * sd / math.sqrt(n) < abs(effect):
            return n
    return max_pairs


def describe(values: list[float | None]) -> dict[str, Any]:
    """mean, sample std (None below two values) and n of the defined values."""
    x = [float(v) for v in values if v is not None]
    return {"mean": float(np.mean(x)) if x else None, "std": float(np.std(x, ddof=1)) if len(x) > 1 else None,
            "n": len(x)}


def paired(base: dict[int, float | None], arm: dict[int, float | None]) -> dict[str, Any]:
    """arm − base per seed (seeds where both are defined), their mean, std and 95 % t-interval."""
    diffs = {s: arm[s] - base[s] for s in sorted(base) if s in arm and base[s] is not None and arm[s] is not None}
    out = describe(list(diffs.values()))
    ci = t_interval(list(diffs.values()))
    out["ci95"] = None if ci is None else [ci[0], ci[1]]
    out["per_seed"] = {str(s): d for s, d in diffs.items()}
    # how many pairs would resolve a difference of the observed size at the observed spread
    out["pairs_to_resolve_observed"] = pairs_needed(out["std"], out["mean"])
    return out
