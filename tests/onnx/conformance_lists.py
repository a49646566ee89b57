"""Which tests of ONNX's backend suite numcnn runs (``test_backend_conformance.py``), why it
leaves some out, and the per-operator table of ``docs/onnx.md`` and the README.

* :data:`OPERATORS`: for each operator numcnn imports, the patterns naming its node tests
  (the tests ``onnx.backend.test`` generates from ``onnx/backend/test/case/node``, one
  graph of one node each). ``test_backend_table.py`` checks that the patterns name exactly
  the one-node tests of each operator: none missed, none of another operator.
* :data:`EXCLUDED`: node tests left out, each with its reason.
* the model cases (``pytorch-converted``, ``pytorch-operator``, ``simple``: small graphs
  exported by PyTorch and kept as files) whose operators numcnn all imports:
  :func:`model_cases`.

``python tests/onnx/conformance_lists.py`` runs the included tests and prints the table
(markdown) for the docs.
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache

#: operator -> patterns (regular expressions) of its node tests' names
OPERATORS: dict[str, tuple[str, ...]] = {
    "Conv": (r"^test_basic_conv_with(out)?_padding$", r"^test_conv_with_"),
    "ConvTranspose": (r"^test_convtranspose",),
    "MaxPool": (r"^test_maxpool_",),
    "AveragePool": (r"^test_averagepool_",),
    "LpPool": (r"^test_lppool_",),
    "GlobalAveragePool": (r"^test_globalaveragepool",),
    "GlobalMaxPool": (r"^test_globalmaxpool",),
    "Gemm": (r"^test_gemm_",),
    "MatMul": (r"^test_matmul_",),
    "Add": (r"^test_add(_bcast|_u?int\d+)?$",),
    "Sub": (r"^test_sub(_bcast|_example|_u?int\d+)?$",),
    "Mul": (r"^test_mul(_bcast|_example|_u?int\d+)?$",),
    "Div": (r"^test_div(_bcast|_example|_u?int\d+|_int32_trunc)?$",),
    "Sum": (r"^test_sum_(example|one_input|two_inputs)$",),
    "Relu": (r"^test_relu$",),
    "LeakyRelu": (r"^test_leakyrelu(_default|_example)?$",),
    "Sigmoid": (r"^test_sigmoid(_example)?$",),
    "Tanh": (r"^test_tanh(_example)?$",),
    "Softmax": (r"^test_softmax_(axis_\d|default_axis|example|large_number|negative_axis)$",),
    "LogSoftmax": (r"^test_logsoftmax_(axis_\d|default_axis|example_1|large_number|"
                   r"negative_axis)$",),
    "BatchNormalization": (r"^test_batchnorm_",),
    "LRN": (r"^test_lrn",),
    "Dropout": (r"^test_dropout_", r"^test_training_dropout"),
    "Flatten": (r"^test_flatten_",),
    "Reshape": (r"^test_reshape_",),
    "Transpose": (r"^test_transpose_",),
    "Concat": (r"^test_concat_",),
    "Squeeze": (r"^test_squeeze",),
    "Unsqueeze": (r"^test_unsqueeze",),
    "Pad": (r"^test_(constant|edge|reflect|wrap)_pad",),
    "Identity": (r"^test_identity",),
    "Constant": (r"^test_constant$",),
    "ConstantOfShape": (r"^test_constantofshape_",),
    "Shape": (r"^test_shape",),
    "Gather": (r"^test_gather_(0|1|2d_indices|negative_indices)$",),
    "Slice": (r"^test_slice",),
    "RNN": (r"^test_simple_rnn_", r"^test_rnn_seq_length$"),
    "LSTM": (r"^test_lstm_",),
    "GRU": (r"^test_gru_",),
    "ReduceSum": (r"^test_reduce_sum_(?!square)",),
    "ReduceMean": (r"^test_reduce_mean_",),
}

_RANDOM = ("the expected output is one draw of NumPy's global generator after "
           "np.random.seed(0): a training-mode dropout mask is random (ONNX Runtime leaves "
           "these out too); numcnn drops units in fit(), and a graph that asks for it is "
           "refused with a clear error")
_NOT_TENSOR = ("the input is an ONNX {0}, not a tensor: numcnn models take and return "
               "arrays")

#: node test -> why numcnn leaves it out
EXCLUDED: dict[str, str] = {
    "test_training_dropout": _RANDOM,
    "test_training_dropout_default": _RANDOM,
    "test_training_dropout_default_mask": _RANDOM,
    "test_training_dropout_mask": _RANDOM,
    "test_identity_sequence": _NOT_TENSOR.format("sequence"),
    "test_identity_opt": _NOT_TENSOR.format("optional"),
}

#: the kinds of model cases (files in onnx/backend/test/data) run where they fit
MODEL_KINDS = {"pytorch-converted": "OnnxBackendPyTorchConvertedModelTest",
               "pytorch-operator": "OnnxBackendPyTorchOperatorModelTest",
               "simple": "OnnxBackendSimpleModelTest"}


def operator_of(name: str) -> str | None:
    """The operator whose patterns match the node test ``name``, or None."""
    for op, patterns in OPERATORS.items():
        if any(re.search(p, name) for p in patterns):
            return op
    return None


@lru_cache(maxsize=1)
def node_cases() -> dict[str, list[str]]:
    """``{operator: [node test names]}`` from the installed onnx (the cases are generated
    when first asked for: some seconds)."""
    from onnx.backend.test.loader import load_node_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the case code's own overflow warnings
        cases = load_node_model_tests()
    out: dict[str, list[str]] = {op: [] for op in OPERATORS}
    for c in cases:
        op = operator_of(c.name)
        if op is not None:
            out[op].append(c.name)
    return {op: sorted(names) for op, names in out.items()}


@lru_cache(maxsize=1)
def model_cases() -> dict[str, list[str]]:
    """``{kind: [case names]}``: the model cases whose every operator numcnn imports."""
    import os

    from onnx.backend.test.loader import load_model_tests

    import onnx
    from numcnn.onnx.import_ops import SUPPORTED

    out: dict[str, list[str]] = {}
    for kind in MODEL_KINDS:
        names = []
        for c in load_model_tests(kind=kind):
            m = onnx.load(os.path.join(c.model_dir, "model.onnx"))
            if {n.op_type for n in m.graph.node} <= set(SUPPORTED):
                names.append(c.name)
        out[kind] = sorted(names)
    return out


def table(results: dict[str, str] | None = None) -> str:
    """The markdown table: per operator the node tests, how many run, and how many pass
    (``results``: test name -> ``"pass"``/``"fail"``; without it, the included count)."""
    lines = ["| operator | node tests | left out | run | pass |", "|---|---:|---:|---:|---:|"]
    total = [0, 0, 0, 0]
    for op, names in node_cases().items():
        out = sum(n in EXCLUDED for n in names)
        run = [n for n in names if n not in EXCLUDED]
        ok = len(run) if results is None else sum(results.get(n) == "pass" for n in run)
        lines.append(f"| {op} | {len(names)} | {out} | {len(run)} | {ok} |")
        for k, v in enumerate((len(names), out, len(run), ok)):
            total[k] += v
    lines.append(f"| **all {len(OPERATORS)} operators** | {total[0]} | {total[1]} | "
                 f"{total[2]} | {total[3]} |")
    return "\n".join(lines)


def model_table(results: dict[str, str] | None = None) -> str:
    """The model cases' line per kind: cases, how many numcnn's operators cover, passes."""
    from onnx.backend.test.loader import load_model_tests

    lines = ["| model cases | cases | all operators imported | pass |", "|---|---:|---:|---:|"]
    for kind, names in model_cases().items():
        n = len(load_model_tests(kind=kind))
        ok = len(names) if results is None else sum(results.get(x) == "pass" for x in names)
        lines.append(f"| {kind} | {n} | {len(names)} | {ok} |")
    return "\n".join(lines)


def _run() -> dict[str, str]:
    """Run every included test with unittest: name -> pass/fail."""
    import unittest

    import onnx.backend.test

    import numcnn.onnx.backend as backend

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = onnx.backend.test.BackendTest(backend, __name__)
    classes = bt.test_cases
    results = {}
    wanted = [("OnnxBackendNodeModelTest", n) for names in node_cases().values()
              for n in names if n not in EXCLUDED]
    wanted += [(MODEL_KINDS[k], n) for k, names in model_cases().items() for n in names]
    for cls, name in wanted:
        r = unittest.TestResult()
        classes[cls](name + "_cpu").run(r)
        results[name] = "pass" if r.wasSuccessful() and not r.skipped else "fail"
    return results


if __name__ == "__main__":
    res = _run()
    print(table(res))
    print()
    print(model_table(res))
    failed = sorted(n for n, v in res.items() if v != "pass")
    if failed:
        print("\nfailed:", ", ".join(failed))
