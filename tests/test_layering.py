"""Nothing lower imports anything higher: functional ← layers ← models ← training ← cli.

Every ``import`` of a numcnn module (at the top of a file or inside a function) is checked
against the level of the importing module. A module may import modules of its own level or
lower. The levels, from the design notes (§2):
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import numcnn

ROOT = Path(numcnn.__file__).resolve().parent

#: top-level name inside numcnn -> level
LEVELS = {
    "_registry": 0, "_random": 0, "threads": 0,
    "functional": 1, "initializers": 1, "metrics": 1, "datasets": 1, "preprocessing": 1,
    "regularizers": 1, "utils": 1,
    "layers": 2, "losses": 2, "optimizers": 2, "schedules": 2,
    "models": 3, "filters": 3,
    "training": 4, "io": 4, "onnx": 4,
    "cli": 5, "benchmark": 5, "__main__": 5, "serve": 5, "viz": 5,
}


def _top(module: str) -> str:
    """``numcnn.models.graph`` -> ``models``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every numcnn import in ``source`` (relative imports
    resolved against ``module``)."""
    out = []
    package = module if is_package else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("numcnn")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("numcnn"):
                continue
            if node.module is None or target == "numcnn":  # "from . import x", "from .. import x"
                out += [(node.lineno, f"{target}.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, target))
    return out


def violations(source: str, module: str, is_package: bool) -> list[str]:
    own = _top(module)
    if own not in LEVELS:
        return [f"{module}: not assigned a level in tests/test_layering.py"]
    bad = []
    for line, target in imported_modules(source, module, is_package):
        top = _top(target)
        if top and top in LEVELS and LEVELS[top] > LEVELS[own]:
            bad.append(f"{module}:{line} imports {target} (level {LEVELS[top]} > "
                       f"{own}'s {LEVELS[own]})")
    return bad


FILES = sorted(p for p in ROOT.rglob("*.py") if p.name != "__init__.py" or p.parent != ROOT)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_a_higher_layer(path):
    module = _module_name(path)
    assert violations(path.read_text(encoding="utf-8"), module,
                      path.name == "__init__.py") == []


def test_the_check_catches_an_upward_import():
    assert violations("from ..models import Model\n", "numcnn.functional.conv", False)
    assert violations("def f():\n    from numcnn.training import Trainer\n",
                      "numcnn.layers.base", False)
    assert violations("from .. import training\n", "numcnn.models.model", False)
    assert not violations("from ..layers.base import Layer\n", "numcnn.models.graph", False)


def test_every_top_level_module_has_a_level():
    names = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir()
                                                                 and (p / "__init__.py").exists())}
    assert names <= set(LEVELS), f"modules without a level: {sorted(names - set(LEVELS))}"
