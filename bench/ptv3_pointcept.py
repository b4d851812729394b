"""Benchmark: pcseg's PTv3 next to Pointcept's PT-v3m1 on the same batch, in one process.

Both networks get the ScanNet200 recipe backbone (orders z/z-trans/hilbert/hilbert-trans,
enc (2,2,2,6,2) x (32..512), dec (2,2,2,2), patch 1024, drop_path 0.3, order shuffling), a
linear 200-class head, train mode, the cross-entropy loss and AdamW (lr 0.006, wd 0.05,
transformer-block parameters at 0.1x). Pointcept's model is built with ``enable_flash=False``,
its attention path without flash_attn (the only one that runs without a GPU): it materialises
each patch's (heads, 1024, 1024) attention matrix. pcseg's model uses
``patch_rule="non_flash"`` to patch scenes the same way (it only differs for scenes smaller
than a patch).

The batch is the one ``bench/train_step.py --model ptv3`` uses: ``--scenes`` ScanNet-size
synthetic scenes voxelized at 2 cm (~110K voxels each), input color+normal (6 channels);
``--point-max N`` crops each scene to the N voxels nearest its centre. Pointcept's step on
one whole scene needs 20-24 GB RSS (the attention matrices kept for backward; pcseg's needs
about 7 GB), so on a machine with less than 32 GB use a crop, e.g. ``--point-max 51200``
(about 11 GB for Pointcept, 4 GB for pcseg).
Seconds per step (forward + backward + optimizer step) are the median over ``--steps``
steps after one warm-up step per model, the two models alternating in this process. Peak
memory is measured in a fresh child process per model (peak RSS only grows within a
process), so each number is that model's own step; ``--no-memory`` skips it. Freed heap
memory is returned to the OS after every step (``malloc_trim``), outside the timed region.

    python bench/ptv3_pointcept.py --pointcept DIR [--scenes 1|2] [--point-max N] [--steps 2] [--threads 2]

``DIR`` is the folder that contains the ``pointcept`` package (a Pointcept checkout). Only
its PTv3 model file and the modules it imports are loaded (importlib, bypassing the package
``__init__`` chain with its dataset and engine dependencies). That file needs, besides torch
and spconv: ``addict``, ``timm`` (``timm.layers.DropPath``, or ``timm.models.layers`` in older
Pointcept) and ``torch_scatter`` (``segment_csr``), installed or importable from PYTHONPATH
(stand-ins providing those names work).

spconv on CPU: ``import pcseg.models`` installs pcseg's CPU fixes for spconv process-wide
(``spconv_compat.install()``: no CUDA-stream lookup in the conv backward, an exact
multi-threaded scatter-add, eval-mode conv bias). Pointcept's model calls the same spconv
functions, so it runs with these fixes as well (without the first, its backward fails on a
CPU-only torch). Both models' sparse convolutions use ``ConvAlgo.Native`` on CPU.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import importlib
import importlib.util
import inspect
import json
import os
import platform
import re
import resource
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

from pcseg.models import PTV3_PRESETS, build_model, set_conv_algo  # noqa: E402  (installs the spconv fixes)
from pcseg.models.losses import SegLoss  # noqa: E402
from train_step import make_caches, make_optimizer, voxel_batch  # noqa: E402

FEAT_KEYS = ("color", "normal")
NUM_CLASSES = 200
PRESET = "scannet200"
MODEL_FILE = ("pointcept", "models", "point_transformer_v3", "point_transformer_v3m1_base.py")
# Packages whose __init__ imports far more than the model (datasets, engines, other models):
# registered as bare packages so that only the submodules the model file needs are executed.
BARE_PACKAGES = ("pointcept", "pointcept.utils", "pointcept.models", "pointcept.models.point_prompt_training",
                 "pointcept.models.point_transformer_v3", "pointcept.engines", "pointcept.engines.hooks")
DEPENDENCIES = {"addict": "addict", "timm": "timm (DropPath)", "torch_scatter": "torch_scatter (segment_csr)",
                "spconv": "spconv"}


# ---------------------------------------------------------------- Pointcept loading
def prepare_pointcept(root: Path, model_file: tuple[str, ...], bare_packages: tuple[str, ...],
                      dependencies: dict[str, str], what: str) -> None:
    """Check that ``root`` holds ``model_file`` and that the modules it imports are importable, then
    register ``bare_packages`` as empty packages of ``root``: importing the model file afterwards
    executes only the submodules it needs, not the package ``__init__`` chain."""
    if not root.joinpath(*model_file).is_file():
        raise SystemExit(f"--pointcept {root}: {'/'.join(model_file)} not found; pass the folder that "
                         "contains the 'pointcept' package of a Pointcept checkout")
    missing = [label for mod, label in dependencies.items() if importlib.util.find_spec(mod) is None]
    if missing:
        raise SystemExit(f"Pointcept's {what} model file needs modules that are not importable: "
                         + ", ".join(missing) + ". Install them or put packages of those names on PYTHONPATH.")
    for name in list(sys.modules):
        if name == "pointcept" or name.startswith("pointcept."):
            del sys.modules[name]
    for name in bare_packages:
        mod = types.ModuleType(name)
        mod.__path__ = [str(root.joinpath(*name.split(".")))]
        sys.modules[name] = mod
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, mod)


def load_pointcept_ptv3(root: Path) -> types.ModuleType:
    """Pointcept's ``point_transformer_v3m1_base`` module from the checkout ``root``."""
    prepare_pointcept(root, MODEL_FILE, BARE_PACKAGES, DEPENDENCIES, "PTv3")
    # models/modules.py (newer releases) imports the training-hook base class for one mixin.
    sys.modules["pointcept.engines.hooks"].HookBase = type("HookBase", (), {})
    try:
        pdn = importlib.import_module("pointcept.models.point_prompt_training.prompt_driven_normalization")
        sys.modules["pointcept.models.point_prompt_training"].PDNorm = pdn.PDNorm
        return importlib.import_module("pointcept.models.point_transformer_v3.point_transformer_v3m1_base")
    except ImportError as e:
        raise SystemExit(f"could not import Pointcept's PTv3 model from {root}: {e}") from e


