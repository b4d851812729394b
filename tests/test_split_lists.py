"""Split lists and the label map are untrusted data: bad names, repeats, scenes in two splits and
non-UTF-8 text are named by file and line, and data prep converts nothing (exit 2)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pcseg.data import prep
from pcseg.data.scannet_raw import LabelMap, RawDataError
from pcseg.data.scene_names import check_scene_name, is_scene_name


def _lists(raw: Path, tmp_path: Path, **text: str | bytes) -> Path:
    """A copy of the release's split lists, with the given lists replaced."""
    folder = tmp_path / "lists"
    folder.mkdir()
    for split in prep.SPLITS:
        shutil.copy(raw / f"scannetv2_{split}.txt", folder)
        if split in text:
            t = text[split]
            (folder / f"scannetv2_{split}.txt").write_bytes(t if isinstance(t, bytes) else t.encode())
    return folder


@pytest.fixture(scope="module")
def converted_manifest(small_caches) -> dict:
    return json.loads((small_caches / "manifest.json").read_text())


def _convert(raw: Path, out: Path, *extra: str) -> int:
    return prep.main(["--raw", str(raw), "--out", str(out), "--no-progress", *extra])


@pytest.mark.parametrize("name", ["scene0000_00", "scene0707_02", "room_12", "Area-5.office.3"])
def test_safe_names(name: str) -> None:
    assert is_scene_name(name) and check_scene_name(name, "here") == name


@pytest.mark.parametrize("name", ["", ".", "..", "../scene0000_00", "/tmp/x", "a/b", "a\\b", ".scene0000_00.old-7",
                                  "scene\x000", "scene 0", "scène", "-rf", "x" * 101])
def test_unsafe_names(name: str) -> None:
    assert not is_scene_name(name)
    with pytest.raises(RawDataError, match="split list L line 3: scene name"):
        check_scene_name(name, "split list L line 3")


def test_bad_names_stop_prep_before_anything_is_written(small_release, tmp_path, capsys) -> None:
    raw, splits = small_release
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    bad = ["../../victim", "/etc", ".hidden", "a/b", "nul\x00name"]
    lists = _lists(raw, tmp_path, train="\n".join(splits["train"] + bad) + "\n", test="\n\n" + ".." + "\n")
    out = tmp_path / "out"
    assert _convert(raw, out, "--splits", str(lists)) == 2
    err = capsys.readouterr().err
    train_list = lists / "scannetv2_train.txt"
    for i, name in enumerate(bad, start=len(splits["train"]) + 1):
        assert f"{train_list} line {i}: scene name {name!r}" in err, (name, err)
    assert f"{lists / 'scannetv2_test.txt'} line 3: scene name '..'" in err
    assert not out.exists() and (victim / "keep.txt").read_text() == "mine"


def test_repeated_scene_is_reported_and_counted_once(converted_manifest, small_release, tmp_path, capsys) -> None:
    raw, splits = small_release
    train = splits["train"] + [splits["train"][0], splits["train"][0]]
    lists = _lists(raw, tmp_path, train="\ufeff" + "\n".join(train) + "\n")  # with a byte-order mark
    out = tmp_path / "out"
    assert _convert(raw, out, "--splits", str(lists)) == 0
    err = capsys.readouterr().err
    n = len(splits["train"])
    assert f"{lists / 'scannetv2_train.txt'}" in err and f"{splits['train'][0]} (lines 1, {n + 1}, {n + 2})" in err
    m = json.loads((out / "manifest.json").read_text())
    assert m["splits"]["train"] == converted_manifest["splits"]["train"]
    assert m["class_histogram"] == converted_manifest["class_histogram"]
    assert m["counts"]["converted"] == sum(map(len, splits.values()))


def test_scene_in_two_splits_is_an_error(small_release, tmp_path, capsys) -> None:
    raw, splits = small_release
    leaked = splits["val"][0]
    lists = _lists(raw, tmp_path, train="\n".join(splits["train"] + [leaked]) + "\n")
    out = tmp_path / "out"
    assert _convert(raw, out, "--splits", str(lists)) == 2
    err = capsys.readouterr().err
    assert (f"{leaked} is listed in both {lists / 'scannetv2_train.txt'} line {len(splits['train']) + 1} and "
            f"{lists / 'scannetv2_val.txt'} line 1") in err
    assert not out.exists()


def test_split_list_that_is_not_utf8(small_release, tmp_path, capsys) -> None:
    raw, splits = small_release
    lists = _lists(raw, tmp_path, val=f"{splits['val'][0]}\nscene\xff\n".encode("latin-1"))
    assert _convert(raw, tmp_path / "out", "--splits", str(lists)) == 2
    err = capsys.readouterr().err
    assert f"split list {lists / 'scannetv2_val.txt'} is not UTF-8 text (invalid byte at line 2)" in err


@pytest.mark.parametrize("row,what", [(b"kitchen\xff\t3\n", "is not UTF-8 text"),
                                      (b"77\tshelf\n", "line 4: fewer columns than the header"),
                                      (b"x7\tshelf\tshelf\t1\t5\n", "line 4: non-integer id (id 'x7'")])
def test_bad_label_map_is_named(small_release, tmp_path, capsys, row: bytes, what: str) -> None:
    raw, _ = small_release
    lines = (raw / "scannetv2-labels.combined.tsv").read_bytes().splitlines(keepends=True)
    label_map = tmp_path / "labels.tsv"
    label_map.write_bytes(b"".join(lines[:3]) + row + b"".join(lines[3:]))
    with pytest.raises(RawDataError, match="label map"):
        LabelMap.read(label_map)
    assert _convert(raw, tmp_path / "out", "--label-map", str(label_map)) == 2
    err = capsys.readouterr().err
    assert f"label map {label_map}" in err and what in err, err


def test_plan_built_in_code_is_checked_too(small_release, tmp_path) -> None:
    raw, splits = small_release
    scenes = {**splits, "train": splits["train"] + ["../escape"]}
    plan = prep.PrepPlan(raw, tmp_path / "out", raw / "scannetv2-labels.combined.tsv", raw, False, scenes)
    with pytest.raises(RawDataError, match="'../escape' contains a path separator"):
        prep.run(plan, progress=False)
    assert not (tmp_path / "out").exists()
