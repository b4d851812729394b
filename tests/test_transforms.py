"""Invariants of the point-cloud transforms, their config builder and their speed."""
from __future__ import annotations

import time

import numpy as np
import pytest

from pcseg.data import transforms as T


def room(n: int = 6000, seed: int = 0) -> dict[str, np.ndarray]:
    """A scan-like scene: points on the floor, four walls and a table top."""
    rng = np.random.default_rng(seed)
    length, width, height = 7.0, 5.5, 2.8
    parts, normals = [], []
    k = n // 6
    parts.append(np.c_[rng.uniform(0, length, k), rng.uniform(0, width, k), np.zeros(k)])
    normals.append(np.tile([0.0, 0.0, 1.0], (k, 1)))
    for fixed_axis, value, normal in ((1, 0.0, [0, 1, 0]), (1, width, [0, -1, 0]),
                                      (0, 0.0, [1, 0, 0]), (0, length, [-1, 0, 0])):
        p = np.c_[rng.uniform(0, length, k), rng.uniform(0, width, k), rng.uniform(0, height, k)]
        p[:, fixed_axis] = value
        parts.append(p)
        normals.append(np.tile(np.asarray(normal, dtype=float), (k, 1)))
    m = n - 5 * k
    parts.append(np.c_[rng.uniform(2, 4, m), rng.uniform(1, 3, m), np.full(m, 0.75)])
    normals.append(np.tile([0.0, 0.0, 1.0], (m, 1)))
    coord = np.concatenate(parts).astype(np.float32) + np.float32([3.0, -2.0, 0.5])
    return {
        "coord": coord,
        "color": rng.integers(0, 256, (n, 3)).astype(np.float32),
        "normal": np.concatenate(normals).astype(np.float32),
        "segment": rng.integers(-1, 200, n).astype(np.int64),
        "point_id": np.arange(n),  # travels with the points: checks every array stays aligned
    }


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_center_shift() -> None:
    out = T.CenterShift(apply_z=True)(room(), rng())
    lo, hi = out["coord"].min(0), out["coord"].max(0)
    np.testing.assert_allclose((lo[:2] + hi[:2]) / 2, 0, atol=1e-5)
    assert abs(lo[2]) < 1e-6
    data = room()
    out = T.CenterShift(apply_z=False)(dict(data), rng())
    np.testing.assert_allclose(out["coord"][:, 2], data["coord"][:, 2])


def test_rotate_z_keeps_labels_norms_and_height_and_turns_normals() -> None:
    data = T.CenterShift()(room(), rng())
    out = T.RandomRotate(angle=[-1, 1], axis="z", center=[0, 0, 0], p=1.0)(dict(data), rng(3))
    np.testing.assert_array_equal(out["segment"], data["segment"])
    np.testing.assert_allclose(out["coord"][:, 2], data["coord"][:, 2], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out["coord"][:, :2], axis=1),
                               np.linalg.norm(data["coord"][:, :2], axis=1), rtol=1e-5, atol=1e-5)
    # The rigid map fitted to the points must also carry the normals.
    rot, *_ = np.linalg.lstsq(data["coord"].astype(np.float64), out["coord"].astype(np.float64), rcond=None)
    assert not np.allclose(rot, np.eye(3), atol=1e-3)
    np.testing.assert_allclose(data["normal"] @ rot, out["normal"], atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(out["normal"], axis=1), 1, atol=1e-5)


def test_small_tilt_about_x_and_y() -> None:
    data = room()
    for axis in ("x", "y"):
        out = T.RandomRotate(angle=[-1 / 64, 1 / 64], axis=axis, p=1.0)(dict(data), rng(1))
        cos = np.sum(out["normal"] * data["normal"], axis=1)
        assert cos.min() >= np.cos(np.pi / 64) - 1e-5
        idx = "xyz".index(axis)
        np.testing.assert_allclose(out["coord"][:, idx], data["coord"][:, idx], atol=1e-5)


def test_rotate_p_zero_is_identity() -> None:
    data = room()
    out = T.RandomRotate(p=0.0)(dict(data), rng())
    np.testing.assert_array_equal(out["coord"], data["coord"])


