"""The sparse autoencoder of UFLDL and of course 002's review, and its encoder turned into a
convolution (self-taught features convolved over large images).

``SparseAutoencoder`` assembles the general pieces — ``Dense`` with a ``WeightDecay``
regularizer, ``Sigmoid``, ``SparsityPenalty``, the ``half_sse`` loss — into a model whose
training cost is UFLDL's exactly::

    J(W, b) = (1/m) Σ_i ½‖x̂_i − x_i‖²  +  (λ/2)(‖W⁽¹⁾‖² + ‖W⁽²⁾‖²)  +  β Σ_j KL(ρ ‖ ρ̂_j)

with ``a = σ(x W⁽¹⁾ + b⁽¹⁾)`` the hidden activations, ``ρ̂_j`` their mean over the batch
(the whole training set with ``fit(batch_size=None)``) and ``x̂ = σ(a W⁽²⁾ + b⁽²⁾)`` (or
``a W⁽²⁾ + b⁽²⁾``, UFLDL's *linear decoder*, for inputs that are not in [0, 1] such as
whitened patches). The logs report the three terms: ``loss`` = J, ``weight_decay_loss``,
``sparsity_loss``.

``encoder_to_conv`` makes the trained encoder a :class:`~numcnn.layers.Conv2D` whose
output at every position is the feature of the patch there, ``f_s = W⁽¹⁾ᵀ x_s + b⁽¹⁾``
(then a ``Sigmoid``), optionally folding an affine preprocessing of the patches (ZCA
whitening) into the kernel and bias.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers
from ..layers import Conv2D, Dense, Flatten, Reshape, Sigmoid, SparsityPenalty
from ..layers.tied import DenseTranspose
from ..regularizers import WeightDecay
from .sequential import Sequential

DECODERS = ("sigmoid", "linear")


def _ufldl_init(n_in: int, n_out: int) -> Any:
    """UFLDL's initial weights: U(−r, r), r = √6 / √(hidden + visible + 1)."""
    r = float(np.sqrt(6.0) / np.sqrt(n_in + n_out + 1))
    return initializers.get("uniform", low=-r, high=r)


def SparseAutoencoder(hidden_units: int, rho: float = 0.05, beta: float = 3.0,  # noqa: N802
                      weight_decay: float = 3e-3, tied: bool = False, *,
                      input_shape: Any = None, decoder: str = "sigmoid",
                      seed: int | None = None, dtype: Any = "float32",
                      optimizer: Any = "lbfgs") -> Sequential:
    """A sparse autoencoder (UFLDL), compiled with its cost J (see the module docstring).

    The layers, by name: ``flatten`` (for inputs of more than one axis), ``encoder``
    (``Dense(hidden_units)`` with ``WeightDecay(λ)`` on W), ``hidden`` (``Sigmoid``: the
    features), ``sparsity`` (``SparsityPenalty(ρ, β)``), ``decoder`` (``Dense(D)`` with
    ``WeightDecay(λ)``), ``reconstruction`` (``Sigmoid``, unless ``decoder="linear"``) and
    ``reshape`` back to ``input_shape``. Initial weights are UFLDL's U(±√6/√(h + D + 1)),
    biases 0. Compiled with ``loss="half_sse"`` and ``optimizer`` (L-BFGS by default; pass
    e.g. ``LBFGS(max_iter=400, line_search_fn="strong_wolfe")`` — UFLDL's minFunc runs 400
    L-BFGS iterations with a Wolfe line search — and train with ``fit(x, x,
    batch_size=None)``). The features of new data: ``Model(ae.input,
    ae.get_layer("hidden").output).predict(x)``.

    Args:
        hidden_units: the number of features h.
        rho: the target mean activation ρ (UFLDL: 0.01 for natural images, 0.1 for MNIST).
        beta: the sparsity weight β.
        weight_decay: λ of (λ/2)‖W‖² on both kernels (not on the biases, as UFLDL).
        tied: share the kernels, ``W⁽²⁾ = W⁽¹⁾ᵀ`` (one kernel, owned by ``decoder``;
            ``encoder`` is its transpose; λ counted once). Such a model is not saved by
            ``save_model``; keep its weights with ``get_weights``.
        input_shape: the per-sample input shape (e.g. ``(784,)`` or ``(8, 8)``), required:
            the decoder reconstructs ``D = prod(input_shape)`` values.
        decoder: ``"sigmoid"`` (inputs in [0, 1]) or ``"linear"`` (UFLDL's linear decoder,
            for whitened or otherwise unbounded inputs).
        seed: seed of the initial weights. dtype: ``"float32"`` or ``"float64"``.
        optimizer: what ``compile`` gets.

    >>> ae = SparseAutoencoder(4, rho=0.1, input_shape=(9,), seed=0)
    >>> [layer.name for layer in ae.layers]
    ['encoder', 'hidden', 'sparsity', 'decoder', 'reconstruction']
    >>> ae.count_params()  # 9·4 + 4 + 4·9 + 9
    85
    """
    if isinstance(hidden_units, bool) or not isinstance(hidden_units, (int, np.integer)) \
            or hidden_units < 1:
        raise ValueError(f"hidden_units must be a positive int; received "
                         f"hidden_units={hidden_units!r}")
    if input_shape is None:
        raise ValueError("SparseAutoencoder needs input_shape=(features,) (or the shape of "
                         "one patch): the decoder reconstructs that many values")
    shape = tuple(int(d) for d in input_shape)
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"input_shape must be positive ints; received "
                         f"input_shape={input_shape!r}")
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {list(DECODERS)}; received "
                         f"decoder={decoder!r}")
    d = int(np.prod(shape))
    h = int(hidden_units)
    init = _ufldl_init(d, h)
    layers: list[Any] = [Flatten(name="flatten")] if len(shape) > 1 else []
    if tied:
        dec = Dense(d, name="decoder", kernel_initializer=init,
                    kernel_regularizer=WeightDecay(weight_decay), dtype=dtype)
        dec.build((h,), np.random.default_rng(seed))
        enc: Any = DenseTranspose(dec, name="encoder", dtype=dtype)
    else:
        enc = Dense(h, name="encoder", kernel_initializer=init,
                    kernel_regularizer=WeightDecay(weight_decay))
        dec = Dense(d, name="decoder", kernel_initializer=init,
                    kernel_regularizer=WeightDecay(weight_decay))
    layers += [enc, Sigmoid(name="hidden"), SparsityPenalty(rho, beta, name="sparsity"), dec]
    if decoder == "sigmoid":
        layers.append(Sigmoid(name="reconstruction"))
    if len(shape) > 1:
        layers.append(Reshape(shape, name="reshape"))
    model = Sequential(layers, input_shape=shape, seed=seed, dtype=dtype,
                       name="sparse_autoencoder")
    model.compile(optimizer=optimizer, loss="half_sse", metrics=[])
    return model


