"""Bit-plane decomposition (比特平面): 8-bit images into binary planes, and planes into blocks."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import PREPROCESSORS, Preprocessor, _as_data


def to_blocks(planes: np.ndarray, block: Any) -> np.ndarray:
    """Split every plane into non-overlapping ``m × n`` blocks (比特面分块).

    Args:
        planes: (N, C, H, W) with ``H % m == 0`` and ``W % n == 0`` (pad first otherwise).
        block: ``(m, n)`` or an int.

    Returns:
        (N, C, H/m, W/n, m, n): ``out[..., a, b, :, :]`` is the block at block-row a,
        block-column b. A view when possible.
    """
    m, n = (block, block) if isinstance(block, (int, np.integer)) else tuple(block)
    if m < 1 or n < 1:
        raise ValueError(f"block must be positive; received block={block!r}")
    N, C, H, W = planes.shape
    if H % m or W % n:
        raise ValueError(
            f"planes of size {H}×{W} do not split into {m}×{n} blocks (pad them first)"
        )
    return planes.reshape(N, C, H // m, m, W // n, n).transpose(0, 1, 2, 4, 3, 5)


def from_blocks(blocks: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_blocks`: (N, C, Hb, Wb, m, n) → (N, C, Hb·m, Wb·n)."""
    N, C, Hb, Wb, m, n = blocks.shape
    return blocks.transpose(0, 1, 2, 4, 3, 5).reshape(N, C, Hb * m, Wb * n)


@PREPROCESSORS.register("bit_planes")
class BitPlanes(Preprocessor):
    """Bit-plane decomposition (比特平面): an 8-bit image into 8 binary planes as channels.

    Plane ``b`` of pixel value ``v`` is ``(v >> b) & 1``; ``v = Σ_b 2^b · plane_b``.
    Input (N, H, W) is treated as (N, 1, H, W); the output is (N, 8·C, H, W) with channel
    ``8c + k`` holding bit ``7 − k`` of input channel ``c`` (``bitorder="big"``, most
    significant plane first, as ``np.unpackbits``) or bit ``k`` (``"little"``).
    ``inverse_transform`` reassembles the uint8 image (N, C, H, W) exactly. Use
    :meth:`split_blocks` for the course's non-overlapping ``m × n`` sub-blocks.

    Stateless: ``fit`` only records the sample shape.

    Args:
        bitorder: ``"big"`` or ``"little"``.
        dtype: dtype of the planes (default float32, ready for a network; ``"uint8"`` too).

    >>> BitPlanes().transform(np.array([[[5]]], np.uint8))[0, :, 0, 0]
    array([0., 0., 0., 0., 0., 1., 0., 1.], dtype=float32)
    """

    needs_fit = False

    def __init__(self, bitorder: str = "big", dtype: str = "float32"):
        super().__init__()
        if bitorder not in ("big", "little"):
            raise ValueError(f"bitorder must be 'big' or 'little'; received bitorder={bitorder!r}")
        dt = np.dtype(dtype)
        if dt not in (np.float32, np.float64, np.uint8):
            raise ValueError(f"dtype must be float32, float64 or uint8; received dtype={dtype!r}")
        self.bitorder = bitorder
        self.dtype = dt.name

    def _bits(self) -> np.ndarray:
        b = np.arange(8, dtype=np.uint8)
        return b[::-1].copy() if self.bitorder == "big" else b

    def _transform(self, X):
        if X.dtype.kind not in "ui":
            raise TypeError(f"BitPlanes needs integer (uint8) images; received dtype={X.dtype}")
        if X.size and (X.min() < 0 or X.max() > 255):
            raise ValueError(
                f"BitPlanes needs values in [0, 255]; received range [{X.min()}, {X.max()}]"
            )
        if X.ndim == 3:
            X = X[:, None]
        if X.ndim != 4:
            raise ValueError(f"BitPlanes expects (N, H, W) or (N, C, H, W); received {X.shape}")
        X = X.astype(np.uint8)
        N, C, H, W = X.shape
        bits = self._bits()[None, None, :, None, None]
        planes = (X[:, :, None] >> bits) & np.uint8(1)  # (N, C, 8, H, W)
        return planes.reshape(N, 8 * C, H, W).astype(self.dtype)

    def inverse_transform(self, P):
        P = _as_data(P, "planes", 4)
        N, C8, H, W = P.shape
        if C8 % 8:
            raise ValueError(f"planes need a multiple of 8 channels; received shape {P.shape}")
        if not np.isin(P, (0, 1)).all():
            raise ValueError("planes must contain only 0 and 1")
        P = P.reshape(N, C8 // 8, 8, H, W).astype(np.uint16)
        weights = (np.uint16(1) << self._bits().astype(np.uint16))[None, None, :, None, None]
        return (P * weights).sum(axis=2).astype(np.uint8)

    split_blocks = staticmethod(to_blocks)
    merge_blocks = staticmethod(from_blocks)

    def get_config(self):
        return {"bitorder": self.bitorder, "dtype": self.dtype}
