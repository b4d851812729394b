"""The training engine on synthetic caches: learning, resume equivalence, failures, config errors, DDP."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from pcseg import train as train_cli
from pcseg.engine.checkpoint import load_checkpoint
from pcseg.engine.config import load_config
from pcseg.engine.trainer import Trainer, TrainingDiverged
from tests.conftest import REPO, ddp_train_rank, free_port, tiny_overrides

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
    assert train_cli.main(["--cfg", str(CFG), "train.lr=0.1"]) == 2
    assert "closest valid name: 'optim.lr'" in capsys.readouterr().err  # the full dotted key, not the section
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


def test_ddp_two_processes_gloo_with_ceco(small_caches, tmp_path) -> None:
    """Two gloo processes train CeCo inside the trainer: same weights on both ranks afterwards
    (segmentor and center head), validation ran on the split shards, the center loss was used."""
    run = tmp_path / "run"
    overrides = tiny_overrides(small_caches, run, **{"train.epochs": 2, "train.eval_every": 1, "ceco.dim": 199})
    mp.spawn(ddp_train_rank, args=(2, free_port(), str(REPO / "configs" / "synthetic_nc.yaml"), overrides,
                                  str(tmp_path)), nprocs=2, join=True)
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert r0["step"] == r1["step"] == 4  # 2 epochs of 2 steps (2 ranks x batch 1)
    initial = Trainer(load_config(REPO / "configs" / "synthetic_nc.yaml", tiny_overrides(
        small_caches, tmp_path / "fresh", **{"ceco.dim": 199}))).model.state_dict()
    moved = False
    for part in ("model", "center_head"):
        for k, v in r0[part].items():
            if "running_" in k or "num_batches" in k:
                continue  # BatchNorm statistics are per rank (DDP broadcasts rank 0's before each forward)
            assert torch.equal(v, r1[part][k]), (part, k)
            if part == "model" and v.is_floating_point() and not torch.equal(v, initial[k]):
                moved = True
    assert moved  # the ranks agree because they trained together, not because nothing changed
    ckpt = load_checkpoint(run / "last.pth")
    assert isinstance(ckpt["rng"], list) and len(ckpt["rng"]) == 2 and "ceco" in ckpt["terms"]
    train = _records(run, "train")
    assert train and all("loss_center" in r and r["num_present"] >= 1 for r in train)
    val = _records(run, "val")
    assert [r["epoch"] for r in val] == [1, 2] and all(r["miou"] is not None for r in val)


def test_grad_clip_covers_the_center_head(small_caches, tmp_path) -> None:
    cfg = load_config(REPO / "configs" / "synthetic_nc.yaml", tiny_overrides(
        small_caches, tmp_path, **{"ceco.variant": "learned", "ceco.dim": 199, "train.grad_clip": 1e-3,
                                   "train.eval_every": 0}))  # the learned head trains; the official one is frozen
    trainer = Trainer(cfg)
    head = set(map(id, trainer.objective.terms["ceco"].parameters()))
    assert head and head <= set(map(id, trainer.params))
    logs = trainer.train_step(next(iter(trainer.train_loader)))
    assert logs["grad_norm"] > 1e-2  # the unclipped norm, far above the bound
    grads = [p.grad for p in trainer.params if p.grad is not None]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.objective.terms["ceco"].parameters())
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    assert total <= 1e-3 * (1 + 1e-4)


def _poison_gradients(trainer: Trainer, value: float) -> None:
    """A finite loss whose gradient is not: every backward pass writes ``value`` into one gradient."""
    p = next(trainer.model.parameters())
    p.register_hook(lambda g: torch.full_like(g, value))


def test_non_finite_gradient_stops_before_the_weights_change(small_caches, tmp_path) -> None:
    cfg = load_config(CFG, tiny_overrides(small_caches, tmp_path, **{"train.eval_every": 0, "train.max_steps": 1}))
    Trainer(cfg).fit()
    before = (tmp_path / "last.pth").read_bytes()
    cfg = load_config(CFG, tiny_overrides(small_caches, tmp_path, **{"train.eval_every": 0, "resume": "true"}))
    trainer = Trainer(cfg)
    _poison_gradients(trainer, float("nan"))
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(TrainingDiverged, match="non-finite gradient"):
        trainer.fit()
    assert (tmp_path / "last.pth").read_bytes() == before
    for k, v in trainer.model.named_parameters():
        assert torch.equal(v, weights[k]), k


def test_fp16_skipped_step_does_not_advance_the_schedule(small_caches, tmp_path) -> None:
    """With a loss scaler (fp16), an inf gradient skips the optimizer step; the schedule must wait too.
    Run on the CPU with torch's CPU GradScaler, which behaves like the CUDA one."""
    trainer = Trainer(load_config(CFG, tiny_overrides(small_caches, tmp_path, **{"train.eval_every": 0})))
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    batches = iter(trainer.train_loader)
    trainer.train_step(next(batches))
    assert trainer.scheduler.last_epoch == 1
    _poison_gradients(trainer, float("inf"))
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items() if v.is_floating_point()}
    logs = trainer.train_step(next(batches))
    assert trainer.step == 2 and trainer.scheduler.last_epoch == 1 and trainer.scaler.get_scale() < 1024.0
    assert not torch.isfinite(torch.tensor(logs["grad_norm"]))
    for k, v in weights.items():
        if "running" not in k:  # BatchNorm statistics move in the forward pass
            assert torch.equal(trainer.model.state_dict()[k], v), k


