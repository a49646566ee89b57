"""CIFAR-10 from its binary distribution, ``cifar-10-binary.tar.gz``, read without extracting.

``load_data()`` returns ``((x_train, y_train), (x_test, y_test))``:

- ``x_train``: uint8 ``(50000, 3, 32, 32)`` and ``x_test``: uint8 ``(10000, 3, 32, 32)``,
  **NCHW**, numcnn's layout (channels red, green, blue; 0..255);
- ``y_train``: uint8 ``(50000,)`` and ``y_test``: uint8 ``(10000,)``, classes 0..9
  (:data:`CLASS_NAMES`).

Keras's ``keras.datasets.cifar10.load_data()`` differs in two ways: its images are NHWC
``(N, 32, 32, 3)`` by default (``x.transpose(0, 2, 3, 1)`` gives that) and its labels are a
column ``(N, 1)`` (``y[:, None]``). The training images are the five batches in order
(``data_batch_1.bin`` first), as in Keras.

Only the binary version is read, never the pickled "python version" (unpickling a file runs
code). The archive is looked for as ``cifar-10-binary.tar.gz`` in ``data_dir`` (the CLI's
``--data-dir``) and ``$NUMCNN_DATA_DIR`` — each as ``<folder>/cifar10/`` first if that exists,
then the folder itself — and then in the cache, ``<cache>/cifar10/``. Otherwise it is
downloaded into the cache from :data:`MIRRORS` (or ``mirrors=``, or ``$NUMCNN_CIFAR10_MIRROR``);
a named folder that lacks it is an error, never a download.

**Verification** (:data:`SPEC`): the archive's size, its MD5 (published on the CIFAR page)
and its SHA-256 (as recorded by TensorFlow Datasets), then its structure: exactly the members
``cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin``, ``batches.meta.txt`` (the ten class
names) and ``readme.html``, all regular files; each batch exactly 10000 records of 1 label byte
+ 3072 pixel bytes; every label 0..9. Tests replace :data:`SPEC` with their small archives'.

**Untrusted archives.** Nothing is written to disk but the downloaded archive itself (to a
``.part`` file renamed once verified). Members are read into memory; a member is refused,
before its data is read, if its path is absolute or climbs out (``..``), if it is a link,
device or other non-regular file, if it is not one of the expected members or appears twice,
or if its declared size is not the expected one. Decompression stops with an error past the
size the genuine archive inflates to (:func:`inflate_limit`), so a gzip bomb costs at most
that much reading and never more memory than the result arrays plus one batch.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ._fetch import (
    ENV_DATA_DIR,
    Mirrors,
    cache_dir,
    dataset_dirs,
    download_file,
    file_digests,
    mirror_list,
    missing_files_error,
)
from .idx import DataError, PathLike

__all__ = [
    "ARCHIVE",
    "CLASS_NAMES",
    "ENV_MIRROR",
    "FOLDER",
    "MEMBERS",
    "MIRRORS",
    "SPEC",
    "SUBDIR",
    "ArchiveSpec",
    "download",
    "find_archive",
    "inflate_limit",
    "load_archive",
    "load_data",
    "search_dirs",
]


class ArchiveSpec(NamedTuple):
    """What the archive must be: its SHA-256, MD5 and size, and the records per batch."""

    sha256: str
    md5: str
    size: int
    records: int


#: The genuine ``cifar-10-binary.tar.gz``: MD5 from https://www.cs.toronto.edu/~kriz/cifar.html,
#: SHA-256 and size from TensorFlow Datasets (``url_checksums/cifar10.txt``), 10000 records
#: in each of the six batch files (the CIFAR page).
SPEC = ArchiveSpec("c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
                   "c32a1d4ab5d03f1284b67883e8d87530", 170052171, 10000)

ARCHIVE = "cifar-10-binary.tar.gz"
FOLDER = "cifar-10-batches-bin"
TRAIN_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_BATCH = "test_batch.bin"
META = "batches.meta.txt"
README = "readme.html"
#: every member of the archive (the folder entry ``cifar-10-batches-bin`` may precede them)
MEMBERS = tuple(f"{FOLDER}/{n}" for n in (*TRAIN_BATCHES, TEST_BATCH, META, README))

#: The ten classes, in label order (``batches.meta.txt``).
CLASS_NAMES: tuple[str, ...] = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                "horse", "ship", "truck")

#: Where the archive is served: the CIFAR page of its author.
MIRRORS: tuple[str, ...] = ("https://www.cs.toronto.edu/~kriz/",)

#: the environment variable naming other mirrors
ENV_MIRROR = "NUMCNN_CIFAR10_MIRROR"
#: the dataset's folder in the cache (and, optionally, in a named data folder)
SUBDIR = "cifar10"

IMAGE_SHAPE = (3, 32, 32)
RECORD_BYTES = 1 + 3 * 32 * 32  # a label byte, then 1024 red, 1024 green, 1024 blue
#: the most a text member (batches.meta.txt, readme.html) may hold
MAX_TEXT_BYTES = 1 << 16
_PIECE = 1 << 22


def inflate_limit(spec: ArchiveSpec | None = None) -> int:
    """The most the archive may decompress to: six batches, two text members and room for
    the tar headers and padding (the genuine archive inflates to about 184.4 MB)."""
    spec = SPEC if spec is None else spec
    return 6 * spec.records * RECORD_BYTES + 4 * MAX_TEXT_BYTES


def search_dirs(data_dir: PathLike | None = None) -> list[tuple[Path, str]]:
    """The directories searched for the archive, in order (see the module docstring).

    Raises:
        FileNotFoundError: ``data_dir`` or ``$NUMCNN_DATA_DIR`` is not a directory.
    """
    return dataset_dirs(data_dir, "CIFAR-10", SUBDIR)[0]


def find_archive(data_dir: PathLike | None = None) -> Path | None:
    """The first ``cifar-10-binary.tar.gz`` in :func:`search_dirs`, or None (not verified)."""
    return next((d / ARCHIVE for d, _ in search_dirs(data_dir) if (d / ARCHIVE).is_file()),
                None)


class _Inflate:
    """A gzip stream that refuses to produce more than ``limit`` bytes (tarfile reads it)."""

    def __init__(self, f: Any, limit: int, source: str):
        self.gz = gzip.GzipFile(fileobj=f, mode="rb")
        self.left = limit
        self.limit = limit
        self.source = source

    def read(self, n: int = -1) -> bytes:
        want = self.left + 1 if n is None or n < 0 else min(n, self.left + 1)
        chunks, got = [], 0
        try:
            while got < want:  # in pieces: GzipFile.read(n) allocates n bytes up front
                chunk = self.gz.read(min(want - got, _PIECE))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{self.source}: corrupt or truncated gzip data ({e})") from e
        data = b"".join(chunks)
        if len(data) > self.left:
            raise DataError(f"{self.source}: decompresses to more than {self.limit} bytes, "
                            "more than the CIFAR-10 archive holds (damaged, or a decompression "
                            "bomb)")
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.gz.close()


def _kind(m: tarfile.TarInfo) -> str:
    if m.issym():
        return f"a symbolic link (to {m.linkname!r})"
    if m.islnk():
        return f"a hard link (to {m.linkname!r})"
    if m.isdir():
        return "a directory"
    if m.ischr() or m.isblk():
        return "a device"
    if m.isfifo():
        return "a FIFO"
    if m.issparse():
        return "a sparse file"
    return "a regular file" if m.isfile() else f"an entry of tar type {m.type!r}"


def _check_member(m: tarfile.TarInfo, seen: set[str], spec: ArchiveSpec, source: str) -> str:
    """The member's name, if it is one of :data:`MEMBERS` and may be read; else raise."""
    name = m.name[2:] if m.name.startswith("./") else m.name
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ":" in parts[0] or ".." in parts:
        why = "climbs out with '..'" if ".." in parts else "is absolute"
        raise DataError(f"{source}: unsafe member path {m.name!r} ({why}); the CIFAR-10 "
                        f"archive holds only {FOLDER}/<file>, and numcnn extracts nothing")
    if name.rstrip("/") == FOLDER and m.isdir():
        return FOLDER
    if name not in MEMBERS:
        raise DataError(f"{source}: unexpected member {m.name!r} ({_kind(m)}); expected only "
                        f"{FOLDER}/ and " + ", ".join(n.split("/")[1] for n in MEMBERS))
    if not m.isfile() or m.issparse():
        raise DataError(f"{source}: member {name} is {_kind(m)}; expected a regular file")
    if name in seen:
        raise DataError(f"{source}: member {name} appears twice")
    base = name.split("/")[1]
    if base in (META, README):
        if m.size > MAX_TEXT_BYTES:
            raise DataError(f"{source}: member {name} declares {m.size} bytes; expected a "
                            f"small text file (at most {MAX_TEXT_BYTES})")
    elif m.size % RECORD_BYTES:
        raise DataError(
            f"{source}: member {name} has {m.size} bytes, not a whole number of "
            f"{RECORD_BYTES}-byte records (1 label byte + 3072 pixel bytes)")
    elif m.size != spec.records * RECORD_BYTES:
        raise DataError(f"{source}: member {name} holds {m.size // RECORD_BYTES} records; "
                        f"expected {spec.records} ({spec.records * RECORD_BYTES} bytes)")
    return name


