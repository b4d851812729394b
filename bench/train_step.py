"""Benchmark: one training step on two ScanNet-size scenes, and data-loading cost.

Prints JSON: seconds per step (forward + backward + optimizer step) and peak memory for
two ScanNet-size scenes voxelized at 2 cm, and seconds per scene for the full training
transform list on a 120K-vertex scene (one worker). On a GPU it also times batch 12
with AMP. ``--ceco`` adds the cost of the CeCo branch as a share of the step.

``--model spunet`` (default): MinkUNet34C, input coord+color+normal (9 channels), SGD
(lr 0.01, Nesterov momentum 0.9, wd 1e-4).
``--model ptv3``: PTv3 ``scannet200`` preset, input color+normal (6 channels), AdamW
(lr 0.006, wd 0.05, transformer-block parameters at 0.1x, as configs/scannet200_ptv3.yaml).
``--model ptv3m2``: the Sonata fine-tuning network (``sonata`` preset: PT-v3m2 encoder with a
fresh decoder), input coord+color+normal, AdamW as configs/scannet200_sonata_ft.yaml.
``--model ptv3m3``: the Utonia one (``utonia`` preset, rotary encoding), coordinates halved
before a 1 cm grid as configs/scannet200_utonia_ft.yaml.
All use the cross-entropy loss only. ``--scenes N`` changes the CPU batch (default 2),
``--point-max N`` keeps each scene's N voxels nearest its centre.

``python bench/train_step.py [--model spunet|ptv3|ptv3m2|ptv3m3] [--steps 2] [--scenes 2] [--point-max N]
[--preset NAME] [--ceco]``
"""
from __future__ import annotations

import argparse
import contextlib
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
from pcseg.engine.optim import param_groups  # noqa: E402
from pcseg.models import build_model, set_conv_algo  # noqa: E402
from pcseg.models.losses import SegLoss  # noqa: E402


def make_caches(tmp: Path, scenes: int) -> Path:
    raw, out = tmp / "raw", tmp / "cache"
    write_release(raw, num_scenes=scenes, seed=1, size="scannet")
    with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the JSON result
        assert prep_main(["--raw", str(raw), "--out", str(out), "--no-progress"]) == 0
    return out


# Per model: input features, default preset, optimizer settings, voxel grid and coordinate scale.
MODELS = {
    "spunet": {"feat_keys": ("coord", "color", "normal"), "in_channels": 9, "preset": "minkunet34c",
               "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4}},
    "ptv3": {"feat_keys": ("color", "normal"), "in_channels": 6, "preset": "scannet200",
             "optim": {"name": "adamw", "lr": 0.006, "weight_decay": 0.05, "block_lr_scale": 0.1}},
    "ptv3m2": {"feat_keys": ("coord", "color", "normal"), "in_channels": 9, "preset": "sonata",
               "optim": {"name": "adamw", "lr": 0.002, "weight_decay": 0.02, "block_lr_scale": 0.1}},
    "ptv3m3": {"feat_keys": ("coord", "color", "normal"), "in_channels": 9, "preset": "utonia", "grid": 0.01,
               "scale": 0.5, "optim": {"name": "adamw", "lr": 0.002, "weight_decay": 0.05, "block_lr_scale": 0.02}},
}


def voxel_batch(root: Path, n: int, grid: float = 0.02,
                feat_keys: tuple[str, ...] = ("coord", "color", "normal"), point_max: int | None = None,
                scale: float = 1.0) -> dict:
    """n training scenes voxelized at ``grid`` (one point per voxel, no augmentation) after scaling
    the coordinates by ``scale``; no crop unless ``point_max`` is given (then the ``point_max``
    voxels nearest each scene's centre)."""
    tf = [{"type": "RandomScale", "scale": [scale, scale]}] if scale != 1.0 else []
    tf += [{"type": "CenterShift", "apply_z": True}, {"type": "GridSample", "grid_size": grid, "mode": "train"}]
    if point_max:
        tf.append({"type": "SphereCrop", "point_max": point_max, "mode": "center"})
    tf += [{"type": "NormalizeColor"}, {"type": "ToFeatures", "feat_keys": list(feat_keys)}]
    ds = SceneCacheDataset(root, "train", transforms=build_transforms(tf))
    return collate([ds[i % len(ds)] for i in range(n)])


def make_optimizer(model: torch.nn.Module, name: str = "spunet") -> torch.optim.Optimizer:
    """The model's optimizer; for PTv3 the parameters of every transformer block get 0.1x lr."""
    o = MODELS[name]["optim"]
    if o["name"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=o["lr"], momentum=o["momentum"], nesterov=True,
                               weight_decay=o["weight_decay"])
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"optim": {"lr": o["lr"], "param_groups": [
        {"keyword": "block", "lr_scale": o["block_lr_scale"]}]}})
    groups = param_groups(cfg, model.named_parameters())
    return torch.optim.AdamW([{k: v for k, v in g.items() if k != "keyword"} for g in groups],
                             lr=o["lr"], weight_decay=o["weight_decay"])


