"""Benchmark: one MinkUNet34C training step on two ScanNet-size scenes, and data-loading cost.

Prints JSON: seconds per step (forward + backward + optimizer step) and peak memory for
two ScanNet-size scenes voxelized at 2 cm, and seconds per scene for the full training
transform list on a 120K-vertex scene (one worker). On a GPU it also times batch 12
with AMP. ``--ceco`` adds the cost of the CeCo branch as a share of the step.
``python bench/train_step.py [--steps 2] [--preset minkunet34c] [--ceco]``
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pcseg.data.collate import collate  # noqa: E402
from pcseg.data.dataset import SceneCacheDataset  # noqa: E402
from pcseg.data.prep import main as prep_main  # noqa: E402
from pcseg.data.synthetic import write_release  # noqa: E402
from pcseg.data.transforms import build_transforms, default_train_transforms  # noqa: E402
from pcseg.models import build_model, set_conv_algo  # noqa: E402
from pcseg.models.losses import SegLoss  # noqa: E402


def make_caches(tmp: Path, scenes: int) -> Path:
    raw, out = tmp / "raw", tmp / "cache"
    write_release(raw, num_scenes=scenes, seed=1, size="scannet")
    assert prep_main(["--raw", str(raw), "--out", str(out), "--no-progress"]) == 0
    return out


def voxel_batch(root: Path, n: int, grid: float = 0.02) -> dict:
    """n training scenes voxelized at ``grid`` (one point per voxel, no crop, no augmentation)."""
    tf = [{"type": "CenterShift", "apply_z": True}, {"type": "GridSample", "grid_size": grid, "mode": "train"},
          {"type": "NormalizeColor"}, {"type": "ToFeatures", "feat_keys": ["coord", "color", "normal"]}]
    ds = SceneCacheDataset(root, "train", transforms=build_transforms(tf))
    return collate([ds[i % len(ds)] for i in range(n)])


def time_steps(model, batch, device, steps: int, amp: torch.dtype | None) -> list[float]:
    opt = torch.optim.SGD(model.parameters(), lr=0.01,
                          momentum=0.9, nesterov=True, weight_decay=1e-4)
    crit = SegLoss()
    scaler = torch.amp.GradScaler("cuda", enabled=amp is torch.float16)
    b = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    times = []
    for i in range(steps + 1):  # the first step warms up caches and allocators
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            out = model(b["grid_coord"], b["batch"], b["feat"])
            loss = crit(out["logits"], b["segment"])
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i > 0:
            times.append(time.perf_counter() - t0)
    return times


def ceco_overhead(model, batch, device, step_seconds: float, tag: str, reps: int = 5) -> dict:
    """Cost of the CeCo branch (center head forward + backward on the step's features).

    Timed in isolation on the real last-layer features, because the difference of two
    whole-step timings is smaller than their run-to-run noise on a shared CPU.
    """
    from pcseg.nc.ceco import CenterHead

    b = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    with torch.no_grad():
        feat = model(b["grid_coord"], b["batch"], b["feat"])["feat"].float()
    head = CenterHead(feat.shape[1], 200).to(device)
    feat.requires_grad_(True)
    times = []
    for i in range(reps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = head(feat, b["segment"])
        out["loss"].backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i > 0:
            times.append(time.perf_counter() - t0)
    cost = float(np.median(times))
    return {f"{tag}_ceco_branch_seconds": round(cost, 4),
            f"{tag}_ceco_overhead_pct_of_step": round(100 * cost / step_seconds, 2)}


def build(preset: str, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("spunet", num_classes=200, preset=preset, device=device)
    set_conv_algo(model, device)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--preset", default="minkunet34c")
    ap.add_argument("--ceco", action="store_true", help="also time the step with the CeCo center head")
    ap.add_argument("--transform-scenes", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 16)))
    result: dict = {"preset": args.preset, "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_caches(Path(tmp), 4)
        # data loading: the full training transform list on a 120K-vertex scene
        ds = SceneCacheDataset(root, "train", transforms=build_transforms(default_train_transforms(0.02, 100000)))
        raw_ds = SceneCacheDataset(root, "train")
        ds[0]
        t0 = time.perf_counter()
        for i in range(args.transform_scenes):
            ds[i % len(ds)]
        per_scene = (time.perf_counter() - t0) / args.transform_scenes
        result["transform_seconds_per_scene"] = round(per_scene, 4)
        result["transform_scenes_per_second_per_worker"] = round(1 / per_scene, 2)
        result["vertices_per_scene"] = int(np.mean([len(raw_ds[i]["coord"]) for i in range(len(raw_ds))]))

        cpu = torch.device("cpu")
        batch = voxel_batch(root, 2)
        result["cpu_voxels_two_scenes"] = int(len(batch["feat"]))
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        model = build(args.preset, cpu)
        result["cpu_step_seconds"] = round(float(np.median(time_steps(model, batch, cpu, args.steps, None))), 3)
        if args.ceco:
            result.update(ceco_overhead(model, batch, cpu, result["cpu_step_seconds"], "cpu"))
        result["cpu_peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
        result["cpu_rss_before_model_gb"] = round(rss0 / 2**20, 2)

        if torch.cuda.is_available():
            gpu = torch.device("cuda")
            big = voxel_batch(root, 12)
            result["gpu_name"] = torch.cuda.get_device_name()
            result["gpu_voxels_batch12"] = int(len(big["feat"]))
            model = build(args.preset, gpu)
            torch.cuda.reset_peak_memory_stats()
            t = time_steps(model, big, gpu, max(args.steps, 5), torch.float16)
            result["gpu_step_seconds_batch12_amp"] = round(float(np.median(t)), 4)
            result["gpu_peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            if args.ceco:
                result.update(ceco_overhead(model, big, gpu, result["gpu_step_seconds_batch12_amp"], "gpu"))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
