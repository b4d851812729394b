"""Atomic writes are durable: the temporary file is fsynced before the rename and its directory
after it, so after a crash the final name never holds an empty file; a failed write changes nothing.
The order is observed on the real system calls (os.fsync, os.replace), which still run."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from pcseg.utils import atomic


@pytest.fixture
def calls(monkeypatch) -> list[tuple[str, str]]:
    """("fsync", path) and ("replace", target) in the order they happen."""
    seen: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        seen.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst) -> None:
        seen.append(("replace", str(Path(dst).resolve())))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return seen


def test_file_is_synced_then_renamed_then_its_directory_synced(tmp_path, calls) -> None:
    target = tmp_path / "last.pth"
    atomic.atomic_write_text(target, "state")
    assert target.read_text() == "state"
    kinds = [k for k, _ in calls]
    assert kinds == ["fsync", "replace", "fsync"], calls
    assert calls[0][1].startswith(str(tmp_path / ".last.pth."))  # the temporary file, before the rename
    assert calls[1][1] == str(target.resolve())
    assert calls[2][1] == str(tmp_path.resolve())  # the directory entry of the rename


def test_folder_contents_are_synced_before_it_replaces_the_old_one(tmp_path, calls) -> None:
    dest = tmp_path / "scene0000_00"
    dest.mkdir()
    (dest / "old.npy").write_bytes(b"old")
    with atomic.atomic_dir(dest) as tmp:
        (tmp / "coord.npy").write_bytes(b"new")
    assert [p.name for p in dest.iterdir()] == ["coord.npy"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers
    first_replace = next(i for i, (k, _) in enumerate(calls) if k == "replace")
    synced_before = [p for k, p in calls[:first_replace] if k == "fsync"]
    assert any(p.endswith("coord.npy") for p in synced_before), calls
    assert calls[-1] == ("fsync", str(tmp_path.resolve())), calls


def test_a_failed_write_leaves_the_old_file(tmp_path) -> None:
    target = tmp_path / "manifest.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
