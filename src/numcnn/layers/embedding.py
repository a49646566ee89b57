"""``Embedding``: a trainable table of vectors, one per token id (PyTorch's ``nn.Embedding``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers
from ..functional.embedding import check_tokens, embedding_backward, embedding_forward
from .base import LAYERS, Call, Layer
from .node import Shape, format_shape, shapes_compatible


@LAYERS.register("Embedding")
class Embedding(Layer):
    """Map integer token ids to dense vectors: ``y[n, t] = W[x[n, t]]``.

    The table is ``params["W"]`` (input_dim, output_dim), PyTorch's ``Embedding.weight``
    layout (Keras calls it ``embeddings``, same shape), so a table moves between the two
    unchanged. The gradient is dense and adds up repeated tokens,
    ``dW[v] = Σ_{(n, t): x[n, t] = v} dy[n, t]`` (see :mod:`numcnn.functional.embedding`).
    There is no gradient with respect to the ids: ``backward`` returns zeros.

    Token ids come as an integer array, or as a float array of the layer's dtype holding whole
    numbers (a model converts its inputs to its float dtype: ``Input((T,))`` then
    ``Embedding``, and ``fit`` takes integer arrays). A non-integer, NaN or out-of-range id
    is an error naming it.

    Args:
        input_dim: the number of token ids V (ids run from 0 to V − 1).
        output_dim: the vector size D.
        embeddings_initializer: initializer of W (default ``normal`` with std 1, PyTorch's
            ``N(0, 1)``; Keras draws ``uniform(−0.05, 0.05)``).
        mask_zero: id 0 is padding (Keras's ``mask_zero``): a recurrent layer (or
            ``Bidirectional``) called on this layer's output skips the steps whose id is 0
            (see :mod:`numcnn.layers.masking`); the output itself is unchanged. Real tokens
            then use ids 1 … input_dim − 1.

    Shape:
        (N, ...) ids → (N, ..., D); typically (N, T) → (N, T, D). Any per-sample shape,
        ``None`` (a free length) included.

    >>> e = Embedding(10, 4); e.build((7,)); e.params["W"].shape, e.output_shape((None,))
    ((10, 4), (None, 4))
    """

    def __init__(self, input_dim: int, output_dim: int,
                 embeddings_initializer: Any = None, mask_zero: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(mask_zero, bool):
            raise ValueError(f"mask_zero must be True or False; received mask_zero={mask_zero!r}")
        self.mask_zero = mask_zero
        self._mask_of: dict[int, tuple[Any, None]] = {}
        for name, v in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"{name} must be a positive int; received {name}={v!r}")
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.embeddings_initializer = (initializers.Normal(0.0, 1.0)
                                       if embeddings_initializer is None
                                       else initializers.get(embeddings_initializer))

    def output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape) + (self.output_dim,)

    def param_shapes(self, input_shape: Shape) -> dict[str, tuple[int, ...]]:
        """``W``: (input_dim, output_dim), whatever the input shape."""
        self.output_shape(input_shape)
        return {"W": (self.input_dim, self.output_dim)}

    def build(self, input_shape: Shape, rng: np.random.Generator | None = None) -> None:
        super().build(input_shape, rng)
        rng = rng if rng is not None else np.random.default_rng()
        self.add_param("W", self.embeddings_initializer(
            (self.input_dim, self.output_dim), self.input_dim, self.output_dim, rng))

    def call_symbolic(self, inputs: Any, rng: np.random.Generator | None = None) -> Any:
        out = super().call_symbolic(inputs, rng)
        if self.mask_zero:  # the ids are the mask: a step is real where its id is not 0
            self._mask_of[id(out)] = (inputs, None)
        return out

    def check_input(self, x: Any) -> None:
        """Integer ids, or float ids of the layer's dtype, of the built shape."""
        if isinstance(x, np.ndarray) and x.dtype.kind in "iu":
            if x.ndim < 1 or (self.input_shape is not None and not shapes_compatible(
                    tuple(x.shape[1:]), self.input_shape)):
                raise ValueError(f"{self.display_name}: expected input of shape "
                                 f"{format_shape(self.input_shape)}; received {x.shape}")
            return
        Layer.check_input(self, x)

    def fprop(self, x: np.ndarray, call: Call) -> np.ndarray:
        self.check_input(x)
        ids = check_tokens(x, self.input_dim, self.dtype, self.display_name)
        call.cache = (ids, x.shape)
        return embedding_forward(ids, self.params["W"])  # (N, ..., D)

    def bprop(self, dy: np.ndarray, call: Call, accumulate: bool = False) -> np.ndarray | None:
        ids, shape = call.cache
        self.store_grad("W", embedding_backward(dy, ids, self.input_dim), accumulate)
        return np.zeros(shape, dtype=self.dtype) if call.need_dx else None

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "input_dim": self.input_dim,
                "output_dim": self.output_dim, "mask_zero": self.mask_zero,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Embedding:
        config = dict(config)
        if config.get("embeddings_initializer") is not None:
            config["embeddings_initializer"] = initializers.deserialize(
                config["embeddings_initializer"])
        return cls(**config)
