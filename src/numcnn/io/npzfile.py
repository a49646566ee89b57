"""Read an untrusted ``.npz`` archive with bounded memory: no ``np.load``, never pickle.

A model file is input like any other: it may be damaged, truncated or built to hurt (a zip
bomb, a header that lies about a member's size, a shape of 10¹² values, an object array that
``np.load`` would unpickle). :class:`NpzArchive` therefore reads the archive itself:

* the end-of-directory record first, so that a directory of millions of entries is refused
  before ``zipfile`` parses it (:data:`MAX_ENTRIES`, :data:`MAX_DIRECTORY_BYTES`);
* then, for each member, what the directory declares — stored or deflated, not encrypted,
  an uncompressed size that fits the budget — and the ``.npy`` header (shape, dtype, read
  through ``numpy.lib.format`` from a stream that refuses to deliver more than
  :data:`MAX_HEADER_BYTES`), which must describe exactly the member's declared size;
* the data only when asked for (:meth:`NpzArchive.read`), inflating at most the bytes the
  header promised: a member that inflates to more (a lying zip header) stops there and
  fails its CRC check.

The budget — the sum of the members' uncompressed sizes, and what a model config may make
the loader allocate — is :func:`max_model_bytes`: :data:`MAX_MODEL_BYTES` (2 GiB) unless the
environment variable ``NUMCNN_MAX_MODEL_BYTES`` says otherwise. The JSON config has its own
bound, :data:`MAX_CONFIG_BYTES`. Every failure is a :class:`ModelFileError` naming the file,
what was expected and what was found.
"""

from __future__ import annotations

import math
import os
import re
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

#: default budget in bytes: members' uncompressed sizes, and what a config may allocate
MAX_MODEL_BYTES = 2 << 30
#: the environment variable that overrides :data:`MAX_MODEL_BYTES` (bytes; K, M, G suffixes)
ENV_MAX_MODEL_BYTES = "NUMCNN_MAX_MODEL_BYTES"
#: bound on the ``__config__`` member (UCS-4 text: 4 bytes per character)
MAX_CONFIG_BYTES = 16 << 20
#: bounds on the zip directory, checked before ``zipfile`` reads it
MAX_ENTRIES = 65536
MAX_DIRECTORY_BYTES = 16 << 20
#: bound on one ``.npy`` header (numpy's own default for untrusted files)
MAX_HEADER_BYTES = 10000
#: most dimensions of one array (NumPy 1.x's limit)
MAX_NDIM = 32

_CHUNK = 1 << 20
_ALLOWED_KINDS = "biufU"  # bool, integers, floats, text (the config); no objects, no records


class ModelFileError(ValueError):
    """A model or checkpoint file is damaged, not a numcnn model, or exceeds the budget.

    The message names the file, what was expected and what it holds.
    """


