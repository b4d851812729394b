"""ScanNet200 benchmark submissions: writer, checker and offline evaluator.

A submission is a zip with one ``<scene>.txt`` per scene of the split at its root; line
``i`` holds the benchmark label id (ScanNet200: the raw category id, 1..1191, not the
0..199 training index) of mesh vertex ``i``. The checker reads only the PLY headers of the
raw meshes, so checking a full test split takes seconds; the evaluator scores prediction
files against ground truth rebuilt from the raw annotation with the same code and metrics
as ``pcseg.test``, so the two numbers can be compared directly.

Submissions are untrusted input: every entry's size is checked against what its mesh's
vertex count allows before a byte is decompressed, reads are bounded even so (a header can
lie), and malformed zips, entry names, lines and ids are findings of the check, never
exceptions.
"""
from __future__ import annotations

import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from pcseg.data.classes import ClassTable
from pcseg.data.classes import table as class_table
from pcseg.data.scene_names import check_scene_name
from pcseg.data.split_lists import read_split_lists
from pcseg.data.scannet_raw import LabelMap, RawDataError, SceneFiles, read_aggregation, read_segments, vertex_labels
from pcseg.eval.metrics import ConfusionMatrix, summarize
from pcseg.utils.atomic import atomic_path

# The raw split lists name "val"; the caches may use other folder names for the same scenes.
OFFICIAL_SPLITS = ("train", "val", "test")


class SubmissionError(Exception):
    """A submission or prediction set is invalid; the message lists what is wrong."""


def scene_folder(raw: Path, name: str, split: str) -> Path:
    """Where a scene of ``split`` lives in the release (test scenes under ``scans_test``); a name
    that is not one safe folder name is a RawDataError, never a path."""
    check_scene_name(name, f"scene of the {split} split")
    first, second = ("scans_test", "scans") if split == "test" else ("scans", "scans_test")
    folder = raw / first / name
    if not folder.is_dir() and (raw / second / name).is_dir():
        return raw / second / name
    return folder


def mesh_path(raw: Path, name: str, split: str) -> Path:
    return SceneFiles(name, scene_folder(raw, name, split)).mesh


def ply_vertex_count(path: Path) -> int:
    """Vertex count from a PLY header alone (no vertex data is read; header lines are read
    with a bound, so a file that is not a PLY costs no more than a few kilobytes). A count
    the file is too small to hold (every vertex takes bytes) is refused: the prediction
    size limits derive from it."""
    n = _header_vertex_count(path)
    size = path.stat().st_size
    if n > size:
        raise RawDataError(f"{path}: the header declares {n} vertices but the file holds only {size} bytes "
                           "(truncated, or not the release's mesh)")
    return n


def _header_vertex_count(path: Path) -> int:
    with open(path, "rb") as f:
        if f.readline(_HEADER_LINE).strip() != b"ply":
            raise RawDataError(f"{path} is not a PLY file (no 'ply' magic line)")
        for _ in range(10_000):
            line = f.readline(_HEADER_LINE)
            if not line:
                break
            words = line.split()
            if words[:2] == [b"element", b"vertex"] and len(words) == 3:
                if words[2].isdigit():
                    return int(words[2])
                break
            if words[:1] == [b"end_header"]:
                break
    raise RawDataError(f"{path}: no 'element vertex N' line (N >= 0) in the PLY header")


_HEADER_LINE = 4096  # bytes: far more than any PLY header line


def split_scenes(raw: Path, split: str, splits_dir: Path | None = None) -> list[str]:
    """The official scene list of ``split`` (from ``splits_dir`` or the release folder)."""
    if split not in OFFICIAL_SPLITS:
        raise SubmissionError(f"unknown split {split!r}; expected one of {OFFICIAL_SPLITS}")
    _, scenes = read_split_lists(Path(raw), splits_dir)
    return scenes[split]


def format_ids(ids: np.ndarray) -> str:
    """One id per line, newline-terminated (the benchmark's text format)."""
    return "\n".join(map(str, np.asarray(ids, dtype=np.int64).tolist())) + "\n"


def id_limit(vertices: int, label_set: str) -> int:
    """The most bytes a prediction file for ``vertices`` mesh vertices can need: every line the
    longest benchmark id of ``label_set`` plus CR LF. Larger entries are refused unread."""
    return int(vertices) * (len(str(int(class_table(label_set).ids.max()))) + 2)


