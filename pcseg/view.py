"""``python -m pcseg.view SCENE [--pred FILE] [--out OUT.html]``: one scene as a self-contained web page.

SCENE is a cache scene folder written by ``data_prep`` (``<root>/<split>/<scene>``). The page
shows the ground truth, and with ``--pred`` the prediction and its errors:

* a submission label file (``<scene>.txt``: one benchmark id per vertex, as ``pcseg.test
  --submit`` writes and the ScanNet benchmark reads), or
* a prediction PLY of ``pcseg.test --save-ply`` (``<scene>_pred.ply``: the class colours).

Open the page in any browser, from disk: it needs no network and no install (see
:mod:`pcseg.eval.scene_html`). ``#mode=pred``, ``#mode=gt`` or ``#mode=error`` in the
address picks the colouring.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from pcseg.data.classes import ClassTable


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pcseg.view", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scene", type=Path, help="cache scene folder, e.g. data/scannet200/val/scene0011_00")
    p.add_argument("--pred", type=Path, default=None,
                   help="prediction: submission .txt (benchmark ids) or a --save-ply <scene>_pred.ply")
    p.add_argument("--label-set", default="segment200", help="segment200 (default) or segment20")
    p.add_argument("--out", type=Path, default=None, help="page to write (default: <scene>.html here)")
    return p.parse_args(argv)


def read_submission(path: Path, table: ClassTable, n: int) -> np.ndarray:
    """Class index per vertex from a benchmark label file; unknown ids are an error naming them."""
    try:
        ids = np.loadtxt(path, dtype=np.int64, ndmin=1)
    except ValueError as exc:
        raise ValueError(f"{path}: not one integer id per line ({exc})") from None
    if ids.shape != (n,):
        raise ValueError(f"{path} has {ids.size} labels for the scene's {n} vertices")
    lut = table.id_to_index(int(ids.max()) if ids.size else 0)
    index = np.where(ids >= 0, lut[np.clip(ids, 0, None)], -1).astype(np.int64)
    unknown = np.unique(ids[index < 0])
    if unknown.size:
        raise ValueError(f"{path}: ids {unknown[:10].tolist()} are not {table.name} benchmark ids "
                         f"(a file for another label set? pass --label-set)")
    return index


def read_prediction_ply(path: Path, table: ClassTable, n: int) -> np.ndarray:
    """Class index per vertex from a ``--save-ply`` prediction mesh: its colours are the classes'."""
    from plyfile import PlyData

    from pcseg.eval.ply_export import UNLABELLED

    try:
        vertex = PlyData.read(str(path))["vertex"]
        rgb = np.stack([np.asarray(vertex[c], dtype=np.int64) for c in ("red", "green", "blue")], 1)
    except (KeyError, ValueError, OSError) as exc:
        raise ValueError(f"{path}: not a PLY with vertex colours ({exc})") from None
    if rgb.shape[0] != n:
        raise ValueError(f"{path} has {rgb.shape[0]} vertices, the scene {n}")
    key = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    colors = table.colors.astype(np.int64)
    palette = {int(k): i for i, k in enumerate((colors[:, 0] << 16) | (colors[:, 1] << 8) | colors[:, 2])}
    none = (UNLABELLED[0] << 16) | (UNLABELLED[1] << 8) | UNLABELLED[2]
    colours, inverse = np.unique(key, return_inverse=True)
    out = np.array([palette.get(int(k), -1 if k == none else -2) for k in colours], dtype=np.int64)[inverse]
    if (out == -2).any():
        raise ValueError(f"{path}: {int((out == -2).sum())} vertices have colours outside the {table.name} palette "
                         "(an _error.ply, or a mesh coloured by something else? pass the <scene>_pred.ply)")
    return out


def load_cache_scene(scene: Path, label_set: str) -> dict:
    """The arrays of one cache scene folder, labels mapped to ``label_set``."""
    from pcseg.data.dataset import SceneCacheDataset

    scene = scene.resolve()
    if not scene.is_dir():
        raise FileNotFoundError(f"{scene} is not a cache scene folder (expected <root>/<split>/<scene>)")
    ds = SceneCacheDataset(scene.parent.parent, scene.parent.name, label_set=label_set)
    if scene.name not in ds.names:
        raise FileNotFoundError(f"{scene} is not a scene of {ds.root / ds.split} (scenes there: "
                                f"{', '.join(ds.names[:5])}{' ...' if len(ds.names) > 5 else ''})")
    return ds.load_scene(ds.names.index(scene.name))


def main(argv: list[str] | None = None) -> int:
    from pcseg.data.classes import table as class_table
    from pcseg.eval.scene_html import write_scene_html

    args = parse_args(argv)
    try:
        table = class_table(args.label_set)
        data = load_cache_scene(args.scene, args.label_set)
        n = int(data["coord"].shape[0])
        pred = None
        if args.pred is not None:
            if not args.pred.is_file():
                raise FileNotFoundError(f"--pred {args.pred} not found")
            reader = read_prediction_ply if args.pred.suffix.lower() == ".ply" else read_submission
            pred = reader(args.pred, table, n)
        out = args.out or Path(f"{args.scene.resolve().name}.html")
        if out.is_dir():
            out = out / f"{args.scene.resolve().name}.html"
        write_scene_html(out, data["coord"], table, data.get("segment"), pred, scene=args.scene.resolve().name)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print(f"error: {exc}\nnothing was written", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {n} points): open it in a browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
