"""Scene caches -> dataset items -> collated batches -> loaders."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pcseg.data.collate import collate
from pcseg.data.dataset import SceneCacheDataset
from pcseg.data.loader import SceneLoader, build_loader
from pcseg.data.transforms import default_train_transforms, default_val_transforms

GRID = 0.05


def write_scene(folder: Path, n: int, seed: int, *, color_dtype: type = np.uint8,
                label_dtype: type = np.int16, labels: bool = True) -> dict[str, np.ndarray]:
    """One cache scene of ``n`` points on a few planes, in the given on-disk dtypes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    coord = rng.uniform(0, 3, (n, 3)).astype(np.float32)
    coord[: n // 2, 2] = 0.0  # a floor, so voxels hold several points
    normal = rng.normal(size=(n, 3)).astype(np.float32)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    arrays = {
        "coord": coord,
        "color": rng.integers(0, 256, (n, 3)).astype(color_dtype),
        "normal": normal,
    }
    if labels:
        arrays["segment200"] = rng.integers(-1, 200, n).astype(label_dtype)
        arrays["segment20"] = rng.integers(-1, 20, n).astype(label_dtype)
        arrays["instance"] = rng.integers(-1, 10, n).astype(np.int32)
    for key, value in arrays.items():
        np.save(folder / f"{key}.npy", value)
    return arrays


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cache")
    for i in range(5):
        write_scene(root / "train" / f"scene{i:04d}_00", 1500 + 200 * i, seed=i)
    for i in range(2):
        write_scene(root / "val" / f"scene{100 + i:04d}_00", 1200, seed=100 + i)
    write_scene(root / "test" / "scene0707_00", 900, seed=7, labels=False)
    (root / "manifest.json").write_text("{}")
    return root


def test_lists_sorted_scenes_and_loads_arrays(cache: Path) -> None:
    ds = SceneCacheDataset(cache, "train")
    assert len(ds) == 5 and ds.names == sorted(ds.names) and ds.names[0] == "scene0000_00"
    item = ds[1]
    assert item["name"] == "scene0001_00"
    assert item["coord"].dtype == np.float32 and item["coord"].shape == (1700, 3)
    assert item["color"].dtype == np.float32 and item["normal"].shape == (1700, 3)
    assert item["segment"].dtype == np.int64
    np.testing.assert_array_equal(item["segment"], np.load(cache / "train/scene0001_00/segment200.npy"))
    assert len(SceneCacheDataset(cache, "train", loop=3)) == 15


def test_label_set_choice(cache: Path) -> None:
    seg20 = SceneCacheDataset(cache, "train", label_set="segment20")[0]["segment"]
    np.testing.assert_array_equal(seg20, np.load(cache / "train/scene0000_00/segment20.npy"))
    assert seg20.max() < 20
    with pytest.raises(ValueError, match="segment200"):
        SceneCacheDataset(cache, "train", label_set="nyu40")


def test_missing_cache_messages(tmp_path: Path, cache: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as err:
        SceneCacheDataset(missing, "train")
    assert "data_prep/scannet200.py" in str(err.value) and str(missing) in str(err.value)
    assert "data_prep/synthetic.py" in str(err.value)
    with pytest.raises(FileNotFoundError) as err:
        SceneCacheDataset(cache, "val2")
    assert str(cache / "val2") in str(err.value) and "data_prep/scannet200.py" in str(err.value)
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="coord.npy"):
        SceneCacheDataset(tmp_path / "empty", "train")


def test_missing_labels_error_in_labelled_split_and_ignore_fill_in_test(tmp_path: Path, cache: Path) -> None:
    write_scene(tmp_path / "train" / "scene0001_00", 300, seed=1, labels=False)
    with pytest.raises(FileNotFoundError, match="segment200.npy"):  # refused when built, not mid-training
        SceneCacheDataset(tmp_path, "train")
    test_item = SceneCacheDataset(cache, "test")[0]
    assert (test_item["segment"] == -1).all() and len(test_item["segment"]) == 900


@pytest.mark.parametrize("color_dtype,label_dtype", [(np.float32, np.int32), (np.float64, np.int64),
                                                      (np.uint8, np.int16)])
def test_pointcept_style_dtypes(tmp_path: Path, color_dtype: type, label_dtype: type) -> None:
    raw = write_scene(tmp_path / "val" / "scene0000_00", 400, seed=0,
                      color_dtype=color_dtype, label_dtype=label_dtype)
    item = SceneCacheDataset(tmp_path, "val", transforms=default_val_transforms(GRID))[0]
    assert item["feat"].dtype == np.float32 and item["feat"].shape[1] == 9
    assert item["segment"].dtype == np.int64
    np.testing.assert_array_equal(item["origin_segment"], raw["segment200"].astype(np.int64))


def test_out_of_range_label_is_rejected(tmp_path: Path) -> None:
    write_scene(tmp_path / "train" / "scene0000_00", 100, seed=0)
    np.save(tmp_path / "train/scene0000_00/segment20.npy", np.full(100, 25, dtype=np.int16))
    with pytest.raises(ValueError, match="20 classes"):
        SceneCacheDataset(tmp_path, "train", label_set="segment20")[0]


def test_epochs_change_augmentation_reproducibly(cache: Path) -> None:
    recipe = default_train_transforms(grid_size=GRID, point_max=800)
    a = SceneCacheDataset(cache, "train", transforms=recipe, seed=5)
    b = SceneCacheDataset(cache, "train", transforms=recipe, seed=5)
    first = a[2]["feat"]
    np.testing.assert_array_equal(first, b[2]["feat"])
    a.set_epoch(1)
    assert a.epoch == 1
    second = a[2]["feat"]
    assert first.shape != second.shape or not np.array_equal(first, second)
    b.set_epoch(1)
    np.testing.assert_array_equal(second, b[2]["feat"])
    looped = SceneCacheDataset(cache, "train", transforms=recipe, seed=5, loop=2)
    one, two = looped[2]["feat"], looped[7]["feat"]  # the same scene, a different draw
    assert one.shape != two.shape or not np.array_equal(one, two)


def test_collate_offsets_batch_and_inverse(cache: Path) -> None:
    ds = SceneCacheDataset(cache, "val", transforms=default_val_transforms(GRID))
    samples = [ds[0], ds[1]]
    batch = collate(samples)
    counts = [len(s["grid_coord"]) for s in samples]
    assert batch["offset"].tolist() == [counts[0], counts[0] + counts[1]]
    assert batch["batch"].tolist() == [0] * counts[0] + [1] * counts[1]
    assert batch["grid_coord"].dtype == torch.int32 and batch["grid_coord"].shape == (sum(counts), 3)
    assert batch["feat"].dtype == torch.float32 and batch["feat"].shape == (sum(counts), 9)
    assert batch["segment"].dtype == torch.int64 and batch["offset"].dtype == torch.int64
    assert batch["name"] == ["scene0100_00", "scene0101_00"]
    assert batch["num_points"].tolist() == [1200, 1200]
    inverse = batch["inverse"]
    assert inverse.dtype == torch.int64 and inverse.shape == (2400,)
    # Every vertex indexes a row of its own scene holding its own voxel.
    assert (batch["batch"][inverse] == torch.repeat_interleave(torch.arange(2), torch.tensor([1200, 1200]))).all()
    for i, sample in enumerate(samples):
        rows = inverse[i * 1200:(i + 1) * 1200]
        np.testing.assert_array_equal(batch["grid_coord"][rows].numpy(), sample["grid_coord"][sample["inverse"]])
    assert batch["origin_segment"].shape == (2400,)


def test_collate_train_batch_has_no_inverse(cache: Path) -> None:
    ds = SceneCacheDataset(cache, "train", transforms=default_train_transforms(GRID, 1000))
    batch = collate([ds[0], ds[3]])
    assert "inverse" not in batch and "num_points" not in batch
    assert batch["offset"][-1].item() == batch["feat"].shape[0] == batch["batch"].shape[0]
    with pytest.raises(KeyError, match="grid_coord"):
        collate([{"feat": np.zeros((2, 9), np.float32)}])


def _epochs(loader: SceneLoader, epochs: int) -> list[tuple[list[str], torch.Tensor]]:
    seen = []
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        seen += [(batch["name"], batch["feat"]) for batch in loader]
    return seen


def test_loader_with_workers_is_reproducible(cache: Path) -> None:
    def run() -> list[tuple[list[str], torch.Tensor]]:
        ds = SceneCacheDataset(cache, "train", transforms=default_train_transforms(GRID, 800), seed=1)
        loader = build_loader(ds, batch_size=2, shuffle=True, num_workers=2, seed=3)
        assert loader.pin_memory == torch.cuda.is_available()
        try:
            return _epochs(loader, 2)
        finally:
            del loader

    first, second = run(), run()
    assert [names for names, _ in first] == [names for names, _ in second]
    for (_, a), (_, b) in zip(first, second):
        assert torch.equal(a, b)
    assert sorted(n for names, _ in first for n in names) == sorted(2 * [f"scene{i:04d}_00" for i in range(5)])


def test_set_epoch_reaches_persistent_workers(cache: Path) -> None:
    ds = SceneCacheDataset(cache, "train", transforms=default_train_transforms(GRID, 800), seed=1)
    loader = build_loader(ds, batch_size=1, shuffle=False, num_workers=2, seed=3)
    seen = _epochs(loader, 2)
    for epoch in range(2):
        ds.set_epoch(epoch)
        for i in range(5):
            names, feat = seen[epoch * 5 + i]
            assert names == [ds.names[i]]
            assert torch.equal(feat, torch.from_numpy(ds[i]["feat"]))  # what the main process computes
    assert not any(torch.equal(seen[i][1], seen[5 + i][1]) for i in range(5))


def test_loader_same_in_process_and_with_workers(cache: Path) -> None:
    ds = SceneCacheDataset(cache, "train", transforms=default_train_transforms(GRID, 800), seed=1)
    inline = _epochs(build_loader(ds, batch_size=2, shuffle=True, num_workers=0, seed=3), 1)
    workers = _epochs(build_loader(ds, batch_size=2, shuffle=True, num_workers=2, seed=3), 1)
    for (na, a), (nb, b) in zip(inline, workers):
        assert na == nb and torch.equal(a, b)


def test_distributed_sampler(cache: Path) -> None:
    import torch.distributed as dist

    ds = SceneCacheDataset(cache, "val", transforms=default_val_transforms(GRID))
    with pytest.raises(RuntimeError, match="process group"):
        build_loader(ds, batch_size=1, shuffle=False, num_workers=0, seed=0, distributed=True)
    with tempfile.TemporaryDirectory() as tmp:
        dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=0, world_size=1)
        try:
            loader = build_loader(ds, batch_size=1, shuffle=True, num_workers=0, seed=0, distributed=True)
            assert isinstance(loader.sampler, torch.utils.data.DistributedSampler)
            loader.set_epoch(3)
            assert loader.sampler.epoch == 3
            assert sorted(n for b in loader for n in b["name"]) == ds.names
        finally:
            dist.destroy_process_group()
