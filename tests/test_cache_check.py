"""Malformed scene caches are refused with the scene folder, the file and the fix; hidden or
badly named folders are never scenes."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from pcseg.data.cache_check import SceneDataError
from pcseg.data.dataset import SceneCacheDataset
from pcseg.data.loader import build_loader
from tests.test_dataset import write_scene

N = 200


def _scene(root: Path, name: str = "scene0000_00") -> Path:
    folder = root / "train" / name
    write_scene(folder, N, seed=0)
    return folder


def _transposed(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.T)


def _object_array(a: np.ndarray) -> np.ndarray:
    out = np.empty(len(a), dtype=object)
    out[:] = [tuple(r) for r in a]
    return out


BAD_HEADERS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray], str]] = {
    "transposed coord": ("coord", _transposed, "shape (3, 200)"),
    "4-channel colour": ("color", lambda a: np.c_[a, a[:, :1]], "shape (200, 4), expected (N, 3)"),
    "int16 normal": ("normal", lambda a: a.astype(np.int16), "dtype int16, expected float"),
    "pickled normal": ("normal", _object_array, "cannot be read"),
    "float labels": ("segment200", lambda a: np.full(len(a), -0.5), "dtype float64, expected integer"),
    "2-D labels": ("segment200", lambda a: a.reshape(-1, 2), "expected (N,)"),
    "short instance": ("instance", lambda a: a[:-1], "199 rows for the 200 points"),
}


@pytest.mark.parametrize("case", list(BAD_HEADERS))
def test_malformed_array_is_refused_when_the_dataset_is_built(tmp_path: Path, case: str) -> None:
    key, change, what = BAD_HEADERS[case]
    _scene(tmp_path, "scene0001_00")
    scene = _scene(tmp_path)
    np.save(scene / f"{key}.npy", change(np.load(scene / f"{key}.npy")), allow_pickle=True)
    with pytest.raises(SceneDataError) as err:
        SceneCacheDataset(tmp_path, "train", with_instance=True)
    msg = str(err.value)
    assert f"scene folder {scene}: {key}.npy" in msg and what in msg, msg
    assert "--force" in msg and str(tmp_path) in msg


def test_truncated_file_is_refused_when_the_dataset_is_built(tmp_path: Path) -> None:
    scene = _scene(tmp_path)
    data = (scene / "normal.npy").read_bytes()
    (scene / "normal.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(SceneDataError, match="normal.npy cannot be read"):
        SceneCacheDataset(tmp_path, "train")


BAD_VALUES: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray], str]] = {
    "NaN coordinate": ("coord", lambda a: _set(a, (17, 1), np.nan),
                       "NaN or infinite values in 1 point(s) (first: row 17)"),
    "beyond float32": ("coord", lambda a: _set(a.astype(np.float64), (3, 0), 1e39), "(first: row 3)"),
    "inf colour": ("color", lambda a: _set(a.astype(np.float32), (9, 2), np.inf), "(first: row 9)"),
    "NaN normal": ("normal", lambda a: _set(a, (0, 0), np.nan), "(first: row 0)"),
    "label past the set": ("segment200", lambda a: np.full(len(a), 2**64 - 1, dtype=np.uint64), "200 classes"),
    "transposed after start-up": ("coord", _transposed, "shape (3, 200)"),
}


def _set(a: np.ndarray, at: tuple[int, int], value: float) -> np.ndarray:
    a = a.copy()
    a[at] = value
    return a


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_bad_values_are_refused_when_loaded(tmp_path: Path, case: str) -> None:
    key, change, what = BAD_VALUES[case]
    scene = _scene(tmp_path)
    ds = SceneCacheDataset(tmp_path, "train")  # values are read (and checked) per item, not at start-up
    np.save(scene / f"{key}.npy", change(np.load(scene / f"{key}.npy")))
    with pytest.raises(SceneDataError) as err:
        ds[0]
    msg = str(err.value)
    assert f"scene folder {scene}: {key}.npy" in msg and what in msg and "--force" in msg, msg


def test_worker_error_reaches_the_main_process_as_scene_data_error(tmp_path: Path) -> None:
    scene = _scene(tmp_path)
    ds = SceneCacheDataset(tmp_path, "train")
    np.save(scene / "coord.npy", _set(np.load(scene / "coord.npy"), (5, 2), np.nan))
    loader = build_loader(ds, batch_size=1, shuffle=False, num_workers=1, seed=0)
    try:
        with pytest.raises(SceneDataError, match="coord.npy has NaN"):  # re-raised as SceneDataError(message)
            next(iter(loader))
    finally:
        del loader


def test_hidden_and_badly_named_folders_are_not_scenes(tmp_path: Path) -> None:
    scene = _scene(tmp_path)
    shutil.copytree(scene, tmp_path / "train" / ".scene0000_00.old-4242")  # an interrupted replacement
    shutil.copytree(scene, tmp_path / "train" / ".scene0000_00.tmp-4243")
    shutil.copytree(scene, tmp_path / "train" / "scene 0000")
    (tmp_path / "train" / "notes.txt").write_text("not a scene")
    ds = SceneCacheDataset(tmp_path, "train")
    assert ds.names == ["scene0000_00"] and len(ds) == 1


def test_scene_folder_without_coord_is_named(tmp_path: Path) -> None:
    scene = _scene(tmp_path)
    (scene / "coord.npy").unlink()
    with pytest.raises(FileNotFoundError) as err:
        SceneCacheDataset(tmp_path, "train")
    assert isinstance(err.value, SceneDataError) and f"scene folder {scene}: missing coord.npy" in str(err.value)


@pytest.mark.parametrize("cli", ["test", "analyze"])
def test_evaluation_names_a_scene_with_bad_values(cli, small_caches, tmp_path, capsys) -> None:
    """pcseg.test and pcseg.analyze meet the NaN only when they load the scene: one message
    naming scene and file, exit 2, no traceback."""
    from pcseg import analyze as analyze_cli
    from pcseg import test as test_cli
    from pcseg.engine.config import load_config
    from pcseg.engine.trainer import Trainer
    from tests.conftest import REPO, tiny_overrides

    data = tmp_path / "caches"
    shutil.copytree(small_caches, data)
    run = tmp_path / "run"
    Trainer(load_config(REPO / "configs" / "synthetic_base.yaml", tiny_overrides(
        data, run, **{"train.max_steps": 1, "train.eval_every": 0}))).fit()
    scene = sorted(p for p in (data / "val").iterdir() if p.is_dir())[0]
    coord = np.load(scene / "coord.npy")
    coord[3, 0] = np.inf
    np.save(scene / "coord.npy", coord)
    capsys.readouterr()
    main = test_cli.main if cli == "test" else analyze_cli.main
    assert main(["--ckpt", str(run / "last.pth"), "--split", "val"]) == 2
    err = capsys.readouterr().err
    assert scene.name in err and "coord.npy" in err and "Traceback" not in err, err
