"""The official split lists (``scannetv2_{train,val,test}.txt``), read as untrusted data.

Every name must be one safe folder name (:mod:`pcseg.data.scene_names`); all bad lines
of all lists are reported together, by file and line, before anything is converted.

A scene listed twice in one list is reported and counted once: the official lists have no
repeats, a repeated line is a copy-paste slip whose intent (this scene is in this split) is
clear, and counting it twice would double its vertices in the manifest and its classes in
the histogram that class weights come from. A scene listed in two lists has no clear
intent, and a val or test scene in the training list leaks evaluation data into training,
so that is an error naming both places.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Mapping, Sequence

from pcseg.data.scannet_raw import RawDataError
from pcseg.data.scene_names import scene_name_problem

SPLITS = ("train", "val", "test")
_SHOWN = 20  # problems listed in one message; the rest are counted


def read_split_list(path: Path) -> list[tuple[int, str]]:
    """``(line number, name)`` for every non-blank line of one list (names stripped, unchecked)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RawDataError(f"split list {path} cannot be read ({exc.strerror or exc})") from exc
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark from a Windows editor is not part of a name
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RawDataError(f"split list {path} is not UTF-8 text (invalid byte at line {line}); "
                           "save it as UTF-8 (or ASCII), one scene name per line") from None
    return [(i, s.strip()) for i, s in enumerate(text.split("\n"), start=1) if s.strip()]


def _stderr_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _raise_problems(where: str, problems: list[str]) -> None:
    if problems:
        shown = problems[:_SHOWN] + ([f"... and {len(problems) - _SHOWN} more"] if len(problems) > _SHOWN else [])
        raise RawDataError(f"{where}: {len(problems)} problem(s):\n  " + "\n  ".join(shown)
                           + "\nFix the lists: one scene folder name (e.g. scene0000_00) per line, "
                             "each scene in one list only.")


def read_split_lists(raw: Path, splits_dir: Path | None,
                     warn: Callable[[str], None] | None = None) -> tuple[Path, dict[str, list[str]]]:
    """The official split lists, from ``--splits`` if given, else from the release folder.

    Returns each split's scene names in file order, each once; repeats within a list go to
    ``warn`` (default: a warning on stderr). Bad names and scenes in two lists raise one
    RawDataError listing every problem with its file and line.
    """
    warn = warn or _stderr_warning
    folder = splits_dir if splits_dir is not None else raw
    rows: dict[str, tuple[Path, list[tuple[int, str]]]] = {}
    for split in SPLITS:
        path = folder / f"scannetv2_{split}.txt"
        if not path.is_file():
            hint = "" if splits_dir is not None else " or pass --splits DIR"
            raise RawDataError(
                f"split list {path} not found: the official lists scannetv2_train.txt, scannetv2_val.txt "
                f"and scannetv2_test.txt come with the ScanNet code release (Tasks/Benchmark); "
                f"put them in {folder}{hint}"
            )
        rows[split] = (path, read_split_list(path))
    problems: list[str] = []
    first: dict[str, tuple[Path, int]] = {}
    scenes: dict[str, list[str]] = {}
    for split, (path, lines) in rows.items():
        lines_of: dict[str, list[int]] = {}
        for line, name in lines:
            problem = scene_name_problem(name)
            if problem is not None:
                problems.append(f"{path} line {line}: scene name {name!r} {problem}")
            else:
                lines_of.setdefault(name, []).append(line)
        repeats = [f"{name} (lines {', '.join(map(str, ls))})" for name, ls in lines_of.items() if len(ls) > 1]
        if repeats:
            warn(f"split list {path}: {len(repeats)} scene(s) listed more than once, each converted and counted "
                 f"once: {'; '.join(repeats[:_SHOWN])}{' ...' if len(repeats) > _SHOWN else ''}")
        for name, ls in lines_of.items():
            if name in first:
                other, other_line = first[name]
                problems.append(f"{name} is listed in both {other} line {other_line} and {path} line {ls[0]}: "
                                "a scene belongs to one split (a val or test scene in the training list leaks "
                                "evaluation data into training); remove it from one list")
            else:
                first[name] = (path, ls[0])
        scenes[split] = list(lines_of)
    _raise_problems(f"split lists in {folder}", problems)
    return folder, scenes


def check_split_scenes(scenes: Mapping[str, Sequence[str]]) -> None:
    """The rules of :func:`read_split_lists` for lists built in code (a ``PrepPlan``): safe names,
    no repeats, no scene in two splits. Raises one RawDataError listing every problem."""
    problems: list[str] = []
    where: dict[str, str] = {}
    for split, names in scenes.items():
        for name in names:
            problem = scene_name_problem(name)
            if problem is not None:
                problems.append(f"{split}: scene name {name!r} {problem}")
            elif name in where:
                problems.append(f"{name} is listed twice ({where[name]} and {split})")
            else:
                where[name] = split
    _raise_problems("scene lists", problems)
