"""Simplex ETF, class centers (local and all-rank), the CeCo head and collapse metrics."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pcseg.data.classes import ClassTable
from tests.conftest import free_port
from pcseg.nc import (
    CenterHead,
    FeatureStats,
    ceco_loss,
    class_centers,
    nc_metrics,
    plot_cosine_heatmaps,
    iou_plot_classes,
    plot_iou_vs_frequency,
    simplex_etf,
    write_report,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """These tensors are tiny: on a shared, loaded CPU a second intra-op thread only adds
    spin-waiting (a 40-step toy training goes from ~0.1 s to several seconds)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------ ETF

@pytest.mark.parametrize("k,d", [(200, 256), (20, 19), (13, 64)])
def test_simplex_etf_geometry(k: int, d: int) -> None:
    w = simplex_etf(k, d, seed=3)
    assert w.shape == (d, k) and w.dtype == torch.float32
    assert torch.allclose(w.norm(dim=0), torch.ones(k), atol=1e-6)
    gram = (w.T @ w).double()
    off = gram[~torch.eye(k, dtype=torch.bool)]
    assert (off + 1.0 / (k - 1)).abs().max().item() < 1e-5
    assert torch.equal(w, simplex_etf(k, d, seed=3))
    assert not torch.equal(w, simplex_etf(k, d, seed=4))


def test_simplex_etf_too_small_dim() -> None:
    with pytest.raises(ValueError, match="minimum dim is 19"):
        simplex_etf(20, 18)


# -------------------------------------------------------------------------- centers

def _brute_centers(x: torch.Tensor, y: torch.Tensor, k: int, ignore: int) -> tuple[torch.Tensor, torch.Tensor]:
    c = torch.zeros(k, x.shape[1], dtype=x.dtype)
    p = torch.zeros(k, dtype=torch.bool)
    for j in range(k):
        rows = [x[i] for i in range(len(y)) if int(y[i]) == j and int(y[i]) != ignore]
        if rows:
            c[j] = torch.stack(rows).mean(0)
            p[j] = True
    return c, p


@pytest.mark.parametrize("ignore", [-1, 255])
def test_class_centers_match_loop(ignore: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 7, generator=g, dtype=torch.float64)
    y = torch.randint(0, 6, (300,), generator=g)  # classes 6, 7 never occur
    y[torch.rand(300, generator=g) < 0.2] = ignore
    c, p = class_centers(x, y, 8, ignore_index=ignore)
    ref_c, ref_p = _brute_centers(x, y, 8, ignore)
    assert torch.equal(p, ref_p) and not p[6:].any()
    assert torch.allclose(c, ref_c, atol=1e-12)
    assert torch.count_nonzero(c[6:]) == 0


def test_class_centers_bad_labels_and_half() -> None:
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="0..4"):
        class_centers(x, torch.tensor([0, 1, 5, 1, 1, 1, 1, 1, 1, 1]), 5)
    with pytest.raises(ValueError):
        class_centers(x, torch.tensor([0, 1, -2, 1, 1, 1, 1, 1, 1, 1]), 5)
    c, _ = class_centers(x.half(), torch.zeros(10, dtype=torch.long), 5)
    assert c.dtype == torch.float32


def test_class_centers_gradients() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 0, 1, -1, 2, 2, 2, 0, 1, -1, 2, 0])
    torch.autograd.gradcheck(lambda t: class_centers(t, y, 4)[0], (x,))
    # d/dx_i sum(centers) = 1/n_c for a labelled point, 0 when ignored.
    class_centers(x, y, 4)[0].sum().backward()
    n = torch.bincount(y[y >= 0], minlength=4).double()
    expect = torch.where(y[:, None] >= 0, 1.0 / n[y.clamp_min(0)][:, None], torch.zeros(1, dtype=torch.float64))
    assert torch.allclose(x.grad, expect.expand(-1, 3))


# ---------------------------------------------------------------- two-process gloo

