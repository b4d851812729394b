"""Raw ScanNet release -> per-scene ``.npy`` caches (the layout Pointcept also reads).

One scene is one unit of work: it is converted into a hidden temporary folder and
renamed into place only when complete (and on disk: :func:`pcseg.utils.atomic.atomic_dir`),
so an interrupted or failed run never leaves a partial scene, and a bad scene never stops
the others. Scene names from the split lists are checked before anything is written
(:mod:`pcseg.data.split_lists`), and every scene's arrays are checked with the rules the
dataset applies when reading them (:mod:`pcseg.data.cache_check`) before they are written.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pcseg.data.cache_check import SceneDataError, array_problems, check_scene_headers, load_array
from pcseg.data.classes import scannet20, scannet200
from pcseg.data.scannet_raw import (
    LabelMap,
    RawDataError,
    SceneFiles,
    read_aggregation,
    read_axis_alignment,
    read_mesh,
    read_segments,
    vertex_labels,
    vertex_normals,
)
from pcseg.data.scene_names import is_scene_name
from pcseg.data.split_lists import SPLITS, check_split_scenes, read_split_lists
from pcseg.utils.atomic import atomic_dir, atomic_write_text, replace_durably

__all__ = ["PrepPlan", "SPLITS", "SceneResult", "SceneTask", "convert_scene", "main", "plan_tasks",
           "read_split_lists", "run"]

FORMAT_VERSION = 1
LABELLED_FILES = ("coord.npy", "color.npy", "normal.npy", "segment200.npy", "segment20.npy", "instance.npy")
UNLABELLED_FILES = LABELLED_FILES[:3]


@dataclass
class SceneTask:
    """Everything a worker needs to convert one scene (picklable)."""

    name: str
    split: str
    files: SceneFiles
    out_dir: Path
    label_map_path: Path | None
    align: bool
    force: bool


@dataclass
class SceneResult:
    name: str
    split: str
    status: str  # converted | skipped | failed
    num_vertices: int = 0
    hist200: np.ndarray | None = None
    hist20: np.ndarray | None = None
    error: str = ""
    seconds: float = 0.0


@dataclass
class PrepPlan:
    """The resolved inputs of a conversion run."""

    raw: Path
    out: Path
    label_map: Path
    splits_dir: Path
    align: bool
    scenes: dict[str, list[str]] = field(default_factory=dict)


def _hist(labels: np.ndarray, k: int) -> np.ndarray:
    valid = labels[(labels >= 0) & (labels < k)]
    return np.bincount(valid.astype(np.int64), minlength=k)


def _is_fresh(task: SceneTask, dest: Path, labelled: bool) -> bool:
    """Complete output that is newer than every input of the scene."""
    needed = LABELLED_FILES if labelled else UNLABELLED_FILES
    try:
        out_time = min((dest / f).stat().st_mtime for f in needed)
        inputs = [task.files.mesh, task.files.meta]
        if labelled:
            inputs += [task.files.segs, task.files.aggregation]
            if task.label_map_path is not None:
                inputs.append(task.label_map_path)
        in_time = max(p.stat().st_mtime for p in inputs)
    except FileNotFoundError:
        return False
    return out_time >= in_time


def convert_scene(task: SceneTask) -> SceneResult:
    """Convert one scene; never raises for bad input (the result says what failed)."""
    t0 = time.perf_counter()
    labelled = task.split != "test"
    dest = task.out_dir / task.split / task.name
    try:
        if not task.files.folder.is_dir():
            raise RawDataError(f"scene folder {task.files.folder} not found")
        if not task.force and dest.is_dir() and _is_fresh(task, dest, labelled):
            try:
                res = _skipped(task, dest, labelled)
                res.seconds = time.perf_counter() - t0
                return res
            except SceneDataError:
                pass  # a damaged cache is rebuilt, not counted
        arrays = _scene_arrays(task, labelled)
        _write_scene_atomic(dest, arrays)
        res = SceneResult(task.name, task.split, "converted", num_vertices=len(arrays["coord"]))
        if labelled:
            res.hist200 = _hist(arrays["segment200"], 200)
            res.hist20 = _hist(arrays["segment20"], 20)
    except RawDataError as exc:
        res = SceneResult(task.name, task.split, "failed", error=str(exc))
    except Exception as exc:  # an unexpected failure of one scene must not stop the others
        res = SceneResult(task.name, task.split, "failed", error=f"{type(exc).__name__}: {exc}")
    res.seconds = time.perf_counter() - t0
    return res


def _skipped(task: SceneTask, dest: Path, labelled: bool) -> SceneResult:
    """The result of an up-to-date scene, read from its (checked) cache."""
    keys = [f[: -len(".npy")] for f in (LABELLED_FILES if labelled else UNLABELLED_FILES)]
    n = check_scene_headers(dest, keys)
    res = SceneResult(task.name, task.split, "skipped", num_vertices=n)
    if labelled:
        res.hist200 = _hist(load_array(dest, "segment200", n), 200)
        res.hist20 = _hist(load_array(dest, "segment20", n), 20)
    return res


def _scene_arrays(task: SceneTask, labelled: bool) -> dict[str, np.ndarray]:
    coord, color, faces = read_mesh(task.files.mesh)
    if len(faces) == 0:
        # Normals come from the faces: without any, every normal would be a silent zero feature.
        raise RawDataError(f"mesh {task.files.mesh} has no faces, so it has no surface normals "
                           "(a ScanNet scene is a triangle mesh)")
    normal = vertex_normals(coord, faces)
    if task.align:
        m = read_axis_alignment(task.files.meta)
        coord = (coord.astype(np.float64) @ m[:3, :3].T + m[:3, 3]).astype(np.float32)
        normal = (normal @ m[:3, :3].T.astype(np.float32)).astype(np.float32)
    elif not task.files.meta.is_file():
        raise RawDataError(f"missing file {task.files.meta}")
    arrays = {"coord": coord, "color": color, "normal": normal}
    if labelled:
        assert task.label_map_path is not None
        seg = read_segments(task.files.segs, len(coord))
        groups = read_aggregation(task.files.aggregation)
        s200, s20, inst = vertex_labels(seg, groups, _label_map(task.label_map_path))
        arrays.update(segment200=s200, segment20=s20, instance=inst)
    problems = array_problems(arrays)
    if problems:  # what the dataset would refuse is never written
        raise RawDataError(f"scene {task.name}: converted arrays are malformed ({'; '.join(problems)}); "
                           f"check {task.files.mesh} and {task.files.meta}")
    return arrays


_LABEL_MAPS: dict[Path, LabelMap] = {}


def _label_map(path: Path) -> LabelMap:
    """Per-process cache: the TSV is parsed once per worker, not once per scene."""
    if path not in _LABEL_MAPS:
        _LABEL_MAPS[path] = LabelMap.read(path)
    return _LABEL_MAPS[path]


def _write_scene_atomic(dest: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write into ``.<scene>.tmp-<pid>``, fsync and rename: the scene folder appears complete or not at all."""
    with atomic_dir(dest) as tmp:
        for key, arr in arrays.items():
            np.save(tmp / f"{key}.npy", np.ascontiguousarray(arr))


_LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?P<tag>tmp|old)-\d+")


def _clean_leftovers(out: Path) -> None:
    """Remove what an interrupted run left in the split folders (see ``atomic_dir``).

    ``.<scene>.tmp-<pid>`` is a half-written scene. ``.<scene>.old-<pid>`` is the previous copy
    moved aside while its replacement was renamed in: removed when the scene folder exists,
    but put back when it does not (the run stopped between the two renames, so it is the only
    complete copy; the freshness check then decides whether to rebuild it).
    """
    for split in SPLITS:
        folder = out / split
        if not folder.is_dir():
            continue
        found = [(p, m) for p in folder.iterdir() if (m := _LEFTOVER.fullmatch(p.name)) and p.is_dir()]
        found.sort(key=lambda pm: pm[0].stat().st_mtime, reverse=True)  # the newest old copy is put back
        for path, m in found:
            dest = folder / m["name"]
            if m["tag"] == "old" and is_scene_name(m["name"]) and not dest.exists():
                replace_durably(path, dest)
            else:
                shutil.rmtree(path, ignore_errors=True)


def plan_tasks(plan: PrepPlan, force: bool) -> list[SceneTask]:
    """One task per listed scene; names are checked first, so none can become a path outside ``plan.out``."""
    check_split_scenes(plan.scenes)
    tasks = []
    for split in SPLITS:
        sub = "scans_test" if split == "test" else "scans"
        for name in plan.scenes[split]:
            folder = plan.raw / sub / name
            if split == "test" and not folder.is_dir() and (plan.raw / "scans" / name).is_dir():
                folder = plan.raw / "scans" / name
            tasks.append(
                SceneTask(name, split, SceneFiles(name, folder), plan.out,
                          plan.label_map if split != "test" else None, plan.align, force)
            )
    return tasks


