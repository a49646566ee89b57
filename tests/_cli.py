"""Helpers of the command-line tests: run ``numcnn`` in-process and read its one error line.

    from _cli import QUICK, needs_mnist, one_error_line, run_cli

(``tests/`` is on ``sys.path``: pytest puts the folder of ``tests/conftest.py`` there.)
"""

from __future__ import annotations

import os

import pytest

from numcnn import cli

MNIST_DIR = os.environ.get("NUMCNN_DATA_DIR")
needs_mnist = pytest.mark.skipif(
    not (MNIST_DIR and os.path.isdir(MNIST_DIR)),
    reason="MNIST not available: set NUMCNN_DATA_DIR to the folder with the IDX files",
)
#: a training run of a few seconds: 200 images, 100 held out, no progress output
QUICK = ("--train-size", "300", "--validation-size", "100", "--verbose", "0")


def run_cli(capsys, *argv):
    """``numcnn *argv`` in this process: (exit status, stdout, stderr)."""
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err: str) -> str:
    """The only line of ``err``, checked to be ``numcnn: error: ...`` without a traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("numcnn: error:"), lines[0]
    assert "Traceback" not in err
    return lines[0]
