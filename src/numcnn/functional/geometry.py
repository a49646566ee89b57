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


def output_size(n: int, k: int, s: int, p_before: int, p_after: int | None = None,
                ceil_mode: bool = False) -> int:
    """Output length of a sliding window: ``m = (n + p_before + p_after − k) // s + 1``.

    With symmetric padding ``p`` this is the course's ``m = (n + 2p − k) / s + 1``. Used by
    convolution and pooling alike.

    With ``ceil_mode`` (pooling only; PyTorch's and Caffe's rule) the division rounds up,
    ``m = ⌈(n + p_before + p_after − k) / s⌉ + 1``, so a last window may hang off the end,
    but one that would *start* past the input and its left padding is dropped:
    ``m ← m − 1`` when ``(m − 1)·s ≥ n + p_before``. Then a window may even be up to
    ``s − 1`` longer than the padded input.

    Args:
        n: input length. k: window length. s: stride.
        p_before, p_after: zero padding on each side (``p_after`` defaults to ``p_before``).
        ceil_mode: round the number of steps up (see above).

    >>> output_size(7, 3, 2, 1)
    4
    >>> output_size(6, 3, 2, 0), output_size(6, 3, 2, 0, ceil_mode=True)
    (2, 3)
    """
    if p_after is None:
        p_after = p_before
    span = n + p_before + p_after - k
    if not ceil_mode:
        if span < 0:
            raise ValueError(
                f"window of size {k} does not fit an input of size {n} with padding "
                f"({p_before}, {p_after})"
            )
        return span // s + 1
    m = (span + s - 1) // s + 1  # ⌈span / s⌉ + 1, with floor division as PyTorch
    if m >= 1 and (m - 1) * s >= n + p_before:
        m -= 1  # the last window must start inside the input or its left padding
    if m <= 0:
        raise ValueError(
            f"window of size {k} does not fit an input of size {n} with padding "
            f"({p_before}, {p_after}) and stride {s}, even with ceil_mode"
        )
    return m


def ceil_pads(
    in_hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
) -> tuple[int, int, int, int]:
    """The padding under every window in ``ceil_mode``: ``pads`` with the bottom and right
    amounts grown by the overhang of the last window, ``(m − 1)·s + k − (n + p0 + p1)``
    (when positive), so that the ordinary kernels see every window inside the array.

    The extra rows and columns are not padding in PyTorch's sense: a max pooling fills them
    with −∞ like its padding, an average pooling leaves them out of every divisor.

    >>> ceil_pads((6, 6), (3, 3), (2, 2), (0, 0, 0, 0))
    (0, 1, 0, 1)
    """
    out = list(pads)
    for a, (n, k, s) in enumerate(zip(in_hw, kernel, stride)):
        p0, p1 = pads[2 * a], pads[2 * a + 1]
        m = output_size(n, k, s, p0, p1, ceil_mode=True)
        out[2 * a + 1] = p1 + max((m - 1) * s + k - (n + p0 + p1), 0)
    return (out[0], out[1], out[2], out[3])


DATA_FORMATS = ("channels_first", "channels_last")


def check_data_format(value: Any) -> str:
    """``"channels_first"`` (NCHW, numcnn's own) or ``"channels_last"`` (NHWC, TensorFlow's
    default), else a clear error."""
    if value not in DATA_FORMATS:
        raise ValueError(f"data_format must be 'channels_first' or 'channels_last'; received "
                         f"data_format={value!r}")
    return value


def from_tf_padding(padding: Any, data_format: str = "channels_first") -> Any:
    """TensorFlow's explicit padding ``[[0, 0], [t, b], [l, r], [0, 0]]`` (NHWC; NCHW:
    ``[[0, 0], [0, 0], [t, b], [l, r]]``) as numcnn's ``(top, bottom, left, right)``; any
    other padding argument unchanged. The batch and channel pairs must be zero.

    >>> from_tf_padding([[0, 0], [1, 2], [3, 4], [0, 0]], "channels_last")
    (1, 2, 3, 4)
    """
    if not (isinstance(padding, (tuple, list)) and len(padding) == 4
            and all(isinstance(p, (tuple, list)) for p in padding)):
        return padding
    if not all(len(p) == 2 for p in padding):
        raise ValueError(f"TensorFlow-style padding must be 4 pairs [before, after]; received "
                         f"padding={padding!r}")
    hw = (1, 2) if data_format == "channels_last" else (2, 3)
    others = [tuple(padding[a]) for a in range(4) if a not in hw]
    if any(v != 0 for p in others for v in p):
        where = "[[0, 0], [t, b], [l, r], [0, 0]]" if data_format == "channels_last" else \
            "[[0, 0], [0, 0], [t, b], [l, r]]"
        raise ValueError(f"TensorFlow-style padding pads the batch or channel axis; expected "
                         f"{where} for data_format={data_format!r}, received padding={padding!r}")
    (t, b), (left, r) = padding[hw[0]], padding[hw[1]]
    return (t, b, left, r)


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
    ceil_mode: bool = False,
) -> tuple[int, int]:
    """``(Ho, Wo)`` from the shared :func:`output_size` formula."""
    return (
        output_size(in_hw[0], kernel[0], stride[0], pads[0], pads[1], ceil_mode),
        output_size(in_hw[1], kernel[1], stride[1], pads[2], pads[3], ceil_mode),
    )


def adaptive_windows(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The windows of adaptive pooling (PyTorch's rule): output ``i`` of ``m`` reads input
    positions ``start_i ≤ h < end_i`` of ``n`` with ``start_i = ⌊i·n/m⌋`` and
    ``end_i = ⌈(i + 1)·n/m⌉``. The windows cover the input, may overlap by one position
    when ``m`` does not divide ``n``, and repeat positions when ``m > n``. When ``m``
    divides ``n`` they are the tiled windows of size and stride ``n/m``.

    Returns:
        ``(start, end)``, two int64 arrays of length ``m``.

    >>> adaptive_windows(5, 3)
    (array([0, 1, 3]), array([2, 4, 5]))
    """
    if m <= 0 or n <= 0:
        raise ValueError(f"adaptive pooling needs positive sizes; received input size {n}, "
                         f"output size {m}")
    i = np.arange(m, dtype=np.int64)
    return (i * n) // m, -((-(i + 1) * n) // m)


def window(a: np.ndarray, i: int, j: int, out_hw: tuple[int, int], stride: tuple[int, int]):
    """The strided view of ``a[..., H, W]`` hit by kernel offset ``(i, j)`` at every output."""
    Ho, Wo = out_hw
    sh, sw = stride
    return a[..., i : i + sh * (Ho - 1) + 1 : sh, j : j + sw * (Wo - 1) + 1 : sw]
