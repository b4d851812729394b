"""Loading a checkpoint never runs code: a crafted ``.pth`` whose unpickling would create a marker
file is refused, naming the file and the type, by every entry point that reads checkpoints."""
from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from pcseg import analyze as analyze_cli
from pcseg import convert as convert_cli
from pcseg import test as test_cli
from pcseg import train as train_cli
from pcseg.engine.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from pcseg.engine.load import load_segmentor
from tests.conftest import REPO, tiny_overrides

CFG = REPO / "configs" / "synthetic_base.yaml"


class _Payload:
    """Unpickling this calls ``io.open(marker, "w")``: a stand-in for any code a file could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def crafted(path: Path, marker: Path, pointcept: bool = False) -> Path:
    """A checkpoint that looks ordinary (weights, config) but carries the payload."""
    body = {"state_dict": {"module.backbone.x": torch.zeros(1)}} if pointcept else {
        "model": {"head.weight": torch.zeros(2, 2)}, "config": {"seed": 0}}
    body["extra"] = _Payload(marker)
    torch.save(body, path)
    return path


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "MARKER"
    return crafted(tmp_path / "model_best.pth", marker), marker


def _refused(capsys, marker: Path, path: Path) -> None:
    err = capsys.readouterr().err
    assert not marker.exists(), "the checkpoint's code ran"
    assert str(path) in err and "io.open" in err and "refused" in err, err
    assert "Traceback" not in err


def test_load_checkpoint_refuses_code_and_names_the_type(evil) -> None:
    path, marker = evil
    with pytest.raises(CheckpointError, match=r"io\.open") as exc:
        load_checkpoint(path)
    assert str(path) in str(exc.value)
    assert not marker.exists()


def test_pcseg_test_refuses(evil, capsys) -> None:
    path, marker = evil
    assert test_cli.main(["--ckpt", str(path)]) == 2
    _refused(capsys, marker, path)


def test_pcseg_analyze_refuses(evil, capsys) -> None:
    path, marker = evil
    assert analyze_cli.main(["--ckpt", str(path)]) == 2
    _refused(capsys, marker, path)


def test_pcseg_convert_refuses_without_an_unsafe_retry(tmp_path, capsys) -> None:
    marker = tmp_path / "MARKER"
    src = crafted(tmp_path / "pointcept.pth", marker, pointcept=True)
    out = tmp_path / "out.pth"
    assert convert_cli.main([str(src), str(out), "--cfg", str(REPO / "configs" / "synthetic_ptv3.yaml")]) == 2
    _refused(capsys, marker, src)
    assert not out.exists()


def test_load_segmentor_refuses(evil) -> None:
    path, marker = evil
    with pytest.raises(CheckpointError, match="refused"):
        load_segmentor(path)
    assert not marker.exists()


def test_train_init_from_refuses(evil, small_caches, tmp_path, capsys) -> None:
    path, marker = evil
    out = tmp_path / "run"
    code = train_cli.main(["--cfg", str(CFG), *tiny_overrides(small_caches, out, **{"train.init_from": path})])
    assert code == 2
    _refused(capsys, marker, path)


def test_resume_refuses_a_crafted_last_pth(small_caches, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    marker = tmp_path / "MARKER"
    last = crafted(out / "last.pth", marker)
    assert train_cli.main(["--cfg", str(CFG), *tiny_overrides(small_caches, out)]) == 2
    _refused(capsys, marker, last)


def test_truncated_last_pth_is_a_usage_error(small_caches, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    good = tmp_path / "good.pth"
    save_checkpoint(good, {"model": {}, "rng": rng_state()})
    (out / "last.pth").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert train_cli.main(["--cfg", str(CFG), *tiny_overrides(small_caches, out)]) == 2
    err = capsys.readouterr().err
    assert "last.pth" in err and "truncated" in err and "Traceback" not in err


def test_what_pcseg_saves_loads_safely_and_restores_the_rngs(tmp_path) -> None:
    """New checkpoints hold only types the safe loader takes; the RNG states round-trip."""
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    path = tmp_path / "c.pth"
    save_checkpoint(path, {"rng": rng_state()})
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(load_checkpoint(path)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_checkpoints_of_earlier_versions_still_load(tmp_path) -> None:
    """Earlier pcseg stored numpy's RNG state as an ndarray: that (and only that) is allow-listed."""
    np.random.seed(5)
    legacy = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    path = tmp_path / "old.pth"
    torch.save({"rng": legacy, "step": 3}, path)
    expected = np.random.rand()
    set_rng_state(load_checkpoint(path)["rng"])
    assert np.random.rand() == expected


def test_a_plain_pickle_is_not_a_checkpoint(tmp_path) -> None:
    path = tmp_path / "x.pth"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)