def _affine_of(transform: Any, d: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(M, c)`` with ``transform(p) = p M + c`` for flat patches ``p`` (D,), found by
    applying ``transform`` to 0 and to the unit vectors (exact for an affine map such as
    ZCA whitening, ``(p − μ) Z``)."""
    probe = np.vstack([np.zeros((1, d)), np.eye(d)])  # (D + 1, D)
    out = np.asarray(transform(probe.reshape((d + 1,) + shape)), dtype=np.float64)
    out = out.reshape(d + 1, -1)
    if out.shape[1] != d:
        raise ValueError(f"the patch transform must keep the {d} values of a patch; it "
                         f"returned {out.shape[1]}")
    c = out[0]
    return out[1:] - c, c  # row i: transform(e_i) − transform(0)


def encoder_to_conv(encoder: Any, patch_shape: Any, whitening: Any = None,
                    name: str | None = None) -> Conv2D:
    """A :class:`~numcnn.layers.Conv2D` whose output at each position is the encoder's
    pre-activation on the patch there (valid convolution, stride 1)::

        y[f, r, c] = Σ_{k,i,j} W_conv[f, k, i, j] · x[k, r+i, c+j] + b[f]
                   = (W⁽¹⁾ᵀ p_rc)_f + b⁽¹⁾_f          (p_rc the patch at (r, c), flattened)

    so ``Sigmoid()(conv(x))`` gives UFLDL's convolved features σ(W⁽¹⁾ x_s + b⁽¹⁾) for every
    patch ``x_s`` of a large image. numcnn's Conv2D is a cross-correlation, so the kernel is
    the encoder's weight column reshaped, not flipped (UFLDL flips it because Matlab's
    ``conv2`` is a true convolution). The weights are copied, not shared.

    With ``whitening`` (a fitted preprocessing of the patches, e.g. ``ZCAWhitening``, whose
    ``transform`` is affine: ``p' = (p − μ) Z``) the encoder saw ``p'`` rather than ``p``,
    and the preprocessing is folded in: ``W_conv = (Z W⁽¹⁾)ᵀ``, ``b = b⁽¹⁾ − μ Z W⁽¹⁾``
    (UFLDL's exercise: ``WT = W·ZCAWhite``, ``b − WT·meanPatch``).

    Args:
        encoder: the trained :class:`Dense` (``W`` (C·h·w, F)), or a ``DenseTranspose``.
        patch_shape: ``(h, w)`` for one channel or ``(C, h, w)``; the encoder's inputs are
            patches flattened in C, H, W order.
        whitening: optional fitted transform of the flat (or patch-shaped) patches.
        name: the Conv2D's name.

    Returns:
        A built Conv2D (F kernels of C×h×w) for inputs (C, H, W) of any size ≥ h×w, in the
        encoder's dtype.
    """
    if isinstance(encoder, DenseTranspose):
        w, b = encoder.owner.params["W"].T, encoder.params.get("b")
    elif isinstance(encoder, Dense) and encoder.built:
        w, b = encoder.params["W"], encoder.params.get("b")
    else:
        raise TypeError(f"encoder_to_conv needs a built Dense (or DenseTranspose) layer; "
                        f"received {encoder!r}")
    ps = tuple(int(v) for v in patch_shape)
    if len(ps) == 2:
        ps = (1,) + ps
    if len(ps) != 3 or any(v < 1 for v in ps):
        raise ValueError(f"patch_shape must be (h, w) or (C, h, w), positive; received "
                         f"patch_shape={patch_shape!r}")
    d, f = w.shape
    if int(np.prod(ps)) != d:
        raise ValueError(f"patch_shape {ps} holds {int(np.prod(ps))} values but the encoder "
                         f"takes {d} inputs")
    w64 = w.astype(np.float64)
    b64 = np.zeros(f) if b is None else b.astype(np.float64)
    if whitening is not None:
        fit_shape = tuple(getattr(whitening, "feature_shape_", (d,)))
        M, c = _affine_of(whitening.transform, d, fit_shape)
        b64 = b64 + c @ w64  # σ((p M + c) W + b) = σ(p (M W) + (c W + b))
        w64 = M @ w64  # (D, D) @ (D, F)
    conv = Conv2D(f, ps[1:], name=name, dtype=w.dtype)
    conv.build((ps[0], None, None))
    conv.params["W"][...] = w64.T.reshape(f, *ps)  # (F, D) → (F, C, h, w)
    conv.params["b"][...] = b64
    return conv


__all__ = ["SparseAutoencoder", "encoder_to_conv"]
