"""The training engine on synthetic caches: learning, resume equivalence, failures, config errors, DDP."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from pcseg import train as train_cli
from pcseg.engine.checkpoint import load_checkpoint
from pcseg.engine.config import load_config
from pcseg.engine.trainer import Trainer
from tests.conftest import REPO, tiny_overrides, free_port

CFG = REPO / "configs" / "synthetic_base.yaml"


def _records(run: Path, kind: str) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def test_loss_decreases(small_caches, tmp_path) -> None:
    cfg = load_config(CFG, tiny_overrides(small_caches, tmp_path, **{
        "train.epochs": 8, "optim.name": "adamw", "optim.lr": 0.01, "sched.name": "constant",
        "train.eval_every": 8}))
    metrics = Trainer(cfg).fit()
    losses = [r["loss"] for r in _records(tmp_path, "train")]
    assert len(losses) == load_checkpoint(tmp_path / "last.pth")["step"] == 8 * 2  # 5 train scenes, batch 2
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses
    assert metrics["miou"] is not None and 0.0 <= metrics["miou"] <= 1.0
    assert (tmp_path / "last.pth").is_file() and (tmp_path / "best.pth").is_file()
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "train.log").is_file()
    val = _records(tmp_path, "val")
    assert val and {"miou", "miou_head", "miou_common", "miou_tail", "macc", "allacc"} <= set(val[-1])


def test_resume_gives_identical_weights(small_caches, tmp_path) -> None:
    common = {"train.epochs": 3, "train.eval_every": 2}
    full = tmp_path / "full"
    Trainer(load_config(CFG, tiny_overrides(small_caches, full, **common))).fit()
    part = tmp_path / "part"
    Trainer(load_config(CFG, tiny_overrides(small_caches, part, **common, **{"train.max_steps": 3}))).fit()
    assert load_checkpoint(part / "last.pth")["step"] == 3  # stopped mid-epoch (2 steps per epoch)
    Trainer(load_config(CFG, tiny_overrides(small_caches, part, **common, resume="true"))).fit()
    a, b = load_checkpoint(full / "last.pth"), load_checkpoint(part / "last.pth")
    assert a["step"] == b["step"] == 6
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]


def test_nan_loss_stops_and_keeps_last_checkpoint(small_caches, tmp_path, monkeypatch) -> None:
    cfg = load_config(CFG, tiny_overrides(small_caches, tmp_path, **{"train.eval_every": 0}))
    trainer = Trainer(cfg)
    trainer.cfg.train.max_steps = 2
    trainer.fit()
    before = (tmp_path / "last.pth").read_bytes()
    original = Trainer.compute_loss

    def poisoned(self, out, batch):
        loss, logs = original(self, out, batch)
        return loss * float("nan"), logs

    monkeypatch.setattr(Trainer, "compute_loss", poisoned)
    code = train_cli.main(["--cfg", str(CFG), "--resume", *tiny_overrides(small_caches, tmp_path, **{"train.eval_every": 0})])
    assert code == 3
    assert (tmp_path / "last.pth").read_bytes() == before


def test_config_errors_name_the_key(tmp_path, capsys) -> None:
    assert train_cli.main(["--cfg", str(CFG), "train.epoch=3"]) == 2
    err = capsys.readouterr().err
    assert "train.epoch" in err and "train.epochs" in err
    assert train_cli.main(["--cfg", str(CFG), "train.batch_size=two"]) == 2
    assert "train.batch_size" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("_base_: " + str(CFG) + "\nmodel:\n  chanels: [1, 2]\n")
    assert train_cli.main(["--cfg", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "model.chanels" in err and "model.channels" in err and str(bad) in err


def test_missing_caches_say_how_to_make_them(tmp_path, capsys) -> None:
    code = train_cli.main(["--cfg", str(CFG), *tiny_overrides(tmp_path / "nowhere", tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "data_prep/scannet200.py" in err and "nowhere" in err


def test_resolved_config_is_saved(small_caches, tmp_path) -> None:
    cfg = load_config(CFG, tiny_overrides(small_caches, tmp_path, **{"train.max_steps": 1, "seed": 7}))
    Trainer(cfg).fit()
    saved = load_config(tmp_path / "config.yaml")
    assert saved.seed == 7 and saved.train.max_steps == 1 and saved.data.root == str(small_caches)


def _ddp_worker(rank: int, world: int, port: int, overrides: list[str]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    assert train_cli.main(["--cfg", str(CFG), *overrides]) == 0


def test_ddp_two_processes_gloo(small_caches, tmp_path) -> None:
    overrides = tiny_overrides(small_caches, tmp_path, **{"train.max_steps": 2, "train.eval_every": 1,
                                                           "train.epochs": 1})
    mp.spawn(_ddp_worker, args=(2, free_port(), overrides), nprocs=2, join=True)
    ckpt = load_checkpoint(tmp_path / "last.pth")
    assert ckpt["step"] >= 1 and isinstance(ckpt["rng"], list) and len(ckpt["rng"]) == 2
    assert len(_records(tmp_path, "train")) >= 1