def id_lines(text: str) -> list[str]:
    """The lines of a prediction file: LF or CR LF ends, the last line's end optional."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


_INTEGER = re.compile(r"[+-]?[0-9]+")  # what int() reads, without its underscores
_INT64 = 2**63 - 1


def integer_lines(text: str) -> tuple[list[str], np.ndarray, list[int]]:
    """``(lines, value per line, indices of lines that hold no integer)``.

    Values are int64; a line that is no integer, or an integer beyond int64 (which no label
    set holds), reads as -1, an id no benchmark has. Blanks around a number are allowed.
    """
    lines = id_lines(text)
    if "_" not in text:
        try:
            return lines, np.array([int(s) for s in lines], dtype=np.int64), []
        except (ValueError, OverflowError):  # a bad line, or a number beyond int64: line by line
            pass
    values = np.full(len(lines), -1, dtype=np.int64)
    bad = []
    for i, s in enumerate(lines):
        t = s.strip()
        if not _INTEGER.fullmatch(t):
            bad.append(i)
        elif len(t) <= 19 and abs(int(t)) <= _INT64:  # no int() of a huge digit string
            values[i] = int(t)
    return lines, values, bad


def _shown(line: str) -> str:
    t = line.strip()
    if not t:
        return "empty line"
    return repr(t[:20] + "...") if len(t) > 20 else (t if _INTEGER.fullmatch(t) else repr(t))


def _examples(lines: list[str], where: np.ndarray | list[int]) -> str:
    return ", ".join(f"line {i + 1}: {_shown(lines[i])}" for i in list(where)[:3])


def parse_ids(text: str, where: str) -> np.ndarray:
    """Integers, one per line (-1 for one beyond int64); raises with the first offending lines."""
    lines, values, bad = integer_lines(text)
    if bad:
        raise SubmissionError(f"{where}: not one integer per line ({len(bad)} line(s), e.g. {_examples(lines, bad)})")
    return values


# What zipfile raises for a damaged, unsupported or hostile archive (it wraps none of them).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, OverflowError,
               NotImplementedError, RuntimeError, zlib.error, IndexError, KeyError)
_READABLE = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})


def read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """An entry's bytes, at most ``limit``: refused by its declared size before anything is
    decompressed, and read with a bound (``limit + 1`` bytes) in case the header lies.
    Only stored and deflate entries: other methods cannot be decompressed with a bound."""
    name = repr(info.filename[:100])
    if info.compress_type not in _READABLE:
        raise SubmissionError(f"{name}: compression method {info.compress_type} is not supported by the checker; "
                              "zip with deflate (the default of zip and of zipfile.ZIP_DEFLATED)")
    if info.file_size > limit:
        raise SubmissionError(f"{name}: {info.file_size} bytes uncompressed, more than its mesh's vertices can need "
                              f"({limit} bytes); not read")
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except _ZIP_ERRORS as exc:
        raise SubmissionError(f"{name}: cannot be read from the zip ({type(exc).__name__}: {exc})"[:400]) from None
    if len(data) > limit:
        raise SubmissionError(f"{name}: holds more than the {info.file_size} bytes its header declares and more "
                              f"than its mesh's vertices can need ({limit} bytes); not read further")
    return data


@dataclass
class CheckReport:
    """Outcome of :func:`check_submission`; ``problems`` is empty for a valid submission."""

    path: Path
    split: str
    expected: int = 0
    scenes_ok: int = 0
    vertices: int = 0
    problems: list[str] = field(default_factory=list)
    SHOWN = 50  # problems printed by format(); the rest are counted

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        if self.ok:
            return (f"OK: {self.path} is a valid {self.split} submission: {self.scenes_ok} scenes, "
                    f"{self.vertices} vertices")
        lines = [f"INVALID: {self.path} ({self.split} split, {self.expected} scenes expected): "
                 f"{len(self.problems)} problem(s)"]
        lines += [f"  - {p}" for p in self.problems[:self.SHOWN]]
        if len(self.problems) > self.SHOWN:
            lines.append(f"  ... and {len(self.problems) - self.SHOWN} more")
        return "\n".join(lines)


def _entry_name_problem(name: str, wanted: set[str], split: str) -> str | None:
    """Why a zip entry's name is not ``<scene>.txt`` of a scene of the split, or None."""
    shown = repr(name[:100])
    if "/" in name or "\\" in name:
        parts = re.split(r"[/\\]", name)
        why = ("it leaves the zip's root ('..')" if ".." in parts else "absolute path" if not parts[0]
               else "inside a folder")
        return f"{shown} has a path ({why}): files must sit at the root of the zip, named <scene>.txt"
    stem, dot, ext = name.rpartition(".")
    if not dot or ext != "txt":
        return f"extra file {shown}: only <scene>.txt files are allowed"
    if stem not in wanted:
        return f"extra file {shown}: {stem[:100]!r} is not a scene of the {split} split"
    return None