def time_steps(model, batch, device, steps: int, amp: torch.dtype | None, name: str = "spunet") -> list[float]:
    opt = make_optimizer(model, name)
    crit = SegLoss()
    scaler = torch.amp.GradScaler("cuda", enabled=amp is torch.float16)
    b = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    times = []
    for i in range(steps + 1):  # the first step warms up caches and allocators
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            out = model(b["grid_coord"], b["batch"], b["feat"], b.get("coord"))
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
        feat = model(b["grid_coord"], b["batch"], b["feat"], b.get("coord"))["feat"].float()
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


def build(preset: str, device: torch.device, name: str = "spunet") -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(name, num_classes=200, in_channels=MODELS[name]["in_channels"],
                        preset=preset, device=device)
    set_conv_algo(model, device)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="spunet", choices=sorted(MODELS))
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--scenes", type=int, default=2, help="scenes in the CPU batch (default 2)")
    ap.add_argument("--point-max", type=int, default=None, help="keep each scene's N voxels nearest its centre")
    ap.add_argument("--preset", default=None, help="model preset (default: the model's recipe)")
    ap.add_argument("--ceco", action="store_true", help="also time the step with the CeCo center head")
    ap.add_argument("--transform-scenes", type=int, default=10)
    args = ap.parse_args()
    if args.scenes < 1:
        ap.error("--scenes must be >= 1")
    name, preset = args.model, args.preset or MODELS[args.model]["preset"]
    feat_keys = MODELS[name]["feat_keys"]
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 16)))
    result: dict = {"model": name, "preset": preset, "threads": torch.get_num_threads(),
                    "in_channels": MODELS[name]["in_channels"], "optimizer": MODELS[name]["optim"]}
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
        spec = MODELS[name]
        batch = voxel_batch(root, args.scenes, spec.get("grid", 0.02), feat_keys, args.point_max, spec.get("scale", 1.0))
        voxel_key = "cpu_voxels_two_scenes" if args.scenes == 2 else f"cpu_voxels_{args.scenes}_scenes"
        result[voxel_key] = int(len(batch["feat"]))
        if args.point_max:
            result["point_max"] = args.point_max
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        model = build(preset, cpu, name)
        result["parameters_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
        t = time_steps(model, batch, cpu, args.steps, None, name)
        result["cpu_step_seconds"] = round(float(np.median(t)), 3)
        result["cpu_step_seconds_all"] = [round(x, 3) for x in t]
        if args.ceco:
            result.update(ceco_overhead(model, batch, cpu, result["cpu_step_seconds"], "cpu"))
        result["cpu_peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
        result["cpu_rss_before_model_gb"] = round(rss0 / 2**20, 2)

        if torch.cuda.is_available():
            gpu = torch.device("cuda")
            big = voxel_batch(root, 12, spec.get("grid", 0.02), feat_keys, scale=spec.get("scale", 1.0))
            result["gpu_name"] = torch.cuda.get_device_name()
            result["gpu_voxels_batch12"] = int(len(big["feat"]))
            del model
            model = build(preset, gpu, name)
            torch.cuda.reset_peak_memory_stats()
            t = time_steps(model, big, gpu, max(args.steps, 5), torch.float16, name)
            result["gpu_step_seconds_batch12_amp"] = round(float(np.median(t)), 4)
            result["gpu_peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            if args.ceco:
                result.update(ceco_overhead(model, big, gpu, result["gpu_step_seconds_batch12_amp"], "gpu"))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