def _dist_worker(rank: int, world: int, port: int, tmp: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        data = torch.load(Path(tmp) / "data.pt")
        rows = data["shards"][rank]
        x = data["x"][rows].clone().requires_grad_(True)
        centers, present = class_centers(x, data["y"][rows], data["k"], global_reduce=True)
        (centers * data["r"][rank]).sum().backward()
        head = CenterHead(x.shape[1], data["k"], variant="learned", dim=8, global_centers=True)
        head.load_state_dict(data["head"])
        xh = data["x"][rows].float().requires_grad_(True)
        out = head(xh, data["y"][rows])
        out["loss"].backward()
        torch.save({"centers": centers.detach(), "present": present, "grad": x.grad,
                    "loss": out["loss"].detach(), "head_grad": xh.grad}, Path(tmp) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_global_centers_two_processes(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    k, n = 5, 40
    g = torch.Generator().manual_seed(2)
    x = torch.randn(n, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (n,), generator=g)  # class 4 absent everywhere
    y[:3] = -1
    y[:20][y[:20] == 3] = 2
    y[25] = 3  # class 3 only on rank 1
    shards = [torch.arange(0, 20), torch.arange(20, n)]
    r = [torch.randn(k, 6, generator=g, dtype=torch.float64) for _ in range(2)]
    head = CenterHead(6, k, variant="learned", dim=8)
    torch.save({"x": x, "y": y, "k": k, "shards": shards, "r": r, "head": head.state_dict()}, tmp_path / "data.pt")
    mp.spawn(_dist_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    res = [torch.load(tmp_path / f"rank{i}.pt") for i in range(2)]

    # Reference: one process, concatenated batch, objective = sum of both ranks' losses.
    xr = x.clone().requires_grad_(True)
    ref_c, ref_p = class_centers(xr, y, k)
    ((ref_c * r[0]).sum() + (ref_c * r[1]).sum()).backward()
    assert bool(ref_p[3]) and not bool(ref_p[4])
    xh = x.float().requires_grad_(True)
    ref = head(xh, y)
    ref["loss"].backward()
    for i, out in enumerate(res):
        assert torch.equal(out["present"], ref_p)
        assert torch.allclose(out["centers"], ref_c.detach(), atol=1e-12)
        assert torch.allclose(out["grad"], xr.grad[shards[i]], atol=1e-12)
        assert torch.allclose(out["loss"], ref["loss"].detach(), atol=1e-5)
        # Identical loss on both ranks: each rank's gradient is the world-size multiple,
        # which DDP's gradient averaging turns back into the global-batch gradient.
        assert torch.allclose(out["head_grad"], 2 * xh.grad[shards[i]], atol=1e-5)


# ---------------------------------------------------------------------- CeCo head

def test_center_head_buffers_and_empty_batch() -> None:
    head = CenterHead(4, 3, variant="learned", dim=5)
    assert "etf" in head.state_dict() and "etf" not in dict(head.named_parameters())
    x = torch.randn(6, 4, requires_grad=True)
    out = head(x, torch.full((6,), -1))
    assert out["loss"].item() == 0.0 and int(out["num_present"]) == 0
    out["loss"].backward()
    assert x.grad is not None and all(p.grad is not None for p in head.parameters())


def test_center_loss_decreases_on_toy_problem() -> None:
    torch.manual_seed(0)
    k = 5
    protos = torch.randn(k, 8)
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16))
    head = CenterHead(16, k, variant="learned", dim=8, global_centers=False)
    opt = torch.optim.Adam(list(mlp.parameters()) + list(head.parameters()), lr=1e-2)
    losses, cos_mean = [], []
    for _ in range(40):
        y = torch.randint(0, k, (256,))
        out = head(mlp(protos[y] + 0.5 * torch.randn(256, 8)), y)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
        cos_mean.append(out["center_cos_mean"])
    assert np.mean(losses[-5:]) < 0.2 * np.mean(losses[:5])
    # Centers start crowded (cosines ~0.9) and spread towards -1/(K-1) = -0.25.
    assert np.mean(cos_mean[-5:]) < np.mean(cos_mean[:5]) - 0.4


def test_center_head_ema_fills_absent_classes() -> None:
    torch.manual_seed(0)
    head = CenterHead(4, 5, variant="learned", dim=6, ema=0.5, global_centers=False)
    x1, y1 = torch.randn(30, 4), torch.arange(30) % 3
    with torch.no_grad():
        u1 = F.normalize(class_centers(head.proj(x1), y1, 5)[0], dim=1)
    head(x1, y1)
    assert head.ema_valid.tolist() == [True, True, True, False, False]
    assert torch.allclose(head.running_centers[:3], u1[:3], atol=1e-6)

    x2, y2 = torch.randn(20, 4), torch.arange(20) % 2
    out = head(x2, y2)
    assert int(out["num_present"]) == 2 and int(out["num_in_loss"]) == 3
    with torch.no_grad():
        u2 = F.normalize(class_centers(head.proj(x2), y2, 5)[0], dim=1)
        mix = u2.clone()
        mix[2] = u1[2]
        expect = ceco_loss(mix, torch.tensor([True, True, True, False, False]), head.etf, head.scale)
    assert torch.allclose(out["loss"], expect, atol=1e-5)
    assert torch.allclose(head.running_centers[0], 0.5 * u1[0] + 0.5 * u2[0], atol=1e-6)
    head.eval()
    before = head.running_centers.clone()
    head(x1, y1)
    assert torch.equal(before, head.running_centers)


# ------------------------------------------------------------------------ metrics

def _toy_table(k: int = 6) -> ClassTable:
    split = ("head", "head", "common", "common", "tail", "tail")[:k]
    return ClassTable("toy", np.arange(1, k + 1), tuple(f"c{i}" for i in range(k)), split,
                      np.ones(k, dtype=bool), np.zeros((k, 3), dtype=np.uint8))


def _collapsed(k: int = 6, d: int = 10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    etf = simplex_etf(k, d, seed=5).double().T  # (K, D)
    counts = [50, 30, 12, 6, 3, 2]
    y = torch.cat([torch.full((c,), i) for i, c in enumerate(counts)])
    x = 3.0 * etf[y] + torch.linspace(-1, 1, d, dtype=torch.float64)  # shifted global mean
    return x, y, etf


def test_nc_metrics_on_exact_collapse() -> None:
    x, y, etf = _collapsed()
    stats = FeatureStats.for_table(_toy_table(), 10)
    stats.update(x, y)
    m = stats.metrics(classifier=etf, table=_toy_table())
    assert m["num_classes"] == 6
    assert abs(m["nc1"]) < 1e-8
    assert m["equiangularity_means"] < 1e-6 and m["equiangularity_classifier"] < 1e-6
    assert m["cos_dev_means"] < 1e-6 and m["equinorm_means"] < 1e-6
    assert m["nc3"] < 1e-10
    assert abs(m["maxangle_means"] + 1 / 5) < 1e-6 and abs(m["maxangle_classifier"] + 1 / 5) < 1e-6
    for key in ("nc1_head", "nc1_tail", "equiangularity_means_tail", "cos_dev_classifier_common", "nc3_head"):
        assert abs(m[key]) < 1e-6, key
    assert abs(m["maxangle_means_tail"] + 1 / 5) < 1e-6
    assert m["cos_means"].shape == (6, 6) and m["cos_classifier"].shape == (6, 6)


def test_nc_metrics_random_features_far_from_collapse() -> None:
    g = torch.Generator().manual_seed(4)
    y = torch.randint(0, 6, (600,), generator=g)
    x = torch.randn(6, 10, generator=g, dtype=torch.float64)[y] + torch.randn(600, 10, generator=g, dtype=torch.float64)
    w = torch.randn(6, 10, generator=g)
    stats = FeatureStats(6, 10)
    stats.update(x, y)
    m = stats.metrics(classifier=w)
    assert m["nc1"] > 0.1 and m["nc3"] > 0.1
    assert m["equiangularity_means"] > 0.05 and m["equiangularity_classifier"] > 0.05
    assert m["maxangle_means"] > -0.2 + 0.1
    assert "nc1_head" not in m


def _brute_force_nc(x: np.ndarray, y: np.ndarray, w: np.ndarray, k_all: int) -> dict[str, float]:
    """The definitions of the module docstring, point by point and pair by pair, in plain numpy."""
    present = [c for c in range(k_all) if (y == c).any()]
    k = len(present)
    mu = {c: x[y == c].mean(0) for c in present}
    mu_g = sum(mu[c] for c in present) / k  # mean of the class means, not of the points
    m = np.stack([mu[c] - mu_g for c in present])
    sw = sum(np.outer(x[i] - mu[y[i]], x[i] - mu[y[i]]) for i in range(len(y))) / len(y)
    sb = sum(np.outer(r, r) for r in m) / k
    out = {"nc1": float(np.trace(sw @ np.linalg.pinv(sb, rcond=1e-10, hermitian=True))) / k}
    target = -1.0 / (k - 1)
    for name, rows in (("means", m), ("classifier", w[present])):
        norms = [float(np.sqrt(sum(v * v for v in r))) for r in rows]
        cos = [[float(rows[i] @ rows[j]) / (norms[i] * norms[j]) for j in range(k)] for i in range(k)]
        pairs = [cos[i][j] for i in range(k) for j in range(i + 1, k)]
        out[f"equinorm_{name}"] = float(np.std(norms) / np.mean(norms))
        out[f"equiangularity_{name}"] = float(np.std(pairs))
        out[f"cos_dev_{name}"] = float(np.mean([abs(c - target) for c in pairs]))
        out[f"maxangle_{name}"] = float(np.mean([max(cos[i][j] for j in range(k) if j != i) for i in range(k)]))
    wp = w[present]
    out["nc3"] = float(((wp / np.linalg.norm(wp) - m / np.linalg.norm(m)) ** 2).sum())
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_nc_metrics_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k_all, d = 7, 10
    y = rng.integers(0, k_all, 400)
    y[y == 4] = 2  # class 4 absent: it must be left out everywhere
    scale = rng.uniform(0.3, 2.0, (k_all, 1))  # unequal class spreads and mean norms
    x = rng.normal(size=(k_all, d))[y] * 2 + rng.normal(size=(400, d)) * scale[y] + 0.7
    w = rng.normal(size=(k_all, d))
    stats = FeatureStats(k_all, d)
    stats.update(torch.from_numpy(x), torch.from_numpy(y))
    got = stats.metrics(classifier=torch.from_numpy(w))
    want = _brute_force_nc(x, y, w, k_all)
    assert got["num_classes"] == 6
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-7, abs=1e-10), key


def test_feature_stats_streaming_matches_one_shot() -> None:
    g = torch.Generator().manual_seed(5)
    y = torch.randint(-1, 6, (500,), generator=g)
    y[y == 5] = 4  # class 5 absent
    x = torch.randn(500, 7, generator=g) * 2 + 1
    table = _toy_table()
    one = FeatureStats.for_table(table, 7)
    one.update(x, y)
    chunked, other = FeatureStats.for_table(table, 7), FeatureStats.for_table(table, 7)
    for i, part in enumerate(torch.split(torch.arange(500), 64)):
        (chunked if i % 2 else other).update(x[part], y[part])
    chunked.merge(other)
    a, b = one.finalize(), chunked.finalize()
    for key in ("means", "counts", "sigma_w", "sigma_b"):
        assert np.allclose(a[key], b[key], atol=1e-10)
    # Brute force within-class covariance.
    xv, yv = x.double().numpy()[y.numpy() >= 0], y.numpy()[y.numpy() >= 0]
    dev = xv - a["means"][yv]
    assert np.allclose(a["sigma_w"], dev.T @ dev / len(yv), atol=1e-10)
    m = one.metrics(table=table)
    n = a["counts"]
    split_n = {s: n[table.split_indices(s)].sum() for s in ("head", "common", "tail")}
    assert np.isclose(m["nc1"], sum(split_n[s] / n.sum() * m[f"nc1_{s}"] for s in split_n))
    assert m["num_classes_tail"] == 1 and m["equiangularity_means_tail"] is None
    assert np.isnan(m["cos_means"][5]).all()


def test_plots_and_report(tmp_path: Path) -> None:
    x, y, etf = _collapsed()
    stats = FeatureStats(6, 10)
    stats.update(x + 0.1 * torch.randn_like(x), y)
    m = stats.metrics(classifier=etf, table=_toy_table())
    freq = np.array([50, 30, 12, 6, 3, 2])
    order = np.argsort(-freq)
    names = [f"c{i}" for i in range(6)]
    p1 = plot_cosine_heatmaps(m["cos_means"], m["cos_classifier"], order, names, tmp_path / "cos.png")
    iou = [0.9, 0.8, None, 0.4, float("nan"), 0.1]
    p2 = plot_iou_vs_frequency(iou, freq, _toy_table().split, tmp_path / "iou.png")
    for p in (p1, p2):
        data = Path(p).read_bytes()
        assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(q.name for q in tmp_path.iterdir()) == ["cos.png", "iou.png"]  # no temp files left
    rep = write_report(tmp_path, m, {"cosines": p1, "IoU vs frequency": p2}, {"Notes": "toy run"})
    text = rep.read_text()
    assert rep.name == "report.md" and "| nc1 |" in text and "(cos.png)" in text and "toy run" in text


def test_iou_plot_covers_only_classes_that_occur(tmp_path: Path) -> None:
    # class 2 never occurs (no training points, no IoU); class 4 has an IoU but no training points
    freq = np.array([50, 30, 0, 6, 0, 2])
    iou = [0.9, 0.8, None, 0.4, 0.0, float("nan")]
    assert iou_plot_classes(iou, freq) == [0, 1, 3, 5, 4]
    names = [f"c{i}" for i in range(6)]
    p = plot_iou_vs_frequency(iou, freq, _toy_table().split, tmp_path / "iou.png", names=names)
    assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
