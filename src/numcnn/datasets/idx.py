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

Files are untrusted input, so memory is bounded: :func:`load_idx` reads the header first and
refuses a declared size above :func:`max_idx_bytes` (2 GiB, or ``$NUMCNN_MAX_IDX_BYTES``)
before it allocates anything, then inflates at most one byte more than the header promises
(a small gzip that inflates to gigabytes is refused after that); :func:`read_idx_bytes`
never returns more than the limit either.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import zlib
from pathlib import Path
from typing import Any, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

#: default bound on the decompressed size of one IDX file (MNIST's largest is 47 MB)
MAX_IDX_BYTES = 2 << 30
#: the environment variable that overrides it (bytes; K, M, G suffixes for KiB, MiB, GiB)
ENV_MAX_IDX_BYTES = "NUMCNN_MAX_IDX_BYTES"
#: most dimensions an IDX array may have here (NumPy 1.x's limit)
MAX_IDX_NDIM = 32

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


def max_idx_bytes() -> int:
    """The bound on one file's decompressed size: ``$NUMCNN_MAX_IDX_BYTES`` when set, else
    :data:`MAX_IDX_BYTES`.

    Raises:
        ValueError: the variable holds something other than a positive number of bytes.
    """
    text = os.environ.get(ENV_MAX_IDX_BYTES, "").strip()
    if not text:
        return MAX_IDX_BYTES
    m = re.fullmatch(r"(\d{1,15})\s*([KMG]?)i?B?", text, re.IGNORECASE)
    value = 0 if m is None else int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[
        m.group(2).upper()]
    if value <= 0:
        raise ValueError(f"${ENV_MAX_IDX_BYTES} must be a positive number of bytes, such as "
                         f"4294967296 or 4G; received {text[:40]!r}")
    return value


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
    if ndim > MAX_IDX_NDIM:
        raise DataError(f"{source}: the header declares {ndim} dimensions; expected at most "
                        f"{MAX_IDX_NDIM}")
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
    count = math.prod(shape)  # exact: a product of uint32 sizes can overflow int64
    expected = count * dtype.itemsize
    have = len(data) - offset
    if have != expected:
        raise _size_error(source, dtype, shape, offset, have, expected)
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)
    native = dtype.newbyteorder("=")
    if copy or native != dtype:
        arr = arr.astype(native, copy=True)
    return arr