def pointcept_version(root: Path) -> str | None:
    """``git describe`` of the checkout, else a version string found in the tree, else None."""
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--tags", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=20, check=False)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    for rel in (("pointcept", "__init__.py"), ("setup.py",), ("pyproject.toml",)):
        f = root.joinpath(*rel)
        if f.is_file():
            m = re.search(r"""version\s*=\s*["']([^"']+)["']""", f.read_text(errors="replace"))
            if m:
                return m.group(1)
    return None


class PointceptSegmentor(nn.Module):
    """Pointcept's PT-v3m1 backbone with a linear head (the layout of its DefaultSegmentorV2)."""

    def __init__(self, ptv3: types.ModuleType, in_channels: int, num_classes: int) -> None:
        super().__init__()
        wanted = dict(PTV3_PRESETS[PRESET], in_channels=in_channels, qkv_bias=True, qk_scale=None,
                      attn_drop=0.0, proj_drop=0.0, pre_norm=True, shuffle_orders=True, enable_rpe=False,
                      enable_flash=False, upcast_attention=False, upcast_softmax=False, enc_mode=False,
                      pdnorm_bn=False, pdnorm_ln=False)
        wanted["order"] = list(wanted["order"])
        accepted = inspect.signature(ptv3.PointTransformerV3.__init__).parameters
        self.config = {k: v for k, v in wanted.items() if k in accepted}
        self.backbone = ptv3.PointTransformerV3(**self.config)
        self.seg_head = nn.Linear(PTV3_PRESETS[PRESET]["dec_channels"][0], num_classes)

    def forward(self, grid_coord: torch.Tensor, coord: torch.Tensor, offset: torch.Tensor,
                feat: torch.Tensor) -> torch.Tensor:
        point = self.backbone({"coord": coord, "grid_coord": grid_coord, "offset": offset, "feat": feat})
        return self.seg_head(point.feat)


