"""Element-wise arithmetic with NumPy broadcasting (``Arithmetic``) and matrix products
(``MatMul``), on two tensors or on a tensor and a stored operand.

Unlike the merge layers (``Add``, ``Subtract``, ``Multiply``: equal shapes), these follow
NumPy's (and ONNX's) broadcasting over the *whole* arrays, batch axis included: the shapes
are aligned at their last axes and a size-1 axis is repeated. The backward pass undoes the
repetition by summing: if ``a`` was broadcast to ``y``'s shape, ``dL/da`` is ``dL/dy``
summed over the axes that were added or repeated (:func:`unbroadcast`).

The stored operand (``constant_shape``) is a parameter ``"c"`` / ``"B"``: trained when the
layer is trainable (an ONNX initializer, a bias after a ``MatMul``), held fixed otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import LAYERS, Call, Layer
from .node import Shape

_OPS = ("add", "sub", "mul", "div", "pow")


def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``g`` summed down to ``shape``: over the leading axes NumPy added and over the axes
    where ``shape`` has size 1 (the adjoint of broadcasting ``shape`` to ``g.shape``)."""
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    axes = tuple(a for a, n in enumerate(shape) if n == 1 and g.shape[a] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g


def broadcast_shapes(*shapes: tuple) -> tuple:
    """NumPy's broadcast of whole-array shapes whose entries may be ``None`` (unknown):
    a known size other than 1 wins, else an unknown size stays unknown.

    >>> broadcast_shapes((None, 3, 1), (4,), (1, 1, 1))
    (None, 3, 4)
    """
    rank = max(len(s) for s in shapes)
    out = []
    for a in range(rank):
        dims = [s[a - rank + len(s)] for s in shapes if a - rank + len(s) >= 0]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ValueError(f"shapes {[tuple(s) for s in shapes]} do not broadcast")
        out.append(known.pop() if known else (None if None in dims else 1))
    return tuple(out)


def check_inputs(layer: Layer, xs: Any) -> None:
    """``layer.check_input`` for layers whose inputs may differ in their first axis (each
    array's axis 0 need not be the same batch): the number of arrays, their dtype and their
    shapes after axis 0 are checked."""
    if not isinstance(xs, (list, tuple)):
        raise TypeError(f"{layer.display_name}: expected a list of "
                        f"{len(layer.input_shape)} arrays; received {type(xs).__name__}")
    for a in xs:
        layer._check_array(a)
    layer.check_shape([tuple(a.shape[1:]) for a in xs])


def _whole(per_sample: Shape) -> tuple:
    return (None,) + tuple(per_sample)


def _per_sample(whole: tuple) -> Shape:
    if not whole:
        raise ValueError("the result has no axis left for the batch")
    return tuple(whole[1:])


def _shape_arg(value: Any, what: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or not value or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0
            for d in value):
        raise ValueError(f"{what} must be a non-empty tuple of positive ints (a scalar is "
                         f"(1,)); received {what}={value!r}")
    return tuple(int(d) for d in value)


@LAYERS.register("Arithmetic")
class Arithmetic(Layer):
    """``y = a ∘ b`` for ∘ in ``+ − × ÷`` and ``a^b``, with NumPy broadcasting over the whole
    arrays.

    Called on a list ``[a, b]`` of two tensors, or on one tensor ``x`` with a stored operand
    ``c`` of ``constant_shape`` (``y = x ∘ c``, or ``c ∘ x`` with ``constant_first``).

    Backward (before :func:`unbroadcast`): ``+``: ``da = dy, db = dy``; ``−``: ``db = −dy``;
    ``×``: ``da = dy·b, db = dy·a``; ``÷``: ``da = dy/b, db = −dy·a/b²``; power:
    ``da = dy·b·a^{b−1}``, ``db = dy·a^b·ln a`` (0 where ``a ≤ 0``).

    Args:
        op: ``"add"``, ``"sub"``, ``"mul"``, ``"div"`` or ``"pow"``.
        constant_shape: shape of the stored operand ``params["c"]``; None for two inputs.
        constant_first: the stored operand is the left one (``c − x``, ``c / x``).
        truncate: round the result toward zero (integer division, as ONNX ``Div`` on integer
            tensors); its gradient is then 0.

    >>> import numpy as np
    >>> layer = Arithmetic("mul", constant_shape=(3, 1, 1))
    >>> layer.build((3, 4, 4)); layer.params["c"][...] = 2
    >>> float(layer(np.ones((1, 3, 4, 4), np.float32))[0, 0, 0, 0])
    2.0
    """

    def __init__(self, op: str, constant_shape: Any = None, constant_first: bool = False,
                 truncate: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if op not in _OPS:
            raise ValueError(f"op must be one of {_OPS}; received op={op!r}")
        self.op = op
        self.constant_shape = _shape_arg(constant_shape, "constant_shape")
        self.constant_first = bool(constant_first)
        self.truncate = bool(truncate)

    def _operand_shapes(self, input_shape: Any) -> list[tuple]:
        if self.constant_shape is None:
            if not isinstance(input_shape, list) or len(input_shape) != 2:
                raise ValueError(f"{self.display_name}: expected a list of 2 input shapes; "
                                 f"received {input_shape!r}")
            return [_whole(input_shape[0]), _whole(input_shape[1])]
        if isinstance(input_shape, list):
            raise ValueError(f"{self.display_name}: holds its second operand; call it on one "
                             f"tensor")
        shapes = [_whole(input_shape), self.constant_shape]
        return shapes[::-1] if self.constant_first else shapes

    def output_shape(self, input_shape: Any) -> Shape:
        try:
            return _per_sample(broadcast_shapes(*self._operand_shapes(input_shape)))
        except ValueError as e:
            raise ValueError(f"{self.display_name}: {e}") from None

    def param_shapes(self, input_shape: Any) -> dict[str, tuple[int, ...]]:
        """``c``: ``constant_shape`` for a stored operand, else none."""
        self.output_shape(input_shape)
        return {} if self.constant_shape is None else {"c": self.constant_shape}

    def build(self, input_shape: Any, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape, rng)
        a, b = self._operand_shapes(self.input_shape)
        # samples stay apart unless an operand's first axis lines up with the batch axis
        # without being the batch axis itself (a broadcast across the batch)
        self.per_sample = len(a) == len(b) if self.constant_shape is None else \
            len(self.constant_shape) < len(_whole(self.input_shape))
        if self.constant_shape is not None:
            self.add_param("c", np.ones(self.constant_shape))  # the importer sets the values

    def _operands(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        if self.constant_shape is None:
            return x[0], x[1]
        c = self.params["c"]
        return (c, x) if self.constant_first else (x, c)

    def fprop(self, x: Any, call: Call) -> np.ndarray:
        if self.constant_shape is None:
            check_inputs(self, x)
        else:
            self.check_input(x)
        a, b = self._operands(x)
        y = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
             "pow": np.power}[self.op](a, b)
        if self.truncate:
            y = np.trunc(y)
        call.cache = (a, b)
        return y

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> Any:
        a, b = call.cache
        if self.truncate:
            dy = np.zeros_like(dy)
        if self.op == "add":
            da, db = dy, dy
        elif self.op == "sub":
            da, db = dy, -dy
        elif self.op == "mul":
            da, db = dy * b, dy * a
        elif self.op == "div":
            da, db = dy / b, -dy * a / (b * b)
        else:
            y = np.power(a, b)
            da = dy * b * np.power(a, b - 1)
            db = dy * y * np.log(np.where(a > 0, a, 1))
        da, db = unbroadcast(da, a.shape), unbroadcast(db, b.shape)
        if self.constant_shape is None:
            need = call.need_dx
            flags = list(need) if isinstance(need, (list, tuple)) else [need, need]
            return [da if flags[0] else None, db if flags[1] else None]
        dc, dx = (da, db) if self.constant_first else (db, da)
        self.store_grad("c", dc, accumulate)
        return dx if call.need_dx else None

    def get_config(self) -> dict[str, Any]:
        cfg = {**super().get_config(), "op": self.op}
        if self.constant_shape is not None:
            cfg.update(constant_shape=list(self.constant_shape),
                       constant_first=self.constant_first)
        if self.truncate:
            cfg["truncate"] = True
        return cfg


def matmul_shape(a: tuple, b: tuple) -> tuple:
    """``np.matmul``'s result shape for whole-array shapes with ``None`` entries: a 1-D
    operand is a row (left) or a column (right) dropped from the result."""
    if not a or not b:
        raise ValueError("matmul needs operands of rank 1 or more")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] is not None and b2[-2] is not None and a2[-1] != b2[-2]:
        raise ValueError(f"matmul of shapes {a} and {b}: inner sizes {a2[-1]} and {b2[-2]} "
                         f"differ")
    out = broadcast_shapes(a2[:-2], b2[:-2]) + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


@LAYERS.register("MatMul")
class MatMul(Layer):
    """``y = a @ b`` with NumPy's ``matmul`` rules (ONNX ``MatMul``): the last two axes
    multiply as matrices, the others broadcast; a 1-D operand is a row on the left, a column
    on the right. Called on ``[a, b]``, or on ``a`` alone with a stored right operand
    ``params["B"]`` of ``b_shape`` (then over an (N, …, K) input a :class:`Dense` without
    bias, applied to the last axis).

    Backward: ``da = dy @ bᵀ``, ``db = aᵀ @ dy`` (with the 1-D axes restored and the
    broadcast axes summed).

    >>> MatMul(b_shape=(6, 4)).output_shape((5, 6))
    (5, 4)
    """

    def __init__(self, b_shape: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.b_shape = _shape_arg(b_shape, "b_shape")

    def _operand_shapes(self, input_shape: Any) -> tuple[tuple, tuple]:
        if self.b_shape is None:
            if not isinstance(input_shape, list) or len(input_shape) != 2:
                raise ValueError(f"{self.display_name}: expected a list of 2 input shapes; "
                                 f"received {input_shape!r}")
            return _whole(input_shape[0]), _whole(input_shape[1])
        return _whole(input_shape), self.b_shape

    def output_shape(self, input_shape: Any) -> Shape:
        try:
            return _per_sample(matmul_shape(*self._operand_shapes(input_shape)))
        except ValueError as e:
            raise ValueError(f"{self.display_name}: {e}") from None

    def param_shapes(self, input_shape: Any) -> dict[str, tuple[int, ...]]:
        """``B``: ``b_shape`` when the right operand is stored."""
        self.output_shape(input_shape)
        return {} if self.b_shape is None else {"B": self.b_shape}

    def build(self, input_shape: Any, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape, rng)
        a, b = self._operand_shapes(self.input_shape)
        # the batch axis stays the first: a stored B of rank ≤ 2 against an input of rank ≥ 2
        self.per_sample = self.b_shape is not None and len(b) <= 2 <= len(a)
        if self.b_shape is not None:
            rng = rng if rng is not None else np.random.default_rng()
            k = 1 / np.sqrt(self.b_shape[-2] if len(self.b_shape) > 1 else self.b_shape[0])
            self.add_param("B", rng.uniform(-k, k, self.b_shape))

    def fprop(self, x: Any, call: Call) -> np.ndarray:
        if self.b_shape is None:
            check_inputs(self, x)
        else:
            self.check_input(x)
        a, b = (x[0], x[1]) if self.b_shape is None else (x, self.params["B"])
        call.cache = (a, b)
        return np.matmul(a, b)

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> Any:
        a, b = call.cache
        a2 = a[None, :] if a.ndim == 1 else a  # (…, M, K)
        b2 = b[:, None] if b.ndim == 1 else b  # (…, K, P)
        d2 = dy
        if a.ndim == 1:
            d2 = d2[..., None, :]
        if b.ndim == 1:
            d2 = d2[..., None]
        da = unbroadcast(np.matmul(d2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        db = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), d2), b2.shape).reshape(b.shape)
        if self.b_shape is None:
            need = call.need_dx
            flags = list(need) if isinstance(need, (list, tuple)) else [need, need]
            return [da if flags[0] else None, db if flags[1] else None]
        self.store_grad("B", db, accumulate)
        return da if call.need_dx else None

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        if self.b_shape is not None:
            cfg["b_shape"] = list(self.b_shape)
        return cfg
