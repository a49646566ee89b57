"""LeNet-5 exactly as LeCun, Bottou, Bengio and Haffner (1998) built it.

"Gradient-based learning applied to document recognition", Proc. IEEE 86(11), section II.B:
C1 → S2 → C3 (Table I connections) → S4 → C5 → F6 → Euclidean RBF output, every layer up to
F6 squashed by ``1.7159·tanh(2a/3)``; 60,000 trainable parameters, 340,908 connections.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..initializers import INITIALIZERS, Initializer
from ..layers import Conv2D, Dense, Flatten, Pad2D, RBFOutput, Rescale, ScaledTanh, Subsampling2D
from .sequential import Sequential


@INITIALIZERS.register("lecun98_sqrt_uniform")
class Lecun98SqrtUniform(Initializer):
    """``w ~ U(−2.4 / √fan_in, 2.4 / √fan_in)``: weighted sums with a standard deviation of
    about ``1.39·rms(x)`` (LeCun, "Efficient BackProp", 1998, §4.6). An alternative to the
    paper's ``±2.4 / F_i`` (``"lecun98_uniform"``), offered by :func:`lenet5_1998` as
    ``init="sqrt_fan_in"``; see docs/lenet5_1998.md for how the two train.
    """

    def sample(self, shape, fan_in, fan_out, rng):
        a = 2.4 / np.sqrt(fan_in)
        return rng.uniform(-a, a, size=shape)


def _c3_table() -> np.ndarray:
    """Table I of the paper: ``T[c, o]`` is True when C3 map ``o`` reads S2 map ``c``."""
    groups = (
        [[k % 6 for k in range(s, s + 3)] for s in range(6)]  # maps 0–5: 3 contiguous
        + [[k % 6 for k in range(s, s + 4)] for s in range(6)]  # maps 6–11: 4 contiguous
        + [[0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5]]  # maps 12–14: 4 discontinuous
        + [list(range(6))]  # map 15: all six
    )
    t = np.zeros((6, 16), dtype=bool)
    for o, inputs in enumerate(groups):
        t[inputs, o] = True
    t.setflags(write=False)
    return t


#: LeNet-5's C3 connection table (paper's Table I), shape (6 S2 maps, 16 C3 maps): rows are
#: input maps, columns output maps; ``LENET5_C3_TABLE[c, o]`` — C3 map ``o`` reads S2 map c.
LENET5_C3_TABLE = _c3_table()

#: MNIST grey levels [0, 255] → background −0.1, foreground 1.175 (mean ≈ 0, variance ≈ 1).
LENET5_INPUT_SCALE = 1.275 / 255.0
LENET5_INPUT_OFFSET = -0.1


INITS = {"sqrt_fan_in": "lecun98_sqrt_uniform", "fan_in": "lecun98_uniform"}


def lenet5_1998(seed: int | None = None, dtype: Any = "float32",
                rbf_trainable: bool = False, init: str = "fan_in") -> Sequential:
    """LeNet-5 as published in 1998, for 28×28 MNIST grey levels in [0, 255].

    The input normalisation is part of the model: ``Rescale`` maps the grey levels to
    ``x/255·1.275 − 0.1`` (background −0.1, foreground 1.175) and ``Pad2D`` pads to 32×32
    with the background level, as the paper's 32×32 input field.

    =====  ===============================  ============  ============
    layer  maps                             parameters    connections
    =====  ===============================  ============  ============
    C1     6@28×28, 5×5 conv                156           122,304
    S2     6@14×14, 2×2 trainable subsample 12            5,880
    C3     16@10×10, 5×5 conv, Table I      1,516         151,600
    S4     16@5×5                           32            2,000
    C5     120@1×1, 5×5 conv                48,120        48,120
    F6     84 units                         10,164        10,164
    out    10 Euclidean RBF (fixed bitmaps) 840 (fixed)   840
    =====  ===============================  ============  ============

    Weights and biases are drawn uniform in ``±2.4 / fan_in`` as in the paper
    (``init="fan_in"``, default; C3 maps each with their own fan-in) or in ``±2.4 / √fan_in``
    (``init="sqrt_fan_in"``). Train with the ``lenet_map`` loss and the ``sdlm`` optimizer
    (:func:`numcnn.training.sdlm.train_lenet5_1998`);
    the predicted class is the ``argmin`` of the output penalties.

    Args:
        seed: seed of the initial weights.
        dtype: ``"float32"`` or ``"float64"``.
        rbf_trainable: let the optimizer move the RBF centres (the paper keeps them fixed).
        init: ``"sqrt_fan_in"`` or ``"fan_in"`` (see above).

    >>> m = lenet5_1998(seed=0)
    >>> m.count_params(), m.count_non_trainable()
    (60000, 840)
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {sorted(INITS)}; received init={init!r}")
    conv = dict(kernel_initializer=INITS[init], bias_initializer=INITS[init])
    return Sequential(
        [
            Rescale(LENET5_INPUT_SCALE, LENET5_INPUT_OFFSET, name="normalize"),
            Pad2D(2, value=LENET5_INPUT_OFFSET, name="pad"),
            Conv2D(6, 5, name="C1", **conv),
            ScaledTanh(name="f_C1"),
            Subsampling2D(2, name="S2", coef_initializer=INITS[init],
                          bias_initializer=INITS[init]),
            ScaledTanh(name="f_S2"),
            Conv2D(16, 5, connection_table=LENET5_C3_TABLE, name="C3", **conv),
            ScaledTanh(name="f_C3"),
            Subsampling2D(2, name="S4", coef_initializer=INITS[init],
                          bias_initializer=INITS[init]),
            ScaledTanh(name="f_S4"),
            Conv2D(120, 5, name="C5", **conv),
            ScaledTanh(name="f_C5"),
            Flatten(name="flatten"),
            Dense(84, name="F6", **conv),
            ScaledTanh(name="f_F6"),
            RBFOutput(10, centers="digits", trainable=rbf_trainable, name="output"),
        ],
        input_shape=(1, 28, 28),
        seed=seed,
        name="lenet5_1998",
        dtype=dtype,
    )
