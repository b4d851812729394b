"""data_prep/scannet200.py: exact round trip, normals, bad inputs, resume, atomicity."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pcseg.data import prep
from pcseg.data.scannet_raw import read_mesh, vertex_normals
from pcseg.data.synthetic import make_scene, scene_seed
from tests.conftest import REPO

FILES = ("coord", "color", "normal", "segment200", "segment20", "instance")


def _convert(raw: Path, out: Path, *extra: str) -> int:
    return prep.main(["--raw", str(raw), "--out", str(out), "--no-progress", *extra])


@pytest.fixture(scope="module")
def converted(small_release, tmp_path_factory):
    raw, splits = small_release
    out = tmp_path_factory.mktemp("cache")
    assert _convert(raw, out) == 0
    return raw, splits, out


def _all_scenes(splits):
    names = sorted(s for v in splits.values() for s in v)
    return {s: i for i, s in enumerate(names)}


def test_round_trip_is_exact(converted) -> None:
    raw, splits, out = converted
    # write_release seeds scene i (in name order) with scene_seed(seed, i)
    for i, name in enumerate(sorted(s for v in splits.values() for s in v)):
        split = next(k for k, v in splits.items() if name in v)
        gt = make_scene(name, scene_seed(3, i), size="small")
        d = out / split / name
        coord = np.load(d / "coord.npy")
        assert coord.dtype == np.float32 and coord.tobytes() == gt.vertices.astype(np.float32).tobytes()
        color = np.load(d / "color.npy")
        assert color.dtype == np.uint8 and np.array_equal(color, gt.colors[:, :3])
        normal = np.load(d / "normal.npy")
        assert normal.dtype == np.float32 and normal.shape == coord.shape
        np.testing.assert_allclose(np.linalg.norm(normal, axis=1), 1.0, atol=1e-5)
        if split == "test":
            assert sorted(p.name for p in d.iterdir()) == ["color.npy", "coord.npy", "normal.npy"]
            continue
        for key, dtype in (("segment200", np.int16), ("segment20", np.int16)):
            arr = np.load(d / f"{key}.npy")
            assert arr.dtype == dtype
            assert np.array_equal(arr, getattr(gt, key)), key
        inst = np.load(d / "instance.npy")
        assert inst.dtype in (np.int16, np.int32) and np.array_equal(inst, gt.instance)


def test_manifest(converted) -> None:
    raw, splits, out = converted
    m = json.loads((out / "manifest.json").read_text())
    assert m["format_version"] == prep.FORMAT_VERSION
    assert m["failures"] == []
    for split, names in splits.items():
        assert sorted(m["splits"][split]["scenes"]) == sorted(names)
    expected = np.zeros(200, dtype=np.int64)
    for name in splits["train"]:
        s = np.load(out / "train" / name / "segment200.npy")
        expected += np.bincount(s[s >= 0], minlength=200)
        assert m["splits"]["train"]["scenes"][name] == len(s)
    assert m["class_histogram"]["segment200"]["counts"] == expected.tolist()
    assert sum(m["class_histogram"]["segment20"]["counts"]) > 0


def test_normals_match_brute_force(converted) -> None:
    raw, splits, _ = converted
    name = splits["train"][0]
    coord, _, faces = read_mesh(raw / "scans" / name / f"{name}_vh_clean_2.ply")
    expected = np.zeros((len(coord), 3))
    v = coord.astype(np.float64)
    for a, b, c in faces.tolist():  # the textbook per-face loop
        n = np.cross(v[b] - v[a], v[c] - v[a])
        expected[a] += n
        expected[b] += n
        expected[c] += n
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vertex_normals(coord, faces), expected, atol=1e-5)


def test_normals_of_a_tetrahedron_point_outwards() -> None:
    coord = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [5, 5, 5]], dtype=np.float32)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    n = vertex_normals(coord, faces)
    centre = coord[:4].mean(0)
    assert ((n[:4] * (coord[:4] - centre)).sum(1) > 0).all()
    assert np.array_equal(n[4], np.zeros(3, dtype=np.float32))  # on no face


def test_workers_give_identical_output(converted, tmp_path) -> None:
    raw, splits, out = converted
    assert _convert(raw, tmp_path, "--workers", "2") == 0
    for split, names in splits.items():
        for name in names:
            for f in (out / split / name).iterdir():
                assert np.array_equal(np.load(f), np.load(tmp_path / split / name / f.name)), f


def test_resume_skips_and_force_redoes(small_release, tmp_path) -> None:
    raw, splits = small_release
    assert _convert(raw, tmp_path) == 0
    name = splits["train"][0]
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.npy")}
    assert _convert(raw, tmp_path) == 0
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["counts"] == {"converted": 0, "skipped": sum(map(len, splits.values())), "failed": 0}
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.npy")} == stamp
    # a newer input redoes that scene only
    raw_copy = tmp_path.parent / (tmp_path.name + "_raw")
    shutil.copytree(raw, raw_copy)
    assert _convert(raw_copy, tmp_path, "--force") == 0
    agg = raw_copy / "scans" / name / f"{name}.aggregation.json"
    agg.touch()
    assert _convert(raw_copy, tmp_path) == 0
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["counts"]["converted"] == 1
    assert _convert(raw_copy, tmp_path, "--force") == 0
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["counts"]["converted"] == sum(map(len, splits.values()))


def _break(raw: Path, name: str, how: str) -> None:
    d = raw / "scans" / name
    mesh = d / f"{name}_vh_clean_2.ply"
    segs = d / f"{name}_vh_clean_2.0.010000.segs.json"
    agg = d / f"{name}.aggregation.json"
    if how == "missing":
        segs.unlink()
    elif how == "truncated":
        data = mesh.read_bytes()
        mesh.write_bytes(data[: len(data) // 2])
    elif how == "corrupt":
        mesh.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 3\ngarbage\n")
    elif how == "json":
        agg.write_text('{"segGroups": [ {"id": 0, ')
    elif how == "length":
        s = json.loads(segs.read_text())
        s["segIndices"] = s["segIndices"][:-7]
        segs.write_text(json.dumps(s))
    elif how == "label":
        a = json.loads(agg.read_text())
        a["segGroups"][0]["id"] = -5
        agg.write_text(json.dumps(a))


CASES = {"missing": "missing file", "truncated": "truncated", "corrupt": "corrupt", "json": "cannot parse JSON",
         "length": "segIndices for a mesh of", "label": "has id -5"}


@pytest.mark.parametrize("cases", [list(CASES)[:3], list(CASES)[3:]], ids=["files", "contents"])
def test_bad_inputs_fail_only_their_scene(cases, small_release, tmp_path, capsys) -> None:
    """Every case breaks one scene of its own (the small release has fewer labelled scenes than
    cases, hence two rounds)."""
    raw0, splits = small_release
    raw = tmp_path / "raw"
    shutil.copytree(raw0, raw)
    labelled = splits["train"] + splits["val"]
    broken = dict(zip(labelled, cases))
    assert len(broken) == len(cases) and len(broken) < len(labelled)
    for name, how in broken.items():
        _break(raw, name, how)
    out = tmp_path / "out"
    assert _convert(raw, out) == 1
    err = capsys.readouterr().err
    m = json.loads((out / "manifest.json").read_text())
    failures = {f["scene"]: f["reason"] for f in m["failures"]}
    assert set(failures) == set(broken)
    for name, how in broken.items():
        assert CASES[how] in failures[name], (how, failures[name])
        assert name in err
        split = "train" if name in splits["train"] else "val"
        assert not (out / split / name).exists()
    assert f"{len(broken)} failed" in err
    for split, names in splits.items():
        for name in names:
            if name not in broken:
                assert (out / split / name / "coord.npy").is_file()
    assert not list(out.rglob(".*tmp*"))


def test_failure_keeps_previous_good_output(small_release, tmp_path) -> None:
    raw0, splits = small_release
    raw = tmp_path / "raw"
    shutil.copytree(raw0, raw)
    out = tmp_path / "out"
    assert _convert(raw, out) == 0
    name = splits["train"][0]
    before = np.load(out / "train" / name / "segment200.npy")
    _break(raw, name, "json")
    assert _convert(raw, out, "--force") == 1
    assert np.array_equal(np.load(out / "train" / name / "segment200.npy"), before)


def test_interrupted_write_leaves_no_partial_scene(small_release, tmp_path, monkeypatch) -> None:
    raw, splits = small_release
    calls = {"n": 0}
    real_save = np.save

    def flaky_save(path, arr):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-scene
        real_save(path, arr)

    monkeypatch.setattr(prep.np, "save", flaky_save)
    with pytest.raises(KeyboardInterrupt):
        _convert(raw, tmp_path)
    monkeypatch.setattr(prep.np, "save", real_save)
    assert not [p for p in tmp_path.rglob("*") if p.is_dir() and p.parent.name in ("train", "val", "test")]
    assert _convert(raw, tmp_path) == 0  # a rerun completes everything


def test_missing_split_list_and_label_map_are_clear_errors(small_release, tmp_path, capsys) -> None:
    raw0, _ = small_release
    raw = tmp_path / "raw"
    shutil.copytree(raw0, raw)
    (raw / "scannetv2-labels.combined.tsv").unlink()
    assert _convert(raw, tmp_path / "o") == 2
    assert "scannetv2-labels.combined.tsv" in capsys.readouterr().err
    (raw / "scannetv2_val.txt").unlink()
    assert _convert(raw, tmp_path / "o", "--label-map", str(raw0 / "scannetv2-labels.combined.tsv")) == 2
    err = capsys.readouterr().err
    assert "scannetv2_val.txt" in err and "--splits" in err
    splits_dir = tmp_path / "lists"
    splits_dir.mkdir()
    for s in ("train", "val", "test"):
        shutil.copy(raw0 / f"scannetv2_{s}.txt", splits_dir)
    assert _convert(raw, tmp_path / "o", "--splits", str(splits_dir),
                    "--label-map", str(raw0 / "scannetv2-labels.combined.tsv")) == 0


def test_align_applies_axis_alignment(converted, tmp_path) -> None:
    raw, splits, out = converted
    assert _convert(raw, tmp_path, "--align") == 0
    name = splits["train"][0]
    text = (raw / "scans" / name / f"{name}.txt").read_text()
    line = next(s for s in text.splitlines() if s.startswith("axisAlignment"))
    m = np.array([float(x) for x in line.split("=")[1].split()]).reshape(4, 4)
    plain = np.load(out / "train" / name / "coord.npy").astype(np.float64)
    aligned = np.load(tmp_path / "train" / name / "coord.npy")
    expected = (np.c_[plain, np.ones(len(plain))] @ m.T)[:, :3]
    np.testing.assert_allclose(aligned, expected, atol=1e-4)
    assert json.loads((tmp_path / "manifest.json").read_text())["inputs"]["align"] is True


def test_command_line_script(converted, tmp_path) -> None:
    raw, _, _ = converted
    r = subprocess.run([sys.executable, str(REPO / "data_prep" / "scannet200.py"), "--raw", str(raw),
                        "--out", str(tmp_path), "--no-progress"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "0 failed" in r.stdout


def _write_mesh(raw: Path, name: str, vertices: np.ndarray, faces: np.ndarray, sub: str = "scans") -> Path:
    from pcseg.data.synthetic.release import _ply_bytes

    mesh = raw / sub / name / f"{name}_vh_clean_2.ply"
    colors = np.full((len(vertices), 4), 200, dtype=np.uint8)
    mesh.write_bytes(_ply_bytes(vertices.astype(np.float32), colors, faces.reshape(-1, 3)))
    return mesh


def test_empty_faceless_and_nan_meshes_fail_their_scene(small_release, tmp_path, capsys) -> None:
    raw0, splits = small_release
    raw = tmp_path / "raw"
    shutil.copytree(raw0, raw)
    empty, faceless, nan = splits["test"][0], splits["train"][0], splits["val"][0]
    _write_mesh(raw, empty, np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int32), sub="scans_test")
    _write_mesh(raw, faceless, read_mesh(raw / "scans" / faceless / f"{faceless}_vh_clean_2.ply")[0],
                np.zeros((0, 3), dtype=np.int32))
    coord, _, faces = read_mesh(raw / "scans" / nan / f"{nan}_vh_clean_2.ply")
    coord[7, 2] = np.nan
    _write_mesh(raw, nan, coord, faces)
    out = tmp_path / "out"
    assert _convert(raw, out) == 1
    m = json.loads((out / "manifest.json").read_text())
    failures = {f["scene"]: f["reason"] for f in m["failures"]}
    assert set(failures) == {empty, faceless, nan}
    assert "has no vertices" in failures[empty] and f"{empty}_vh_clean_2.ply" in failures[empty]
    assert "has no faces" in failures[faceless] and f"{faceless}_vh_clean_2.ply" in failures[faceless]
    assert "non-finite vertex coordinates" in failures[nan] and "first: vertex 7" in failures[nan]
    for split, name in (("test", empty), ("train", faceless), ("val", nan)):
        assert not (out / split / name).exists() and name not in m["splits"][split]["scenes"]
    assert "3 failed" in capsys.readouterr().err


def test_non_finite_axis_alignment_fails_its_scene(small_release, tmp_path) -> None:
    raw0, splits = small_release
    raw = tmp_path / "raw"
    shutil.copytree(raw0, raw)
    name = splits["train"][1]
    meta = raw / "scans" / name / f"{name}.txt"
    meta.write_text("axisAlignment = nan 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n")
    out = tmp_path / "out"
    assert _convert(raw, out, "--align") == 1
    [failure] = json.loads((out / "manifest.json").read_text())["failures"]
    assert failure["scene"] == name and str(meta) in failure["reason"] and "non-finite" in failure["reason"]
    assert not (out / "train" / name).exists()


def test_leftover_folders_are_removed_or_put_back(small_release, tmp_path) -> None:
    from pcseg.data.dataset import SceneCacheDataset

    raw, splits = small_release
    out = tmp_path / "out"
    assert _convert(raw, out) == 0
    train = out / "train"
    a, b = splits["train"][:2]
    shutil.copytree(train / a, train / f".{a}.old-4242")  # stopped after the replacement: a stale old copy
    os.replace(train / b, train / f".{b}.old-4243")  # stopped between the two renames: the only copy
    (train / f".{a}.tmp-4244").mkdir()  # stopped while writing
    assert sorted(SceneCacheDataset(out, "train").names) == sorted(set(splits["train"]) - {b})
    assert _convert(raw, out) == 0
    assert sorted(p.name for p in train.iterdir()) == sorted(splits["train"])
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"]["converted"] == 0  # b was put back (and is up to date), not lost and rebuilt
    assert m["splits"]["train"]["num_scenes"] == len(splits["train"])


def test_scene_files_are_fsynced_before_the_rename(small_release, tmp_path, monkeypatch) -> None:
    from pcseg.utils import atomic

    raw, splits = small_release
    synced: list[Path] = []
    real = atomic.fsync_file
    monkeypatch.setattr(atomic, "fsync_file", lambda p: (synced.append(Path(p)), real(p)))
    assert _convert(raw, tmp_path) == 0
    name = splits["train"][0]
    names = {(p.parent.name, p.name) for p in synced}
    for f in FILES:  # written in the hidden temporary folder, synced there, then renamed
        assert (f".{name}.tmp-{os.getpid()}", f"{f}.npy") in names


def test_damaged_cache_is_rebuilt_not_failed(converted, tmp_path) -> None:
    raw, splits, out0 = converted
    out = tmp_path / "out"
    shutil.copytree(out0, out)
    name = splits["val"][0]
    coord = out / "val" / name / "coord.npy"
    data = coord.read_bytes()
    coord.write_bytes(data[: len(data) // 2])  # newer than its inputs, so "up to date" by time alone
    assert _convert(raw, out) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"]["converted"] == 1 and m["failures"] == []
    assert coord.read_bytes() == (out0 / "val" / name / "coord.npy").read_bytes()
