"""Shared fixtures: small synthetic releases and their caches, built once per session."""
from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def small_release(tmp_path_factory) -> tuple[Path, dict[str, list[str]]]:
    """Six small synthetic scenes in the ScanNet release layout."""
    from pcseg.data.synthetic import write_release

    raw = tmp_path_factory.mktemp("raw")
    splits = write_release(raw, num_scenes=6, seed=3, size="small")
    return raw, splits


@pytest.fixture(scope="session")
def small_caches(small_release, tmp_path_factory) -> Path:
    """The small synthetic release converted to caches (with manifest)."""
    from pcseg.data.prep import main

    raw, _ = small_release
    out = tmp_path_factory.mktemp("caches")
    assert main(["--raw", str(raw), "--out", str(out), "--no-progress"]) == 0
    return out


def tiny_overrides(root: Path, out_dir: Path, **extra: object) -> list[str]:
    """Overrides for a seconds-long CPU training run on the small caches."""
    base = {
        "data.root": root, "out_dir": out_dir, "data.num_workers": 0, "data.grid_size": 0.1,
        "data.point_max": 4000, "model.preset": "tiny", "train.epochs": 2, "train.batch_size": 2,
        "train.eval_every": 1, "train.log_every": 1, "train.progress": False, "wandb.mode": "disabled",
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def free_port() -> int:
    """A free TCP port on loopback for a test's torch.distributed rendezvous."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_train_rank(rank: int, world: int, port: int, cfg: str, overrides: list[str], out: str) -> None:
    """One gloo DDP process (for ``torch.multiprocessing.spawn``): train ``cfg`` with ``overrides``,
    then save this rank's segmentor and center head weights and its step to ``out/rank<r>.pt``."""
    from pcseg.engine import distributed as D
    from pcseg.engine.config import load_config
    from pcseg.engine.trainer import Trainer

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = D.init_distributed("cpu")
    try:
        trainer = Trainer(load_config(cfg, overrides), info)
        trainer.fit()
        head = trainer.objective.state_dict().get("ceco", {})
        torch.save({"model": trainer.model.state_dict(), "center_head": head, "step": trainer.step},
                   Path(out) / f"rank{rank}.pt")
    finally:
        D.cleanup()


@pytest.fixture(scope="module")
def two_scene_split(small_release, tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """Split lists whose val split has two scenes, and a valid prediction text per scene."""
    from pcseg.data.classes import scannet200
    from pcseg.eval.submission import format_ids, mesh_path, ply_vertex_count

    raw, splits = small_release
    folder = tmp_path_factory.mktemp("splits")
    val = [splits["val"][0], splits["train"][0]]
    for name, scenes in (("train", splits["train"][1:]), ("val", val), ("test", splits["test"])):
        (folder / f"scannetv2_{name}.txt").write_text("".join(f"{s}\n" for s in scenes))
    rng = np.random.default_rng(0)
    texts = {s: format_ids(rng.choice(scannet200().ids, ply_vertex_count(mesh_path(raw, s, "val")))) for s in val}
    return raw, folder, texts


def write_zip(path: Path, members: dict[str, str | bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    """A zip of ``members`` (a mapping, or (name, text) pairs to allow duplicate names)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate names made on purpose
        with zipfile.ZipFile(path, "w", compression=method) as zf:
            for name, text in members.items() if isinstance(members, dict) else members:
                zf.writestr(name, text)
    return path


def checker_problems(path: Path, raw: Path, splits: Path, capsys) -> list[str]:
    """The problems of a val submission, through the CLI (exit 1, report on stderr) and the function."""
    from pcseg import submit as submit_cli
    from pcseg.eval.submission import check_submission

    assert submit_cli.main(["check", str(path), "--raw", str(raw), "--split", "val", "--splits", str(splits)]) == 1
    assert "INVALID" in capsys.readouterr().err
    return check_submission(path, raw, "val", splits).problems