def _read_exact(f: Any, buf: memoryview, what: str) -> None:
    pos = 0
    while pos < len(buf):
        k = f.readinto(buf[pos: pos + _PIECE])
        if not k:
            raise DataError(f"{what}: truncated: the archive ends after {pos} of its "
                            f"{len(buf)} bytes")
        pos += k


def _read_records(f: Any, x: np.ndarray, y: np.ndarray, offset: int, n: int, what: str
                  ) -> None:
    """Read ``n`` records into ``x[offset:offset + n]`` and ``y[...]``; labels must be 0..9."""
    rec = np.empty((n, RECORD_BYTES), np.uint8)  # one batch: (records, 1 + 3*32*32)
    _read_exact(f, memoryview(rec).cast("B"), what)
    labels = rec[:, 0]
    bad = np.flatnonzero(labels >= len(CLASS_NAMES))
    if bad.size:
        raise DataError(f"{what}: record {int(bad[0])} has label {int(labels[bad[0]])}; "
                        f"CIFAR-10 labels are 0..{len(CLASS_NAMES) - 1}")
    y[offset: offset + n] = labels
    x[offset: offset + n].reshape(n, -1)[...] = rec[:, 1:]  # (n, 3072) = C, H, W in order


def read_archive(path: PathLike, *, source: str | None = None, spec: ArchiveSpec | None = None
                 ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Read the batches out of a CIFAR-10 binary archive, checking its structure (not its
    checksums: :func:`load_archive` does both).

    Args:
        path: the ``.tar.gz`` file.
        source: the name used in messages (default ``path``).
        spec: records per batch (default :data:`SPEC`).

    Returns:
        ``((x_train, y_train), (x_test, y_test))`` as described in the module docstring.

    Raises:
        DataError: anything in the archive that is not as the genuine one (see the module
            docstring); the message names the archive, the member and what was expected.
    """
    spec = SPEC if spec is None else spec
    source = str(path) if source is None else source
    n = spec.records
    x_train = np.empty((5 * n, *IMAGE_SHAPE), np.uint8)
    y_train = np.empty(5 * n, np.uint8)
    x_test = np.empty((n, *IMAGE_SHAPE), np.uint8)
    y_test = np.empty(n, np.uint8)
    seen: set[str] = set()
    with open(path, "rb") as raw:
        if raw.read(2) != b"\x1f\x8b":
            raise DataError(f"{source}: not a gzip file (a .tar.gz starts with bytes 1f 8b)")
        raw.seek(0)
        stream = _Inflate(raw, inflate_limit(spec), source)
        try:
            # "r|": a stream, read once in order; no member is ever extracted to disk
            with tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 20) as tar:  # type: ignore
                for m in tar:
                    name = _check_member(m, seen, spec, source)
                    seen.add(name)
                    base = name.split("/")[-1]
                    if base in TRAIN_BATCHES or base == TEST_BATCH:
                        f = tar.extractfile(m)
                        assert f is not None
                        what = f"{source}: member {name}"
                        if base == TEST_BATCH:
                            _read_records(f, x_test, y_test, 0, n, what)
                        else:
                            _read_records(f, x_train, y_train, TRAIN_BATCHES.index(base) * n,
                                          n, what)
                    elif base == META:
                        f = tar.extractfile(m)
                        assert f is not None
                        _check_meta(f.read(m.size), f"{source}: member {name}")
        except tarfile.TarError as e:
            raise DataError(f"{source}: not a valid tar archive ({e})") from e
        finally:
            stream.close()
    absent = [name for name in MEMBERS if name not in seen]
    if absent:
        raise DataError(f"{source}: the archive lacks " + ", ".join(absent)
                        + " (truncated, or not the CIFAR-10 binary distribution)")
    return (x_train, y_train), (x_test, y_test)


def _check_meta(data: bytes, what: str) -> None:
    try:
        names = tuple(data.decode("ascii").split())
    except UnicodeDecodeError:
        names = ("<not ASCII text>",)
    if names != CLASS_NAMES:
        raise DataError(f"{what}: lists {list(names)[:12]}; expected the ten CIFAR-10 class "
                        f"names {list(CLASS_NAMES)}")


def load_archive(path: PathLike, *, source: str | None = None
                 ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Verify ``cifar-10-binary.tar.gz`` (size, SHA-256, MD5, structure) and read it.

    Args:
        path: the archive.
        source: the name used in messages (default ``path``; the URL for a download).

    Returns:
        ``((x_train, y_train), (x_test, y_test))``.

    Raises:
        DataError: the file is not the genuine archive or is damaged; the message names it,
            what was expected and what was found.
    """
    source = str(path) if source is None else source
    spec = SPEC
    size = os.stat(path).st_size
    if size != spec.size:
        what = "truncated" if size < spec.size else "too long"
        raise DataError(f"{source}: {what}: expected the published {ARCHIVE} of {spec.size} "
                        f"bytes, the file has {size}")
    got = file_digests(path, "sha256", "md5")
    for algo, want in (("sha256", spec.sha256), ("md5", spec.md5)):
        if got[algo] != want:
            raise DataError(f"{source}: expected {algo.upper().replace('SHA', 'SHA-')} {want} "
                            f"for {ARCHIVE}, got {got[algo]} (the file is damaged or is not "
                            "the original CIFAR-10 binary archive)")
    return read_archive(path, source=source, spec=spec)


def download(dest: PathLike | None = None, mirrors: Mirrors = None, *, timeout: float = 30.0,
             verbose: bool = True) -> Path:
    """Download ``cifar-10-binary.tar.gz`` into ``dest``, verified before it appears there.

    Args:
        dest: target directory; default ``cache_dir() / "cifar10"``.
        mirrors: base URLs tried in order (``<mirror>cifar-10-binary.tar.gz``); default
            ``$NUMCNN_CIFAR10_MIRROR`` or :data:`MIRRORS`.
        timeout: socket timeout in seconds.
        verbose: print one line per attempt to stderr.

    Returns:
        The path of the verified archive.

    Raises:
        DownloadError: no mirror delivered the genuine archive; the message lists every URL
            tried and why it failed.
    """
    return _download(dest, mirrors, timeout, verbose)[0]


def _download(dest: PathLike | None, mirrors: Mirrors, timeout: float, verbose: bool
              ) -> tuple[Path, Any]:
    dest = cache_dir() / SUBDIR if dest is None else Path(dest).expanduser()
    urls = mirror_list(mirrors, ENV_MIRROR, MIRRORS)
    fix = (f"To fix: download {ARCHIVE} yourself and point ${ENV_DATA_DIR} (or --data-dir) at "
           f"its directory, or pass other mirrors= / set ${ENV_MIRROR}.")
    return download_file(ARCHIVE, dest, urls, lambda p, url: load_archive(p, source=url),
                         max_bytes=SPEC.size, timeout=timeout, verbose=verbose, fix=fix)


def load_data(
    data_dir: PathLike | None = None,
    download: bool = True,
    *,
    mirrors: Mirrors = None,
    timeout: float = 30.0,
    verbose: bool = True,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load CIFAR-10 (binary version): like ``keras.datasets.cifar10.load_data()``, but NCHW
    images and ``(N,)`` labels.

    Args:
        data_dir: a directory holding ``cifar-10-binary.tar.gz`` (or a ``cifar10/``
            subfolder that does), searched before ``$NUMCNN_DATA_DIR`` and the cache.
        download: download the archive into the cache if it is found nowhere; if False,
            raise. A named folder that lacks it is an error, never a download.
        mirrors: base URLs to download from (see :func:`download`).
        timeout: socket timeout in seconds for downloads.
        verbose: report downloads on stderr.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``, all uint8, writable, C-contiguous.

    Shape:
        - x_train: ``(50000, 3, 32, 32)`` (N, C, H, W; RGB, 0..255)
        - y_train: ``(50000,)``, classes 0..9 (:data:`CLASS_NAMES`)
        - x_test: ``(10000, 3, 32, 32)``
        - y_test: ``(10000,)``

    Raises:
        FileNotFoundError: the archive is missing and a folder was named or
            ``download=False`` (the message lists every place looked), or ``data_dir`` /
            ``$NUMCNN_DATA_DIR`` is not a directory.
        DataError: the archive found is damaged or not the genuine one.
        DownloadError: the download failed on every mirror.

    >>> (x_train, y_train), (x_test, y_test) = load_data()  # doctest: +SKIP
    >>> x_train.shape, CLASS_NAMES[y_train[0]]  # doctest: +SKIP
    ((50000, 3, 32, 32), 'frog')
    """
    dirs, named = dataset_dirs(data_dir, "CIFAR-10", SUBDIR)
    path = find_archive(data_dir)
    if path is None and (not download or named):
        notes = []
        for d, _ in dirs:
            if (d / FOLDER).is_dir():
                notes.append(f"found the extracted folder {d / FOLDER}: numcnn reads and "
                             "verifies the archive itself, so keep the .tar.gz")
            if (d / "cifar-10-python.tar.gz").is_file():
                notes.append(f"found {d / 'cifar-10-python.tar.gz'}, the pickled version, "
                             "which numcnn never reads (unpickling runs code)")
        raise missing_files_error(
            "CIFAR-10", [ARCHIVE], dirs,
            f"{ARCHIVE} (the binary version; or a '{SUBDIR}' subfolder holding it)", download,
            note=f" ({'; '.join(notes)})" if notes else "")
    if path is None:
        return _download(None, mirrors, timeout, verbose)[1]
    return load_archive(path)
