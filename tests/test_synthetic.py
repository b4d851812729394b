"""The synthetic ScanNet-release generator: file format, determinism, splits and ground truth."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData

from pcseg.data import synthetic as syn
from pcseg.data.classes import scannet20, scannet200
from tests.conftest import REPO

SEED = 11
N_SCENES = 5  # 3 train, 1 val, 1 test


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> tuple[Path, dict[str, list[str]]]:
    out = tmp_path_factory.mktemp("synthetic_raw")
    return out, syn.write_release(out, N_SCENES, seed=SEED, size="small")


def syn_index(name: str) -> int:
    """Index of ``sceneXXXX_00`` (write_release seeds scene i with scene_seed(seed, i))."""
    return int(name[5:9])


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _label_map(path: Path) -> dict[str, tuple[int, int]]:
    with open(path, newline="", encoding="utf-8") as f:
        return {r["raw_category"]: (int(r["id"]), int(r["nyu40id"])) for r in csv.DictReader(f, delimiter="\t")}


def _gt_from_files(scene_dir: Path, name: str, label_map: dict[str, tuple[int, int]]):
    """Ground truth the way the official preprocessing derives it (groups in file order, later wins)."""
    seg = np.array(json.loads((scene_dir / f"{name}_vh_clean_2.0.010000.segs.json").read_text())["segIndices"])
    groups = json.loads((scene_dir / f"{name}.aggregation.json").read_text())["segGroups"]
    lut200, lut20 = scannet200().id_to_index(), scannet20().id_to_index()
    s200 = np.full(len(seg), -1, dtype=np.int16)
    s20 = np.full(len(seg), -1, dtype=np.int16)
    inst = np.full(len(seg), -1, dtype=np.int32)
    for g in groups:
        mask = np.isin(seg, g["segments"])
        raw, nyu = label_map.get(g["label"], (0, 0))
        s200[mask] = lut200[raw] if raw < len(lut200) else -1
        s20[mask] = lut20[nyu] if nyu < len(lut20) else -1
        inst[mask] = g["id"]
    return s200, s20, inst


def test_layout_and_splits(release) -> None:
    out, splits = release
    names = [syn.scene_name(i) for i in range(N_SCENES)]
    assert sorted(s for v in splits.values() for s in v) == names
    assert [len(splits[k]) for k in ("train", "val", "test")] == list(syn.split_counts(N_SCENES))
    for split, listed in splits.items():
        assert (out / f"scannetv2_{split}.txt").read_text().split() == listed
    assert (out / "scannetv2-labels.combined.tsv").is_file()
    for name in splits["train"] + splits["val"]:
        assert sorted(p.name for p in (out / "scans" / name).iterdir()) == sorted([
            f"{name}_vh_clean_2.ply", f"{name}_vh_clean_2.0.010000.segs.json", f"{name}.aggregation.json", f"{name}.txt"])
    for name in splits["test"]:
        assert not (out / "scans" / name).exists()
        assert sorted(p.name for p in (out / "scans_test" / name).iterdir()) == sorted([f"{name}_vh_clean_2.ply", f"{name}.txt"])
    assert not [p for p in out.rglob(".*")], "temporary files left behind"


def test_split_counts() -> None:
    assert syn.split_counts(0) == (0, 0, 0)
    assert syn.split_counts(1) == (1, 0, 0)
    assert syn.split_counts(2) == (1, 1, 0)
    assert syn.split_counts(3) == (1, 1, 1)
    assert syn.split_counts(10) == (7, 2, 1)
    assert syn.split_counts(100) == (70, 20, 10)


def test_deterministic(release, tmp_path) -> None:
    out, _ = release
    again = tmp_path / "again"
    syn.write_release(again, N_SCENES, seed=SEED, size="small", workers=2)
    assert _files(again) == _files(out)
    other = syn.make_scene("scene0000_00", syn.scene_seed(SEED + 1, 0), size="small")
    first = syn.make_scene("scene0000_00", syn.scene_seed(SEED, 0), size="small")
    assert other.vertices.shape != first.vertices.shape or not np.array_equal(other.vertices, first.vertices)
    # rewriting over an existing release replaces scenes in place
    syn.write_release(again, N_SCENES, seed=SEED, size="small")
    assert _files(again) == _files(out)


def test_ply_format(release) -> None:
    out, splits = release
    name = splits["train"][0]
    path = out / "scans" / name / f"{name}_vh_clean_2.ply"
    header = path.read_bytes().split(b"end_header\n")[0].decode().splitlines()
    assert header[:2] == ["ply", "format binary_little_endian 1.0"]
    body = [h for h in header if not h.startswith("comment")]
    assert body[3:10] == ["property float x", "property float y", "property float z", "property uchar red",
                          "property uchar green", "property uchar blue", "property uchar alpha"]
    assert body[11] == "property list uchar int vertex_indices"
    ply = PlyData.read(str(path))
    v, f = ply["vertex"], ply["face"]
    assert [p.name for p in v.properties] == ["x", "y", "z", "red", "green", "blue", "alpha"]
    assert [v.data[k].dtype for k in ("x", "red")] == [np.dtype("<f4"), np.dtype("u1")]
    gt = syn.make_scene(name, syn.scene_seed(SEED, syn_index(name)), size="small")
    assert v.count == len(gt.vertices) and f.count == len(gt.faces)
    xyz = np.stack([v.data[k] for k in "xyz"], 1)
    assert np.array_equal(xyz, gt.vertices)
    assert np.array_equal(np.stack([v.data[k] for k in ("red", "green", "blue", "alpha")], 1), gt.colors)
    faces = np.stack(f.data["vertex_indices"])
    assert np.array_equal(faces, gt.faces)
    assert gt.vertices.dtype == np.float32 and gt.colors.dtype == np.uint8 and gt.faces.dtype == np.int32
    assert (gt.colors[:, 3] == 255).all()
    # every vertex is used, no degenerate triangles
    assert np.array_equal(np.unique(gt.faces), np.arange(len(gt.vertices)))
    assert ((gt.faces[:, 0] != gt.faces[:, 1]) & (gt.faces[:, 1] != gt.faces[:, 2]) & (gt.faces[:, 0] != gt.faces[:, 2])).all()


def test_annotation_files_and_ground_truth(release) -> None:
    out, splits = release
    label_map = _label_map(out / "scannetv2-labels.combined.tsv")
    for name in splits["train"] + splits["val"]:
        d = out / "scans" / name
        gt = syn.make_scene(name, syn.scene_seed(SEED, syn_index(name)), size="small")
        segs = json.loads((d / f"{name}_vh_clean_2.0.010000.segs.json").read_text())
        assert segs["sceneId"] == name and "params" in segs
        assert len(segs["segIndices"]) == len(gt.vertices)
        assert segs["segIndices"] == gt.seg_indices.tolist() and min(segs["segIndices"]) >= 0
        agg = json.loads((d / f"{name}.aggregation.json").read_text())
        assert agg["sceneId"] == f"scannet.{name}"
        assert agg["segmentsFile"] == f"scannet.{name}_vh_clean_2.0.010000.segs.json"
        assert agg["segGroups"] == gt.groups
        known = set(gt.seg_indices.tolist())
        for g in agg["segGroups"]:
            assert set(g) >= {"id", "objectId", "segments", "label"}
            assert g["segments"] and set(g["segments"]) <= known
        s200, s20, inst = _gt_from_files(d, name, label_map)
        assert np.array_equal(s200, gt.segment200) and np.array_equal(s20, gt.segment20) and np.array_equal(inst, gt.instance)
        assert gt.segment200.dtype == np.int16 and gt.segment20.dtype == np.int16 and gt.instance.dtype == np.int32
        assert gt.segment200.max() < 200 and gt.segment20.max() < 20
        # a labelled point always belongs to a group; unannotated clutter is -1 everywhere
        assert (gt.instance[gt.segment200 >= 0] >= 0).all() and (gt.instance[gt.segment20 >= 0] >= 0).all()
        assert (gt.instance < 0).any() and (gt.segment200 < 0).any()


def test_axis_alignment(release) -> None:
    out, splits = release
    name = splits["test"][0]
    gt = syn.make_scene(name, syn.scene_seed(SEED, syn_index(name)), size="small")
    meta = dict(line.split(" = ", 1) for line in (out / "scans_test" / name / f"{name}.txt").read_text().splitlines())
    assert {"colorHeight", "colorWidth", "sceneType"} <= set(meta)
    A = np.array([float(x) for x in meta["axisAlignment"].split()]).reshape(4, 4)
    assert np.array_equal(A, gt.axis_alignment)
    assert np.allclose(A[2, :3], [0, 0, 1]) and np.allclose(A[3], [0, 0, 0, 1])
    aligned = gt.vertices.astype(np.float64) @ A[:3, :3].T + A[:3, 3]
    lo = aligned.min(0)
    assert abs(lo[2]) < 0.05 and np.all(np.abs(lo[:2]) < 0.1)  # room in the positive quadrant, floor at z=0


def test_overlapping_groups_later_wins() -> None:
    for i in range(3):
        gt = syn.make_scene(syn.scene_name(i), syn.scene_seed(SEED, i), size="small")
        pos: dict[int, list[int]] = {}
        for p, g in enumerate(gt.groups):
            for s in g["segments"]:
                pos.setdefault(s, []).append(p)
        shared = {s: ps for s, ps in pos.items() if len(ps) > 1}
        assert shared, "every scene lists at least one segment in two groups"
        for s, ps in shared.items():
            winner = gt.groups[max(ps)]
            assert set(gt.instance[gt.seg_indices == s].tolist()) == {winner["id"]}
        # at least one overlap changes the answer compared with first-wins
        assert any(gt.groups[min(ps)]["id"] != gt.groups[max(ps)]["id"] for ps in shared.values())


def test_labels_are_known_or_deliberately_absent(release) -> None:
    out, splits = release
    label_map = _label_map(out / "scannetv2-labels.combined.tsv")
    assert not set(syn.ABSENT_LABELS) & set(label_map)
    with open(out / "scannetv2-labels.combined.tsv", newline="") as f:
        assert tuple(csv.reader(f, delimiter="\t").__next__()) == syn.LABEL_MAP_COLUMNS
    lut200 = scannet200().id_to_index()
    outside = [n for n, (raw, _) in label_map.items() if raw >= len(lut200) or lut200[raw] < 0]
    assert len(outside) >= 3  # raw categories outside the 200 benchmark classes
    for n in label_map:  # the ids are the release's: names of the 200 classes map to themselves
        if n in scannet200().names:
            assert scannet200().names[lut200[label_map[n][0]]] == n
    used: Counter[str] = Counter()
    for i in range(12):
        used.update(g["label"] for g in syn.make_scene("s", syn.scene_seed(SEED, i), size="small").groups)
    assert set(used) <= set(label_map) | set(syn.ABSENT_LABELS)
    assert set(used) & set(syn.ABSENT_LABELS)
    assert set(used) & set(outside)


def test_long_tail() -> None:
    t = scannet200()
    hist = np.zeros(200, dtype=np.int64)
    for i in range(6):
        s = syn.make_scene("s", syn.scene_seed(SEED, i), size="small").segment200
        hist += np.bincount(s[s >= 0], minlength=200)
    share = np.sort(hist)[::-1] / hist.sum()
    assert share[:5].sum() > 0.6  # structure and a few head classes dominate
    present = np.nonzero(hist)[0]
    assert len(present) >= 25 and (share[share > 0] < 0.005).sum() >= 8  # many rare classes
    for split in ("head", "common", "tail"):
        assert sum(t.split[c] == split for c in present) >= 3, split


def test_sizes_and_speed() -> None:
    start = time.perf_counter()
    d = syn.make_scene("scene0000_00", 5, size="default")
    assert 50_000 <= len(d.vertices) <= 150_000
    s = syn.make_scene("scene0000_00", 5, size="scannet")
    assert 110_000 <= len(s.vertices) <= 130_000 and 200_000 <= len(s.faces) <= 240_000
    small = syn.make_scene("scene0000_00", 5, size="small")
    assert 2_000 <= len(small.vertices) <= 6_000
    start_ply = time.perf_counter()
    syn._ply_bytes(s.vertices, s.colors, s.faces)
    assert time.perf_counter() - start_ply < 1.0
    assert time.perf_counter() - start < 6.0  # two large scenes, generous for a loaded machine
    with pytest.raises(ValueError):
        syn.make_scene("x", 0, size="huge")


def test_cli_runs_as_script(tmp_path) -> None:
    out = tmp_path / "raw"
    r = subprocess.run([sys.executable, "data_prep/synthetic.py", "--out", str(out), "--scenes", "2", "--size", "small", "--seed", "4"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (out / "scannetv2_train.txt").read_text().split() == ["scene0000_00"]
    assert (out / "scannetv2_val.txt").read_text().split() == ["scene0001_00"]
    assert (out / "scannetv2_test.txt").read_text() == ""


def test_interrupted_write_leaves_no_partial_scene(tmp_path, monkeypatch) -> None:
    def boom(scene, scene_dir, labelled=True):
        Path(scene_dir).mkdir(parents=True, exist_ok=True)  # as write_scene does
        (Path(scene_dir) / "half.ply").write_bytes(b"ply")
        raise KeyboardInterrupt

    monkeypatch.setattr(syn.release, "write_scene", boom)  # write_release looks it up there
    with pytest.raises(KeyboardInterrupt):
        syn.write_release(tmp_path, 1, seed=0, size="small")
    assert list((tmp_path / "scans").iterdir()) == []
