"""GPU correctness checks that a CPU-only CI cannot run; prints JSON (run it wherever CUDA exists).

* PTv3 on CUDA against the Pointcept golden fixtures (tests/fixtures/ptv3, and ptv3m2m3 for the
  Sonata/Utonia generations), converted weights, Pointcept's recorded pooling permutations
  replayed; max |logit difference| per case.
* PTv3 serialization on CUDA equals the CPU golden codes, orders and inverses.
* PTv3 and MinkUNet forward + backward under fp16 and bf16 autocast: finite outputs and gradients.

``python bench/gpu_check.py``; exits 1 if a check fails, 2 without CUDA.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pcseg.models import build_model, set_conv_algo  # noqa: E402
from pcseg.models.pointcept import convert_state_dict, ptv3_kwargs_from_config  # noqa: E402
from pcseg.models.serialization import serialize  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "ptv3"
CASES = {"main_default": "main", "main_orders": "main", "v151": "v1.5.1"}
# PT-v3m2/m3 fixtures: file -> (pcseg model name, Pointcept generation)
LATER = {"m2_seg": ("ptv3m2", "v3m2"), "m2_enc": ("ptv3m2", "v3m2"), "m3_seg": ("ptv3m3", "v3m3")}


def fixture_case(name: str, compat: str, dev: torch.device) -> dict:
    if name in LATER:
        model_name, generation = LATER[name]
        case = torch.load(ROOT / "tests" / "fixtures" / "ptv3m2m3" / f"{name}.pt", weights_only=True)
        kwargs = ptv3_kwargs_from_config(case["model_cfg"], generation=generation)
    else:
        model_name = "ptv3"
        case = torch.load(FIXTURES / f"case_{name}.pt", weights_only=True)
        kwargs = ptv3_kwargs_from_config(case["model_cfg"], compat)
    cfg = case["model_cfg"]
    model = build_model(model_name, case["num_classes"], in_channels=cfg["in_channels"], device=dev,
                        **kwargs).eval()
    model.load_state_dict(convert_state_dict(case["state_dict"], model))
    set_conv_algo(model, dev)
    model.backbone.pooling_perms = [list(p) for p in case["pooling_perms"]]
    x = {k: v.to(dev) for k, v in case["inputs"].items() if torch.is_tensor(v)}
    with torch.no_grad():
        logits = model(x["grid_coord"], x["batch"], x["feat"], x.get("coord"))["logits"].cpu()
    diff = (logits - case["logits"]).abs().max().item()
    tol = 1e-3 * (1 + case["logits"].abs().max().item())  # TF32 in implicit GEMM: 10x the CPU bound
    return {"max_abs_diff": diff, "tolerance": tol, "ok": diff <= tol}


def serialization_check(dev: torch.device) -> dict:
    g = torch.load(FIXTURES / "serialization.pt", weights_only=True)
    ser = serialize(g["grid_coord"].to(dev), g["batch"].to(dev))
    p = g["point"]
    ok = all(torch.equal(a.cpu(), p[b]) for a, b in ((ser.code, "serialized_code"), (ser.order, "serialized_order"),
                                                     (ser.inverse, "serialized_inverse")))
    return {"ok": ok}


def autocast_check(name: str, preset: str, in_ch: int, dtype: torch.dtype, dev: torch.device) -> dict:
    torch.manual_seed(0)
    model = build_model(name, 20, in_channels=in_ch, preset=preset, device=dev).to(dev).train()
    set_conv_algo(model, dev)
    gc = torch.unique(torch.randint(0, 60, (6000, 3), device=dev), dim=0).int()
    batch = (torch.arange(len(gc), device=dev) >= len(gc) // 3).long()
    feat = torch.randn(len(gc), in_ch, device=dev)
    coord = gc.float() * 0.02  # read only by PT-v3m3's rotary encoding
    with torch.autocast("cuda", dtype=dtype):
        out = model(gc, batch, feat, coord)
    out["logits"].float().square().mean().backward()
    finite_out = bool(torch.isfinite(out["logits"].float()).all())
    finite_grad = all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None)
    return {"ok": finite_out and finite_grad, "logits_dtype": str(out["logits"].dtype)}


def main() -> int:
    if not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device"}))
        return 2
    dev = torch.device("cuda")
    result: dict = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    for name, compat in CASES.items():
        result[f"ptv3_fixture_{name}"] = fixture_case(name, compat, dev)
    for name in LATER:
        result[f"ptv3_fixture_{name}"] = fixture_case(name, "main", dev)
    result["serialization_cuda_equals_golden"] = serialization_check(dev)
    for dtype in (torch.float16, torch.bfloat16):
        tag = str(dtype).split(".")[-1]
        for model_name in ("ptv3", "ptv3m2", "ptv3m3"):
            result[f"{model_name}_tiny_autocast_{tag}"] = autocast_check(model_name, "tiny", 6, dtype, dev)
        result[f"spunet_tiny_autocast_{tag}"] = autocast_check("spunet", "tiny", 9, dtype, dev)
    print(json.dumps(result, indent=1))
    return 0 if all(v.get("ok", True) for v in result.values() if isinstance(v, dict)) else 1


if __name__ == "__main__":
    sys.exit(main())