# ---------------------------------------------------------------- models and steps
def build(name: str, ptv3: types.ModuleType | None) -> nn.Module:
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    if name == "pcseg":
        model = build_model("ptv3", NUM_CLASSES, in_channels=6, preset=PRESET, device=cpu, patch_rule="non_flash")
    else:
        model = PointceptSegmentor(ptv3, 6, NUM_CLASSES)
        set_conv_algo(model, cpu)
    return model.train()


class Stepper:
    """One model, its optimizer and loss; ``step()`` runs forward + backward + optimizer step."""

    def __init__(self, name: str, model: nn.Module, batch: dict) -> None:
        self.name, self.model, self.b = name, model, batch
        self.opt = make_optimizer(model, "ptv3")
        self.crit = SegLoss()

    def logits(self) -> torch.Tensor:
        b = self.b
        if self.name == "pcseg":
            return self.model(b["grid_coord"], b["batch"], b["feat"])["logits"]
        return self.model(b["grid_coord"], b["coord"], b["offset"], b["feat"])

    def step(self) -> float:
        t0 = time.perf_counter()
        loss = self.crit(self.logits(), self.b["segment"])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return time.perf_counter() - t0


def release_memory() -> None:
    """Hand freed heap memory back to the OS between steps (glibc keeps it otherwise), so the
    second model's step does not stack on the first one's leftovers in the timing process."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name and platform.system() == "Linux":
        try:
            ctypes.CDLL(name).malloc_trim(0)
        except (OSError, AttributeError):
            pass


def load_batch(path: Path) -> dict:
    b = torch.load(path, weights_only=True)
    return {"grid_coord": b["grid_coord"].long(), "coord": b["coord"].float(), "feat": b["feat"].float(),
            "batch": b["batch"].long(), "offset": b["offset"].long(), "segment": b["segment"].long()}


def _status_gb(field: str) -> float | None:
    """A size from /proc/self/status (Linux) in GB, e.g. VmRSS (current) or VmHWM (peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def _peak_rss_gb() -> float:
    """Peak RSS of this process image. VmHWM rather than ``getrusage``: ``ru_maxrss`` of a
    freshly started child can carry over its parent's peak."""
    peak = _status_gb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def memory_child(name: str, batch_file: Path, root: Path, steps: int) -> dict:
    """Warm-up + ``steps`` steps of one model in this fresh process; its peak RSS."""
    ptv3 = load_pointcept_ptv3(root) if name == "pointcept" else None
    batch = load_batch(batch_file)
    base = _status_gb("VmRSS")
    stepper = Stepper(name, build(name, ptv3), batch)
    times = [stepper.step() for _ in range(steps + 1)]
    return {"peak_rss_gb": round(_peak_rss_gb(), 2),
            "rss_before_model_gb": None if base is None else round(base, 2),
            "step_seconds": [round(t, 2) for t in times]}


def run_child(name: str, args: argparse.Namespace, batch_file: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", name, "--batch", str(batch_file), "--pointcept", args.pointcept,
           "--threads", str(args.threads), "--steps", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        why = "killed (out of memory?)" if proc.returncode in (-9, 137) else f"exit {proc.returncode}"
        return {"error": why, "stderr_tail": proc.stderr[-800:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pointcept", required=True, help="folder containing the 'pointcept' package")
    ap.add_argument("--scenes", type=int, default=1, help="ScanNet-size scenes in the batch (default 1)")
    ap.add_argument("--point-max", type=int, default=None,
                    help="crop each scene to the N voxels nearest its centre (default: whole scenes)")
    ap.add_argument("--steps", type=int, default=2, help="timed steps per model after one warm-up (default 2)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    ap.add_argument("--pointcept-version", default=None,
                    help="version label to record when the checkout has no git metadata")
    ap.add_argument("--child", choices=("pcseg", "pointcept"), help=argparse.SUPPRESS)
    ap.add_argument("--batch", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.scenes < 1 or args.steps < 1 or args.threads < 1:
        ap.error("--scenes, --steps and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    root = Path(args.pointcept).resolve()
    if args.child:
        print(json.dumps(memory_child(args.child, Path(args.batch), root, args.steps)))
        return

    ptv3 = load_pointcept_ptv3(root)  # fail before building the data if Pointcept cannot be loaded
    t_start = time.perf_counter()
    result: dict = {
        "batch": {"scenes": args.scenes, "grid_size": 0.02, "point_max": args.point_max, "in_channels": 6,
                  "features": list(FEAT_KEYS)},
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "threads": args.threads, "cores": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "pointcept": {"version": args.pointcept_version or pointcept_version(root),
                      "model": "PT-v3m1 (PointTransformerV3), enable_flash=False"},
        "pcseg": {"model": f"ptv3 preset {PRESET}", "patch_rule": "non_flash"},
        "spconv_cpu_fixes": "pcseg.models.spconv_compat.install() is active in-process for both models",
        "step": "forward + cross-entropy + backward + AdamW step, train mode",
    }
    with tempfile.TemporaryDirectory() as tmp:
        root_cache = make_caches(Path(tmp), 4)  # the same scenes as bench/train_step.py
        b = voxel_batch(root_cache, args.scenes, feat_keys=FEAT_KEYS, point_max=args.point_max)
        batch_file = Path(tmp) / "batch.pt"
        torch.save({k: b[k] for k in ("grid_coord", "coord", "feat", "batch", "offset", "segment")}, batch_file)
        batch = load_batch(batch_file)
        result["batch"]["voxels"] = int(len(batch["feat"]))
        result["batch"]["voxels_per_scene"] = torch.diff(batch["offset"], prepend=batch["offset"].new_zeros(1)).tolist()

        if not args.no_memory:  # before the timing models exist, so the machine has its memory free
            result["peak_memory_fresh_process"] = {}
            for name in ("pcseg", "pointcept"):
                result["peak_memory_fresh_process"][name] = run_child(name, args, batch_file)
                print(f"memory {name}: {json.dumps(result['peak_memory_fresh_process'][name])}",
                      file=sys.stderr, flush=True)

    steppers = {name: Stepper(name, build(name, ptv3), batch) for name in ("pcseg", "pointcept")}
    pointcept_cfg = steppers["pointcept"].model.config
    result["pointcept"]["config"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in pointcept_cfg.items()}
    params = {name: sum(p.numel() for p in s.model.parameters()) for name, s in steppers.items()}
    times: dict[str, list[float]] = {name: [] for name in steppers}
    warm = {}
    for name, s in steppers.items():
        warm[name] = round(s.step(), 2)
        release_memory()
    for i in range(args.steps):  # alternate, swapping who goes first, so drifts in machine load hit both
        order = list(steppers) if i % 2 == 0 else list(steppers)[::-1]
        for name in order:
            times[name].append(steppers[name].step())
            release_memory()
            print(f"step {i + 1} {name}: {times[name][-1]:.1f} s", file=sys.stderr, flush=True)
    for name in steppers:
        result[name]["parameters"] = params[name]
        result[name]["warmup_step_seconds"] = warm[name]
        result[name]["step_seconds_all"] = [round(t, 2) for t in times[name]]
        result[name]["step_seconds"] = round(float(np.median(times[name])), 2)
    result["pointcept_over_pcseg_step_time"] = round(result["pointcept"]["step_seconds"]
                                                     / result["pcseg"]["step_seconds"], 2)
    if not args.no_memory:
        mem = result["peak_memory_fresh_process"]
        if all("peak_rss_gb" in mem[n] for n in mem):
            result["pointcept_over_pcseg_peak_rss"] = round(mem["pointcept"]["peak_rss_gb"]
                                                            / mem["pcseg"]["peak_rss_gb"], 2)
    result["timing_process_peak_rss_gb"] = round(_peak_rss_gb(), 2)
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["total_seconds"] = round(time.perf_counter() - t_start, 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
