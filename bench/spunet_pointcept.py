"""Benchmark: pcseg's MinkUNet34C next to Pointcept's SpUNet-v1m1 on the same batch, in one process.

Why: both are the sparse residual UNet that ScanNet200 baselines train (channels
(32, 64, 128, 256, 256, 128, 96, 96), layers (2, 3, 4, 6, 2, 2, 2, 2), 5x5x5 stem, BN eps 1e-3
momentum 0.01), so the step time of one against the other on identical data shows what pcseg's
implementation costs or saves, with the machine's load hitting both alike.

Both networks get the same input, coord+color+normal (9 channels; the features of Pointcept's
ScanNet200 SpUNet config and of pcseg's ``bench/train_step.py --model spunet``), 200 classes,
train mode, the cross-entropy loss (label -1 ignored) and the recipe's optimizer: SGD lr 0.05,
Nesterov momentum 0.9, weight decay 1e-4. Pointcept's ``SpUNetBase`` ends in a 1x1x1 sparse
conv with bias as its classifier, pcseg's ``Segmentor`` in a linear head: the same map. The two
layouts differ in one place: Pointcept's strided down-sampling convs already widen to the
stage's width, pcseg's keep the width and let the first residual block widen (MinkUNet's
original layout), which gives pcseg fewer parameters. ``--widen-in-down`` builds pcseg's model
with Pointcept's layout instead (equal parameter counts).

The batch is the one ``bench/train_step.py`` uses: ``--scenes`` ScanNet-size synthetic scenes
voxelized at 2 cm (~110K voxels each), no crop. Seconds per step (forward + backward +
optimizer step) are the median over ``--steps`` steps after one warm-up step per model, the
two models alternating in this process. Peak memory is measured in a fresh child process per
model, so each number is that model's own step; ``--no-memory`` skips it. Freed heap memory is
returned to the OS after every step (``malloc_trim``), outside the timed region.

    python bench/spunet_pointcept.py --pointcept DIR [--scenes 2] [--steps 3] [--threads 2] [--widen-in-down]

``DIR`` is the folder that contains the ``pointcept`` package (a Pointcept checkout). Only its
``models/sparse_unet/spconv_unet_v1m1_base.py`` and the modules that file imports are loaded
(importlib, bypassing the package ``__init__`` chain with its dataset and engine dependencies).
That file needs, besides torch and spconv: ``timm`` (``timm.layers.trunc_normal_``) and
``torch_geometric`` (``torch_geometric.utils.scatter``, used only in its encoder-only mode),
installed or importable from PYTHONPATH (stand-ins providing those names work).

spconv on CPU: ``import pcseg.models`` installs pcseg's CPU fixes for spconv process-wide
(``spconv_compat.install()``: no CUDA-stream lookup in the conv backward, an exact
multi-threaded scatter-add, eval-mode conv bias). Pointcept's model calls the same spconv
functions, so it runs with these fixes as well (without the first, its backward fails on a
CPU-only torch). Both models' sparse convolutions use ``ConvAlgo.Native`` on CPU.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pcseg.models import SPUNET_PRESETS, build_model, set_conv_algo  # noqa: E402  (installs the spconv fixes)
from pcseg.models.losses import SegLoss  # noqa: E402
from ptv3_pointcept import (  # noqa: E402
    Stepper, _peak_rss_gb, _status_gb, load_batch, pointcept_version, prepare_pointcept, release_memory)
from train_step import make_caches, voxel_batch  # noqa: E402

FEAT_KEYS = ("coord", "color", "normal")
IN_CHANNELS = 9
NUM_CLASSES = 200
PRESET = "minkunet34c"
SGD = {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}  # configs/scannet200_base.yaml
MODEL_FILE = ("pointcept", "models", "sparse_unet", "spconv_unet_v1m1_base.py")
BARE_PACKAGES = ("pointcept", "pointcept.utils", "pointcept.models", "pointcept.models.sparse_unet")
DEPENDENCIES = {"spconv": "spconv", "timm": "timm (trunc_normal_)",
                "torch_geometric": "torch_geometric (utils.scatter)"}
NAMES = ("pcseg", "pointcept")


def load_pointcept_spunet(root: Path) -> types.ModuleType:
    """Pointcept's ``spconv_unet_v1m1_base`` module from the checkout ``root``; the packages above
    it are registered bare, so only the submodules that file imports are executed."""
    prepare_pointcept(root, MODEL_FILE, BARE_PACKAGES, DEPENDENCIES, "SpUNet")
    try:
        return importlib.import_module("pointcept.models.sparse_unet.spconv_unet_v1m1_base")
    except ImportError as e:
        raise SystemExit(f"could not import Pointcept's SpUNet model from {root}: {e}") from e


class PointceptSegmentor(nn.Module):
    """Pointcept's SpUNet-v1m1 as its DefaultSegmentor uses it: the backbone's output are the logits."""

    def __init__(self, spunet: types.ModuleType) -> None:
        super().__init__()
        self.config = dict(in_channels=IN_CHANNELS, num_classes=NUM_CLASSES, base_channels=32,
                           **{k: list(v) for k, v in SPUNET_PRESETS[PRESET].items()})
        self.backbone = spunet.SpUNetBase(**self.config)

    def forward(self, grid_coord: torch.Tensor, coord: torch.Tensor, offset: torch.Tensor,
                feat: torch.Tensor) -> torch.Tensor:
        return self.backbone({"grid_coord": grid_coord, "offset": offset, "feat": feat})


class SGDStepper(Stepper):
    """The PTv3 benchmark's stepper (same batch keys, loss and timed region) with the SpUNet SGD."""

    def __init__(self, name: str, model: nn.Module, batch: dict) -> None:  # not super(): it builds AdamW groups
        self.name, self.model, self.b = name, model, batch
        self.opt = torch.optim.SGD(model.parameters(), **SGD)
        self.crit = SegLoss()


