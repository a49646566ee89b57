"""JAX copies of numcnn's LeNet-5s, for ``speed_limit.py``: the forward pass written with
``jax.numpy`` and ``jax.lax`` layer by layer from numcnn's layers and weights, a whole
training step (forward, softmax cross-entropy, gradient, SGD with momentum as PyTorch
writes it: ``v ← μv + g``, ``p ← p − ηv``) under one ``jax.jit``, and a jitted inference
pass. numcnn never imports this file or JAX.

>>> fwd, step, params = jax_twin(numcnn.models.lenet5(seed=0), 0.05, 0.9)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from numcnn.layers import (
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    Pad2D,
    RBFOutput,
    ReLU,
    Rescale,
    ScaledTanh,
    Subsampling2D,
    Tanh,
)


def _layer_fn(layer: Any, name: str, consts: dict) -> Any:
    """``f(params, h)`` for one numcnn layer; constants (masks, fixed centres) in ``consts``."""
    import jax.numpy as jnp
    from jax import lax

    if isinstance(layer, Rescale):
        return lambda p, h: h * layer.scale + layer.offset
    if isinstance(layer, Pad2D):
        pt, pb, pl, pr = layer.padding
        return lambda p, h: jnp.pad(h, ((0, 0), (0, 0), (pt, pb), (pl, pr)),
                                    constant_values=layer.value)
    if isinstance(layer, Conv2D):
        if layer.padding_value != 0 or layer.groups != 1 or layer.channels_last:
            raise NotImplementedError("Conv2D with padding_value, groups or channels_last")
        pt, pb, pl, pr = layer.pads
        if layer.mask is not None:
            consts[name + "/mask"] = jnp.asarray(layer.mask)

        def conv(p, h):
            W = p[name + "/W"]
            if name + "/mask" in consts:
                W = W * consts[name + "/mask"]
            y = lax.conv_general_dilated(h, W, layer.stride, ((pt, pb), (pl, pr)),
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
            return y + p[name + "/b"][None, :, None, None] if name + "/b" in p else y
        return conv
    if isinstance(layer, ReLU):
        return lambda p, h: jnp.maximum(h, 0)
    if isinstance(layer, Tanh):
        return lambda p, h: jnp.tanh(h)
    if isinstance(layer, ScaledTanh):
        return lambda p, h: layer.A * jnp.tanh(layer.S * h)
    if isinstance(layer, MaxPool2D):
        (kh, kw), (sh, sw) = layer.pool_size, layer.stride
        return lambda p, h: lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, kh, kw),
                                              (1, 1, sh, sw), "VALID")
    if isinstance(layer, Subsampling2D):
        k = layer.pool_size

        def sub(p, h):
            s = lax.reduce_window(h, 0.0, lax.add, (1, 1, k, k), (1, 1, k, k), "VALID")
            return s * p[name + "/coef"][None, :, None, None] + p[name + "/b"][None, :, None,
                                                                              None]
        return sub
    if isinstance(layer, Flatten):
        return lambda p, h: h.reshape(h.shape[0], -1)
    if isinstance(layer, Dense):
        return lambda p, h: h @ p[name + "/W"] + p[name + "/b"]
    if isinstance(layer, Dropout):
        return lambda p, h: h
    if isinstance(layer, RBFOutput):
        consts[name + "/centres"] = jnp.asarray(layer.params["W"])
        return lambda p, h: jnp.sum((h[:, None, :] - consts[name + "/centres"][None]) ** 2, -1)
    raise NotImplementedError(f"no JAX twin for {type(layer).__name__}")


def jax_twin(net: Any, lr: float, momentum: float) -> tuple[Any, Any, dict]:
    """``(forward, step, state)``: jitted ``forward(params, x)``; jitted ``step(state, x, y)``
    returning the new state and the loss; ``state = (params, velocities)`` from numcnn's
    trainable weights (the RBF centres stay constants)."""
    import jax
    import jax.numpy as jnp

    consts: dict = {}
    names = [net.layer_name(lay) for lay in net.layers]
    fns = [_layer_fn(lay, nm, consts) for lay, nm in zip(net.layers, names)]
    params = {q: jnp.asarray(lay.params[k]) for q, lay, k in net.named_params()
              if lay.trainable}

    def forward(p, x):
        h = x
        for f in fns:
            h = f(p, h)
        return h

    def loss_fn(p, x, y):
        logits = forward(p, x)
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def step(state, x, y):
        p, v = state
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        v = {k: momentum * v[k] + g[k] for k in p}
        p = {k: p[k] - lr * v[k] for k in p}
        return (p, v), loss

    state = (params, {k: jnp.zeros_like(a) for k, a in params.items()})
    return jax.jit(forward), jax.jit(step), state


def jax_versions() -> str:
    import jax
    import jaxlib

    return f"JAX {jax.__version__} (jaxlib {jaxlib.__version__})"


__all__ = ["jax_twin", "jax_versions"]
