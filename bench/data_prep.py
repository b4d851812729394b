"""Benchmark: raw ScanNet-size scenes -> caches.

Prints JSON: seconds per scene with one worker, scenes per second with ``--workers``,
and peak resident memory. ``python bench/data_prep.py [--scenes 8] [--workers 2] [--raw RAW]``
(without ``--raw`` it generates ScanNet-size synthetic scenes: ~120K vertices, ~220K faces).
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pcseg.data import prep  # noqa: E402
from pcseg.data.scannet_raw import LabelMap  # noqa: E402


def _plan(raw: Path, out: Path) -> prep.PrepPlan:
    splits_dir, scenes = prep.read_split_lists(raw, None)
    return prep.PrepPlan(raw, out, raw / "scannetv2-labels.combined.tsv", splits_dir, False, scenes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--raw", type=Path, default=None, help="an existing release folder (default: synthetic)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = args.raw
        if raw is None:
            from pcseg.data.synthetic import write_release

            raw = Path(tmp) / "raw"
            write_release(raw, num_scenes=args.scenes, seed=0, size="scannet")
        plan = _plan(raw, Path(tmp) / "out1")
        LabelMap.read(plan.label_map)
        tasks = [t for t in prep.plan_tasks(plan, force=True) if t.split != "test"]
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        per_scene, verts, faces = [], [], []
        for t in tasks:
            t0 = time.perf_counter()
            res = prep.convert_scene(t)
            per_scene.append(time.perf_counter() - t0)
            assert res.status == "converted", res.error
            verts.append(res.num_vertices)
        from pcseg.data.scannet_raw import read_mesh

        faces = [len(read_mesh(t.files.mesh)[2]) for t in tasks[:2]]
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        plan2 = _plan(raw, Path(tmp) / "out2")
        t0 = time.perf_counter()
        manifest = prep.run(plan2, workers=args.workers, force=True, progress=False)
        wall = time.perf_counter() - t0
        n_all = manifest["counts"]["converted"]
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({
        "labelled_scenes_timed": len(tasks),
        "mean_vertices": int(sum(verts) / len(verts)),
        "faces_first_scenes": faces,
        "seconds_per_scene_1_worker": round(sum(per_scene) / len(per_scene), 4),
        "seconds_per_scene_1_worker_max": round(max(per_scene), 4),
        f"scenes_per_second_{args.workers}_workers": round(n_all / wall, 2),
        "peak_rss_mb_1_worker_process": round(rss1 / 1024, 1),
        "rss_growth_mb_1_worker": round((rss1 - rss0) / 1024, 1),
        "peak_rss_mb_worker_children": round(child / 1024, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
