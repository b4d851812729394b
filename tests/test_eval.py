"""Evaluation: protocol metrics vs. brute force, per-vertex inference (inverse map, TTA, fragments),
submission writer/checker/evaluator round trip, PLY export and the viewer's install hint."""
from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from plyfile import PlyData
from torch import nn

from pcseg import submit as submit_cli
from pcseg import test as test_cli
from pcseg import viz as viz_cli
from pcseg.data.classes import SPLITS, scannet200
from pcseg.data.dataset import SceneCacheDataset
from pcseg.data.scannet_raw import read_mesh
from pcseg.data.transforms import build_transforms, default_val_transforms
from pcseg.engine.config import load_config
from pcseg.engine.trainer import Trainer
from pcseg.eval.inference import Predictor, View, apply_view, forward_scores, parse_tta, plan_fragments
from pcseg.eval.metrics import ConfusionMatrix, summarize
from pcseg.eval.submission import SubmissionError, check_submission, mesh_path, write_submission
from pcseg.models import build_model
from tests.conftest import REPO, free_port, tiny_overrides, checker_problems as _problems, write_zip as _zip

CFG = REPO / "configs" / "synthetic_base.yaml"
GRID = 0.05
CPU = torch.device("cpu")




@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a shared, busy CPU, two OpenMP threads that spin at barriers
    while the other is descheduled make sparse convolutions up to 20x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- metrics


def brute_force_metrics(pred: np.ndarray, gt: np.ndarray, k: int, split: tuple[str, ...]) -> dict:
    """The benchmark definitions, vertex by vertex, with no shared code."""
    tp, fp, fn = [0] * k, [0] * k, [0] * k
    valid = 0
    for p, g in zip(pred.tolist(), gt.tolist()):
        if not 0 <= g < k:
            continue  # unlabelled ground truth is not scored
        valid += 1
        if p == g:
            tp[g] += 1
        else:
            fn[g] += 1
            if 0 <= p < k:
                fp[p] += 1  # an invalid prediction is only a miss of the ground-truth class
    iou, acc = [], []
    for c in range(k):
        denom = tp[c] + fp[c] + fn[c]
        iou.append(tp[c] / denom if denom > 0 else None)
        acc.append(tp[c] / (tp[c] + fn[c]) if tp[c] + fn[c] > 0 else None)

    def mean(values: list) -> float | None:
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    out = {"miou": mean(iou), "macc": mean(acc), "allacc": sum(tp) / valid if valid else None}
    for s in SPLITS:
        out[f"miou_{s}"] = mean([iou[c] for c in range(k) if split[c] == s])
    out["iou"] = iou
    return out


