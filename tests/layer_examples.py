"""Constructor examples for the layer contract test (``tests/test_contract.py``).

``LAYER_EXAMPLES`` maps a registered layer name (any case; one entry per class is enough,
aliases are resolved through the registry) to a list of examples. Each example is either
``(constructor_kwargs, per_sample_input_shape)`` or
``(constructor_kwargs, per_sample_input_shape, options)`` where ``options`` may hold:

* ``"count_params"``: the expected trainable-parameter count, computed independently (for
  layers whose count differs from the sum of the parameter sizes, e.g. a sparse connection
  table);
* ``"make_input"``: ``f(rng, shape, dtype) -> x`` for layers that need special inputs
  (positive values, tie-free values, integer-like labels ...);
* ``"output_batch"``: ``f(n) -> size`` of the output's axis 0 for a batch of ``n``, for the
  few layers whose output's axis 0 is not the input's batch (``Constant``, ``ShapeOf``).

Every registered layer (except the models ``Sequential`` and ``Model``, tested on their own)
must appear here, or the contract suite fails. Merge layers take a list of input shapes.
Pick awkward cases: non-square kernels, stride > 1, padding, sizes that do not divide evenly.
Keep the inputs tiny — the contract test runs every example in float32 and float64.
"""

from __future__ import annotations

from typing import Any


def _token_ids(vocab: int):
    """``make_input`` for Embedding: whole-number token ids in [0, vocab), every id used."""
    def make(rng, shape, dtype):
        return rng.integers(0, vocab, shape).astype(dtype)
    return make


def _unit_interval(rng, shape, dtype):
    """``make_input`` for SparsityPenalty: activations in (0, 1), as after a sigmoid."""
    return rng.uniform(0.05, 0.95, shape).astype(dtype)


