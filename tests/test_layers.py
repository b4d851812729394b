"""The package's layers: data, models, nc, eval and utils sit below the engine and never import it,
so a model or a metric can be used (and tested) without the trainer's configuration machinery."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "pcseg"
LOWER = ("data", "models", "nc", "eval", "utils")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the file's package
                parts = list(path.relative_to(PKG.parent).with_suffix("").parts)[: -node.level]
                base = ".".join(parts + ([base] if base else []))
            names += [base] + [f"{base}.{a.name}" for a in node.names]
    return names


@pytest.mark.parametrize("layer", LOWER)
def test_lower_layers_do_not_import_the_engine(layer: str) -> None:
    bad = [f"{p.relative_to(PKG.parent)}: {name}" for p in sorted((PKG / layer).rglob("*.py"))
           for name in _imports(p) if name == "pcseg.engine" or name.startswith("pcseg.engine.")]
    assert not bad, "lower layer imports the engine:\n" + "\n".join(bad)