def _size_error(source: str, dtype: np.dtype, shape: tuple[int, ...], offset: int,
                have: int | None, expected: int) -> DataError:
    what = "truncated" if have is not None and have < expected else "too long"
    got = "more" if have is None else str(have)
    return DataError(
        f"{source}: {what}: header says {_fmt_shape(shape)} items of {dtype.name} = "
        f"{expected} data bytes after the {offset}-byte header, file has {got}"
    )


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
            all of it (guards against decompression bombs). If None, the file may hold at
            most :func:`max_idx_bytes` and a larger one is an error, found after inflating
            one byte more than that.

    Returns:
        The decompressed bytes (possibly cut at ``max_size + 1``).

    Raises:
        FileNotFoundError: if the file does not exist.
        DataError: if the gzip stream is corrupt or truncated, a ``.gz`` file is not gzip,
            or (``max_size=None``) the content exceeds :func:`max_idx_bytes`.
    """
    path = Path(path)
    source = str(path) if source is None else source
    cap = max_idx_bytes() if max_size is None else max_size
    with _open_idx(path, gzipped, source) as f:
        data = _read(f, cap + 1, source)
    if max_size is None and len(data) > cap:
        raise DataError(f"{source}: holds more than {cap} bytes (decompressed), the limit "
                        f"(${ENV_MAX_IDX_BYTES} raises it)")
    return data


class _open_idx:
    """The content of ``path`` as a stream, gunzipped when it is gzip (a context manager)."""

    def __init__(self, path: Path, gzipped: bool | None, source: str):
        must_be_gzip = path.suffix == ".gz" if gzipped is None else gzipped
        self.source = source
        self.f = open(path, "rb")
        self.gz: Any = None
        head = self.f.read(2)
        self.f.seek(0)
        if head == GZIP_MAGIC and gzipped is not False:
            self.gz = gzip.GzipFile(fileobj=self.f, mode="rb")
        elif must_be_gzip:
            self.f.close()
            raise DataError(
                f"{source}: not a gzip file (starts with bytes {head.hex(' ') or 'nothing'}, "
                "gzip starts with 1f 8b)"
            )

    def __enter__(self) -> Any:
        return self.gz if self.gz is not None else self.f

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.gz is not None:
                self.gz.close()
        finally:
            self.f.close()


def _read(f: Any, n: int, source: str) -> bytes:
    """Up to ``n`` bytes of ``f`` (fewer only at its end), gzip errors made clear."""
    try:
        return f.read(n)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{source}: corrupt or truncated gzip file ({e})") from e


def _read_into(f: Any, buf: bytearray, source: str) -> int:
    """Fill ``buf`` from ``f`` in bounded reads; the number of bytes read (less at EOF)."""
    view = memoryview(buf)
    pos = 0
    try:
        while pos < len(buf):
            k = f.readinto(view[pos: pos + (1 << 22)])
            if not k:
                break
            pos += k
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{source}: corrupt or truncated gzip file ({e})") from e
    finally:
        view.release()
    return pos


def load_idx(path: PathLike) -> np.ndarray:
    """Load an IDX file (raw or gzipped) into a NumPy array.

    Args:
        path: path to the file, e.g. ``"t10k-labels-idx1-ubyte.gz"``.

    Returns:
        Array with the dimensions and item type given by the header, native byte order.

    Raises:
        FileNotFoundError: if the file does not exist.
        DataError: if the file is corrupt, truncated, or not IDX (message names the file).

    The header is read first: a declared size above :func:`max_idx_bytes` is refused
    before anything is allocated; a raw file's size is compared with the header before
    its data is read, and a gzipped one is inflated up to one byte beyond the declared
    size at most, into memory that grows with what actually arrived.

    >>> labels = load_idx("t10k-labels-idx1-ubyte.gz")  # doctest: +SKIP
    >>> labels.shape, labels.dtype  # doctest: +SKIP
    ((10000,), dtype('uint8'))
    """
    source = str(path)
    opened = _open_idx(Path(path), None, source)
    with opened as f:
        raw = opened.f
        head = _read(f, 4, source)
        if len(head) == 4 and head[:2] == b"\x00\x00":
            head += _read(f, 4 * head[3], source)
        dtype, shape, offset = parse_idx_header(head, source)
        expected = math.prod(shape) * dtype.itemsize
        limit = max_idx_bytes()
        if offset + expected > limit:
            raise DataError(f"{source}: the header declares {_fmt_shape(shape)} items of "
                            f"{dtype.name} = {offset + expected} bytes, more than the limit of "
                            f"{limit} (${ENV_MAX_IDX_BYTES} raises it)")
        if f is raw:  # the actual size is known: compare before allocating
            have = os.fstat(raw.fileno()).st_size - offset
            if have != expected:
                raise _size_error(source, dtype, shape, offset, have, expected)
            buf = bytearray(expected)
            have = _read_into(f, buf, source)
            if have != expected:  # the file shrank meanwhile
                raise _size_error(source, dtype, shape, offset, have, expected)
        else:  # gzip: grow with what actually inflates, never past expected + 1 bytes
            buf = bytearray()
            while len(buf) <= expected:
                chunk = _read(f, min(1 << 22, expected + 1 - len(buf)), source)
                if not chunk:
                    break
                buf += chunk
            if len(buf) != expected:  # reaching the end made gzip check its CRC and length
                have = len(buf) if len(buf) < expected else None
                raise _size_error(source, dtype, shape, offset, have, expected)
    arr = np.frombuffer(buf, dtype=dtype).reshape(shape)
    native = dtype.newbyteorder("=")
    return arr if native == dtype else arr.astype(native)
