"""Sliding-window geometry shared by convolution and pooling: one formula, one helper.

The course's output size ``m = (n + 2p − k) / s + 1`` lives in :func:`output_size`; padding
arguments are validated once (:func:`check_padding`) and resolved to explicit
``(top, bottom, left, right)`` amounts (:func:`resolve_padding`); :func:`window` is the
strided view under one kernel offset, the primitive every kernel loops over.
"""

from __future__ import annotations

from typing import Any, Union

import numpy as np

Padding = Union[str, int, tuple[int, int], tuple[int, int, int, int]]


def pair(value: Any, what: str) -> tuple[int, int]:
    """Normalise an int or an ``(h, w)`` pair to a tuple of two positive ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        out = (int(value), int(value))
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
        out = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{what} must be an int or a pair of ints; received {what}={value!r}")
    if min(out) <= 0:
        raise ValueError(f"{what} must be positive; received {what}={value!r}")
    return out


def output_size(n: int, k: int, s: int, p_before: int, p_after: int | None = None) -> int:
    """Output length of a sliding window: ``m = (n + p_before + p_after − k) // s + 1``.

    With symmetric padding ``p`` this is the course's ``m = (n + 2p − k) / s + 1``. Used by
    convolution and pooling alike.

    Args:
        n: input length. k: window length. s: stride.
        p_before, p_after: zero padding on each side (``p_after`` defaults to ``p_before``).

    >>> output_size(7, 3, 2, 1)
    4
    """
    if p_after is None:
        p_after = p_before
    span = n + p_before + p_after - k
    if span < 0:
        raise ValueError(
            f"window of size {k} does not fit an input of size {n} with padding "
            f"({p_before}, {p_after})"
        )
    return span // s + 1


def check_padding(padding: Padding) -> Padding:
    """Validate a padding argument at construction time and return it in canonical form.

    Accepted: ``"valid"``, ``"same"``, an int ``p``, ``(ph, pw)`` or
    ``(top, bottom, left, right)``; all numbers non-negative.
    """
    if isinstance(padding, str):
        if padding.lower() not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same'; received padding={padding!r}")
        return padding.lower()
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        vals: tuple[int, ...] = (int(padding),)
    elif isinstance(padding, (tuple, list)) and len(padding) in (2, 4) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in padding
    ):
        vals = tuple(int(v) for v in padding)
    else:
        raise TypeError(
            "padding must be 'valid', 'same', an int, (ph, pw) or (top, bottom, left, right); "
            f"received padding={padding!r}"
        )
    if min(vals) < 0:
        raise ValueError(f"padding must be non-negative; received padding={padding!r}")
    return vals[0] if len(vals) == 1 else vals


def resolve_padding(
    padding: Padding, kernel: tuple[int, int], stride: tuple[int, int], in_hw: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Turn a padding argument into explicit ``(top, bottom, left, right)`` amounts.

    ``"same"`` follows TensorFlow/Keras: output size ``ceil(n / s)``, total padding
    ``max((m − 1)·s + k − n, 0)`` split with the extra pixel at the bottom/right. For stride 1
    and odd ``k`` this is ``(k − 1) / 2`` on each side, as in PyTorch's ``padding="same"``.
    """
    padding = check_padding(padding)
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        out = []
        for n, k, s in zip(in_hw, kernel, stride):
            m = -(-n // s)
            total = max((m - 1) * s + k - n, 0)
            out += [total // 2, total - total // 2]
        return (out[0], out[1], out[2], out[3])
    if isinstance(padding, int):
        return (padding,) * 4
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1])
    return tuple(padding)  # type: ignore[return-value]


def conv_output_hw(
    in_hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
) -> tuple[int, int]:
    """``(Ho, Wo)`` from the shared :func:`output_size` formula."""
    return (
        output_size(in_hw[0], kernel[0], stride[0], pads[0], pads[1]),
        output_size(in_hw[1], kernel[1], stride[1], pads[2], pads[3]),
    )


def window(a: np.ndarray, i: int, j: int, out_hw: tuple[int, int], stride: tuple[int, int]):
    """The strided view of ``a[..., H, W]`` hit by kernel offset ``(i, j)`` at every output."""
    Ho, Wo = out_hw
    sh, sw = stride
    return a[..., i : i + sh * (Ho - 1) + 1 : sh, j : j + sw * (Wo - 1) + 1 : sw]
