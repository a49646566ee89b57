"""``numcnn export model.npz model.onnx [--opset N] [--fixed-batch]``: a saved model as an ONNX
file (:func:`numcnn.onnx.exporter.export`).

    numcnn export model.npz model.onnx               # opset 17, free batch size
    numcnn export model.npz model.onnx --opset 9     # for an old runtime

The output path is checked before any work (never a folder, a device, the model file
itself, or an existing file that is not an ONNX file); the model file is read as untrusted
input (:func:`numcnn.io.load_model`); errors — a missing file, not a model, an opset out of
range, a layer that cannot be exported — are one line.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Callable

from ..io.paths import check_output_file


def _opset(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--opset must be an int; received {text!r}") from None


def add_parser(sub: Any, number: Callable[..., Any]) -> None:
    """Register ``export`` on the command line's subparsers."""
    from .converters import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET

    e = sub.add_parser("export", help="write a saved model as an ONNX file",
                       description="Write a model saved by numcnn (numcnn train --output) as an "
                                   "ONNX graph that computes what numcnn predict does, for ONNX "
                                   "Runtime or any other ONNX runtime. Needs pip install "
                                   "'numcnn[onnx]'. See docs/onnx.md.")
    e.add_argument("path", help="the numcnn model file (.npz)")
    e.add_argument("output", help="the ONNX file to write (.onnx)")
    e.add_argument("--opset", type=_opset, default=None,
                   help=f"ONNX opset to write, {MIN_OPSET} to {MAX_OPSET} (default "
                        f"{DEFAULT_OPSET}; docs/onnx.md lists each layer's)")
    e.add_argument("--fixed-batch", action="store_true",
                   help="a batch size of 1 instead of a free one")


def _check_replaceable(out: Any) -> None:
    """An existing file at the output is replaced only when it is empty or an ONNX file (an
    earlier export): a typo must not overwrite someone's notes or picture. An ONNX file is a
    ``ModelProto`` whose first field is ``ir_version`` (tag ``0x08``, a small varint)."""
    try:
        with open(out, "rb") as f:
            head = f.read(2)
    except FileNotFoundError:
        return
    if head and not (head[:1] == b"\x08" and len(head) == 2 and 0 < head[1] < 0x40):
        raise ValueError(f"the ONNX file {out} exists and is not an ONNX file (it begins "
                         f"with {head!r}); numcnn replaces only an earlier ONNX export: give "
                         "another name, or remove the file first")


def _shape(t: Any, batch: str) -> str:
    dims = [batch] + ["?" if d is None else str(d) for d in t.shape]
    return "(" + ", ".join(dims) + ")"


def cmd_export(args: argparse.Namespace) -> int:
    from ..io import load_model
    from .exporter import check_opset, export

    out = check_output_file(args.output, "the ONNX file")
    if os.path.exists(args.path) and out.exists() and os.path.samefile(args.path, out):
        raise ValueError(f"the ONNX file {out} would replace the model file itself; give "
                         "another name")
    _check_replaceable(out)
    try:
        opset = check_opset(args.opset)
    except ImportError as e:
        raise RuntimeError(str(e)) from None
    model = load_model(args.path, compile=False)
    path = export(model, out, opset=opset, dynamic_batch=not args.fixed_batch)
    batch = "1" if args.fixed_batch else "N"
    ins = ", ".join(f"{n} {_shape(t, batch)}" for n, t in zip(model.input_names, model.inputs))
    outs = ", ".join(f"{n} {_shape(t, batch)}" for n, t in zip(model.output_names,
                                                                model.outputs))
    size = os.path.getsize(path)
    print(f"wrote {path} ({size / 1e6:.2f} MB, opset {opset}, {model.dtype.name}): "
          f"input {ins} -> output {outs}")
    return 0


__all__ = ["add_parser", "cmd_export"]