def test_fp16_resume_from_a_run_without_scaler_state(small_caches, tmp_path) -> None:
    """A checkpoint saved without fp16 has an empty scaler state; an fp16 resume starts a fresh scale."""
    common = {"train.eval_every": 0, "train.epochs": 2}
    Trainer(load_config(CFG, tiny_overrides(small_caches, tmp_path, **common, **{"train.max_steps": 1}))).fit()
    ckpt = load_checkpoint(tmp_path / "last.pth")
    assert ckpt["scaler"] == {}
    trainer = Trainer(load_config(CFG, tiny_overrides(small_caches, tmp_path, **common)))  # continues it
    assert trainer.step == 1
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=512.0)  # an enabled scaler, as on a GPU
    trainer._resume(ckpt)
    assert trainer.step == 1 and trainer.scaler.get_scale() == 512.0


def test_out_dir_of_another_run_is_not_continued(small_caches, tmp_path, capsys) -> None:
    """A last.pth from different settings is never mixed in: the error names the keys, and the
    folder is left as it was (config.yaml included)."""
    common = {"train.eval_every": 0, "train.epochs": 2, "train.max_steps": 1}
    Trainer(load_config(CFG, tiny_overrides(small_caches, tmp_path, **common))).fit()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    code = train_cli.main(["--cfg", str(CFG), *tiny_overrides(small_caches, tmp_path, **common, **{
        "optim.lr": 0.5, "model.channels": "[8,8,8,8,8,8,8,8]"})])
    err = capsys.readouterr().err
    assert code == 2 and "optim.lr: 0.006 -> 0.5" in err and "model.channels" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    # what may change between a run and its continuation: stopping point, logging, data location
    t = Trainer(load_config(CFG, tiny_overrides(small_caches, tmp_path, **dict(common, **{
        "train.max_steps": 3, "train.log_every": 7, "data.num_workers": 1}))))
    assert t.step == 1


def test_removed_ignore_index_key_says_why(tmp_path, capsys) -> None:
    assert train_cli.main(["--cfg", str(CFG), "loss.ignore_index=255"]) == 2
    assert "was removed" in capsys.readouterr().err
    stored = {"loss": {"ignore_index": -1, "class_weights": "none"}}  # an older checkpoint's config
    assert load_config(stored).loss.class_weights == "none"
