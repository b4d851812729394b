"""PTv3 (PT-v3m1, and Sonata/Concerto's v3m2 and Utonia's v3m3) everywhere the MinkUNet goes:
training with CeCo, DDP, pcseg.test (TTA + fragments), pcseg.analyze, and fine-tuning a converted
Pointcept checkpoint (the three-command path)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from pcseg import analyze as analyze_cli
from pcseg import convert as convert_cli
from pcseg import test as test_cli
from pcseg.engine.checkpoint import load_checkpoint
from pcseg.engine.config import load_config
from pcseg.engine.trainer import Trainer
from tests.conftest import REPO, ddp_train_rank, free_port, tiny_overrides

CFG = REPO / "configs" / "synthetic_ptv3.yaml"
BACKBONES = {"ptv3": "PTv3", "ptv3m2": "PTv3M2", "ptv3m3": "PTv3M3"}


def _ptv3_overrides(root: Path, out: Path, **extra: object) -> list[str]:
    base = {"model.preset": "tiny", "model.channels": "null", "data.point_max": 3000}
    base.update(extra)
    return tiny_overrides(root, out, **base)


@pytest.fixture(scope="module", params=sorted(BACKBONES))
def ptv3_ceco_run(request, small_caches, tmp_path_factory) -> Path:
    name = request.param
    out = tmp_path_factory.mktemp(f"{name}_ceco")
    cfg = load_config(CFG, _ptv3_overrides(small_caches, out, **{"ceco.enabled": "true", "ceco.dim": 199,
                                                                 "model.name": name}))
    trainer = Trainer(cfg)
    assert type(trainer.model.backbone).__name__ == BACKBONES[name] and "ceco" in trainer.objective.terms
    trainer.fit()
    return out


def test_ptv3_trains_with_ceco(ptv3_ceco_run) -> None:
    recs = [json.loads(x) for x in (ptv3_ceco_run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["type"] == "train"]
    assert train and all("loss_center" in r and r["loss"] == r["loss"] for r in train)
    assert any(r["type"] == "val" and r["miou"] is not None for r in recs)
    ckpt = load_checkpoint(ptv3_ceco_run / "last.pth")
    assert ckpt["config"]["model"]["name"] in BACKBONES and "ceco" in ckpt["terms"]
    # the recipe's block learning rate: every block parameter at 0.1 x optim.lr
    groups = ckpt["optimizer"]["param_groups"]
    assert len(groups) == 2 and groups[1]["keyword"] == "block"


def test_ptv3_test_with_tta_and_fragments_and_analyze(ptv3_ceco_run, small_caches, tmp_path) -> None:
    ckpt = ptv3_ceco_run / "last.pth"
    code = test_cli.main(["--ckpt", str(ckpt), "--split", "val", "--tta", "0,90f", "--max-voxels", "400",
                          "--overlap", "0.3", "--out", str(tmp_path), f"data.root={small_caches}",
                          "train.progress=false"])
    assert code == 0
    m = json.loads((tmp_path / "metrics_val.json").read_text())
    assert m["miou"] is not None and m["num_vertices"] > 0
    code = analyze_cli.main(["--ckpt", str(ckpt), "--out", str(tmp_path / "nc"), f"data.root={small_caches}",
                             "train.progress=false"])
    assert code == 0
    nc = json.loads((tmp_path / "nc" / "nc_metrics.json").read_text())["nc"]
    assert nc["nc1"] is not None and nc["equiangularity_classifier"] is not None


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_ptv3_ddp_two_processes(name, small_caches, tmp_path) -> None:
    overrides = _ptv3_overrides(small_caches, tmp_path / "run", **{"train.epochs": 1, "train.eval_every": 0,
                                                                    "model.name": name})
    mp.spawn(ddp_train_rank, args=(2, free_port(), str(CFG), overrides, str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt")["model"] for r in (0, 1))
    params = [k for k in a if "running_" not in k and "num_batches" not in k]  # BatchNorm stats are per rank
    assert params and all(torch.equal(a[k], b[k]) for k in params)


def test_finetune_a_converted_pointcept_checkpoint_with_ceco(small_caches, tmp_path) -> None:
    """Pointcept checkpoint -> pcseg.convert -> train.init_from with CeCo -> pcseg.test."""
    from tests.test_convert import _case, _overrides, _pointcept_checkpoint

    case = _case()
    src, _ = _pointcept_checkpoint(tmp_path, case)
    converted = tmp_path / "converted.pth"
    assert convert_cli.main([str(src), str(converted), "--cfg", str(CFG), *_overrides(case)]) == 0
    run = tmp_path / "finetune"
    stored = load_checkpoint(converted)["config"]
    overrides = tiny_overrides(small_caches, run, **{"train.init_from": converted, "ceco.enabled": "true",
                                                      "ceco.dim": 32, "train.max_steps": 2, "train.eval_every": 0,
                                                      "model.preset": "tiny", "model.channels": "null"})
    cfg = load_config(stored, overrides)
    trainer = Trainer(cfg)
    src_weights = load_checkpoint(converted)["model"]
    assert all(torch.equal(v, src_weights[k]) for k, v in trainer.model.state_dict().items())
    trainer.fit()
    assert load_checkpoint(run / "last.pth")["step"] == 2
    assert test_cli.main(["--ckpt", str(run / "last.pth"), "--split", "val", "--out", str(tmp_path),
                          "train.progress=false"]) == 0