def show(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages about untrusted text."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "…" + text[-4:]


def clip(text: str, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters (an exception's message, say)."""
    return text if len(text) <= limit else text[: limit - 5] + "…" + text[-4:]


def format_bytes(n: int) -> str:
    """``2147483648`` → ``"2147483648 bytes (2.0 GiB)"``."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n} bytes ({n / size:.1f} {unit})"
    return f"{n} bytes"


def max_model_bytes() -> int:
    """The budget: ``$NUMCNN_MAX_MODEL_BYTES`` when set (an integer number of bytes, with an
    optional ``K``, ``M`` or ``G`` suffix for KiB, MiB, GiB), else :data:`MAX_MODEL_BYTES`.

    Raises:
        ValueError: the variable is set to something else.
    """
    text = os.environ.get(ENV_MAX_MODEL_BYTES, "").strip()
    if not text:
        return MAX_MODEL_BYTES
    m = re.fullmatch(r"(\d{1,15})\s*([KMG]?)i?B?", text, re.IGNORECASE)
    value = 0 if m is None else int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[
        m.group(2).upper()]
    if value <= 0:
        raise ValueError(f"${ENV_MAX_MODEL_BYTES} must be a positive number of bytes, such "
                         f"as 4294967296 or 4G; received {show(text)}")
    return value


class _TooLong(Exception):
    """A read past the bound of a :class:`_Limited` stream."""


class _Limited:
    """A read-only view of a stream that refuses to deliver more than ``limit`` bytes."""

    def __init__(self, raw: Any, limit: int):
        self.raw, self.left, self.pos = raw, limit, 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self.left:
            raise _TooLong
        data = self.raw.read(n)
        self.left -= len(data)
        self.pos += len(data)
        return data


@dataclass(frozen=True)
class Entry:
    """One member of the archive as its ``.npy`` header describes it."""

    key: str
    info: zipfile.ZipInfo
    dtype: np.dtype
    shape: tuple[int, ...]
    fortran: bool
    offset: int  # bytes of magic and header before the data

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _directory_bounds(fh: Any, size: int) -> tuple[int, int]:
    """``(entries, directory bytes)`` from the end-of-central-directory record (ZIP64
    included), read without ``zipfile`` so that a huge directory is refused unparsed."""
    tail_len = min(size, 22 + 65535)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    i = tail.rfind(b"PK\x05\x06")
    if i < 0 or len(tail) - i < 22:
        raise zipfile.BadZipFile("no end-of-directory record")
    entries, cd_size = struct.unpack("<4s4H2LH", tail[i: i + 22])[4:6]
    pos = size - tail_len + i  # of the record in the file
    if pos >= 20:
        fh.seek(pos - 20)
        loc = fh.read(20)
        if loc[:4] == b"PK\x06\x07":  # ZIP64 locator: the sizes live in the ZIP64 record
            off = struct.unpack("<4sLQL", loc)[2]
            if off > size - 56:
                raise zipfile.BadZipFile("the ZIP64 record lies outside the file")
            fh.seek(off)
            rec = fh.read(56)
            if rec[:4] != b"PK\x06\x06":
                raise zipfile.BadZipFile("damaged ZIP64 end-of-directory record")
            entries, cd_size = struct.unpack("<4sQ2H2L4Q", rec)[7:9]
    return entries, cd_size


class NpzArchive:
    """An ``.npz`` file opened for bounded reading (use as a context manager).

    Args:
        path: the file.
        budget: the most bytes the members may declare in all (default
            :func:`max_model_bytes`); ``__config__`` is bounded by :data:`MAX_CONFIG_BYTES`
            on its own.

    Attributes:
        keys: the member names without ``.npy``, in archive order.
    """

    def __init__(self, path: str | os.PathLike, budget: int | None = None):
        self.path = os.fspath(path)
        self.budget = max_model_bytes() if budget is None else budget
        self._fh = open(self.path, "rb")
        self._zf: zipfile.ZipFile | None = None
        self._headers: dict[str, Entry] = {}
        try:
            self._open_directory()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ plumbing
    def error(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.path}: {message}")

    def close(self) -> None:
        if self._zf is not None:
            self._zf.close()
        self._fh.close()

    def __enter__(self) -> NpzArchive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _open_directory(self) -> None:
        fh = self._fh
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(6)
        if head == npy_format.MAGIC_PREFIX:
            raise self.error("not a readable numcnn model file: a single .npy array, not an "
                             ".npz archive")
        try:
            entries, cd_size = _directory_bounds(fh, size)
        except (zipfile.BadZipFile, struct.error) as e:
            raise self.error(f"not a readable numcnn model file: expected a zip (.npz) "
                             f"archive; {e}") from None
        if entries > MAX_ENTRIES or cd_size > MAX_DIRECTORY_BYTES:
            raise self.error(f"the archive directory declares {entries} entries in "
                             f"{format_bytes(cd_size)}; expected at most {MAX_ENTRIES} entries "
                             f"in {format_bytes(MAX_DIRECTORY_BYTES)}")
        try:
            fh.seek(0)
            self._zf = zipfile.ZipFile(fh)
            infos = self._zf.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError,
                struct.error, NotImplementedError, UnicodeError) as e:
            raise self.error(f"not a readable numcnn model file ({e})") from None
        if len(infos) > MAX_ENTRIES:
            raise self.error(f"the archive holds {len(infos)} entries; expected at most "
                             f"{MAX_ENTRIES}")
        self._infos: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            name = info.filename
            if not name.endswith(".npy") or name.endswith("/"):
                raise self.error(f"entry {show(name)} is not a .npy array (np.savez names "
                                 f"every entry <key>.npy)")
            key = name[:-4]
            if key in self._infos:
                raise self.error(f"the archive holds two entries named {show(name)}")
            if info.flag_bits & 0x1:
                raise self.error(f"entry {show(key)} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self.error(f"entry {show(key)} uses compression method "
                                 f"{info.compress_type}; expected stored (0) or deflated (8)")
            if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
                raise self.error(f"entry {show(key)} is stored uncompressed but the archive "
                                 f"declares {info.compress_size} bytes on disk and "
                                 f"{info.file_size} uncompressed")
            if key == "__config__":
                if info.file_size > MAX_CONFIG_BYTES + MAX_HEADER_BYTES + 12:
                    raise self.error(f"the model config (__config__) declares "
                                     f"{format_bytes(info.file_size)}; expected at most "
                                     f"{format_bytes(MAX_CONFIG_BYTES)}")
            else:
                total += info.file_size
            self._infos[key] = info
        if total > self.budget:
            raise self.error(f"the arrays declare {format_bytes(total)} in all, more than the "
                             f"budget of {format_bytes(self.budget)} (raise it with "
                             f"${ENV_MAX_MODEL_BYTES} if the file is trusted)")
        self.keys = list(self._infos)

    def _open(self, info: zipfile.ZipInfo) -> Any:
        return self._zf.open(info)  # type: ignore[union-attr]

    # ------------------------------------------------------------------- headers
    def header(self, key: str) -> Entry:
        """The member's dtype, shape and layout, from its ``.npy`` header (data unread).

        Raises:
            ModelFileError: a damaged or oversized header, a dtype that is not plain
                numbers (objects, records, sub-arrays), or a header that disagrees with the
                size the archive declares.
        """
        entry = self._headers.get(key)
        if entry is not None:
            return entry
        info = self._infos[key]
        where = f"entry {show(key)}"
        limit = min(info.file_size, npy_format.MAGIC_LEN + 4 + MAX_HEADER_BYTES)
        try:
            with self._open(info) as raw, warnings.catch_warnings():
                warnings.simplefilter("error")
                fp = _Limited(raw, limit)
                version = npy_format.read_magic(fp)
                if version == (1, 0):
                    shape, fortran, dtype = npy_format.read_array_header_1_0(
                        fp, max_header_size=MAX_HEADER_BYTES)
                elif version == (2, 0):
                    shape, fortran, dtype = npy_format.read_array_header_2_0(
                        fp, max_header_size=MAX_HEADER_BYTES)
                else:
                    raise self.error(f"{where}: .npy format version {version}; expected "
                                     "1.0 or 2.0")
                offset = fp.pos
        except ModelFileError:
            raise
        except _TooLong:
            raise self.error(f"{where}: the .npy header is longer than the entry "
                             f"({info.file_size} bytes) or than {MAX_HEADER_BYTES} "
                             "bytes") from None
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
                RuntimeError) as e:
            raise self.error(f"{where}: damaged archive entry ({e})") from None
        except (Exception, Warning) as e:
            # numpy's parser, given ≤ 10 kB of garbage, raises ValueError, SyntaxError,
            # tokenize.TokenError, RecursionError…: all mean a damaged header
            raise self.error(f"{where}: damaged .npy header ({clip(str(e), 200)})") from None
        self._check_header(key, info, dtype, shape)
        entry = Entry(key, info, dtype, tuple(shape), bool(fortran), offset)
        if offset + entry.nbytes != info.file_size:
            raise self.error(
                f"{where}: its .npy header describes {dtype.str} values of shape "
                f"{tuple(shape)} = {entry.nbytes} data bytes after a {offset}-byte header, "
                f"but the archive declares {info.file_size} bytes for the entry")
        self._headers[key] = entry
        return entry

    def _check_header(self, key: str, info: zipfile.ZipInfo, dtype: np.dtype,
                      shape: tuple) -> None:
        where = f"entry {show(key)}"
        if dtype.hasobject or dtype.names is not None or dtype.subdtype is not None \
                or dtype.kind not in _ALLOWED_KINDS or dtype.itemsize == 0:
            raise self.error(f"{where}: dtype {show(str(dtype))} is refused; expected plain "
                             "numbers (never objects: nothing is unpickled)")
        if len(shape) > MAX_NDIM or any(d < 0 for d in shape):
            raise self.error(f"{where}: shape {show(tuple(shape))} is not a valid array shape")

    # ---------------------------------------------------------------------- data
    def read(self, key: str) -> np.ndarray:
        """The member's array (native byte order, writable), inflating no more than its
        header promised.

        Raises:
            ModelFileError: the entry is damaged (bad CRC, truncated, corrupt deflate
                stream) or its data disagree with its header.
        """
        entry = self.header(key)
        n = entry.nbytes
        buf = bytearray(n)  # n ≤ the budget: checked against the declared sizes
        view = memoryview(buf)
        where = f"entry {show(key)}"
        try:
            with self._open(entry.info) as raw:
                if len(raw.read(entry.offset)) != entry.offset:
                    raise self.error(f"{where}: truncated in its .npy header")
                pos = 0
                while pos < n:
                    k = raw.readinto(view[pos: pos + _CHUNK])
                    if not k:
                        raise self.error(f"{where}: truncated: its header promises {n} data "
                                         f"bytes, the entry holds {pos}")
                    pos += k
                if raw.read(1):
                    raise self.error(f"{where}: longer than its header says ({n} data bytes)")
        except ModelFileError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
                RuntimeError, ValueError) as e:
            raise self.error(f"{where}: damaged archive entry ({e})") from None
        finally:
            view.release()
        arr = np.frombuffer(buf, dtype=entry.dtype).reshape(
            entry.shape, order="F" if entry.fortran else "C")
        if not entry.dtype.isnative:
            arr = arr.astype(entry.dtype.newbyteorder("="))
        return arr

    def read_config(self) -> str:
        """The ``__config__`` text (a 0-d unicode array of at most :data:`MAX_CONFIG_BYTES`).

        Raises:
            ModelFileError: no such entry, or it is not 0-d text within the bound.
        """
        if "__config__" not in self._infos:
            raise self.error("not a numcnn model file (no __config__ entry)")
        entry = self.header("__config__")
        if entry.dtype.kind != "U" or entry.shape != ():
            raise self.error(f"the model config (__config__) must be one string (0-d "
                             f"unicode); received {entry.dtype.str} of shape {entry.shape}")
        if entry.nbytes > MAX_CONFIG_BYTES:
            raise self.error(f"the model config (__config__) holds "
                             f"{format_bytes(entry.nbytes)}; expected at most "
                             f"{format_bytes(MAX_CONFIG_BYTES)}")
        return str(self.read("__config__")[()])