def test_flip_keeps_unit_normals() -> None:
    data = room()
    out = T.RandomFlip(p=1.0)(dict(data), rng())
    np.testing.assert_allclose(out["coord"], data["coord"] * [-1, -1, 1])
    np.testing.assert_allclose(out["normal"], data["normal"] * [-1, -1, 1])
    np.testing.assert_allclose(np.linalg.norm(out["normal"], axis=1), 1, atol=1e-6)


def test_scale_scales_distances() -> None:
    data = room(500)
    out = T.RandomScale(scale=[0.9, 1.1])(dict(data), rng(2))
    d_in = np.linalg.norm(data["coord"][1:] - data["coord"][:-1], axis=1)
    d_out = np.linalg.norm(out["coord"][1:] - out["coord"][:-1], axis=1)
    ratio = d_out / d_in
    assert 0.9 <= ratio.mean() <= 1.1
    np.testing.assert_allclose(ratio, ratio.mean(), rtol=1e-4)


def test_anisotropic_scale_keeps_normals_unit_and_perpendicular() -> None:
    data = room(600)
    out = T.RandomScale(scale=[0.5, 2.0], anisotropic=True)(dict(data), rng(4))
    np.testing.assert_allclose(np.linalg.norm(out["normal"], axis=1), 1, atol=1e-5)
    floor = data["normal"][:, 2] == 1  # horizontal planes keep vertical normals
    np.testing.assert_allclose(out["normal"][floor], data["normal"][floor], atol=1e-6)


def test_jitter_is_clipped() -> None:
    data = room()
    out = T.RandomJitter(sigma=0.01, clip=0.02)(dict(data), rng())
    delta = np.abs(out["coord"] - data["coord"])
    assert delta.max() <= 0.02 + 1e-6 and delta.max() > 0


def test_dropout_keeps_arrays_aligned() -> None:
    data = room()
    out = T.RandomDropout(dropout_ratio=0.25, p=1.0)(dict(data), rng())
    ids = out["point_id"]
    assert len(ids) == int(len(data["coord"]) * 0.75)
    assert np.all(np.diff(ids) > 0)
    for key in ("coord", "color", "normal", "segment"):
        np.testing.assert_array_equal(out[key], data[key][ids])


def test_elastic_distortion_is_smooth_and_bounded() -> None:
    """Within one call, points 1 cm apart move almost together while distant points move
    differently: a smooth warp, neither per-point noise nor a rigid shift."""
    data = room()
    twins = data["coord"] + np.float32(0.01)  # a copy of every point, 1 cm away, warped in the same call
    both = np.concatenate([data["coord"], twins])
    out = T.ElasticDistortion(p=1.0)({"coord": both.copy()}, rng())["coord"]
    shift = out - both
    n = len(data["coord"])
    assert 0 < np.abs(shift).max() < 1.0
    near = np.linalg.norm(shift[:n] - shift[n:], axis=1)  # displacement difference of 1-cm pairs
    perm = rng(1).permutation(n)
    far = np.linalg.norm(shift[:n] - shift[perm], axis=1)  # ... of random pairs (metres apart)
    assert np.median(near) < 0.05 * np.median(far), (np.median(near), np.median(far))
    assert np.median(far) > 0.02  # not one rigid translation


def test_rotate_default_centre_is_the_bounding_box_centre() -> None:
    data = room()
    data["coord"] += np.float32([3.0, -2.0, 0.5])  # off the origin, so the centre matters
    out = T.RandomRotate(angle=[0.5, 0.5], axis="z", p=1.0)(dict(data), rng())  # exactly 90 degrees
    c = (data["coord"].astype(np.float64).min(0) + data["coord"].astype(np.float64).max(0)) / 2
    rel = data["coord"].astype(np.float64) - c
    expected = np.c_[-rel[:, 1], rel[:, 0], rel[:, 2]] + c
    np.testing.assert_allclose(out["coord"], expected, atol=1e-4)
    # the bounding box keeps its centre (its x and y extents swap)
    np.testing.assert_allclose((out["coord"].min(0) + out["coord"].max(0)) / 2, c, atol=1e-4)
    about_origin = T.RandomRotate(angle=[0.5, 0.5], axis="z", center=[0, 0, 0], p=1.0)(dict(data), rng())
    assert np.abs(about_origin["coord"] - out["coord"]).max() > 1.0


