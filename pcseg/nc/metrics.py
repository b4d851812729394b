"""Neural-collapse measurements of last-layer features and classifier, overall and per split.

Imbalance shows up as a *split-dependent* departure from collapse (tail class means and
classifier rows squeezed together), so every quantity is also reported for the head,
common and tail classes. Statistics stream over batches in float64 and are summable
across ranks, so features are never held in memory.

Definitions (K = classes present in the feature statistics, mu_c their means):

* global mean mu_G = mean of the class means (not of the points), as in the neural
  collapse literature, so frequent classes do not pull the origin towards themselves;
  M = rows mu_c - mu_G; W = classifier rows (bias ignored).
* Sigma_W = (1/N) sum_c sum_{i in c} (x_i - mu_c)(x_i - mu_c)^T, streamed as
  (1/N)(sum_i x_i x_i^T - sum_c n_c mu_c mu_c^T); Sigma_B = (1/K) M^T M.
* ``nc1`` = Tr(Sigma_W Sigma_B^+) / K.
* for ``X`` in ``means`` (M) and ``classifier`` (W):
  ``equinorm_X`` = std / mean of the row norms; ``equiangularity_X`` = std of the
  cosines over pairs i < j; ``cos_dev_X`` = mean |cos_ij + 1/(K-1)| over pairs i < j;
  ``maxangle_X`` = mean over classes of the largest cosine to another present class
  (-1/(K-1) at an exact simplex ETF, larger when some classes crowd together).
* ``nc3`` = || W/||W||_F - M/||M||_F ||_F^2 (self-duality).
* ``etf_cos`` = -1/(K-1), ``num_classes`` = K, ``num_points`` = N.

Split keys append ``_head``, ``_common`` or ``_tail`` (e.g. ``nc1_tail``,
``equiangularity_means_head``, ``maxangle_classifier_common``, ``nc3_tail``,
``num_classes_tail``), computed on that split's present classes with the *same* global
centring and target -1/(K-1): a split's values say how far its share of the geometry is
from the full ETF. Pair statistics use pairs inside the split; ``maxangle`` looks at all
present classes. ``nc1_<split>`` = Tr(Sigma_W^split Sigma_B^+) / K with Sigma_W^split
the within-class covariance of that split's points, so that
nc1 = sum_split (N_split / N) nc1_split. It needs the per-split scatter
(``FeatureStats`` with groups); without it those keys are None.

``cos_means`` / ``cos_classifier`` are (K_all, K_all) numpy cosine matrices for plots
(NaN rows and columns for classes absent from the features in ``cos_means``); every other
value is a float, an int or None (undefined, e.g. a split with fewer than two classes).

The plots of these matrices are in :mod:`pcseg.nc.plots`, the markdown report in
:mod:`pcseg.nc.report`.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.distributed as dist

from pcseg.data.classes import SPLITS, ClassTable
from pcseg.utils.dist import multi_process

__all__ = ["FeatureStats", "nc_metrics", "pairwise_cosines"]

ArrayLike = np.ndarray | torch.Tensor


def _np(x: ArrayLike | None) -> np.ndarray | None:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


class FeatureStats:
    """Streaming, rank-summable sufficient statistics for the collapse metrics.

    Keeps per-class sums (K, D), counts (K,), the total second moment sum x x^T (D, D)
    and one (D, D) second moment per class group (e.g. head/common/tail), all float64:
    O(K D + G D^2) memory whatever the number of points.
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        groups: Mapping[str, Sequence[int]] | None = None,
        ignore_index: int = -1,
        device: torch.device | str = "cpu",
    ) -> None:
        self.num_classes = int(num_classes)
        self.dim = int(dim)
        self.ignore_index = int(ignore_index)
        self.device = torch.device(device)
        k, d = self.num_classes, self.dim
        self.sums = torch.zeros(k, d, dtype=torch.float64, device=self.device)
        self.counts = torch.zeros(k, dtype=torch.int64, device=self.device)
        self.second = torch.zeros(d, d, dtype=torch.float64, device=self.device)
        self.group_names: list[str] = list(groups.keys()) if groups else []
        self.group_of = torch.full((k,), -1, dtype=torch.long, device=self.device)
        for g, name in enumerate(self.group_names):
            idx = torch.as_tensor(np.asarray(groups[name], dtype=np.int64), device=self.device)  # type: ignore[index]
            if bool((self.group_of[idx] >= 0).any()):
                raise ValueError(f"class groups overlap at group {name!r}")
            self.group_of[idx] = g
        self.group_second = torch.zeros(len(self.group_names), d, d, dtype=torch.float64, device=self.device)

    @classmethod
    def for_table(cls, table: ClassTable, dim: int, **kwargs) -> "FeatureStats":
        """Stats grouped by the table's head/common/tail splits (ungrouped when it has none)."""
        groups = {s: table.split_indices(s) for s in SPLITS}
        groups = {s: idx for s, idx in groups.items() if len(idx)}
        return cls(table.num_classes, dim, groups=groups or None, **kwargs)

    def update(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch of (N, D) features with (N,) labels (ignore index skipped)."""
        x = feats.detach().reshape(-1, self.dim).to(self.device, torch.float64)
        lab = labels.detach().reshape(-1).to(self.device, torch.long)
        if lab.numel() != x.shape[0]:
            raise ValueError(f"{x.shape[0]} features but {lab.numel()} labels")
        keep = lab != self.ignore_index
        x, lab = x[keep], lab[keep]
        if lab.numel() == 0:
            return
        if bool(((lab < 0) | (lab >= self.num_classes)).any()):
            raise ValueError(f"labels must be in 0..{self.num_classes - 1} or {self.ignore_index}")
        self.sums.index_add_(0, lab, x)
        self.counts += torch.bincount(lab, minlength=self.num_classes)
        self.second += x.T @ x
        if self.group_names:
            g = self.group_of[lab]
            for gi in range(len(self.group_names)):
                xs = x[g == gi]
                if xs.shape[0]:
                    self.group_second[gi] += xs.T @ xs

    def _state(self) -> list[torch.Tensor]:
        return [self.sums, self.counts, self.second, self.group_second]

    def merge(self, other: "FeatureStats") -> None:
        """Add another accumulator's statistics (same classes, dim and groups)."""
        if (other.num_classes, other.dim, other.group_names) != (self.num_classes, self.dim, self.group_names):
            raise ValueError("cannot merge FeatureStats of different shapes or groups")
        for mine, theirs in zip(self._state(), other._state()):
            mine += theirs.to(mine.device)

    def all_reduce(self) -> None:
        """Sum the statistics over ranks (no-op without torch.distributed)."""
        if not multi_process():
            return
        comm = self.device
        if dist.get_backend() == "nccl" and comm.type != "cuda":
            comm = torch.device("cuda", torch.cuda.current_device())
        for t in self._state():
            buf = t.to(comm)
            dist.all_reduce(buf)
            t.copy_(buf.to(t.device))

    def finalize(self) -> dict:
        """numpy float64: ``means`` (K, D; zero rows when absent), ``counts``, ``present``,
        ``global_mean``, ``sigma_w``, ``sigma_b``, ``sigma_w_splits`` {group: (D, D)}, ``num_points``."""
        sums = self.sums.cpu().numpy()
        counts = self.counts.cpu().numpy()
        second = self.second.cpu().numpy()
        present = counts > 0
        n = int(counts.sum())
        means = np.zeros_like(sums)
        means[present] = sums[present] / counts[present, None]
        # sum_c n_c mu_c mu_c^T = sum_c s_c mu_c^T, over all classes and per group.
        sigma_w = _sym((second - sums.T @ means) / max(n, 1))
        splits: dict[str, np.ndarray] = {}
        group_of = self.group_of.cpu().numpy()
        for gi, name in enumerate(self.group_names):
            m = (group_of == gi) & present
            n_g = int(counts[m].sum())
            if n_g:
                splits[name] = _sym((self.group_second[gi].cpu().numpy() - sums[m].T @ means[m]) / n_g)
        mu_g = means[present].mean(0) if present.any() else np.zeros(self.dim)
        centred = means[present] - mu_g
        sigma_b = centred.T @ centred / max(int(present.sum()), 1)
        return {
            "means": means, "counts": counts, "present": present, "global_mean": mu_g,
            "sigma_w": sigma_w, "sigma_b": sigma_b, "sigma_w_splits": splits, "num_points": n,
        }

    def metrics(self, classifier: ArrayLike | None = None, table: ClassTable | None = None) -> dict:
        """``nc_metrics`` of the accumulated statistics (call ``all_reduce`` first under DDP)."""
        s = self.finalize()
        out = nc_metrics(s["means"], s["counts"], classifier, s["sigma_w"], table=table,
                         present_mask=s["present"], sigma_w_splits=s["sigma_w_splits"])
        out["num_points"] = s["num_points"]
        return out


def _sym(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + a.T)


def pairwise_cosines(vectors: ArrayLike) -> np.ndarray:
    """Cosine matrix of the rows (zero rows give NaN rather than a fake 0)."""
    v = _np(vectors).astype(np.float64)
    norms = np.linalg.norm(v, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = v / norms[:, None]
    u[norms == 0] = np.nan
    return u @ u.T


def _pinv_psd(a: np.ndarray) -> np.ndarray:
    """Pseudo-inverse of a PSD matrix, dropping eigenvalues at rounding level.

    Sigma_B has rank K-1 at most; numpy's default cut-off (1e-15 relative) would invert
    rounding noise in the null directions and blow NC1 up.
    """
    w, v = np.linalg.eigh(_sym(a))
    keep = w > max(w.max(initial=0.0), 0.0) * 1e-10
    return (v[:, keep] / w[keep]) @ v[:, keep].T


def _f(x: float | np.floating) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _geometry(cos: np.ndarray, norms: np.ndarray, sub: np.ndarray, target: float) -> dict[str, float | None]:
    """Equinorm, equiangularity, |cos - target| and max-angle of the rows ``sub`` of a present-class cosine matrix."""
    out: dict[str, float | None] = {"equinorm": None, "equiangularity": None, "cos_dev": None, "maxangle": None}
    if len(sub) >= 2:
        n = norms[sub]
        out["equinorm"] = _f(n.std() / n.mean()) if n.mean() > 0 else None
        iu = np.triu_indices(len(sub), 1)
        pairs = cos[np.ix_(sub, sub)][iu]
        out["equiangularity"] = _f(pairs.std())
        out["cos_dev"] = _f(np.abs(pairs - target).mean())
    if len(sub) >= 1 and cos.shape[0] >= 2:
        rows = cos[sub].copy()
        rows[np.arange(len(sub)), sub] = -np.inf
        out["maxangle"] = _f(rows.max(1).mean())
    return out


def _self_duality(w: np.ndarray, m: np.ndarray) -> float | None:
    nw, nm = np.linalg.norm(w), np.linalg.norm(m)
    if nw == 0 or nm == 0:
        return None
    return float(np.sum((w / nw - m / nm) ** 2))


def nc_metrics(
    means: ArrayLike,
    counts: ArrayLike,
    classifier: ArrayLike | None,
    sigma_w: ArrayLike,
    table: ClassTable | None = None,
    present_mask: ArrayLike | None = None,
    sigma_w_splits: Mapping[str, ArrayLike] | None = None,
) -> dict:
    """Neural-collapse metrics (keys in the module docstring).

    ``means``: (K, D) class means; ``counts``: (K,) points per class; ``classifier``:
    (K, D) rows or None (then no classifier / NC3 keys); ``sigma_w``: (D, D) within-class
    covariance; ``present_mask`` defaults to ``counts > 0``.
    """
    mu = _np(means).astype(np.float64)
    cnt = _np(counts)
    k_all = mu.shape[0]
    present = (cnt > 0) if present_mask is None else _np(present_mask).astype(bool)
    if table is not None and table.num_classes != k_all:
        raise ValueError(f"class table has {table.num_classes} classes but means have {k_all}")
    pidx = np.flatnonzero(present)
    k = len(pidx)
    out: dict = {"num_classes": k, "etf_cos": (-1.0 / (k - 1)) if k >= 2 else None}
    target = -1.0 / (k - 1) if k >= 2 else math.nan

    centred = mu[pidx] - mu[pidx].mean(0) if k else mu[:0]
    sigma_b = centred.T @ centred / max(k, 1)
    sb_pinv = _pinv_psd(sigma_b) if k >= 2 else None
    sw = _np(sigma_w).astype(np.float64)
    out["nc1"] = float(np.trace(sw @ sb_pinv)) / k if sb_pinv is not None else None

    cos_m = pairwise_cosines(centred) if k else np.zeros((0, 0))
    full_m = np.full((k_all, k_all), np.nan)
    full_m[np.ix_(pidx, pidx)] = cos_m
    out["cos_means"] = full_m
    norms_m = np.linalg.norm(centred, axis=1)

    w_all = None
    if classifier is not None:
        w_all = _np(classifier).astype(np.float64)
        if w_all.shape != mu.shape:
            raise ValueError(f"classifier shape {w_all.shape} does not match means {mu.shape}")
        out["cos_classifier"] = pairwise_cosines(w_all)
        w = w_all[pidx]
        cos_w = pairwise_cosines(w) if k else np.zeros((0, 0))
        norms_w = np.linalg.norm(w, axis=1)

    subsets: list[tuple[str, np.ndarray]] = [("", np.arange(k))]
    if table is not None:
        pos = {c: i for i, c in enumerate(pidx)}
        for split in SPLITS:
            cls = table.split_indices(split)
            if len(cls):
                subsets.append((f"_{split}", np.array([pos[c] for c in cls if c in pos], dtype=np.int64)))

    for suffix, sub in subsets:
        if suffix:
            out[f"num_classes{suffix}"] = len(sub)
            split = suffix[1:]
            if sb_pinv is not None and sigma_w_splits and split in sigma_w_splits:
                out[f"nc1{suffix}"] = float(np.trace(_np(sigma_w_splits[split]) @ sb_pinv)) / k
            else:
                out[f"nc1{suffix}"] = None
        for name, val in _geometry(cos_m, norms_m, sub, target).items():
            out[f"{name}_means{suffix}"] = val
        if w_all is not None:
            for name, val in _geometry(cos_w, norms_w, sub, target).items():
                out[f"{name}_classifier{suffix}"] = val
            out[f"nc3{suffix}"] = _self_duality(w[sub], centred[sub]) if len(sub) else None
    return out
