"""ONNX's own backend test suite driving ``numcnn.onnx.backend`` (issue 14): every node
test of every operator numcnn imports, and the model cases (graphs exported by PyTorch,
stored in ``onnx/backend/test/data``) whose operators it all imports.

``onnx.backend.test.BackendTest(numcnn.onnx.backend, __name__)`` generates the node tests
from ONNX's case code (the expected outputs come from ONNX's reference formulas, not from
numcnn) and runs each graph through ``prepare``/``run``. The lists — which tests belong to
which operator, the few left out and why — are in ``conformance_lists.py``; this module
keeps only those tests (the suite generates some 3,800 others, which are dropped here
rather than collected as skips).
"""

from __future__ import annotations

import re
import unittest
import warnings

import pytest

pytest.importorskip("onnx")

import onnx.backend.test  # noqa: E402
from conformance_lists import EXCLUDED, MODEL_KINDS, model_cases, node_cases  # noqa: E402

import numcnn.onnx.backend as backend  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the case generators' own overflow warnings
    _suite = onnx.backend.test.BackendTest(backend, __name__)

_NODE = {n for names in node_cases().values() for n in names}
_MODELS = {n for names in model_cases().values() for n in names}
for _name in sorted(_NODE | _MODELS):
    _suite.include(f"^{re.escape(_name)}_cpu$")


def _only(cls: type, wanted: set[str]) -> type:
    """``cls`` with the CPU tests in ``wanted`` only; the excluded ones skipped with their
    reason."""
    for attr in list(vars(cls)):
        if not attr.startswith("test_"):
            continue
        base = attr[:-len("_cpu")] if attr.endswith("_cpu") else None
        if base in EXCLUDED:
            setattr(cls, attr, unittest.skip(EXCLUDED[base])(getattr(cls, attr)))
        elif base not in wanted:
            delattr(cls, attr)
    return cls


_cases = _suite.test_cases
OnnxBackendNodeModelTest = _only(_cases["OnnxBackendNodeModelTest"], _NODE)
OnnxBackendPyTorchConvertedModelTest = _only(_cases[MODEL_KINDS["pytorch-converted"]],
                                             _MODELS)
OnnxBackendPyTorchOperatorModelTest = _only(_cases[MODEL_KINDS["pytorch-operator"]], _MODELS)
OnnxBackendSimpleModelTest = _only(_cases[MODEL_KINDS["simple"]], _MODELS)
del _cases