def test_chromatic_transforms_stay_in_range() -> None:
    data = room()
    data["color"] = data["color"] * 0.5 + 40  # a dull scan, so auto-contrast has work to do
    for transform in (T.ChromaticAutoContrast(p=1.0), T.ChromaticTranslation(p=1.0, ratio=0.2),
                      T.ChromaticJitter(p=1.0, std=0.1)):
        out = transform(dict(data), rng())
        assert out["color"].min() >= 0 and out["color"].max() <= 255
        assert not np.allclose(out["color"], data["color"])
    uint8 = dict(data, color=data["color"].astype(np.uint8))
    assert T.ChromaticJitter(p=1.0)(uint8, rng())["color"].dtype == np.float32


def test_normalize_color_range() -> None:
    data = room()
    data["color"][:2] = [[0, 0, 0], [255, 255, 255]]
    out = T.NormalizeColor()(data, rng())
    assert out["color"].dtype == np.float32
    assert out["color"].min() == -1.0 and out["color"].max() == 1.0


def _voxels(coord: np.ndarray, grid: float) -> np.ndarray:
    return np.floor(coord / grid).astype(np.int64)


def test_grid_sample_train_one_point_per_voxel() -> None:
    data = room(20000)
    out = T.GridSample(grid_size=0.05, mode="train")(dict(data), rng())
    gc = out["grid_coord"]
    assert gc.dtype == np.int32 and gc.min() >= 0
    assert len(np.unique(gc, axis=0)) == len(gc)
    full = _voxels(data["coord"], 0.05)
    assert len(gc) == len(np.unique(full, axis=0))  # every occupied voxel keeps exactly one point
    np.testing.assert_array_equal(gc, _voxels(out["coord"], 0.05) - full.min(0))
    ids = out["point_id"]
    np.testing.assert_array_equal(out["segment"], data["segment"][ids])
    other = T.GridSample(grid_size=0.05, mode="train")(dict(data), rng(1))
    assert not np.array_equal(np.sort(other["point_id"]), np.sort(ids))  # a fresh pick per seed


def test_grid_sample_test_inverse_covers_every_point() -> None:
    data = room(20000)
    out = T.GridSample(grid_size=0.05, mode="test")(dict(data), rng())
    inv, gc = out["inverse"], out["grid_coord"]
    assert inv.dtype == np.int64 and inv.shape == (len(data["coord"]),)
    assert inv.min() >= 0 and inv.max() < len(gc)
    assert len(np.unique(inv)) == len(gc)  # every kept row is some vertex's voxel
    full = _voxels(data["coord"], 0.05)
    np.testing.assert_array_equal(gc[inv], full - full.min(0))  # each vertex maps to its own voxel
    np.testing.assert_array_equal(out["origin_segment"], data["segment"])


def test_dropping_points_after_test_voxelization_raises() -> None:
    out = T.GridSample(grid_size=0.05, mode="test")(room(20000), rng())
    with pytest.raises(ValueError, match="inverse"):
        T.SphereCrop(point_max=100, mode="center")(out, rng())


def test_sphere_crop_caps_count_and_keeps_nearest() -> None:
    data = room()
    for mode in ("random", "center"):
        out = T.SphereCrop(point_max=1000, mode=mode)(dict(data), rng())
        assert len(out["coord"]) == 1000
        np.testing.assert_array_equal(out["segment"], data["segment"][out["point_id"]])
    out = T.SphereCrop(point_max=1000, mode="center")(dict(data), rng())
    center = (data["coord"].min(0) + data["coord"].max(0)) / 2
    dist = np.linalg.norm(data["coord"] - center, axis=1)
    dropped = np.setdiff1d(data["point_id"], out["point_id"])
    assert dist[out["point_id"]].max() <= dist[dropped].min() + 1e-6
    small = T.SphereCrop(point_max=10**6)(dict(data), rng())
    assert len(small["coord"]) == len(data["coord"])


