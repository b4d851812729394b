"""Benchmark: whole-scene inference speed and memory on ScanNet-size scenes.

Prints JSON: vertices per second without TTA and with rot4 TTA for minkunet14a ("small")
and minkunet34c (random weights: speed does not depend on them), and the peak memory of a
whole-scene pass versus a pass split into fragments by a small voxel budget. Memory is
measured in fresh child processes (peak RSS only ever grows within a process); on a GPU it
is ``torch.cuda.max_memory_allocated``. ``--model ptv3`` measures the PTv3 ``scannet200``
preset instead (input color+normal, 6 channels).

    python bench/inference.py [--model spunet|ptv3] [--quick] [--memory-only] [--scenes 2] [--threads N]
                              [--device auto|cpu|cuda]

Scenes come from ``pcseg.data.synthetic.make_scene(size="scannet")`` (~120K vertices).
Default run: about 2-3 minutes on 2 CPU cores; ``--quick`` about 1 minute (``--model ptv3``:
about 2 minutes and 70 s).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

# Backbone -> {label: preset}; the first entry is the one --quick measures memory for.
MODELS = {"spunet": {"small": "minkunet14a", "large": "minkunet34c"},
          "ptv3": {"scannet200": "scannet200"}}
FEAT_KEYS = {"spunet": ("coord", "color", "normal"), "ptv3": ("color", "normal")}
GRID = 0.02
FRAGMENT_BUDGET = 50_000  # voxels: about half a ScanNet-size scene at 2 cm, so fragments are forced


def make_data(seed: int) -> dict[str, np.ndarray]:
    """A ScanNet-size synthetic scene as cache arrays (mesh order), without touching the disk."""
    from pcseg.data.scannet_raw import vertex_normals
    from pcseg.data.synthetic import make_scene

    s = make_scene(f"scene{seed:04d}_00", seed, size="scannet")
    return {"coord": s.vertices.astype(np.float32), "color": s.colors[:, :3].astype(np.float32),
            "normal": vertex_normals(s.vertices, s.faces.astype(np.int64))}


def make_predictor(preset: str, device: torch.device, tta: str, max_voxels: int, name: str = "spunet"):
    from pcseg.data.transforms import build_transforms, default_val_transforms
    from pcseg.eval.inference import Predictor, parse_tta
    from pcseg.models import build_model, set_conv_algo

    torch.manual_seed(0)
    feat_keys = FEAT_KEYS[name]
    model = build_model(name, 200, in_channels=3 * len(feat_keys), preset=preset)
    model = set_conv_algo(model.to(device), device).eval()
    return Predictor(model, build_transforms(default_val_transforms(GRID, feat_keys=feat_keys)), 200, device,
                     parse_tta(tta), max_voxels=max_voxels)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _rss_mb() -> float:
    """Current resident set size (Linux /proc), to separate inference memory from the baseline."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _peak_rss_mb() -> float:
    """Peak resident set size of this process image (Linux VmHWM).

    ``getrusage`` is not used: its ``ru_maxrss`` can carry over the parent's peak into a
    freshly started child, which would floor every child measurement at the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(preset: str, max_voxels: int, device: torch.device, scene: Path, name: str = "spunet") -> dict:
    """One prediction in this (fresh) process; returns its peak memory.

    The scene is loaded from a file written by the parent: generating it here would set the
    peak RSS (the generator needs more memory than inference does).
    """
    with np.load(scene) as z:
        data = {k: z[k] for k in z.files}
    predictor = make_predictor(preset, device, "none", max_voxels, name)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base = _rss_mb()
    t0 = time.perf_counter()
    result = predictor.predict(data)
    _sync(device)
    seconds = time.perf_counter() - t0
    out = {"model": preset, "max_voxels": max_voxels, "fragments": result.fragments[0],
           "voxels": result.voxels[0], "seconds": round(seconds, 2),
           "peak_rss_mb": round(_peak_rss_mb(), 1),
           "rss_before_mb": round(base, 1)}
    if device.type == "cuda":
        out["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def run_child(args: argparse.Namespace, preset: str, max_voxels: int, scene: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", preset, str(max_voxels), str(scene), "--device", args.device,
           "--threads", str(args.threads), "--model", args.model]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="spunet", choices=sorted(MODELS), help="backbone (default spunet)")
    ap.add_argument("--quick", action="store_true", help="1 scene; memory comparison for the small model only")
    ap.add_argument("--scenes", type=int, default=2, help="scenes timed per setting (default 2, --quick 1)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--max-voxels", type=int, default=FRAGMENT_BUDGET, help="budget of the fragment run")
    ap.add_argument("--child", nargs=3, metavar=("PRESET", "MAX_VOXELS", "SCENE"), help=argparse.SUPPRESS)
    ap.add_argument("--memory-only", action="store_true", help="skip the speed measurements")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from pcseg.utils.device import resolve_device

    device = resolve_device(args.device, "--device")
    if args.child:
        print(json.dumps(memory_child(args.child[0], int(args.child[1]), device, Path(args.child[2]), args.model)))
        return
    n_scenes = 1 if args.quick or args.memory_only else args.scenes
    t_start = time.perf_counter()
    scenes = [make_data(seed) for seed in range(n_scenes)]
    n_vertices = sum(len(s["coord"]) for s in scenes)
    models = MODELS[args.model]
    speed: dict[str, dict] = {}
    for label, preset in ({} if args.memory_only else models).items():
        row: dict[str, float | int | str] = {"model": preset}
        for tta in ("none", "rot4"):
            predictor = make_predictor(preset, device, tta, 10**9, args.model)
            if tta == "none":  # warm-up (kernel set-up, allocator) on a slice of a scene
                warm = {k: v[: len(v) // 8] for k, v in scenes[0].items()}
                predictor.predict(warm)
            _sync(device)
            t0 = time.perf_counter()
            for data in scenes:
                predictor.predict(data)
            _sync(device)
            seconds = time.perf_counter() - t0
            row[f"vertices_per_s_{tta}"] = round(n_vertices / seconds)
            row[f"seconds_per_scene_{tta}"] = round(seconds / n_scenes, 2)
        speed[label] = row
    memory = []
    with tempfile.TemporaryDirectory() as tmp:
        scene = Path(tmp) / "scene.npz"
        np.savez(scene, **scenes[0])
        for preset in (list(models.values())[:1] if args.quick else list(models.values())):
            whole = run_child(args, preset, 10**9, scene)
            split = run_child(args, preset, args.max_voxels, scene)
            memory.append({"model": preset, "whole_scene": whole, "fragments": split})
    print(json.dumps({
        "backbone": args.model,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "threads": args.threads,
        "scenes": n_scenes, "mean_vertices": round(n_vertices / n_scenes), "grid_size": GRID,
        "speed": speed, "memory": memory, "total_seconds": round(time.perf_counter() - t_start, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
