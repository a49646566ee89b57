"""Reading an ONNX file as untrusted input: bounded memory, no file access it did not ask
for, clear errors.

An ONNX file is a protobuf message. Before anything is built from it, :func:`read_model`

* refuses a file larger than the budget (:func:`numcnn.io.npzfile.max_model_bytes`, 2 GiB or
  ``$NUMCNN_MAX_MODEL_BYTES``) and parses the bytes itself — ``onnx.load`` would also follow
  external-data references — so a truncated or corrupt file is a :class:`OnnxImportError`;
* checks every tensor stored in it (initializers, ``Constant`` values) against what it
  declares: a supported element type, dimensions whose product fits the budget, and exactly
  as many stored values as the dimensions promise (:func:`tensor_to_array`);
* refuses tensors kept in *external data* files unless the caller allows them, and then
  reads only regular files inside the model's directory (no absolute ``location``, no
  ``..``, no symbolic link out of it), within the declared offset and length;
* orders the nodes so that each comes after the values it reads (:func:`topological_order`),
  naming the node of a cycle or of a value that nothing defines.
"""

from __future__ import annotations

import heapq
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..io.npzfile import format_bytes, max_model_bytes, show

#: element types a numcnn model can take from a file, ONNX's codes -> NumPy
DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32,
          7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32,
          13: np.uint64}
#: the protobuf field that holds each element type's values when raw_data is not used
_FIELDS = {1: "float_data", 2: "int32_data", 3: "int32_data", 4: "int32_data",
           5: "int32_data", 6: "int32_data", 7: "int64_data", 9: "int32_data",
           10: "int32_data", 11: "double_data", 12: "uint64_data", 13: "uint64_data"}
#: most dimensions of one tensor
MAX_RANK = 32


class OnnxImportError(ValueError):
    """An ONNX file or graph that numcnn cannot (or will not) turn into a model: damaged,
    too large, reaching outside its directory, or using an operator numcnn lacks. The
    message names the file, node or value, what was expected and what was found."""


def read_model(path: str | os.PathLike, max_bytes: int | None = None) -> Any:
    """Parse the ONNX file at ``path`` into an ``onnx.ModelProto`` with bounded memory.

    Raises:
        OnnxImportError: the file is larger than ``max_bytes`` (default: the budget), not
            a protobuf ``ModelProto`` (truncated, corrupt) or has no graph.
    """
    onnx = _onnx()
    budget = max_model_bytes() if max_bytes is None else int(max_bytes)
    p = Path(path)
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise OnnxImportError(f"{_shown(path)} is not a regular file")
        if size > budget:
            raise OnnxImportError(f"{_shown(path)}: the file holds {format_bytes(size)}, "
                                  f"more than the budget of {format_bytes(budget)} (set "
                                  f"$NUMCNN_MAX_MODEL_BYTES to allow more)")
        with open(p, "rb") as f:  # read() of n bytes allocates n first: ask for the size
            data = f.read(size + 1)
        if len(data) > budget:  # the file grew since stat()
            raise OnnxImportError(f"{_shown(path)}: the file holds more than the budget "
                                  f"of {format_bytes(budget)}")
    except OSError as e:
        raise OnnxImportError(f"cannot read the ONNX file {_shown(path)}: "
                              f"{e.strerror or e}") from None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError and friends
        raise OnnxImportError(f"{_shown(path)} is not a valid ONNX file (truncated or "
                              f"corrupt protobuf: {type(e).__name__})") from None
    if not model.HasField("graph") or not model.graph.output:
        raise OnnxImportError(f"{_shown(path)} holds no ONNX graph with outputs (an empty, "
                              f"truncated or foreign file)")
    newest = onnx.defs.onnx_opset_version()
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx") and not 1 <= o.version <= newest:
            raise OnnxImportError(f"{_shown(path)}: the graph declares opset {o.version} of "
                                  f"the ONNX operators; expected 1 to {newest} (the newest "
                                  f"the installed onnx package knows)")
    return model


def _shown(path: str | os.PathLike) -> str:
    """The caller's path in a message, whole (it is not the file's untrusted text; a file
    name cut in the middle would hide which file is meant)."""
    return repr(os.fspath(path))


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError("numcnn.onnx needs the onnx package: pip install 'numcnn[onnx]' "
                          "(or pip install onnx)") from None
    return onnx