LAYER_EXAMPLES: dict[str, list[tuple[Any, ...]]] = {
    "Conv2D": [
        ({"out_channels": 3, "kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 0, 0, 1)},
         (2, 7, 6)),
        ({"out_channels": 2, "kernel_size": 3, "padding": "same", "use_bias": False}, (1, 5, 5)),
        ({"out_channels": 2, "kernel_size": (2, 3), "stride": 2, "padding": (1, 2)}, (3, 6, 5)),
        # sparse connection table (C_in=3, C_out=4), 7 live kernels: 7·2·3 weights + 4 biases
        ({"out_channels": 4, "kernel_size": (2, 3),
          "connection_table": [[1, 0, 1, 1], [0, 1, 1, 0], [1, 0, 0, 1]]}, (3, 5, 6),
         {"count_params": 46}),
        # groups (issue 11): two columns; depthwise with 2 kernels per map
        ({"out_channels": 4, "kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 0, 0, 1),
          "groups": 2}, (6, 7, 6)),
        ({"out_channels": 6, "kernel_size": 3, "padding": "same", "groups": 3}, (3, 5, 5)),
        # constant padding values (issue 15; text 003's "same" example pads with 1s)
        ({"out_channels": 2, "kernel_size": 3, "padding": "same", "padding_value": 1.0},
         (2, 5, 4)),
        ({"out_channels": 3, "kernel_size": (2, 3), "stride": 2, "padding": (1, 0, 2, 1),
          "padding_value": -0.5}, (2, 6, 5)),
        # channels last (issue 15): (H, W, C) shapes, TensorFlow-style explicit padding
        ({"out_channels": 4, "kernel_size": (3, 2), "stride": (2, 1), "groups": 2,
          "padding": [[0, 0], [1, 0], [0, 1], [0, 0]], "data_format": "channels_last"},
         (7, 6, 2)),
    ],
    "LocallyConnected2D": [
        ({"out_channels": 3, "kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 0, 0, 1)},
         (2, 7, 6)),
        ({"out_channels": 2, "kernel_size": 3, "padding": "same", "use_bias": False}, (1, 5, 5)),
    ],
    "Dense": [
        ({"units": 4}, (6,)),
        ({"units": 3, "use_bias": False}, (5,)),
        # weight penalties (issue 15): the config carries them through JSON
        ({"units": 2, "regularizers": {"W": {"name": "weight_decay",
                                             "config": {"weight_decay": 0.003}},
                                       "b": {"name": "l1", "config": {"l1": 0.1}}}}, (3,)),
    ],
    "Flatten": [({}, (2, 3, 4))],
    "MaxPool2D": [
        ({"pool_size": 3, "stride": 2, "padding": 1}, (2, 7, 7)),
        ({"pool_size": (2, 3)}, (1, 6, 7)),
        ({"pool_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, (2, 8, 7)),
        ({"pool_size": 3, "stride": 2, "padding": 1, "data_format": "channels_last"},
         (7, 6, 3)),
    ],
    "AvgPool2D": [
        ({"pool_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}, (2, 7, 7)),
        ({"pool_size": (3, 2), "stride": (1, 2)}, (1, 5, 5)),
        ({"pool_size": (2, 3), "stride": 2, "padding": (1, 0), "count_include_pad": False,
          "ceil_mode": True}, (2, 6, 8)),
        ({"pool_size": (3, 2), "stride": (1, 2), "data_format": "channels_last"}, (5, 5, 2)),
    ],
    "ReLU": [({}, (2, 3, 3))],
    "LeakyReLU": [({"alpha": 0.1}, (2, 3, 3)), ({}, (5,))],
    "Sigmoid": [({}, (2, 3, 3))],
    "Tanh": [({}, (7,))],
    "Softmax": [({}, (7,)), ({}, (3, 2, 2))],
    # --- pooling variants, normalisation, dropout (issue 3)
    "LpPool2D": [
        ({"p": 2, "pool_size": 3, "stride": 2, "padding": 1}, (2, 7, 7)),
        ({"p": 3, "pool_size": (2, 3), "mode": "mean", "abs_input": True}, (1, 6, 7)),
    ],
    "WeightedPool2D": [
        ({"pool_size": 3, "stride": 2, "padding": 1, "sigma": 0.8}, (2, 7, 7)),
        ({"pool_size": (3, 2), "stride": 1}, (1, 5, 5)),
    ],
    "GlobalAvgPool2D": [({}, (3, 4, 5)), ({"data_format": "channels_last"}, (4, 5, 3))],
    "GlobalMaxPool2D": [({}, (3, 4, 5)), ({"data_format": "channels_last"}, (4, 5, 3))],
    # --- ceil_mode above; adaptive pooling (issue 11): uneven, upsampling, None entries
    "AdaptiveAvgPool2D": [({"output_size": (3, 2)}, (2, 7, 5)), ({"output_size": 4}, (1, 2, 3)),
                          ({"output_size": (None, 1)}, (2, 3, 4))],
    "AdaptiveMaxPool2D": [({"output_size": (2, 3)}, (2, 5, 7)), ({"output_size": 3}, (1, 2, 2)),
                          ({"output_size": (2, 3), "data_format": "channels_last"}, (5, 7, 2))],
    "BatchNorm2D": [({"momentum": 0.2}, (3, 4, 5)), ({"affine": False}, (2, 3, 3))],
    "BatchNorm1D": [({}, (6,)), ({"eps": 1e-3}, (3, 4))],
    "SyncBatchNorm2D": [({"momentum": 0.2}, (3, 4, 5))],
    "SyncBatchNorm1D": [({}, (6,)), ({"eps": 1e-3}, (3, 4))],
    "LocalResponseNorm": [
        ({"size": 3}, (5, 3, 3)),
        ({"size": 4, "alpha": 0.1, "beta": 0.6, "k": 2.0}, (6, 2, 2)),
    ],
    "Dropout": [({"rate": 0.3, "seed": 0}, (4, 5)), ({"rate": 0.0}, (2, 3, 3))],
    # --- LeNet-5 (1998) layers (issue 4)
    "Subsampling2D": [({"pool_size": 2}, (3, 5, 7)), ({"pool_size": 3}, (2, 6, 6))],
    "ScaledTanh": [({}, (2, 3, 3)), ({"A": 1.0, "S": 0.5}, (5,))],
    "RBFOutput": [
        ({"units": 10}, (84,), {"count_params": 0}),  # fixed bitmaps: non-trainable
        ({"units": 3, "centers": "random", "trainable": True}, (5,), {"count_params": 15}),
    ],
    "Rescale": [({"scale": 0.5, "offset": -0.1}, (2, 3, 3))],
    "Reshape": [({"target_shape": (3, -1)}, (2, 3, 2)), ({"target_shape": (2, 2, 3)}, (12,))],
    # --- sequence plumbing (issue 12): tokens, per-step layers, axis order
    "Embedding": [({"input_dim": 7, "output_dim": 3}, (5,), {"make_input": _token_ids(7)}),
                  ({"input_dim": 3, "output_dim": 2}, (2, 4), {"make_input": _token_ids(3)})],
    "TimeDistributed": [
        ({"layer": {"class_name": "Conv2D", "config": {"out_channels": 2, "kernel_size": [2, 3],
                                                       "stride": [1, 2], "padding": 1}}},
         (3, 2, 5, 6)),
        ({"layer": {"class_name": "Dense", "config": {"units": 4}}}, (3, 5)),
        ({"layer": {"class_name": "MaxPool2D", "config": {"pool_size": 2}}}, (2, 1, 4, 5)),
        ({"layer": {"class_name": "BatchNorm2D", "config": {}}}, (2, 3, 2, 2)),
        ({"layer": {"class_name": "Flatten", "config": {}}}, (4, 2, 3)),
    ],
    "Permute": [({"dims": (2, 1)}, (3, 4)), ({"dims": (3, 1, 2)}, (2, 3, 4))],
    "InputLayer": [({"shape": (2, 3, 4)}, (2, 3, 4))],
    # --- merge layers: a list of per-sample input shapes (graph engine, issue 9)
    "Add": [({}, [(2, 3, 3), (2, 3, 3), (2, 3, 3)])],
    "Subtract": [({}, [(4,), (4,)])],
    "Multiply": [({}, [(2, 3, 3), (2, 3, 3)])],
    "Average": [({}, [(5,), (5,), (5,)])],
    "Concatenate": [({}, [(2, 3, 3), (1, 3, 3)]), ({"axis": -1}, [(3, 2), (3, 4), (3, 1)])],
    "Pad2D": [({"padding": (1, 0, 2, 3), "value": -0.1}, (2, 3, 4)), ({"padding": 2}, (1, 2, 2))],
    "PadChannels": [({"before": 2, "after": 1}, (3, 2, 3)), ({"before": 1}, (2,))],
    # --- recurrent layers (issue 12): (T, F) sequences; T = 1; go_backwards; merge modes
    "SimpleRNN": [({"units": 3}, (4, 2)),
                  ({"units": 2, "activation": "relu", "return_sequences": True,
                    "go_backwards": True}, (3, 3))],
    "LSTM": [({"units": 3}, (4, 2)), ({"units": 2, "return_sequences": True}, (1, 3))],
    "GRU": [({"units": 3, "return_sequences": True, "go_backwards": True}, (5, 2)),
            ({"units": 1}, (2, 1))],
    "Bidirectional": [
        ({"layer": {"class_name": "LSTM", "config": {"units": 2, "return_sequences": True}}},
         (4, 3)),
        ({"layer": {"class_name": "GRU", "config": {"units": 3}}, "merge_mode": "sum"}, (3, 2)),
        ({"layer": {"class_name": "SimpleRNN", "config": {"units": 2,
                                                          "return_sequences": True}},
          "merge_mode": "mul"}, (3, 2)),
        ({"layer": {"class_name": "GRU", "config": {"units": 2, "return_sequences": True}},
          "merge_mode": "ave"}, (2, 2)),
    ],
    "Masking": [({"mask_value": 0.5}, (4, 3))],
    # --- activity penalties (issue 15): identity forward, dx = dy + ∂P/∂x
    "SparsityPenalty": [({"rho": 0.1, "beta": 3.0}, (5,), {"make_input": _unit_interval}),
                        ({"rho": 0.3, "beta": 0.5}, (2, 3, 2), {"make_input": _unit_interval})],
    "ActivityRegularization": [({"l1": 0.01, "l2": 0.02}, (2, 3, 3)), ({"l2": 0.5}, (4,))],
    # --- whole-array layers for ONNX graphs (issue 14): the batch axis stays put here
    "Arithmetic": [({"op": "div"}, [(2, 3), (1, 3)]),
                   ({"op": "mul", "constant_shape": (3, 1, 1)}, (3, 2, 2)),
                   ({"op": "sub", "constant_shape": (2,), "constant_first": True}, (4, 2)),
                   ({"op": "pow", "constant_shape": (1,)}, (3,))],
    "MatMul": [({}, [(2, 3), (3, 4)]), ({"b_shape": (3, 4)}, (5, 3)), ({"b_shape": (4,)}, (2, 4))],
    "Transpose": [({"perm": (0, 2, 1)}, (3, 4))],
    "Squeeze": [({"axes": (2,)}, (3, 1, 4))],
    "Unsqueeze": [({"axes": (1, -1)}, (3, 4))],
    "TensorReshape": [({"shape": (0, -1, 2)}, (2, 3, 2)), ({"shape": (-1, 6)}, (3, 2))],
    "TensorConcat": [({"axis": -1}, [(2, 3), (2, 1)])],
    "Gather": [({"indices": [[2, 0], [1, 1]], "axis": 2}, (3, 4)), ({"indices": -1, "axis": 1},
                                                                     (2, 3))],
    "Slice": [({"starts": (1, None), "ends": (None, 0), "axes": (1, -1), "steps": (2, -1)},
               (5, 3)), ({"starts": (-2,), "ends": (None,), "axes": (1,)}, (3,))],
    "PadND": [({"pads": (0, 1, 2, 0, 2, 1), "mode": "reflect"}, (4, 3)),
              ({"pads": (0, -1, 1, 0, 2, -1), "value": 0.5}, (4, 3)),
              ({"pads": (0, 2, 0, 3), "mode": "wrap"}, (2,)),
              ({"pads": (0, 0, 1, 0, 1, 3), "mode": "edge"}, (2, 2))],
    "ShapeOf": [({}, (2, 4), {"output_batch": lambda n: 3})],  # the input's rank
    "Constant": [({"shape": (3, 2)}, (5,), {"output_batch": lambda n: 3})],
    "FullLike": [({"value": 1.0}, (2, 3))],
    "Fill": [({"shape": (-1, 2, 1), "value": -0.5}, (4,))],
    "AxisSoftmax": [({"axes": (1, 2)}, (3, 4))],
    "LogSoftmax": [({"axes": (-1,)}, (2, 5))],
    "Reduce": [({"op": "sum", "axes": (2,), "keepdims": False}, (3, 4)),
               ({"op": "mean", "axes": (1, -1)}, (2, 3)),
               ({"op": "max", "axes": (1,)}, (4, 2))],
    "Moments": [({"axes": (2,), "outputs": ["var"]}, (3, 4)),
                ({"axes": (1, 2), "outputs": ["mean"]}, (2, 3))],
    "ConvND": [({"out_channels": 4, "kernel_size": (3,), "stride": 2, "dilation": 2,
                 "padding": (1, 2), "groups": 2}, (2, 9)),
               ({"out_channels": 2, "kernel_size": (2, 1, 2), "padding": (1, 0, 0, 0, 1, 1)},
                (1, 3, 2, 3))],
    "ConvTranspose": [({"out_channels": 4, "kernel_size": (3, 2), "stride": (2, 1),
                        "padding": (1, 0, 0, 1), "output_padding": (1, 0), "groups": 2},
                       (2, 3, 4)),
                      ({"out_channels": 2, "kernel_size": (3,), "dilation": 2,
                        "padding": (-1, 1)}, (3, 4))],
    "PoolND": [({"kind": "max", "pool_size": (3,), "stride": 2, "dilation": 2,
                 "padding": (2, 1), "ceil_mode": True}, (2, 9)),
               ({"kind": "avg", "pool_size": (2, 2, 2), "stride": 2,
                 "padding": (1, 0, 1, 0, 1, 1), "count_include_pad": True}, (1, 3, 3, 4)),
               ({"kind": "lp", "pool_size": (2, 3), "p": 3.0, "padding": (0, 1, 1, 0)},
                (2, 4, 4))],
    "RecurrentOp": [
        ({"cell": "lstm", "units": 3, "layout": 1, "outputs": ["Y"]}, (4, 2)),
        ({"cell": "gru", "units": 2, "layout": 1, "direction": "bidirectional",
          "linear_before_reset": True, "outputs": ["Y_h"]}, (3, 2)),
        ({"cell": "rnn", "units": 2, "layout": 1, "activations": ["Relu"], "clip": 1.5,
          "outputs": ["Y"]}, (3, 3)),
        ({"cell": "lstm", "units": 2, "layout": 1, "peepholes": True, "outputs": ["Y_c"]},
         (3, 2)),
        ({"cell": "gru", "units": 3, "layout": 1, "outputs": ["Y"]}, (2, 2)),
        ({"cell": "rnn", "units": 2, "direction": "reverse", "outputs": ["Y"]}, (2, 3)),
    ],
}
