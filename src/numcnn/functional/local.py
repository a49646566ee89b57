"""Locally connected 2-D layer: a convolution without weight sharing (the reference path).

The course (002) introduces convolution in two steps: *local connections* (each hidden unit
sees one small window of the image) and then *weight sharing* (every unit uses the same
kernel). This is the first step alone: every output position ``(p, q)`` has its own kernel
``W[p, q]`` of shape (F, C, kh, kw). With the sensitivity map ``δ = dL/dy``:

* forward: ``y[n, f, p, q] = Σ_{c, i, j} W[p, q, f, c, i, j]·xp[n, c, p·sh + i, q·sw + j]
  + b[f, p, q]`` — the receptive fields as rows (im2col, as for a convolution), then one
  product *per position* instead of one for all;
* weights: ``dW[p, q] = Σ_n δ[n, :, p, q] ⊗ field[n, p, q]``, the outer product of each
  position's sensitivities with its receptive field (a convolution sums this over
  positions);
* input: ``dfield[n, p, q] = W[p, q]ᵀ δ[n, :, p, q]``, added back where each field was read
  (col2im). With one kernel per position this is no longer a full convolution with one
  rotated kernel, so the scatter is written out;
* bias: ``db[f, p, q] = Σ_n δ[n, f, p, q]`` (one bias per output unit).

The parameter count is that of a fully connected layer restricted to windows: the course's
1000×1000 image with 10⁶ hidden units each seeing 10×10 pixels has 10⁸ weights.

Both passes go one output row at a time, so the scratch memory is one row of receptive
fields (N·Wo·C·kh·kw values) however large the image. :mod:`numcnn.functional.fast.local`
computes the same numbers with the batch innermost.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .conv import pad
from .geometry import conv_output_hw


def check_local_shapes(x_shape: tuple[int, ...], W_shape: tuple[int, ...],
                       stride: tuple[int, int],
                       pads: tuple[int, int, int, int]) -> tuple[int, int]:
    """``(Ho, Wo)`` after checking that the kernels ``W`` (Ho, Wo, F, C, kh, kw) fit an
    input of shape ``x_shape`` (N, C, H, W): one kernel per output position."""
    if len(W_shape) != 6:
        raise ValueError(f"locally connected kernels must be (Ho, Wo, F, C, kh, kw); "
                         f"received shape {tuple(W_shape)}")
    Hw, Ww, _, Cw, kh, kw = W_shape
    if x_shape[1] != Cw:
        raise ValueError(f"kernel expects {Cw} input channels; input has {x_shape[1]} "
                         f"(shape {tuple(x_shape)})")
    out = conv_output_hw(x_shape[2:], (kh, kw), stride, pads)
    if out != (Hw, Ww):
        raise ValueError(f"the kernels are for {Hw}×{Ww} output positions; input "
                         f"{tuple(x_shape[2:])} gives {out[0]}×{out[1]}")
    return out


def _row_fields(xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], p: int,
                Wo: int) -> np.ndarray:
    """The receptive fields of output row ``p`` as rows: (Wo, N, C·kh·kw), in (c, i, j)
    column order, ``cols[q, n, (c, i, j)] = xp[n, c, p·sh + i, q·sw + j]``."""
    kh, kw = kernel
    sh, sw = stride
    N, C = xp.shape[:2]
    band = xp[:, :, p * sh : p * sh + kh]  # (N, C, kh, Wp): the input rows the row reads
    fields = sliding_window_view(band, (kh, kw), axis=(2, 3))[:, :, 0, ::sw][:, :, :Wo]
    # (N, C, Wo, kh, kw) -> (Wo, N, C, kh, kw)
    return fields.transpose(2, 0, 1, 3, 4).reshape(Wo, N, C * kh * kw)


def locally_connected2d_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray | None,
                                stride: tuple[int, int] = (1, 1),
                                pads: tuple[int, int, int, int] = (0, 0, 0, 0)
                                ) -> tuple[np.ndarray, dict]:
    """Forward pass ``y[:, :, p, q] = field(p, q) · W[p, q]ᵀ + b[:, p, q]``.

    Args:
        x: input (N, C, H, W). W: one kernel per output position (Ho, Wo, F, C, kh, kw).
        b: bias (F, Ho, Wo) or None. stride: (sh, sw).
        pads: explicit (top, bottom, left, right) zero padding.

    Returns:
        ``(y, cache)``, y of shape (N, F, Ho, Wo), ``Ho = (H + pt + pb − kh) // sh + 1``.

    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> W = np.ones((2, 2, 1, 1, 2, 2)); W[0, 1] = 0   # position (0, 1) sees nothing
    >>> locally_connected2d_forward(x, W, None)[0][0, 0]
    array([[ 8.,  0.],
           [20., 24.]])
    """
    Ho, Wo = check_local_shapes(x.shape, W.shape, stride, pads)
    N = x.shape[0]
    F, C, kh, kw = W.shape[2:]
    xp = pad(x, pads)
    Wm = W.reshape(Ho, Wo, F, C * kh * kw)
    y = np.empty((N, F, Ho, Wo), np.result_type(x, W))
    for p in range(Ho):  # one output row at a time: its fields are N·Wo·C·kh·kw values
        cols = _row_fields(xp, (kh, kw), stride, p, Wo)
        # per position q: (N, C*kh*kw) @ (C*kh*kw, F) -> (Wo, N, F), then (N, F, Wo)
        y[:, :, p] = (cols @ Wm[p].transpose(0, 2, 1)).transpose(1, 2, 0)
    if b is not None:
        y += b
    return y, {"kernel": "reference", "x": x, "W": W, "stride": stride, "pads": pads}


def locally_connected2d_backward(dy: np.ndarray, cache: dict, need_dx: bool = True,
                                 need_dW: bool = True, need_db: bool = True):
    """Backward pass from the sensitivity map ``δ = dy`` (the module docstring's equations).

    Args:
        dy: (N, F, Ho, Wo). cache: from :func:`locally_connected2d_forward`.
        need_dx, need_dW, need_db: compute only the gradients asked for.

    Returns:
        ``(dx, dW, db)`` shaped (N, C, H, W), (Ho, Wo, F, C, kh, kw), (F, Ho, Wo); None
        where not asked.
    """
    x, W, stride, pads = cache["x"], cache["W"], cache["stride"], cache["pads"]
    N, C, H, Wd = x.shape
    Ho, Wo, F, _, kh, kw = W.shape
    sh, sw = stride
    pt, pb, pl, pr = pads
    dt = np.result_type(dy, W)
    db = dy.sum(axis=0) if need_db else None
    xp = pad(x, pads)
    Wm = W.reshape(Ho, Wo, F, C * kh * kw)
    dW = np.empty(W.shape, dt) if need_dW else None
    dxp = np.zeros(xp.shape, dt) if need_dx else None
    for p in range(Ho):
        d = dy[:, :, p].transpose(2, 0, 1)  # (Wo, N, F): δ of row p, position-major
        if need_dW:
            cols = _row_fields(xp, (kh, kw), stride, p, Wo)  # (Wo, N, C*kh*kw)
            # per position: (F, N) @ (N, C*kh*kw) — the outer products summed over n
            dW[p] = (d.transpose(0, 2, 1) @ cols).reshape(Wo, F, C, kh, kw)
        if need_dx:
            # per position: (N, F) @ (F, C*kh*kw), each field's gradient
            dcols = (d @ Wm[p]).reshape(Wo, N, C, kh, kw)
            for j in range(kw):  # col2im: column j of every field of the row, kh rows at once
                dxp[:, :, p * sh : p * sh + kh, j : j + sw * (Wo - 1) + 1 : sw] += \
                    dcols[:, :, :, :, j].transpose(1, 2, 3, 0)  # (N, C, kh, Wo)
    dx = np.ascontiguousarray(dxp[:, :, pt : pt + H, pl : pl + Wd]) if need_dx else None
    return dx, dW, db