def check_submission(zip_path: Path, raw: Path, split: str = "test", splits_dir: Path | None = None,
                     label_set: str = "segment200") -> CheckReport:
    """Check a submission zip against the split list and the raw meshes; lists every problem.

    A file that is not a zip, entries with paths or unknown names, duplicates, oversized or
    unreadable entries, wrong line counts, lines that are no integer and ids outside the label
    set are all problems in the report. Errors in the split lists or the release raise.
    """
    zip_path = Path(zip_path)
    report = CheckReport(zip_path, split)
    expected = split_scenes(Path(raw), split, splits_dir)
    report.expected = len(expected)
    table = class_table(label_set)
    valid_ids = table.ids
    try:
        zf = zipfile.ZipFile(zip_path)
        infos = zf.infolist()
    except _ZIP_ERRORS as exc:
        report.problems.append(f"cannot open {zip_path} as a zip file ({type(exc).__name__}: {exc})"[:400])
        return report
    with zf:
        wanted = set(expected)
        found: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = info.filename
            if info.is_dir():
                report.problems.append(f"folder entry {name[:100]!r}: files must sit at the root of the zip")
                continue
            problem = _entry_name_problem(name, wanted, split)
            if problem is not None:
                report.problems.append(problem)
                continue
            stem = name[:-4]
            if stem in found:
                report.problems.append(f"{name!r} appears more than once")
                continue
            found[stem] = info
        missing = [s for s in expected if s not in found]
        for s in missing:
            report.problems.append(f"missing scene {s} (no {s}.txt)")
        for scene in expected:
            if scene not in found:
                continue
            info = found[scene]
            entry = info.filename
            mesh = mesh_path(Path(raw), scene, split)
            try:
                n = ply_vertex_count(mesh)
            except (OSError, RawDataError) as exc:
                report.problems.append(f"{scene}: cannot read the vertex count of {mesh} ({exc})")
                continue
            try:
                text = read_entry(zf, info, id_limit(n, label_set)).decode("ascii")
            except UnicodeDecodeError as exc:
                report.problems.append(f"{entry}: not ASCII text (byte {exc.start}); one label id per line")
                continue
            except SubmissionError as exc:
                report.problems.append(str(exc))
                continue
            lines, ids, bad = integer_lines(text)
            before = len(report.problems)
            if len(lines) != n:
                report.problems.append(f"{entry}: {len(lines)} lines but mesh {mesh.name} has {n} vertices")
            if bad:
                report.problems.append(f"{entry}: {len(bad)} line(s) hold no integer, e.g. {_examples(lines, bad)} "
                                       "(one label id per line, no blank lines)")
            invalid = ~np.isin(ids, valid_ids)
            invalid[bad] = False
            if invalid.any():
                where = np.flatnonzero(invalid)
                report.problems.append(f"{entry}: {where.size} invalid label id(s), e.g. {_examples(lines, where)} "
                                       f"(valid: the {len(valid_ids)} benchmark ids, e.g. {valid_ids[0]} = "
                                       f"{table.names[0]})")
            if len(report.problems) == before:
                report.scenes_ok += 1
                report.vertices += n
    return report


