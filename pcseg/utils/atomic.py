"""Atomic, durable file writes: a reader sees the old file or the complete new one, never a
partial one, and after a crash or power loss the renamed file holds its data.

A rename alone is atomic but not durable: on common file systems (ext4 with delayed
allocation, XFS) the new name can reach the disk before the file's blocks, so a node crash
leaves an empty file under the final name. Hence the order used everywhere here: write the
temporary file, fsync it, rename it over the target, fsync the directory (the rename).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_file(path: Path | str) -> None:
    """Flush a file's data and metadata to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path | str) -> None:
    """Flush a directory's entries (creations, renames, deletions) to the disk.

    Some file systems (and non-POSIX platforms) cannot open or fsync a directory; there the
    rename is as durable as the file system makes it, which is all one can do.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(path: Path | str) -> None:
    """fsync every file and directory under ``path`` (a folder about to be renamed into place)."""
    path = Path(path)
    for folder, _, files in os.walk(path, topdown=False):
        for name in files:
            fsync_file(Path(folder) / name)
        fsync_dir(folder)


def replace_durably(src: Path | str, dst: Path | str) -> None:
    """Rename ``src`` over ``dst`` and fsync the directory (or directories) holding them.

    ``src`` must already be on disk (see :func:`fsync_file`, :func:`fsync_tree`)."""
    os.replace(src, dst)
    fsync_dir(Path(dst).parent)
    if Path(src).parent.resolve() != Path(dst).parent.resolve():
        fsync_dir(Path(src).parent)


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; once the block succeeds it is fsynced and renamed
    over ``path``, and the directory fsynced. On failure the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
    try:
        yield Path(tmp)
        fsync_file(tmp)
        replace_durably(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextmanager
def atomic_dir(path: Path | str, tag: str = "tmp") -> Iterator[Path]:
    """Yield an empty hidden folder beside ``path`` (``.<name>.<tag>-<pid>``); once the block
    succeeds its contents are fsynced and it replaces ``path`` (an existing folder there is
    moved aside first and removed after). On failure nothing at ``path`` changes.

    Two renames are needed to replace a folder; between them ``path`` is briefly absent and
    the old copy sits at ``.<name>.old-<pid>``, which readers must ignore and a later run
    removes (hidden names are never data)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{tag}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        fsync_tree(tmp)
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}"
            os.replace(path, old)
            replace_durably(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            replace_durably(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def save_png(fig, path: Path | str, dpi: int = 120) -> Path:
    """A matplotlib ``Figure`` (built without pyplot) as PNG via a temporary file and rename, so a
    reader never sees half an image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return path
