"""Benchmark: one MinkUNet34C training step on two ScanNet-size scenes, and data-loading cost.

Prints JSON: seconds per step (forward + backward + optimizer step) and peak memory for
two ScanNet-size scenes voxelized at 2 cm, and seconds per scene for the full training
transform list on a 120K-vertex scene (one worker). On a GPU it also times batch 12
with AMP. ``python bench/train_step.py [--steps 2] [--preset minkunet34c] [--ceco]``
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


def time_steps(model, head, batch, device, steps: int, amp: torch.dtype | None, ceco_weight: float) -> list[float]:
    opt = torch.optim.SGD(list(model.parameters()) + (list(head.parameters()) if head else []), lr=0.01,
                          momentum=0.9, nesterov=True, weight_decay=1e-4)
    crit = SegLoss(-1)
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
            if head is not None:
                loss = loss + ceco_weight * head(out["feat"], b["segment"])["loss"]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i > 0:
            times.append(time.perf_counter() - t0)
    return times


def build(preset: str, device: torch.device, ceco: bool):
    torch.manual_seed(0)
    model = build_model("spunet", num_classes=200, preset=preset, device=device)
    set_conv_algo(model, device)
    head = None
    if ceco:
        from pcseg.nc.ceco import CenterHead

        head = CenterHead(model.feat_dim, 200).to(device)
    return model, head


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
        variants = [False, True] if args.ceco else [False]
        for ceco in variants:
            model, head = build(args.preset, cpu, ceco)
            t = time_steps(model, head, batch, cpu, args.steps, None, 0.4)
            key = "cpu_step_seconds" + ("_ceco" if ceco else "")
            result[key] = round(float(np.mean(t)), 3)
        result["cpu_peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
        result["cpu_rss_before_model_gb"] = round(rss0 / 2**20, 2)
        if args.ceco:
            result["cpu_ceco_overhead_pct"] = round(100 * (result["cpu_step_seconds_ceco"] / result["cpu_step_seconds"] - 1), 2)

        if torch.cuda.is_available():
            gpu = torch.device("cuda")
            big = voxel_batch(root, 12)
            result["gpu_name"] = torch.cuda.get_device_name()
            result["gpu_voxels_batch12"] = int(len(big["feat"]))
            for ceco in variants:
                model, head = build(args.preset, gpu, ceco)
                torch.cuda.reset_peak_memory_stats()
                t = time_steps(model, head, big, gpu, max(args.steps, 5), torch.float16, 0.4)
                sfx = "_ceco" if ceco else ""
                result["gpu_step_seconds_batch12_amp" + sfx] = round(float(np.mean(t)), 4)
                result["gpu_peak_mem_gb" + sfx] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            if args.ceco:
                result["gpu_ceco_overhead_pct"] = round(
                    100 * (result["gpu_step_seconds_batch12_amp_ceco"] / result["gpu_step_seconds_batch12_amp"] - 1), 2)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