def tensor_to_array(t: Any, where: str, budget: int, base_dir: Path | None = None,
                    allow_external: bool = False) -> np.ndarray:
    """A ``TensorProto`` as a NumPy array, after checking it against what it declares.

    Args:
        t: the tensor. where: what it is, for messages (``"initializer 'W'"``).
        budget: most bytes the array may take.
        base_dir: the model's directory, for external data.
        allow_external: read external data (inside ``base_dir`` only).

    Raises:
        OnnxImportError: an unsupported element type, negative or too many dimensions, more
            values than the budget, stored values that do not match the dimensions, or
            external data that is refused or out of bounds.
    """
    from onnx import numpy_helper

    if t.data_type not in DTYPES:
        raise OnnxImportError(f"{where}: element type {t.data_type} is not one numcnn reads "
                              f"(float16/32/64, (u)int8–64, bool)")
    dims = list(t.dims)
    if len(dims) > MAX_RANK or any(d < 0 for d in dims):
        raise OnnxImportError(f"{where}: bad dimensions {show(dims)}")
    count = math.prod(dims)
    itemsize = np.dtype(DTYPES[t.data_type]).itemsize
    if count * itemsize > budget:
        raise OnnxImportError(f"{where}: dimensions {show(dims)} declare "
                              f"{format_bytes(count * itemsize)}, more than the budget of "
                              f"{format_bytes(budget)}")
    if t.data_location == 1:  # EXTERNAL
        raw = _external_bytes(t, where, base_dir, allow_external, count * itemsize)
        copy = type(t)()
        copy.CopyFrom(t)
        copy.data_location = 0
        del copy.external_data[:]
        copy.raw_data = raw
        t = copy
    elif t.HasField("raw_data"):
        if len(t.raw_data) != count * itemsize:
            raise OnnxImportError(f"{where}: dimensions {show(dims)} need "
                                  f"{count * itemsize} bytes; the file stores "
                                  f"{len(t.raw_data)}")
    else:
        stored = len(getattr(t, _FIELDS[t.data_type]))
        if stored != count:
            raise OnnxImportError(f"{where}: dimensions {show(dims)} need {count} values; the "
                                  f"file stores {stored}")
    try:
        return numpy_helper.to_array(t)
    except Exception as e:
        raise OnnxImportError(f"{where}: unreadable tensor ({type(e).__name__}: "
                              f"{show(str(e))})") from None


def _external_bytes(t: Any, where: str, base_dir: Path | None, allow: bool, nbytes: int
                    ) -> bytes:
    """The bytes of a tensor kept in an external file, read only when allowed and only from
    a regular file inside ``base_dir``."""
    info = {e.key: e.value for e in t.external_data}
    location = info.get("location", "")
    if not allow:
        raise OnnxImportError(f"{where} is stored in an external file ({show(location)}); "
                              "external data is refused unless asked for: "
                              "numcnn.onnx.load(path, allow_external_data=True)")
    if base_dir is None:
        raise OnnxImportError(f"{where}: external data needs the model's directory")
    rel = Path(location)
    if not location or rel.is_absolute() or ".." in rel.parts or rel.drive:
        raise OnnxImportError(f"{where}: external data location {show(location)} must be a "
                              f"relative path inside the model's directory")
    root = base_dir.resolve()
    target = (root / rel).resolve()
    if root not in target.parents or not target.is_file():
        raise OnnxImportError(f"{where}: external data location {show(location)} is not a "
                              f"regular file inside {show(str(root))}")
    try:
        offset = int(info.get("offset", "0"))
        length = int(info.get("length", str(nbytes)))
    except ValueError:
        raise OnnxImportError(f"{where}: bad external data offset or length") from None
    size = target.stat().st_size
    if offset < 0 or length != nbytes or offset + length > size:
        raise OnnxImportError(f"{where}: external data ({show(location)}, offset {offset}, "
                              f"length {length}) does not hold the {nbytes} bytes the tensor "
                              f"declares (the file has {size})")
    with open(target, "rb") as f:
        f.seek(offset)
        return f.read(length)


def topological_order(graph: Any, known: set[str]) -> list[Any]:
    """The graph's nodes, each after the nodes making its inputs (Kahn's algorithm).

    Args:
        graph: a ``GraphProto``. known: the names defined outside the nodes (graph inputs,
            initializers).

    Raises:
        OnnxImportError: a node reads a value nothing defines, two nodes define the same
            value, or the nodes form a cycle.
    """
    producer: dict[str, int] = {}
    for k, node in enumerate(graph.node):
        for out in node.output:
            if not out:
                continue
            if out in producer or out in known:
                raise OnnxImportError(f"value {show(out)} is defined twice (by node "
                                      f"{_node_name(node, k)})")
            producer[out] = k
    waiting = [0] * len(graph.node)
    readers: dict[int, list[int]] = {}
    for k, node in enumerate(graph.node):
        for inp in node.input:
            if not inp or inp in known:
                continue
            if inp not in producer:
                raise OnnxImportError(f"node {_node_name(node, k)} reads {show(inp)}, which no "
                                      f"node, input or initializer defines")
            waiting[k] += 1
            readers.setdefault(producer[inp], []).append(k)
    ready = [k for k, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)  # the file's order wherever it is valid: stable layer names
    order: list[int] = []
    while ready:
        k = heapq.heappop(ready)
        order.append(k)
        for r in readers.get(k, []):
            waiting[r] -= 1
            if waiting[r] == 0:
                heapq.heappush(ready, r)
    if len(order) != len(graph.node):
        stuck = next(k for k, w in enumerate(waiting) if w > 0)
        raise OnnxImportError(f"the graph has a cycle through node "
                              f"{_node_name(graph.node[stuck], stuck)}")
    return [graph.node[k] for k in order]


def _node_name(node: Any, k: int) -> str:
    return f"{show(node.name)} ({node.op_type}, #{k})" if node.name else \
        f"#{k} ({node.op_type})"
