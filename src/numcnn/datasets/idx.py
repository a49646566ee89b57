"""Reader for the IDX file format used by MNIST, with strict header validation.

An IDX file is a 4-byte magic number followed by one big-endian uint32 per dimension and
then the data, row-major and big-endian::

    magic = 0x00 0x00 <type code> <number of dimensions>
    dims  = ndim x uint32 (big-endian)
    data  = prod(dims) items of the type named by the code

Type codes: ``0x08`` unsigned byte, ``0x09`` signed byte, ``0x0B`` int16, ``0x0C`` int32,
``0x0D`` float32, ``0x0E`` float64. Files may be gzipped (recognised by the gzip magic
``1f 8b``, whatever their name). Nothing is ever unpickled; a file that does not match its
own header raises :class:`DataError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

#: IDX type code -> NumPy dtype (big-endian as stored on disk).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

GZIP_MAGIC = b"\x1f\x8b"


class DataError(ValueError):
    """A data file is corrupt, truncated, of the wrong format, or not the file expected.

    The message names the file (or URL) and says what was expected and what was found.
    """


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def parse_idx_header(data: bytes, source: str = "<bytes>") -> tuple[np.dtype, tuple[int, ...], int]:
    """Parse and validate the header of an IDX file.

    Args:
        data: the (decompressed) bytes of the file, or at least its header.
        source: name of the file, used in error messages.

    Returns:
        ``(dtype, shape, offset)``: the big-endian item dtype, the dimensions and the byte
        offset at which the data starts (``4 + 4 * ndim``).

    Raises:
        DataError: if the file is too short, the magic number is wrong, the type code is
            unknown or the number of dimensions is zero.

    >>> parse_idx_header(b"\\x00\\x00\\x08\\x01\\x00\\x00\\x00\\x03")
    (dtype('uint8'), (3,), 8)
    """
    if len(data) < 4:
        raise DataError(
            f"{source}: too short to be an IDX file ({len(data)} bytes; the header alone "
            "needs at least 4)"
        )
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    magic = int.from_bytes(data[:4], "big")
    if zero0 != 0 or zero1 != 0:
        raise DataError(
            f"{source}: wrong magic number 0x{magic:08X}; an IDX file starts with two zero "
            "bytes, a type code and the number of dimensions (e.g. 0x00000803 for images, "
            "0x00000801 for labels)"
        )
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(
            f"{source}: wrong magic number 0x{magic:08X}: unknown IDX type code 0x{code:02X} "
            f"(known codes: {known})"
        )
    if ndim == 0:
        raise DataError(f"{source}: wrong magic number 0x{magic:08X}: zero dimensions")
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DataError(
            f"{source}: truncated header: {ndim} dimensions need {offset} header bytes, "
            f"file has {len(data)}"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return IDX_DTYPES[code], shape, offset


def parse_idx(data: bytes, source: str = "<bytes>", copy: bool = True) -> np.ndarray:
    """Decode the bytes of an (uncompressed) IDX file into an array.

    Args:
        data: the whole decompressed file.
        source: name of the file, used in error messages.
        copy: if False, return a read-only view of ``data`` when no byte swap is needed
            (saves a copy when the caller only inspects the array).

    Returns:
        Array of the header's shape, in native byte order (e.g. ``(N, 28, 28)`` uint8 for
        MNIST images, ``(N,)`` uint8 for labels). Writable unless ``copy=False``.

    Raises:
        DataError: on a bad header, or if the data is shorter (truncated) or longer than
            the header says.

    >>> parse_idx(b"\\x00\\x00\\x08\\x02\\x00\\x00\\x00\\x01\\x00\\x00\\x00\\x02\\x07\\x09")
    array([[7, 9]], dtype=uint8)
    """
    dtype, shape, offset = parse_idx_header(data, source)
    count = int(np.prod(shape, dtype=np.int64))
    expected = count * dtype.itemsize
    have = len(data) - offset
    if have != expected:
        what = "truncated" if have < expected else "too long"
        raise DataError(
            f"{source}: {what}: header says {_fmt_shape(shape)} items of {dtype.name} = "
            f"{expected} data bytes after the {offset}-byte header, file has {have}"
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)
    native = dtype.newbyteorder("=")
    if copy or native != dtype:
        arr = arr.astype(native, copy=True)
    return arr


def read_idx_bytes(
    path: PathLike,
    max_size: int | None = None,
    *,
    gzipped: bool | None = None,
    source: str | None = None,
) -> bytes:
    """Read a file, decompressing it if it is gzipped.

    Gzip is recognised by its magic bytes, not by the name; a file that must be gzip (named
    ``*.gz``, or ``gzipped=True``) but is not is an error.

    Args:
        path: the file.
        gzipped: True if the file must be gzip, False if it must not be decompressed,
            None (default) to require gzip only for names ending in ``.gz``.
        source: name used in error messages (default: ``path``), e.g. the URL a temporary
            file was downloaded from.
        max_size: if given, read at most ``max_size + 1`` bytes of content, so that a
            caller expecting ``max_size`` bytes can tell a longer file without inflating
            all of it (guards against decompression bombs).

    Returns:
        The decompressed bytes (possibly cut at ``max_size + 1``).

    Raises:
        FileNotFoundError: if the file does not exist.
        DataError: if the gzip stream is corrupt or truncated, or a ``.gz`` file is not gzip.
    """
    path = Path(path)
    source = str(path) if source is None else source
    must_be_gzip = path.suffix == ".gz" if gzipped is None else gzipped
    limit = -1 if max_size is None else max_size + 1
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        if head == GZIP_MAGIC and gzipped is not False:
            try:
                with gzip.GzipFile(fileobj=f, mode="rb") as gz:
                    data = gz.read(limit)
            except (OSError, EOFError, zlib.error) as e:
                raise DataError(f"{source}: corrupt or truncated gzip file ({e})") from e
        elif must_be_gzip:
            raise DataError(
                f"{source}: not a gzip file (starts with bytes {head.hex(' ') or 'nothing'}, "
                "gzip starts with 1f 8b)"
            )
        else:
            data = f.read(limit)
    return data


def load_idx(path: PathLike) -> np.ndarray:
    """Load an IDX file (raw or gzipped) into a NumPy array.

    Args:
        path: path to the file, e.g. ``"t10k-labels-idx1-ubyte.gz"``.

    Returns:
        Array with the dimensions and item type given by the header, native byte order.

    Raises:
        FileNotFoundError: if the file does not exist.
        DataError: if the file is corrupt, truncated, or not IDX (message names the file).

    >>> labels = load_idx("t10k-labels-idx1-ubyte.gz")  # doctest: +SKIP
    >>> labels.shape, labels.dtype  # doctest: +SKIP
    ((10000,), dtype('uint8'))
    """
    return parse_idx(read_idx_bytes(path), source=str(path))
