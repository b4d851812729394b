"""Release writing: a scene's ScanNet v2 files, the label map, split lists, the whole release.

File names, the binary PLY header and the JSON layouts follow the real release, so the
normal conversion path (``data_prep/scannet200.py``) reads the output like real data.
Every file is written atomically; a release is a deterministic function of its seed.
"""
from __future__ import annotations

import json
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from pcseg.utils.atomic import atomic_dir, atomic_write_bytes

from .labels import _LABEL_ROWS, LABEL_MAP_COLUMNS
from .scene import _SPECS, SIZES, SyntheticScene, make_scene


def _ply_bytes(vertices: np.ndarray, colors: np.ndarray, faces: np.ndarray) -> bytes:
    """Binary little-endian PLY with ScanNet's ``vh_clean_2`` header (built with numpy, not plyfile, for speed)."""
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment VCGLIB generated\n"
        f"element vertex {len(vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar alpha\n"
        f"element face {len(faces)}\n"
        "property list uchar int vertex_indices\nend_header\n"
    ).encode("ascii")
    v = np.empty(len(vertices), dtype=[("xyz", "<f4", (3,)), ("rgba", "u1", (4,))])
    v["xyz"] = vertices
    v["rgba"] = colors
    f = np.empty(len(faces), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    f["n"] = 3
    f["idx"] = faces
    return header + v.tobytes() + f.tobytes()


def _meta_text(scene: SyntheticScene, rng: np.random.Generator) -> str:
    """``<scene>.txt``: axisAlignment plus the sensor keys a release scene carries."""
    frames = int(rng.integers(800, 5000))
    a = " ".join(f"{x:.6f}" for x in scene.axis_alignment.ravel())
    ext = "0.999977 0.004401 0.005230 -0.037931 -0.004314 0.999852 -0.016630 -0.003321 -0.005303 0.016607 0.999848 -0.021860 -0 0 -0 1"
    lines = [
        f"axisAlignment = {a}",
        "colorHeight = 968",
        f"colorToDepthExtrinsics = {ext}",
        "colorWidth = 1296",
        "depthHeight = 480",
        "depthWidth = 640",
        "fx_color = 1170.187988",
        "fx_depth = 571.623718",
        "fy_color = 1170.187988",
        "fy_depth = 571.623718",
        "mx_color = 647.750000",
        "mx_depth = 319.500000",
        "my_color = 483.750000",
        "my_depth = 239.500000",
        f"numColorFrames = {frames}",
        f"numDepthFrames = {frames}",
        f"numIMUmeasurements = {int(frames * 2.1)}",
        f"sceneType = {scene.scene_type}",
    ]
    return "\n".join(lines) + "\n"


def write_scene(scene: SyntheticScene, scene_dir: Path, labelled: bool = True) -> None:
    """Write one scene's release files into ``scene_dir`` (test scenes: mesh and .txt only)."""
    d = Path(scene_dir)
    d.mkdir(parents=True, exist_ok=True)
    name = scene.name
    (d / f"{name}_vh_clean_2.ply").write_bytes(_ply_bytes(scene.vertices, scene.colors, scene.faces))
    # the .txt carries a few values that do not matter for labels; derive them from the name
    rng = np.random.default_rng(int.from_bytes(name.encode(), "little") % (2**63))
    (d / f"{name}.txt").write_text(_meta_text(scene, rng))
    if not labelled:
        return
    segs = {
        "params": {
            "kThresh": "0.0001", "segMinVerts": "20", "minPoints": "750", "maxPoints": "30000",
            "thinThresh": "0.05", "flatThresh": "0.001", "minLength": "0.02", "maxLength": "1",
        },
        "sceneId": name,
        "segIndices": scene.seg_indices.tolist(),
    }
    (d / f"{name}_vh_clean_2.0.010000.segs.json").write_text(json.dumps(segs))
    agg = {
        "sceneId": f"scannet.{name}",
        "appId": "Aggregator.v2",
        "segGroups": scene.groups,
        "segmentsFile": f"scannet.{name}_vh_clean_2.0.010000.segs.json",
    }
    (d / f"{name}.aggregation.json").write_text(json.dumps(agg, indent=1))


def scene_name(index: int) -> str:
    return f"scene{index:04d}_00"


def scene_seed(seed: int, index: int) -> int:
    """Seed of scene ``index`` in a release generated with ``seed`` (independent streams per scene)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def split_counts(num_scenes: int) -> tuple[int, int, int]:
    """(train, val, test) sizes: about 70/20/10 %, every split non-empty from 3 scenes on."""
    if num_scenes <= 0:
        return 0, 0, 0
    if num_scenes == 1:
        return 1, 0, 0
    if num_scenes == 2:
        return 1, 1, 0
    n_test = max(1, round(0.1 * num_scenes))
    n_val = max(1, round(0.2 * num_scenes))
    return num_scenes - n_val - n_test, n_val, n_test


def write_label_map(path: Path) -> None:
    """Write ``scannetv2-labels.combined.tsv`` with the release's header and the rows used here."""
    text = "\t".join(LABEL_MAP_COLUMNS) + "\n" + _LABEL_ROWS
    atomic_write_bytes(Path(path), text.encode("utf-8"))


def _write_one(args: tuple[Path, int, int, str, bool]) -> str:
    """Generate and write one scene atomically (temp folder + rename): never half a scene on disk."""
    out, index, seed, size, labelled = args
    name = scene_name(index)
    scene = make_scene(name, scene_seed(seed, index), size=size)
    parent = out / ("scans" if labelled else "scans_test")
    other = out / ("scans_test" if labelled else "scans") / name
    with atomic_dir(parent / name) as tmp:
        write_scene(scene, tmp, labelled=labelled)
    if other.exists():  # a scene that changed split in a re-run
        shutil.rmtree(other, ignore_errors=True)
    return name


def write_release(out: Path, num_scenes: int, seed: int = 0, size: str = "default", workers: int = 1) -> dict[str, list[str]]:
    """Write a whole synthetic release (scenes, label map, split lists) under ``out``.

    Scene ``i`` is ``scene%04d_00`` seeded with ``scene_seed(seed, i)``; the last ~10 % are
    test scenes (no labels, under ``scans_test``), the rest are split train/val at random.
    """
    from tqdm import tqdm

    if size not in _SPECS:
        raise ValueError(f"unknown size {size!r}; expected one of {SIZES}")
    if num_scenes < 0:
        raise ValueError("num_scenes must be >= 0")
    out = Path(out)
    (out / "scans").mkdir(parents=True, exist_ok=True)
    (out / "scans_test").mkdir(parents=True, exist_ok=True)
    write_label_map(out / "scannetv2-labels.combined.tsv")
    n_train, n_val, n_test = split_counts(num_scenes)
    trainval = num_scenes - n_test
    val_idx = set(np.random.default_rng([int(seed), 7]).permutation(trainval)[:n_val].tolist())
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    jobs = []
    for i in range(num_scenes):
        split = "test" if i >= trainval else ("val" if i in val_idx else "train")
        splits[split].append(scene_name(i))
        jobs.append((out, i, int(seed), size, split != "test"))
    with tqdm(total=num_scenes, desc="synthetic scenes", unit="scene") as bar:
        if workers <= 1 or num_scenes <= 1:
            for job in jobs:
                _write_one(job)
                bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for _ in pool.map(_write_one, jobs):
                    bar.update(1)
    for split, names in splits.items():
        atomic_write_bytes(out / f"scannetv2_{split}.txt", "".join(f"{n}\n" for n in names).encode())
    return splits
