"""The installed library never imports PyTorch or ONNX: they are test oracles and peers of
the side-by-side benchmark in ``benchmarks/``, never dependencies of numcnn.

Every module of the package is imported in a fresh interpreter, so that the imports of
other tests (which load torch freely) cannot hide one.
"""

from __future__ import annotations

import subprocess
import sys

CODE = """
import importlib, pkgutil, sys
import numcnn
names = [m.name for m in pkgutil.walk_packages(numcnn.__path__, "numcnn.")]
for name in names:
    if name != "numcnn.__main__":  # runs the command line; it imports numcnn.cli only
        importlib.import_module(name)
print(" ".join(names))
print(" ".join(m for m in ("torch", "onnx", "onnxruntime") if m in sys.modules))
"""


def test_importing_every_numcnn_module_leaves_torch_and_onnx_out():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         check=True, timeout=300).stdout.splitlines()
    names = out[0].split()
    assert {"numcnn.cli", "numcnn.benchmark", "numcnn.datasets.mnist",
            "numcnn.preprocessing.pca"} <= set(names)
    assert len(out) == 1 or out[1].strip() == "", f"imported: {out[1]}"