def run(plan: PrepPlan, workers: int = 1, force: bool = False, progress: bool = True) -> dict:
    """Convert every listed scene and write ``OUT/manifest.json``; returns the manifest."""
    check_split_scenes(plan.scenes)  # before anything is written
    plan.out.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(plan.out)
    manifest_path = plan.out / "manifest.json"
    inputs = {"raw": str(plan.raw.resolve()), "label_map": str(plan.label_map.resolve()),
              "splits_dir": str(plan.splits_dir.resolve()), "align": plan.align}
    if not force and manifest_path.is_file():
        try:
            old = json.loads(manifest_path.read_text())
            if old.get("inputs", {}).get("align") != plan.align or old.get("format_version") != FORMAT_VERSION:
                force = True  # caches made with other options are stale as a whole
        except ValueError:
            pass
    tasks = plan_tasks(plan, force)
    results: list[SceneResult] = []
    bar = tqdm(total=len(tasks), desc="scenes", unit="scene", disable=not progress, dynamic_ncols=True)
    if workers <= 1:
        iterator = map(convert_scene, tasks)
        pool = None
    else:
        pool = mp.get_context("spawn" if sys.platform == "darwin" else "fork").Pool(workers, maxtasksperchild=50)
        iterator = pool.imap_unordered(convert_scene, tasks, chunksize=1)
    try:
        for res in iterator:
            results.append(res)
            if res.status == "failed":
                tqdm.write(f"FAILED {res.split}/{res.name}: {res.error}", file=sys.stderr)
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    manifest = build_manifest(inputs, plan.scenes, results)
    atomic_write_text(manifest_path, json.dumps(manifest, indent=1))
    return manifest


def build_manifest(inputs: dict, scenes: dict[str, list[str]], results: list[SceneResult]) -> dict:
    by_name = {(r.split, r.name): r for r in results}
    t200, t20 = scannet200(), scannet20()
    h200 = np.zeros(200, dtype=np.int64)
    h20 = np.zeros(20, dtype=np.int64)
    s200 = np.zeros(200, dtype=np.int64)  # training scenes holding each class (CeCo's scene prior)
    s20 = np.zeros(20, dtype=np.int64)
    splits = {}
    for split in SPLITS:
        listed = dict.fromkeys(scenes[split])  # a scene is counted once, however often it is listed
        ok = [by_name[(split, s)] for s in listed if by_name.get((split, s)) and by_name[(split, s)].status != "failed"]
        splits[split] = {
            "scenes": {r.name: r.num_vertices for r in ok},
            "num_scenes": len(ok),
            "num_vertices": int(sum(r.num_vertices for r in ok)),
        }
        if split == "train":
            for r in ok:
                h200 += r.hist200
                h20 += r.hist20
                s200 += r.hist200 > 0
                s20 += r.hist20 > 0
    counts = {s: sum(1 for r in results if r.status == s) for s in ("converted", "skipped", "failed")}
    return {
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "inputs": inputs,
        "splits": splits,
        "class_histogram": {
            "split": "train",
            "segment200": {"names": list(t200.names), "counts": h200.tolist(), "scenes": s200.tolist()},
            "segment20": {"names": list(t20.names), "counts": h20.tolist(), "scenes": s20.tolist()},
        },
        "counts": counts,
        "failures": [{"scene": r.name, "split": r.split, "reason": r.error} for r in results if r.status == "failed"],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python data_prep/scannet200.py",
        description="Convert the raw ScanNet release into pcseg/Pointcept-layout caches (ScanNet200 and ScanNet20 labels).",
    )
    p.add_argument("--raw", type=Path, required=True, help="release folder with scans/, scans_test/")
    p.add_argument("--out", type=Path, required=True, help="output folder for <split>/<scene>/*.npy and manifest.json")
    p.add_argument("--splits", type=Path, default=None, help="folder with scannetv2_{train,val,test}.txt (default: RAW)")
    p.add_argument("--label-map", type=Path, default=None, help="scannetv2-labels.combined.tsv (default: RAW/...)")
    p.add_argument("--workers", type=int, default=1, help="scenes converted in parallel")
    p.add_argument("--force", action="store_true", help="redo scenes whose caches are up to date")
    p.add_argument("--align", action="store_true", help="apply each scene's axisAlignment to coordinates and normals")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not args.raw.is_dir():
            raise RawDataError(f"raw folder {args.raw} not found (expected the ScanNet release with scans/)")
        splits_dir, scenes = read_split_lists(args.raw, args.splits)
        label_map = args.label_map or args.raw / "scannetv2-labels.combined.tsv"
        LabelMap.read(label_map)  # fail early, once, on a bad label map
    except RawDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    plan = PrepPlan(args.raw, args.out, label_map, splits_dir, args.align, scenes)
    t0 = time.perf_counter()
    manifest = run(plan, workers=max(1, args.workers), force=args.force, progress=not args.no_progress)
    c = manifest["counts"]
    summary = (f"{c['converted']} converted, {c['skipped']} up to date, {c['failed']} failed "
               f"in {time.perf_counter() - t0:.1f} s -> {args.out / 'manifest.json'}")
    if c["failed"]:
        print(f"data_prep: {summary}; failures:", file=sys.stderr)
        for f in manifest["failures"]:
            print(f"  {f['split']}/{f['scene']}: {f['reason']}", file=sys.stderr)
        return 1
    print(f"data_prep: {summary}")
    return 0
