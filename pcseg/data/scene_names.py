"""Which scene names may become folder names: exactly one safe path component.

Scene names come from files (split lists, folder listings, submission zips), so they are
data, not paths. Joined onto ``--out`` unchecked, a name with ``/``, ``..``, NUL or an
absolute path writes caches outside it or replaces an unrelated folder; a hidden name is
what an interrupted folder replacement leaves behind (``.<scene>.old-<pid>``), never a scene.

ScanNet names are ``sceneXXXX_YY``, but any single component of ASCII letters, digits,
``_``, ``-`` and ``.`` that starts with a letter or digit is accepted: other datasets
written in the same layout (ScanNet++, own scans) keep working, and nothing that could
leave the folder, hide, or differ between file systems gets through.
"""
from __future__ import annotations

import re

from pcseg.data.scannet_raw import RawDataError

# 100 characters leaves room for the longest suffix added to a name
# ("_vh_clean_2.0.010000.segs.json", ".tmp-<pid>") under the usual 255-byte file name limit.
MAX_LENGTH = 100
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def scene_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a scene folder name, or None when it can."""
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not a string"
    if name == "":
        return "is empty"
    if "\x00" in name:
        return "contains a NUL character"
    if "/" in name or "\\" in name:
        return "contains a path separator (a scene name is one folder name, not a path)"
    if name.startswith("."):
        return "starts with a dot (hidden names, '.' and '..' are never scenes)"
    if len(name) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    if not _SAFE.fullmatch(name):
        return "may hold only ASCII letters, digits, '_', '-' and '.', and must start with a letter or digit"
    return None


def is_scene_name(name: str) -> bool:
    """True when ``name`` may be used as a scene folder name."""
    return scene_name_problem(name) is None


def check_scene_name(name: str, where: str) -> str:
    """``name`` itself if it is a safe scene name, else a RawDataError naming ``where`` it came from
    (e.g. ``"split list /data/scannetv2_val.txt line 7"``). Call before joining a name onto a path."""
    problem = scene_name_problem(name)
    if problem is not None:
        raise RawDataError(f"{where}: scene name {name!r} {problem} (expected one folder name such as scene0000_00)")
    return name
