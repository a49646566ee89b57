"""Every registered piece is listed in the README (one of its names, in backticks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from numcnn import (
    initializers,
    layers,
    losses,
    optimizers,
    preprocessing,
    regularizers,
    schedules,
)

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
REGISTRIES = [losses.LOSSES, optimizers.OPTIMIZERS, schedules.SCHEDULES,
              initializers.INITIALIZERS, layers.LAYERS, preprocessing.PREPROCESSORS,
              regularizers.REGULARIZERS]


def groups(registry):
    """Names grouped by the object they resolve to (aliases together)."""
    out: dict[int, list[str]] = {}
    for name in registry.names():
        out.setdefault(id(registry.lookup(name)), []).append(name)
    return list(out.values())


CASES = [(reg.kind, names) for reg in REGISTRIES for names in groups(reg)
         if names != ["sequential"]]


@pytest.mark.parametrize("kind, names", CASES, ids=[f"{k}:{n[0]}" for k, n in CASES])
def test_registered_name_is_in_the_readme(kind, names):
    text = README.lower()
    assert any(f"`{n}`" in text for n in names), f"README lists no {kind} named {names}"