def write_submission(zip_path: Path, files: Mapping[str, Path], raw: Path, split: str,
                     splits_dir: Path | None = None, label_set: str = "segment200") -> CheckReport:
    """Zip ``{scene: txt file}`` at the root of ``zip_path`` and check it before it appears.

    The zip is built under a temporary name and renamed only if the checker passes, so an
    invalid submission never replaces (or becomes) ``zip_path``; raises SubmissionError then.
    """
    zip_path = Path(zip_path)
    with atomic_path(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for scene in sorted(files):
                zf.write(files[scene], arcname=f"{scene}.txt")
        report = check_submission(tmp, raw, split, splits_dir, label_set)
        report.path = zip_path
        if not report.ok:
            raise SubmissionError(report.format() + f"\n{zip_path} was not written")
    return report


def metrics_summary(matrix: np.ndarray, table: ClassTable, num_scenes: int, num_vertices: int) -> dict:
    """The metrics record shared by ``pcseg.test`` and ``pcseg.submit eval`` (same keys, same code).

    ``num_vertices`` counts every predicted mesh vertex; ``num_labelled_vertices`` those with
    a valid ground-truth class, the ones the metrics are computed over.
    """
    metrics = summarize(matrix, table)
    metrics["num_labelled_vertices"] = metrics.pop("num_vertices")
    metrics.update(num_scenes=int(num_scenes), num_vertices=int(num_vertices))
    return metrics


class _PredictionSource:
    """Prediction files from a folder or a zip, by scene name."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.zip: zipfile.ZipFile | None = None
        if self.path.is_dir():
            self.names = {p.stem: p.name for p in self.path.glob("*.txt")}
        elif self.path.is_file():
            try:
                self.zip = zipfile.ZipFile(self.path)
                infos = self.zip.infolist()
            except _ZIP_ERRORS as exc:
                raise SubmissionError(f"{self.path} is neither a folder nor a zip file ({exc})") from None
            self.names = {}
            self.infos: dict[str, zipfile.ZipInfo] = {}
            for info in infos:
                if info.filename.endswith(".txt") and not info.is_dir():
                    stem = Path(info.filename).stem
                    self.names.setdefault(stem, info.filename)
                    self.infos.setdefault(stem, info)
        else:
            raise SubmissionError(f"predictions {self.path} not found (pass a folder of <scene>.txt or a zip)")

    def read(self, scene: str, limit: int) -> str:
        """The scene's text, refused (SubmissionError) past ``limit`` bytes without reading it all."""
        if self.zip is not None:
            data = read_entry(self.zip, self.infos[scene], limit)
        else:
            path = self.path / self.names[scene]
            try:
                with open(path, "rb") as f:
                    data = f.read(limit + 1)
            except OSError as exc:
                raise SubmissionError(f"{path} cannot be read ({exc.strerror or exc})") from None
            if len(data) > limit:
                raise SubmissionError(f"{path}: more than its mesh's vertices can need ({limit} bytes); not read")
        return data.decode("ascii", errors="replace")

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def ground_truth(raw: Path, scene: str, split: str, label_map: LabelMap, label_set: str) -> np.ndarray:
    """Per-vertex class index (-1 = unlabelled) rebuilt from the raw over-segmentation and aggregation."""
    files = SceneFiles(scene, scene_folder(raw, scene, split))
    n = ply_vertex_count(files.mesh)
    seg = read_segments(files.segs, n)
    lab200, lab20, _ = vertex_labels(seg, read_aggregation(files.aggregation), label_map)
    return (lab200 if label_set == "segment200" else lab20).astype(np.int64)


def evaluate_predictions(pred: Path, raw: Path, split: str = "val", splits_dir: Path | None = None,
                         label_map: Path | None = None, label_set: str = "segment200",
                         scenes: Iterable[str] | None = None) -> tuple[dict, ClassTable]:
    """Benchmark metrics of benchmark-format predictions against the raw ground truth.

    Ids outside the benchmark's classes count as misses (as in the official evaluation).
    Raises SubmissionError when a scene is missing or has the wrong number of lines.
    """
    raw = Path(raw)
    table = class_table(label_set)
    names = [check_scene_name(n, f"scene of the {split} split") for n in scenes] if scenes is not None \
        else split_scenes(raw, split, splits_dir)
    lmap = LabelMap.read(Path(label_map) if label_map is not None else raw / "scannetv2-labels.combined.tsv")
    lut = table.id_to_index().astype(np.int64)
    source = _PredictionSource(pred)
    try:
        missing = [s for s in names if s not in source.names]
        if missing:
            raise SubmissionError(f"{pred}: no predictions for {len(missing)} scene(s) of the {split} split: "
                                  + ", ".join(missing))
        conf = ConfusionMatrix(table.num_classes)
        problems, total, invalid = [], 0, 0
        for scene in names:
            gt = ground_truth(raw, scene, split, lmap, label_set)
            try:
                ids = parse_ids(source.read(scene, id_limit(gt.size, label_set)), f"{pred}:{source.names[scene]}")
            except SubmissionError as exc:
                problems.append(str(exc))
                continue
            if ids.size != gt.size:
                problems.append(f"{source.names[scene]}: {ids.size} lines for a mesh of {gt.size} vertices")
                continue
            inside = (ids >= 0) & (ids < lut.size)
            index = np.full(ids.size, -1, dtype=np.int64)
            index[inside] = lut[ids[inside]]
            invalid += int((index < 0).sum())
            conf.update(index, gt)
            total += gt.size
        if problems:
            raise SubmissionError("invalid predictions:\n" + "\n".join(f"  - {p}" for p in problems))
    finally:
        source.close()
    metrics = metrics_summary(conf.matrix, table, num_scenes=len(names), num_vertices=total)
    metrics.update(invalid_predictions=invalid, split=split)
    return metrics, table