def build(name: str, spunet: types.ModuleType | None, widen_in_down: bool) -> nn.Module:
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    if name == "pcseg":
        model = build_model("spunet", NUM_CLASSES, in_channels=IN_CHANNELS, preset=PRESET, device=cpu,
                            widen_in_down=widen_in_down)
    else:
        model = set_conv_algo(PointceptSegmentor(spunet), cpu)
    return model.train()


def memory_child(args: argparse.Namespace, root: Path) -> dict:
    """Warm-up + ``--steps`` steps of one model in this fresh process; its peak RSS."""
    spunet = load_pointcept_spunet(root) if args.child == "pointcept" else None
    batch = load_batch(Path(args.batch))
    base = _status_gb("VmRSS")
    stepper = SGDStepper(args.child, build(args.child, spunet, args.widen_in_down), batch)
    times = [stepper.step() for _ in range(args.steps + 1)]
    return {"peak_rss_gb": round(_peak_rss_gb(), 2), "rss_before_model_gb": None if base is None else round(base, 2),
            "step_seconds": [round(t, 2) for t in times]}


def run_child(name: str, args: argparse.Namespace, batch_file: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", name, "--batch", str(batch_file), "--pointcept", args.pointcept,
           "--threads", str(args.threads), "--steps", "1"] + (["--widen-in-down"] if args.widen_in_down else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        why = "killed (out of memory?)" if proc.returncode in (-9, 137) else f"exit {proc.returncode}"
        return {"error": why, "stderr_tail": proc.stderr[-800:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def timed_steps(steppers: dict[str, SGDStepper], steps: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    """One warm-up step per model, then ``steps`` rounds alternating the models (who goes first
    swaps every round, so drifts in machine load hit both); each step's time goes to stderr too."""
    warm = {}
    for name, s in steppers.items():
        warm[name] = s.step()
        release_memory()
        print(f"warm-up {name}: {warm[name]:.1f} s", file=sys.stderr, flush=True)
    times: dict[str, list[float]] = {name: [] for name in steppers}
    for i in range(steps):
        for name in (NAMES if i % 2 == 0 else NAMES[::-1]):
            times[name].append(steppers[name].step())
            release_memory()
            print(f"step {i + 1} {name}: {times[name][-1]:.1f} s", file=sys.stderr, flush=True)
    return warm, times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pointcept", required=True, help="folder containing the 'pointcept' package")
    ap.add_argument("--scenes", type=int, default=2, help="ScanNet-size scenes in the batch (default 2)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per model after one warm-up (default 3)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--widen-in-down", action="store_true",
                    help="build pcseg's model with Pointcept's layout (down-sampling convs widen)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    ap.add_argument("--pointcept-version", default=None,
                    help="version label to record when the checkout has no git metadata")
    ap.add_argument("--child", choices=NAMES, help=argparse.SUPPRESS)
    ap.add_argument("--batch", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.scenes < 1 or args.steps < 1 or args.threads < 1:
        ap.error("--scenes, --steps and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    root = Path(args.pointcept).resolve()
    if args.child:
        print(json.dumps(memory_child(args, root)))
        return

    spunet = load_pointcept_spunet(root)  # fail before building the data if Pointcept cannot be loaded
    t_start = time.perf_counter()
    result: dict = {
        "batch": {"scenes": args.scenes, "grid_size": 0.02, "in_channels": IN_CHANNELS, "features": list(FEAT_KEYS)},
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "threads": args.threads, "cores": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "pointcept": {"version": args.pointcept_version or pointcept_version(root),
                      "model": "SpUNet-v1m1 (SpUNetBase)"},
        "pcseg": {"model": f"spunet preset {PRESET}", "widen_in_down": args.widen_in_down},
        "spconv_cpu_fixes": "pcseg.models.spconv_compat.install() is active in-process for both models",
        "step": "forward + cross-entropy + backward + SGD step (lr 0.05, Nesterov 0.9, wd 1e-4), train mode",
    }
    with tempfile.TemporaryDirectory() as tmp:
        b = voxel_batch(make_caches(Path(tmp), 4), args.scenes, feat_keys=FEAT_KEYS)  # bench/train_step.py's scenes
        batch_file = Path(tmp) / "batch.pt"
        torch.save({k: b[k] for k in ("grid_coord", "coord", "feat", "batch", "offset", "segment")}, batch_file)
        batch = load_batch(batch_file)
        result["batch"]["voxels"] = int(len(batch["feat"]))
        result["batch"]["voxels_per_scene"] = torch.diff(batch["offset"], prepend=batch["offset"].new_zeros(1)).tolist()
        if not args.no_memory:  # before the timing models exist, so the machine has its memory free
            mem = result["peak_memory_fresh_process"] = {}
            for name in NAMES:
                mem[name] = run_child(name, args, batch_file)
                print(f"memory {name}: {json.dumps(mem[name])}", file=sys.stderr, flush=True)

    steppers = {name: SGDStepper(name, build(name, spunet, args.widen_in_down), batch) for name in NAMES}
    result["pointcept"]["config"] = steppers["pointcept"].model.config
    warm, times = timed_steps(steppers, args.steps)
    for name, s in steppers.items():
        result[name]["parameters"] = sum(p.numel() for p in s.model.parameters())
        result[name]["warmup_step_seconds"] = round(warm[name], 2)
        result[name]["step_seconds_all"] = [round(t, 2) for t in times[name]]
        result[name]["step_seconds"] = round(float(np.median(times[name])), 2)
    result["pointcept_over_pcseg_step_time"] = round(result["pointcept"]["step_seconds"]
                                                     / result["pcseg"]["step_seconds"], 2)
    mem = result.get("peak_memory_fresh_process", {})
    if mem and all("peak_rss_gb" in m for m in mem.values()):
        rss = {name: m["peak_rss_gb"] for name, m in mem.items()}
        result["pointcept_over_pcseg_peak_rss"] = round(rss["pointcept"] / rss["pcseg"], 2)
    result["timing_process_peak_rss_gb"] = round(_peak_rss_gb(), 2)
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["total_seconds"] = round(time.perf_counter() - t_start, 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
