"""``python -m pcseg.viz PLY [PLY ...]``: look at prediction/error PLY files in an Open3D window.

Open3D is a large optional dependency (the ``viz`` extra), so it is imported only here,
only when a window is actually opened; any other mesh viewer reads the same files.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import ModuleType

INSTALL_HINT = 'pip install -e ".[viz]"'


def load_open3d() -> ModuleType | None:
    """The open3d module, or None (with an install hint on stderr) when it is not installed."""
    try:
        import open3d
    except ImportError:
        print(f"error: viewing needs open3d, which is not installed: {INSTALL_HINT}\n"
              "(or open the PLY files in any mesh viewer, e.g. MeshLab or Blender)", file=sys.stderr)
        return None
    return open3d


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pcseg.viz", description=__doc__)
    p.add_argument("ply", nargs="+", type=Path, help="PLY files written by pcseg.test --save-ply")
    p.add_argument("--points", action="store_true", help="show vertices as points even when faces exist")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [str(p) for p in args.ply if not p.is_file()]
    if missing:
        print(f"error: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    o3d = load_open3d()
    if o3d is None:
        return 2
    geometries = []
    for path in args.ply:
        mesh = None if args.points else o3d.io.read_triangle_mesh(str(path))
        if mesh is not None and len(mesh.triangles) > 0:
            mesh.compute_vertex_normals()
            geometries.append(mesh)
        else:
            geometries.append(o3d.io.read_point_cloud(str(path)))
    o3d.visualization.draw_geometries(geometries, window_name=" | ".join(p.name for p in args.ply))
    return 0


if __name__ == "__main__":
    sys.exit(main())
