"""The fault sweep's catalogue (``benchmarks/fault_sweep.py`` and its ``fault_cases_*.py``
siblings) builds: case names are unique, the newer commands' classes are there, and every
case whose due answer is an error says what its message must match."""

from __future__ import annotations

import re

import fault_sweep

NEWER = ("datasets: fashion_mnist, cifar10", "train: clipping, --distribute", "predict",
         "plot", "serve", "export", "ONNX import (API)")


def test_the_catalogue_builds_with_the_newer_classes():
    cases = fault_sweep.catalogue(cores=2)
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids))
    classes = {c.cls for c in cases}
    assert set(NEWER) <= classes
    newer = [c for c in cases if c.cls in NEWER]
    assert len(newer) >= 250
    for c in newer:
        assert (c.argv is None) != (c.code is None), c.id
        if c.expect == "error":
            assert c.match, f"{c.id}: an error case must say what its message names"
            re.compile(c.match)
        else:
            assert c.verify is not None or c.code is not None, c.id
