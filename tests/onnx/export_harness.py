"""Shared by the export tests: run an exported graph in ONNX Runtime and compare it with
numcnn, within a tolerance taken from numcnn's own float32-vs-float64 error.

The reference is numcnn run in float64 on a float64 twin of the model (the same config,
float64 everywhere, the same weights). A float32 export must be as close to it as 4× the
float32 model's own largest error plus 16 float32 epsilons of the output's magnitude (the
runtimes' kernels sum in other orders and approximate ``tanh``/``exp`` differently, a few
ulps); a float64 export within 1e-10 of it (relative to the output's magnitude, at least 1).

ONNX Runtime's CPU provider has no float64 kernels for Conv, the pools, LRN and the
recurrent ops: float64 graphs it cannot run go to onnx's own reference evaluator
(``onnx.reference.ReferenceEvaluator``), the implementation of the specification.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import numcnn
from numcnn.layers import deserialize, serialize
from numcnn.onnx.converters import MIN_OPSET, ExportError
from numcnn.onnx.exporter import supported_opsets, to_onnx

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

EPS32 = float(np.finfo(np.float32).eps)
#: no runtime here runs these in float64: ONNX Runtime has no float64 kernels for them, and
#: onnx's reference evaluator ignores ``sequence_lens`` and knows only ``Tanh`` for ``RNN``
RECURRENT_OPS = {"RNN", "LSTM", "GRU"}


def float64_twin(model: Any) -> Any:
    """The same model in float64: its config with every dtype float64 (and zeros as every
    initializer: the weights are copied over them), its weights copied."""
    def retype(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: ("float64" if k == "dtype" and v == "float32" else
                        "zeros" if k.endswith("_initializer") else retype(v))
                    for k, v in obj.items()}
        if isinstance(obj, list):
            return [retype(v) for v in obj]
        return obj

    twin = deserialize(retype(serialize(model)))
    twin.set_weights({k: v.astype(np.float64) for k, v in model.get_weights().items()})
    return twin


def run_onnx(proto: Any, xs: list[np.ndarray]) -> tuple[list[np.ndarray], str]:
    """Outputs of the graph on ``xs`` and which runtime computed them."""
    data = proto.SerializeToString()
    names = [i.name for i in proto.graph.input]
    try:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        return sess.run(None, dict(zip(names, xs))), "onnxruntime"
    except Exception as e:  # no float64 kernel: the specification's reference evaluator
        if "NOT_IMPLEMENTED" not in str(e) and "does not support double" not in str(e):
            raise
        from onnx.reference import ReferenceEvaluator

        return list(ReferenceEvaluator(proto).run(None, dict(zip(names, xs)))), "reference"


def float64_runnable(proto: Any) -> bool:
    """Whether a runtime here computes this float64 graph: not with a recurrent node (see
    RECURRENT_OPS), nor a grouped ``ConvTranspose`` (ONNX Runtime has no float64 kernel,
    the reference evaluator no groups)."""
    for n in proto.graph.node:
        if n.op_type in RECURRENT_OPS:
            return False
        if n.op_type == "ConvTranspose" and any(a.name == "group" and a.i > 1
                                                for a in n.attribute):
            return False
    return True


def as_list(y: Any) -> list[np.ndarray]:
    return list(y) if isinstance(y, (list, tuple)) else [y]


def assert_matches(got: list[np.ndarray], ref32: list[np.ndarray] | None,
                   ref64: list[np.ndarray], what: str) -> None:
    """float32 (``ref32`` given): within 4× numcnn's own float32 error + 16 ε·max|y|;
    float64: within 1e-10·max(1, max|y|)."""
    assert len(got) == len(ref64), what
    for k, (g, r64) in enumerate(zip(got, ref64)):
        assert g.shape == r64.shape, (what, k, g.shape, r64.shape)
        scale = float(np.abs(r64).max(initial=0.0))
        err = float(np.abs(g.astype(np.float64) - r64).max(initial=0.0))
        if ref32 is None:
            assert g.dtype == np.float64, (what, g.dtype)
            assert err <= 1e-10 * max(1.0, scale), f"{what} output {k}: error {err:.3g}"
        else:
            assert g.dtype == np.float32, (what, g.dtype)
            own = float(np.abs(ref32[k].astype(np.float64) - r64).max(initial=0.0))
            tol = 4 * own + 16 * EPS32 * scale
            assert err <= tol, (f"{what} output {k}: error {err:.3g} > {tol:.3g} (numcnn's "
                                f"float32 error {own:.3g}, |y| up to {scale:.3g})")


def infer(model: Any, xs: list[np.ndarray]) -> Any:
    """numcnn's inference-mode forward pass on the inputs (one call: some layers' outputs
    have an axis 0 of their own, which ``predict``'s batching would split)."""
    return model.forward(xs if len(xs) > 1 else xs[0], training=False)


def lowest_opset(model: Any) -> int:
    """The oldest opset the model exports at; every older one must fail with an
    ``ExportError`` that says which opset the layer needs."""
    for opset in supported_opsets():
        try:
            to_onnx(model, opset)
            return opset
        except ExportError as e:
            msg = str(e)
            assert "cannot export layer" in msg and "opset" in msg, msg
    raise AssertionError("the model exports at no opset")


def check_model(model: Any, make_input: Any, opsets: Any = "both", batches=(1, 7),
                seed: int = 0, float64: bool = True) -> dict[str, Any]:
    """Export ``model`` at its lowest and highest opsets (or those given) and compare ONNX
    Runtime with numcnn on batches of each size (one session: the batch is dynamic);
    ``make_input(rng, n, dtype)`` returns the list of model inputs. Then the float64 twin
    the same way at the highest opset. Returns what was run, for the caller's checks."""
    if opsets == "both":
        opsets = sorted({lowest_opset(model), supported_opsets()[-1]})
    rng = np.random.default_rng(seed)
    xs64 = [make_input(rng, n, np.float64) for n in batches]
    twin = float64_twin(model)
    refs64 = [as_list(infer(twin, x)) for x in xs64]
    refs32 = [as_list(infer(model, [a.astype(np.float32) for a in x])) for x in xs64]
    info: dict[str, Any] = {"opsets": list(opsets), "runtimes": set()}
    for opset in opsets:
        proto = to_onnx(model, opset)
        info.setdefault("proto", proto)
        for x, r32, r64, n in zip(xs64, refs32, refs64, batches):
            got, rt = run_onnx(proto, [a.astype(np.float32) for a in x])
            info["runtimes"].add(rt)
            assert_matches(got, r32, r64, f"opset {opset}, batch {n}")
    if float64:
        proto = to_onnx(twin, opsets[-1])
        if not float64_runnable(proto):
            info["runtimes"].add("none64")
            return info
        for x, r64, n in zip(xs64, refs64, batches):
            got, rt = run_onnx(proto, x)
            info["runtimes"].add(rt + "64")
            assert_matches(got, None, r64, f"float64, opset {opsets[-1]}, batch {n}")
    return info


def normal_inputs(shapes: list[tuple]) -> Any:
    """``make_input`` drawing standard normal values for per-sample ``shapes``."""
    def make(rng: np.random.Generator, n: int, dtype: Any) -> list[np.ndarray]:
        return [rng.standard_normal((n,) + tuple(s)).astype(dtype) for s in shapes]
    return make


__all__ = ["MIN_OPSET", "as_list", "assert_matches", "check_model", "float64_twin",
           "lowest_opset", "normal_inputs", "numcnn", "run_onnx"]