def _random_case(seed: int, head_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = scannet200()
    pool = np.flatnonzero(np.array(t.split) == "head") if head_only else rng.choice(200, 70, replace=False)
    n = 3000
    gt = rng.choice(pool[: len(pool) // 2 + 1], n)  # some classes never occur in the ground truth
    pred = np.where(rng.random(n) < 0.4, gt, rng.choice(pool, n))  # ... but are predicted
    gt[rng.random(n) < 0.1] = -1  # ignored vertices
    gt[rng.random(n) < 0.02] = 200  # outside the classes: also not scored
    bad = rng.random(n) < 0.05
    pred[bad] = rng.choice([-1, 200, 1191], int(bad.sum()))  # predictions outside the classes
    return pred, gt


@pytest.mark.parametrize("seed,head_only", [(0, False), (1, False), (2, True)])
def test_metrics_match_brute_force(seed: int, head_only: bool) -> None:
    t = scannet200()
    pred, gt = _random_case(seed, head_only)
    conf = ConfusionMatrix(200)
    parts = np.array_split(np.arange(pred.size), 3)  # scenes / ranks accumulate, then merge
    for part in parts[:2]:
        conf.update(pred[part], gt[part])
    other = ConfusionMatrix(200)
    other.update(torch.from_numpy(pred[parts[2]]), torch.from_numpy(gt[parts[2]]))
    conf.merge(other)
    got = summarize(conf.matrix, t)
    want = brute_force_metrics(pred, gt, 200, t.split)
    for key in ("miou", "miou_head", "miou_common", "miou_tail", "macc", "allacc"):
        if want[key] is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(want[key], abs=1e-12), key
    assert [got["per_class"][n] for n in t.names] == pytest.approx(want["iou"], abs=1e-12)
    absent_predicted = [c for c in range(200) if not (gt == c).any() and (pred == c).any()]
    assert absent_predicted and all(got["per_class"][t.names[c]] == 0.0 for c in absent_predicted)
    if head_only:
        assert got["miou_common"] is None and got["miou_tail"] is None


# --------------------------------------------------------------------------- inference


class PointwiseModel(nn.Module):
    """A 1x1 receptive field: each voxel's scores depend on its own features only."""

    def __init__(self, in_channels: int = 9, num_classes: int = 200) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(in_channels, num_classes)

    def forward(self, grid_coord, batch, feat) -> dict[str, torch.Tensor]:
        return {"logits": self.lin(feat) * 5.0}


@pytest.fixture(scope="module")
def scene(small_caches) -> dict[str, np.ndarray]:
    return SceneCacheDataset(small_caches, "train").load_scene(0)


@pytest.fixture(scope="module")
def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return build_model("spunet", 200, preset="tiny").eval()


def _predictor(model: nn.Module, views: str = "none", **kw) -> Predictor:
    return Predictor(model, build_transforms(default_val_transforms(GRID)), 200, CPU, parse_tta(views), **kw)


def test_tta_specs_and_views(scene) -> None:
    assert [v.angle for v in parse_tta("rot4")] == [0, 90, 180, 270]
    r8 = parse_tta("rot4flip")
    assert len(r8) == 8 and len(set(r8)) == 8 and sum(v.flip for v in r8) == 4
    assert parse_tta("0,90f") == [View(0.0), View(90.0, True)]
    with pytest.raises(ValueError, match="TTA spec"):
        parse_tta("rot5")
    assert apply_view(scene, View(360.0))["coord"] is scene["coord"]
    turned = scene
    for _ in range(4):
        turned = apply_view(turned, View(90.0))
    np.testing.assert_allclose(turned["coord"], scene["coord"], atol=1e-5)
    np.testing.assert_allclose(turned["normal"], scene["normal"], atol=1e-5)
    flipped = apply_view(scene, View(0.0, True))
    np.testing.assert_allclose(flipped["coord"][:, 1:], scene["coord"][:, 1:])
    c = scene["coord"][:, 0]
    np.testing.assert_allclose(flipped["coord"][:, 0], c.max() + c.min() - c, atol=1e-5)


def test_inverse_covers_every_vertex(scene, tiny_model) -> None:
    p = _predictor(tiny_model, "rot4")
    n = scene["coord"].shape[0]
    for view in p.views:
        sample = p.voxelize(scene, view)
        inv, v = sample["inverse"], sample["grid_coord"].shape[0]
        assert inv.shape == (n,) and inv.min() == 0 and inv.max() == v - 1
        assert np.array_equal(np.unique(inv), np.arange(v))  # every voxel holds a vertex
        assert v < n  # voxelization merged vertices, so the inverse map is what restores them
    result = p.predict(scene)
    assert result.scores.shape == (n, 200) and np.all(result.coverage == 4)
    np.testing.assert_allclose(result.scores.sum(1).numpy(), 1.0, atol=1e-5)  # every vertex scored by every view


def test_identical_tta_views_equal_no_tta(scene, tiny_model) -> None:
    plain = _predictor(tiny_model, "none").predict(scene)
    four = _predictor(tiny_model, "0,0,0,0").predict(scene)
    np.testing.assert_allclose(four.scores.numpy(), plain.scores.numpy(), rtol=0, atol=1e-6)
    assert np.array_equal(four.pred, plain.pred)
    rotated = _predictor(tiny_model, "rot4").predict(scene)
    assert not torch.allclose(rotated.scores, plain.scores)  # the rotated views do contribute


def test_fragments_pointwise_model_equal_whole_scene(scene) -> None:
    """Exact comparison: with a 1x1 receptive field cutting the scene changes nothing, so with TTA
    the fragmented scores must equal the whole-scene ones: the mean over views of each view's
    softmax. The views are cut differently (coverage differs between them), which is what a
    coverage-weighted average would get wrong."""
    model = PointwiseModel().eval()
    whole = _predictor(model, "0,90").predict(scene)
    voxels = whole.voxels[0]
    split = _predictor(model, "0,90", max_voxels=voxels // 3, overlap_m=0.3).predict(scene)
    assert whole.fragments == [1, 1] and min(split.fragments) >= 3
    assert split.coverage.max() >= 4  # some vertices lie in the overlaps of several fragments
    per_view = [_predictor(model, v).predict(scene).scores for v in ("0", "90")]
    np.testing.assert_allclose(whole.scores.numpy(), ((per_view[0] + per_view[1]) / 2).numpy(), atol=1e-6)
    np.testing.assert_allclose(split.scores.numpy(), whole.scores.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(split.scores.sum(1).numpy(), 1.0, atol=1e-5)
    assert np.array_equal(split.pred, whole.pred)


def test_fragments_unet_sum_of_independent_passes(scene, tiny_model) -> None:
    """With a real receptive field, border context differs; what must hold exactly is that every
    vertex's score is the mean of the scores of the fragments that contain it, each computed alone."""
    p = _predictor(tiny_model, max_voxels=900, overlap_m=0.25)
    sample = p.voxelize(scene)
    grid, feat, inv = sample["grid_coord"], sample["feat"], sample["inverse"]
    frags = plan_fragments(grid, 900, p.overlap)
    assert len(frags) >= 2 and all(len(f) <= 900 for f in frags)
    assert np.array_equal(np.unique(np.concatenate(frags)), np.arange(len(grid)))
    vox = torch.zeros(len(grid), 200)
    cover = torch.zeros(len(grid))
    for f in frags:
        vox[f] += forward_scores(tiny_model, grid[f], feat[f], CPU)
        cover[f] += 1
    got = p.predict(scene)
    assert got.fragments == [len(frags)] and got.coverage.max() >= 2
    np.testing.assert_allclose(got.scores.numpy(), (vox / cover[:, None])[inv].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.scores.sum(1).numpy(), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="max-voxels"):
        plan_fragments(grid, 900, overlap=10_000)  # a margin that swallows the scene cannot fit


# --------------------------------------------------------------------------- CLI round trip


@pytest.fixture(scope="module")
def trained(small_caches, tmp_path_factory) -> Path:
    """A tiny model trained for 2 steps (its checkpoint carries the resolved config)."""
    run = tmp_path_factory.mktemp("run")
    cfg = load_config(CFG, tiny_overrides(small_caches, run, **{"train.max_steps": 2, "train.eval_every": 0}))
    Trainer(cfg).fit()
    return run / "last.pth"


@pytest.fixture(scope="module")
def val_run(trained, small_release, tmp_path_factory) -> dict[str, Path]:
    raw, _ = small_release
    tmp = tmp_path_factory.mktemp("val_run")
    code = test_cli.main(["--ckpt", str(trained), "--split", "val", "--submit", str(tmp / "val.zip"),
                          "--raw", str(raw), "--out", str(tmp / "out"), "--save-ply", str(tmp / "ply"),
                          "--save-html", str(tmp / "html"), "--tta", "rot4", "train.progress=false"])
    assert code == 0
    return {"zip": tmp / "val.zip", "out": tmp / "out", "ply": tmp / "ply", "html": tmp / "html", "tmp": tmp}


def test_submission_round_trip_same_miou(val_run, small_release, small_caches, capsys) -> None:
    raw, splits = small_release
    metrics = json.loads((val_run["out"] / "metrics_val.json").read_text())
    assert {"miou", "miou_head", "miou_common", "miou_tail", "macc", "allacc", "per_class", "num_scenes",
            "num_vertices"} <= set(metrics)
    assert metrics["num_scenes"] == len(splits["val"]) and len(metrics["per_class"]) == 200
    with zipfile.ZipFile(val_run["zip"]) as zf:
        names = sorted(zf.namelist())
        assert names == sorted(f"{s}.txt" for s in splits["val"])
        ids = np.array(zf.read(names[0]).decode().split(), dtype=np.int64)
    cache = np.load(small_caches / "val" / names[0][:-4] / "coord.npy")
    assert ids.size == cache.shape[0] and np.isin(ids, scannet200().ids).all()
    assert metrics["num_vertices"] == sum(
        np.load(small_caches / "val" / s / "coord.npy").shape[0] for s in splits["val"])
    assert not list(val_run["zip"].parent.glob(".val.zip*"))  # no staging or temporary leftovers

    out = val_run["tmp"] / "eval"
    assert submit_cli.main(["eval", str(val_run["zip"]), "--raw", str(raw), "--split", "val",
                            "--out", str(out)]) == 0
    offline = json.loads((out / "submission_metrics_val.json").read_text())
    assert offline["miou"] == metrics["miou"]
    assert offline["per_class"] == metrics["per_class"] and offline["allacc"] == metrics["allacc"]
    assert offline["num_vertices"] == metrics["num_vertices"]
    assert submit_cli.main(["check", str(val_run["zip"]), "--raw", str(raw), "--split", "val"]) == 0
    assert "OK" in capsys.readouterr().out


def test_save_ply_prediction_and_errors(val_run, small_release) -> None:
    raw, splits = small_release
    scene_name = splits["val"][0]
    coord, _, faces = read_mesh(mesh_path(raw, scene_name, "val"))
    pred_ply = PlyData.read(str(val_run["ply"] / f"{scene_name}_pred.ply"))
    err_ply = PlyData.read(str(val_run["ply"] / f"{scene_name}_error.ply"))
    assert not pred_ply.text and pred_ply["vertex"].count == len(coord) and pred_ply["face"].count == len(faces)
    rgb = np.stack([err_ply["vertex"][c] for c in ("red", "green", "blue")], 1)
    allowed = {(170, 170, 170), (220, 30, 30), (40, 40, 40)}
    assert {tuple(c) for c in rgb.tolist()} <= allowed
    palette = {tuple(c) for c in scannet200().colors.tolist()}
    pred_rgb = np.stack([pred_ply["vertex"][c] for c in ("red", "green", "blue")], 1)
    assert {tuple(c) for c in pred_rgb.tolist()} <= palette


def test_save_html_pages_show_the_submitted_prediction(val_run, small_release, small_caches) -> None:
    """--save-html: one page per scene whose prediction is the submitted one, its truth the cache's."""
    from pcseg.eval.scene_html import NONE, decode_points

    _, splits = small_release
    assert sorted(p.stem for p in val_run["html"].glob("*.html")) == sorted(splits["val"])
    name = splits["val"][0]
    page = decode_points((val_run["html"] / f"{name}.html").read_text())
    with zipfile.ZipFile(val_run["zip"]) as zf:
        ids = np.array(zf.read(f"{name}.txt").decode().split(), dtype=np.int64)
    assert np.array_equal(scannet200().ids[page["pred"]], ids)
    ds = SceneCacheDataset(small_caches, "val")
    gt = ds.load_scene(ds.names.index(name))["segment"]
    assert np.array_equal(page["gt"], np.where(gt < 0, NONE, gt)) and page["meta"]["has_gt"]


def test_test_split_submission_without_metrics(trained, small_release, tmp_path, capsys) -> None:
    raw, splits = small_release
    code = test_cli.main(["--ckpt", str(trained), "--split", "test", "--submit", str(tmp_path / "test.zip"),
                          "--raw", str(raw), "--out", str(tmp_path), "--max-voxels", "300", "--overlap", "0.2",
                          "train.progress=false"])
    assert code == 0
    assert "no metrics" in capsys.readouterr().out and not (tmp_path / "metrics_test.json").exists()
    assert check_submission(tmp_path / "test.zip", raw, "test").ok
    assert submit_cli.main(["check", str(tmp_path / "test.zip"), "--raw", str(raw)]) == 0
    # --submit without --raw is refused before any work
    assert test_cli.main(["--ckpt", str(trained), "--submit", str(tmp_path / "x.zip")]) == 2
    assert "--raw" in capsys.readouterr().err and not (tmp_path / "x.zip").exists()


def _ddp_worker(rank: int, world: int, port: int, argv: list[str]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    assert test_cli.main(argv) == 0


def test_two_process_evaluation_equals_one(trained, tmp_path) -> None:
    """Scenes split over two gloo ranks; the summed confusion matrices give the single-process metrics."""
    common = ["--ckpt", str(trained), "--split", "train", "train.progress=false", "train.device=cpu"]
    assert test_cli.main([*common, "--out", str(tmp_path / "one")]) == 0
    mp.spawn(_ddp_worker, args=(2, free_port(), [*common, "--out", str(tmp_path / "two")]), nprocs=2, join=True)
    one = json.loads((tmp_path / "one" / "metrics_train.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics_train.json").read_text())
    assert two["num_scenes"] == one["num_scenes"] >= 2 and two["num_vertices"] == one["num_vertices"]
    assert two["per_class"] == one["per_class"] and two["miou"] == one["miou"]


# --------------------------------------------------------------------------- checker


def test_checker_catches_every_kind_of_problem(two_scene_split, tmp_path, capsys) -> None:
    raw, splits, texts = two_scene_split
    a, b = sorted(texts)
    good = {f"{s}.txt": t for s, t in texts.items()}
    assert check_submission(_zip(tmp_path / "good.zip", good), raw, "val", splits).ok

    short = dict(good, **{f"{a}.txt": texts[a].split("\n", 1)[1]})
    (p,) = _problems(_zip(tmp_path / "short.zip", short), raw, splits, capsys)
    assert a in p and "lines but mesh" in p

    lines = texts[b].splitlines()
    lines[5] = "0"  # not a ScanNet200 id
    lines[7] = "61"  # rug: a raw category id of the label map, but not one of the 200 classes
    bad_id = dict(good, **{f"{b}.txt": "\n".join(lines) + "\n"})
    (p,) = _problems(_zip(tmp_path / "bad_id.zip", bad_id), raw, splits, capsys)
    assert b in p and "2 invalid label id(s)" in p and "line 6: 0" in p and "line 8: 61" in p

    (p,) = _problems(_zip(tmp_path / "missing.zip", {f"{a}.txt": texts[a]}), raw, splits, capsys)
    assert "missing scene" in p and b in p

    nested = {f"submission/{n}": t for n, t in good.items()}
    probs = _problems(_zip(tmp_path / "nested.zip", nested), raw, splits, capsys)
    assert sum("inside a folder" in q for q in probs) == 2 and sum("missing scene" in q for q in probs) == 2

    extra = dict(good, **{"README.md": "hello\n", "scene9999_00.txt": texts[a]})
    probs = _problems(_zip(tmp_path / "extra.zip", extra), raw, splits, capsys)
    assert len(probs) == 2 and all("extra file" in q for q in probs)

    text_only = tmp_path / "not_a.zip"
    text_only.write_text("hello")
    assert "cannot open" in _problems(text_only, raw, splits, capsys)[0]


def test_writer_refuses_invalid_submission(two_scene_split, tmp_path) -> None:
    raw, splits, texts = two_scene_split
    files = {}
    for s, t in texts.items():
        files[s] = tmp_path / f"{s}.txt"
        files[s].write_text(t)
    report = write_submission(tmp_path / "ok.zip", files, raw, "val", splits)
    assert report.ok and report.scenes_ok == 2 and (tmp_path / "ok.zip").is_file()
    first = sorted(files)[0]
    files[first].write_text(texts[first] + "1\n")  # one line too many
    with pytest.raises(SubmissionError, match="was not written"):
        write_submission(tmp_path / "bad.zip", files, raw, "val", splits)
    assert not (tmp_path / "bad.zip").exists() and not list(tmp_path.glob(".bad.zip*"))


def test_viz_without_open3d_says_how_to_install(tmp_path, monkeypatch, capsys) -> None:
    ply = tmp_path / "a.ply"
    ply.write_bytes(b"ply\n")
    monkeypatch.setitem(sys.modules, "open3d", None)  # import fails even where open3d exists
    assert viz_cli.main([str(ply)]) == 2
    assert 'pip install -e ".[viz]"' in capsys.readouterr().err


def test_predictor_refuses_a_non_finite_overlap(tiny_model) -> None:
    with pytest.raises(ValueError, match="overlap"):
        _predictor(tiny_model, overlap_m=float("nan"))