def test_to_features_builds_nine_channels() -> None:
    data = T.GridSample(grid_size=0.05)(room(), rng())
    out = T.ToFeatures()(dict(data), rng())
    assert out["feat"].shape == (len(data["coord"]), 9) and out["feat"].dtype == np.float32
    np.testing.assert_allclose(out["feat"], np.c_[data["coord"], data["color"], data["normal"]])
    assert {"feat", "grid_coord", "segment", "coord"} <= set(out) and "color" not in out


def test_default_recipes_run_and_give_model_inputs() -> None:
    data = room(20000)
    train = T.build_transforms(T.default_train_transforms(grid_size=0.05, point_max=3000))(data, rng())
    assert train["feat"].shape == (3000, 9) and train["grid_coord"].min() >= 0
    assert train["segment"].dtype == np.int64 and train["grid_coord"].dtype == np.int32
    assert -1 <= train["feat"][:, 3:6].min() and train["feat"][:, 3:6].max() <= 1
    val = T.build_transforms(T.default_val_transforms(grid_size=0.05))(data, rng())
    assert val["inverse"].shape == (20000,) and val["inverse"].max() == len(val["feat"]) - 1


def test_same_seed_same_output_different_seed_different() -> None:
    data = room(20000)
    compose = T.build_transforms(T.default_train_transforms(grid_size=0.05, point_max=5000))
    a, b, c = compose(data, rng(7)), compose(data, rng(7)), compose(data, rng(8))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert a["feat"].shape != c["feat"].shape or not np.array_equal(a["feat"], c["feat"])
    np.testing.assert_array_equal(data["coord"], room(20000)["coord"])  # input left untouched


def test_build_transforms_errors() -> None:
    with pytest.raises(ValueError, match="unknown transform type 'Nope'.*GridSample"):
        T.build_transforms([{"type": "Nope"}])
    with pytest.raises(ValueError, match=r"GridSample: unknown argument.*'grid'.*grid_size, mode"):
        T.build_transforms([{"type": "GridSample", "grid": 0.02}])
    with pytest.raises(ValueError, match="GridSample: mode"):
        T.build_transforms([{"type": "GridSample", "mode": "eval"}])
    with pytest.raises(ValueError, match="RandomRotate"):
        T.build_transforms([{"type": "RandomRotate", "p": 2}])
    with pytest.raises(ValueError, match="'type'"):
        T.build_transforms([{"grid_size": 0.02}])
    assert len(T.build_transforms(None)) == 0
    assert set(T.TRANSFORMS) >= {"CenterShift", "GridSample", "SphereCrop", "ToFeatures"}


def test_build_from_omegaconf() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    cfg = omegaconf.OmegaConf.create({"t": T.default_train_transforms(grid_size=0.05, point_max=2000)})
    out = T.build_transforms(cfg.t)(room(), rng())
    assert out["feat"].shape[1] == 9


def test_default_train_speed_on_120k_points(capsys: pytest.CaptureFixture[str]) -> None:
    """Measured, not asserted: the machine running the tests may be busy."""
    data = room(120_000)
    compose = T.build_transforms(T.default_train_transforms())
    compose(data, rng(0))
    times = []
    for seed in range(5):
        start = time.perf_counter()
        out = compose(data, rng(seed))
        times.append(time.perf_counter() - start)
    assert out["feat"].shape[1] == 9
    with capsys.disabled():
        print(f"\n[timing] default train transforms, 120k points: median {np.median(times) * 1e3:.1f} ms, "
              f"min {min(times) * 1e3:.1f} ms per scene")


@pytest.mark.parametrize("cfg", [
    {"type": "GridSample", "grid_size": float("nan")},
    {"type": "RandomScale", "scale": [float("nan"), 1.1]},
    {"type": "RandomJitter", "sigma": float("nan")},
    {"type": "RandomJitter", "clip": float("inf")},
    {"type": "ElasticDistortion", "distortion_params": [[float("nan"), 0.4]]},
    {"type": "NormalizeColor", "range": [0.0, float("inf")]},
], ids=["grid", "scale", "sigma", "clip", "elastic", "color"])
def test_non_finite_transform_arguments_are_refused(cfg) -> None:
    """User-written transform lists skip the config's range table: NaN passes a `<= 0` check."""
    with pytest.raises(ValueError, match="finite"):
        T.build_transforms([cfg])
