"""ScanNet200 benchmark submissions: writer, checker and offline evaluator.

A submission is a zip with one ``<scene>.txt`` per scene of the split at its root; line
``i`` holds the benchmark label id (ScanNet200: the raw category id, 1..1191, not the
0..199 training index) of mesh vertex ``i``. The checker reads only the PLY headers of the
raw meshes, so checking a full test split takes seconds; the evaluator scores prediction
files against ground truth rebuilt from the raw annotation with the same code and metrics
as ``pcseg.test``, so the two numbers can be compared directly.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from pcseg.data.classes import ClassTable
from pcseg.data.classes import table as class_table
from pcseg.data.prep import read_split_lists
from pcseg.data.scannet_raw import LabelMap, RawDataError, SceneFiles, read_aggregation, read_segments, vertex_labels
from pcseg.eval.metrics import ConfusionMatrix, summarize
from pcseg.utils.atomic import atomic_path

# The raw split lists name "val"; the caches may use other folder names for the same scenes.
OFFICIAL_SPLITS = ("train", "val", "test")


class SubmissionError(Exception):
    """A submission or prediction set is invalid; the message lists what is wrong."""


def scene_folder(raw: Path, name: str, split: str) -> Path:
    """Where a scene of ``split`` lives in the release (test scenes under ``scans_test``)."""
    first, second = ("scans_test", "scans") if split == "test" else ("scans", "scans_test")
    folder = raw / first / name
    if not folder.is_dir() and (raw / second / name).is_dir():
        return raw / second / name
    return folder


def mesh_path(raw: Path, name: str, split: str) -> Path:
    return SceneFiles(name, scene_folder(raw, name, split)).mesh


def ply_vertex_count(path: Path) -> int:
    """Vertex count from a PLY header alone (no vertex data is read)."""
    with open(path, "rb") as f:
        if f.readline().strip() != b"ply":
            raise RawDataError(f"{path} is not a PLY file (no 'ply' magic line)")
        for _ in range(10_000):
            line = f.readline()
            if not line:
                break
            words = line.split()
            if words[:2] == [b"element", b"vertex"] and len(words) == 3:
                try:
                    return int(words[2])
                except ValueError:
                    break
            if words[:1] == [b"end_header"]:
                break
    raise RawDataError(f"{path}: no 'element vertex N' line in the PLY header")


def split_scenes(raw: Path, split: str, splits_dir: Path | None = None) -> list[str]:
    """The official scene list of ``split`` (from ``splits_dir`` or the release folder)."""
    if split not in OFFICIAL_SPLITS:
        raise SubmissionError(f"unknown split {split!r}; expected one of {OFFICIAL_SPLITS}")
    _, scenes = read_split_lists(Path(raw), splits_dir)
    return scenes[split]


def format_ids(ids: np.ndarray) -> str:
    """One id per line, newline-terminated (the benchmark's text format)."""
    return "\n".join(map(str, np.asarray(ids, dtype=np.int64).tolist())) + "\n"


def parse_ids(text: str, where: str) -> np.ndarray:
    """Integers, one per line; raises with the first offending line numbers."""
    lines = text.splitlines()
    try:
        return np.array([int(s) for s in lines], dtype=np.int64)
    except ValueError:
        bad = []
        for i, s in enumerate(lines, start=1):
            try:
                int(s)
            except ValueError:
                bad.append(f"line {i}: {s[:20]!r}")
                if len(bad) >= 3:
                    break
        raise SubmissionError(f"{where}: not one integer per line ({'; '.join(bad)})") from None


@dataclass
class CheckReport:
    """Outcome of :func:`check_submission`; ``problems`` is empty for a valid submission."""

    path: Path
    split: str
    expected: int = 0
    scenes_ok: int = 0
    vertices: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        if self.ok:
            return (f"OK: {self.path} is a valid {self.split} submission: {self.scenes_ok} scenes, "
                    f"{self.vertices} vertices")
        lines = [f"INVALID: {self.path} ({self.split} split, {self.expected} scenes expected): "
                 f"{len(self.problems)} problem(s)"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def check_submission(zip_path: Path, raw: Path, split: str = "test", splits_dir: Path | None = None,
                     label_set: str = "segment200") -> CheckReport:
    """Check a submission zip against the split list and the raw meshes; lists every problem."""
    zip_path = Path(zip_path)
    report = CheckReport(zip_path, split)
    expected = split_scenes(Path(raw), split, splits_dir)
    report.expected = len(expected)
    valid_ids = class_table(label_set).ids
    try:
        zf = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as exc:
        report.problems.append(f"cannot open {zip_path} as a zip file ({exc})")
        return report
    with zf:
        wanted = set(expected)
        found: dict[str, str] = {}
        for info in zf.infolist():
            name = info.filename
            if info.is_dir():
                report.problems.append(f"folder entry '{name}': files must sit at the root of the zip")
                continue
            if "/" in name or "\\" in name:
                report.problems.append(f"'{name}' is inside a folder: files must sit at the root of the zip")
                continue
            stem, dot, ext = name.rpartition(".")
            if not dot or ext != "txt":
                report.problems.append(f"extra file '{name}': only <scene>.txt files are allowed")
                continue
            if stem not in wanted:
                report.problems.append(f"extra file '{name}': {stem} is not a scene of the {split} split")
                continue
            if stem in found:
                report.problems.append(f"'{name}' appears more than once")
                continue
            found[stem] = name
        missing = [s for s in expected if s not in found]
        for s in missing:
            report.problems.append(f"missing scene {s} (no {s}.txt)")
        for scene in expected:
            if scene not in found:
                continue
            ok = True
            mesh = mesh_path(Path(raw), scene, split)
            try:
                n = ply_vertex_count(mesh)
            except (OSError, RawDataError) as exc:
                report.problems.append(f"{scene}: cannot read the vertex count of {mesh} ({exc})")
                continue
            try:
                ids = parse_ids(zf.read(found[scene]).decode("ascii"), found[scene])
            except UnicodeDecodeError:
                report.problems.append(f"{found[scene]}: not ASCII text")
                continue
            except SubmissionError as exc:
                report.problems.append(str(exc))
                continue
            if ids.size != n:
                report.problems.append(f"{found[scene]}: {ids.size} lines but mesh {mesh.name} has {n} vertices")
                ok = False
            bad = ~np.isin(ids, valid_ids)
            if bad.any():
                where = np.flatnonzero(bad)[:3]
                examples = ", ".join(f"line {i + 1}: {ids[i]}" for i in where)
                report.problems.append(f"{found[scene]}: {int(bad.sum())} invalid label id(s), e.g. {examples} "
                                       f"(valid: the {len(valid_ids)} benchmark ids, e.g. {valid_ids[0]} = "
                                       f"{class_table(label_set).names[0]})")
                ok = False
            if ok:
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
            except zipfile.BadZipFile as exc:
                raise SubmissionError(f"{self.path} is neither a folder nor a zip file ({exc})") from None
            self.names = {}
            for n in self.zip.namelist():
                if n.endswith(".txt"):
                    self.names.setdefault(Path(n).stem, n)
        else:
            raise SubmissionError(f"predictions {self.path} not found (pass a folder of <scene>.txt or a zip)")

    def read(self, scene: str) -> str:
        name = self.names[scene]
        data = self.zip.read(name) if self.zip is not None else (self.path / name).read_bytes()
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
    names = list(scenes) if scenes is not None else split_scenes(raw, split, splits_dir)
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
                ids = parse_ids(source.read(scene), f"{pred}:{source.names[scene]}")
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

