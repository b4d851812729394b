"""The self-contained scene page (pcseg.eval.scene_html): what it embeds decodes to the scene's
points and labels, it stays small, it references nothing over the network, and pcseg.view /
pcseg.test --save-html write it from caches, submission files and prediction PLYs. Rendering in a
real browser is checked by `make test-browser` (tests/browser)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from pcseg import view as view_cli
from pcseg.data.classes import table as class_table
from pcseg.data.dataset import SceneCacheDataset
from pcseg.eval.metrics import ConfusionMatrix, per_class_iou
from pcseg.eval.ply_export import export_scene
from pcseg.eval.scene_html import NONE, decode_points, scene_html
from pcseg.eval.submission import format_ids

T200 = class_table("segment200")


def _scene(n: int = 5000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    coord = rng.uniform([-3, -2, 0], [4, 2.5, 2.7], (n, 3))
    gt = rng.choice([0, 1, 2, 5, 17, 199], n)
    gt[:100] = -1  # unlabelled
    pred = np.where(rng.random(n) < 0.8, gt, rng.choice([0, 1, 3], n))
    pred[gt == -1] = 4
    return coord, gt, pred


def test_page_embeds_the_points_and_labels() -> None:
    coord, gt, pred = _scene()
    out = decode_points(scene_html(coord, T200, gt, pred, scene="s"))
    span = coord.max(0) - coord.min(0)
    assert np.abs(out["coord"] - coord).max() <= (span / 65535).max()  # 16-bit quantisation
    assert np.array_equal(out["gt"], np.where(gt < 0, NONE, gt))
    assert np.array_equal(out["pred"], pred)
    meta = out["meta"]
    assert meta["has_pred"] and meta["has_gt"] and meta["num_points"] == len(coord)


def test_legend_iou_is_the_benchmark_iou_of_the_scene() -> None:
    coord, gt, pred = _scene()
    meta = decode_points(scene_html(coord, T200, gt, pred))["meta"]
    conf = ConfusionMatrix(T200.num_classes)
    conf.update(pred, gt)
    ref = per_class_iou(conf.matrix)
    legend = {c["index"]: c for c in meta["classes"]}
    assert set(legend) == set(np.unique(gt[gt >= 0])) | set(np.unique(pred))
    for i, c in legend.items():
        assert (c["iou"] is None) == bool(np.isnan(ref[i])) and (c["iou"] is None or abs(c["iou"] - ref[i]) < 1e-4)
        assert c["name"] == T200.names[i] and c["color"] == T200.colors[i].tolist()
    scored = ref[np.unique(gt[gt >= 0])]
    assert meta["miou"] == pytest.approx(np.nanmean(scored), abs=1e-4)
    # most labelled points first
    counts = [c["gt_points"] for c in meta["classes"]]
    assert counts == sorted(counts, reverse=True)


def test_page_fetches_nothing() -> None:
    coord, gt, pred = _scene(500)
    page = scene_html(coord, T200, gt, pred)
    assert re.search(r"https?:|wss?:|ftp:", page) is None
    assert re.search(r"\b(fetch|XMLHttpRequest|WebSocket|EventSource|importScripts|sendBeacon)\b|import\(", page) is None
    assert re.search(r"<(link|img|iframe|object|embed)\b|\bsrc\s*=|url\(|@import", page, re.I) is None
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp and "default-src 'none'" in csp.group(1) and "connect-src" not in csp.group(1)


def test_names_cannot_break_out_of_the_page() -> None:
    coord, gt, pred = _scene(200)
    evil = "</script><script>alert(1)</script>"
    page = scene_html(coord, T200, gt, pred, scene=evil, title=evil)
    assert "<script>alert(1)" not in page
    assert decode_points(page)["meta"]["scene"] == evil


def test_scannet_size_scene_is_small(tmp_path) -> None:
    """A ScanNet-size scene (~120K vertices) stays under 3 MB."""
    import contextlib
    import io

    from pcseg.data.prep import main as prep
    from pcseg.data.synthetic import write_release

    raw, caches = tmp_path / "raw", tmp_path / "caches"
    write_release(raw, num_scenes=2, seed=5, size="scannet")
    with contextlib.redirect_stdout(io.StringIO()):
        assert prep(["--raw", str(raw), "--out", str(caches), "--no-progress"]) == 0
    split = next(p.name for p in sorted(caches.iterdir()) if p.is_dir() and any(p.iterdir()))
    ds = SceneCacheDataset(caches, split)
    data = ds.load_scene(0)
    gt = data["segment"]
    pred = np.where(np.arange(gt.size) % 7 == 0, 0, gt)
    page = scene_html(data["coord"], T200, gt, pred)
    assert gt.size > 100_000 and len(page.encode()) < 3_000_000


def test_modes_offered_follow_the_data() -> None:
    coord, gt, pred = _scene(300)
    assert decode_points(scene_html(coord, T200, gt, None))["meta"]["has_pred"] is False
    no_gt = decode_points(scene_html(coord, T200, None, pred))["meta"]
    assert no_gt["has_pred"] and not no_gt["has_gt"] and no_gt["miou"] is None
    with pytest.raises(ValueError, match="prediction has 3 entries"):
        scene_html(coord, T200, gt, pred[:3])
    with pytest.raises(ValueError, match="finite"):
        scene_html(np.full((3, 3), np.nan), T200)


# --------------------------------------------------------------------------- pcseg.view


@pytest.fixture()
def cache_scene(small_caches) -> tuple[Path, dict]:
    ds = SceneCacheDataset(small_caches, "val")
    return small_caches / "val" / ds.names[0], ds.load_scene(0)


def test_view_a_cache_scene_with_a_submission_file(cache_scene, tmp_path, capsys) -> None:
    scene, data = cache_scene
    gt = data["segment"]
    pred = np.where(np.arange(gt.size) % 5 == 0, 3, np.where(gt >= 0, gt, 0))
    sub = tmp_path / f"{scene.name}.txt"
    sub.write_text(format_ids(T200.ids[pred]))
    out = tmp_path / "page.html"
    assert view_cli.main([str(scene), "--pred", str(sub), "--out", str(out)]) == 0
    assert "open it in a browser" in capsys.readouterr().out
    page = decode_points(out.read_text())
    assert np.array_equal(page["pred"], pred) and np.array_equal(page["gt"], np.where(gt < 0, NONE, gt))


def test_view_a_save_ply_prediction(cache_scene, tmp_path) -> None:
    scene, data = cache_scene
    gt = data["segment"]
    pred = np.where(gt >= 0, gt, 7)
    pred[::11] = -1  # no prediction: the dark colour
    paths = export_scene(tmp_path, scene.name, data["coord"], pred, T200, gt)
    out = tmp_path / "from_ply.html"
    assert view_cli.main([str(scene), "--pred", str(paths[0]), "--out", str(out)]) == 0
    assert np.array_equal(decode_points(out.read_text())["pred"], np.where(pred < 0, NONE, pred))
    # the error PLY's grey/red colours are not classes: refused, nothing written
    bad = tmp_path / "bad.html"
    assert view_cli.main([str(scene), "--pred", str(paths[1]), "--out", str(bad)]) == 2
    assert not bad.exists()


@pytest.mark.parametrize("case, words", [
    ("short", "labels for the scene's"), ("ids", "not scannet200 benchmark ids"), ("scene", "not a cache scene"),
    ("missing", "not found")])
def test_view_refuses_bad_input(case, words, cache_scene, tmp_path, capsys) -> None:
    scene, data = cache_scene
    sub = tmp_path / "p.txt"
    n = data["coord"].shape[0]
    sub.write_text("1\n" * (n - 1) if case == "short" else "1\n" * (n - 1) + "999999\n")
    target = tmp_path / "nope" if case == "scene" else scene
    pred = tmp_path / "absent.txt" if case == "missing" else sub
    out = tmp_path / "page.html"
    assert view_cli.main([str(target), "--pred", str(pred), "--out", str(out)]) == 2
    assert words in capsys.readouterr().err and not out.exists()
