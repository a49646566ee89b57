"""MNIST: find, download, verify and load the four IDX files (design notes §7).

``load_data()`` returns ``((x_train, y_train), (x_test, y_test))`` as uint8 arrays shaped like
Keras's: ``x_train (60000, 28, 28)``, ``y_train (60000,)``, ``x_test (10000, 28, 28)``,
``y_test (10000,)``.

Each of the four files is taken from the first place that has it, raw or gzipped, under its
canonical name (``train-images-idx3-ubyte`` or ``train-images-idx3-ubyte.gz``, ...):

1. the ``data_dir`` argument (the CLI's ``--data-dir``);
2. ``$NUMCNN_DATA_DIR``;
3. the cache, ``<cache>/mnist`` where ``<cache>`` is ``$NUMCNN_HOME``, else
   ``$XDG_CACHE_HOME/numcnn``, else ``~/.cache/numcnn``;
4. otherwise it is downloaded into the cache from :data:`MIRRORS` (or ``mirrors=``, or the
   whitespace/comma separated URLs in ``$NUMCNN_MNIST_MIRROR``).

Every load checks the header and the SHA-256 of the decompressed bytes against
:data:`FILES`; a download goes to a ``.part`` file that is renamed only after that check.

MNIST is by Y. LeCun, C. Cortes and C. J. C. Burges, licensed CC BY-SA 3.0.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ._fetch import (
    CACHE_ORIGIN,
    ENV_DATA_DIR,
    ENV_HOME,
    DownloadError,
    Mirrors,
    cache_dir,
    download_file,
    mirror_list,
    missing_files_error,
    named_dirs,
)
from .idx import DataError, PathLike, parse_idx, parse_idx_header, read_idx_bytes

__all__ = [
    "CLASS_NAMES",
    "DataError",
    "DownloadError",
    "ENV_DATA_DIR",
    "ENV_HOME",
    "ENV_MIRROR",
    "FILES",
    "MIRRORS",
    "cache_dir",
    "download",
    "file_sha256",
    "find_files",
    "load_data",
    "load_file",
    "search_dirs",
    "verify_file",
]


class FileSpec(NamedTuple):
    """What one MNIST file must contain: its SHA-256 (of the raw IDX bytes) and shape."""

    sha256: str
    shape: tuple[int, ...]


#: The four MNIST files, in load order, with the SHA-256 of their decompressed IDX bytes.
FILES: dict[str, FileSpec] = {
    "train-images-idx3-ubyte": FileSpec(
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", (60000, 28, 28)
    ),
    "train-labels-idx1-ubyte": FileSpec(
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", (60000,)
    ),
    "t10k-images-idx3-ubyte": FileSpec(
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", (10000, 28, 28)
    ),
    "t10k-labels-idx1-ubyte": FileSpec(
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", (10000,)
    ),
}

#: The ten classes, in label order: the digits.
CLASS_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))

#: Public mirrors serving ``<name>.gz`` for each file (LeCun's own site is gone).
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

#: the environment variable naming other mirrors (``$NUMCNN_DATA_DIR`` and ``$NUMCNN_HOME``
#: are shared by every dataset: see ``numcnn.datasets._fetch``)
ENV_MIRROR = "NUMCNN_MNIST_MIRROR"


def _raw_size(spec: FileSpec) -> int:
    return 4 + 4 * len(spec.shape) + int(np.prod(spec.shape))  # header + uint8 data


def search_dirs(data_dir: PathLike | None = None) -> list[tuple[Path, str]]:
    """The directories searched for the MNIST files, in order.

    Args:
        data_dir: an explicit directory (``--data-dir``); searched first.

    Returns:
        ``[(directory, where it came from), ...]``: ``data_dir``, ``$NUMCNN_DATA_DIR`` and
        ``<cache>/mnist``, leaving out the ones not given.

    Raises:
        FileNotFoundError: if ``data_dir`` or ``$NUMCNN_DATA_DIR`` is given but is not an
            existing directory (a typo should not silently fall through to a download).
    """
    return named_dirs(data_dir, "MNIST") + [(cache_dir() / "mnist", CACHE_ORIGIN)]


def _candidates(directory: Path, name: str) -> tuple[Path, Path]:
    return directory / name, directory / f"{name}.gz"


def find_files(data_dir: PathLike | None = None) -> dict[str, Path | None]:
    """Locate each MNIST file in the first directory of :func:`search_dirs` that has it.

    Args:
        data_dir: an explicit directory, searched first.

    Returns:
        ``{canonical name: path or None if not found}``; a raw file is preferred over a
        ``.gz`` in the same directory. Nothing is read or verified here.
    """
    dirs = search_dirs(data_dir)
    found: dict[str, Path | None] = {}
    for name in FILES:
        found[name] = next((p for d, _ in dirs for p in _candidates(d, name) if p.is_file()), None)
    return found


def _spec_for(path: Path, name: str | None) -> tuple[str, FileSpec]:
    if name is None:
        name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if name not in FILES:
        raise ValueError(
            f"unknown MNIST file name {name!r}; expected one of {sorted(FILES)} "
            "(optionally with .gz), or pass name="
        )
    return name, FILES[name]


def _check(raw: bytes, name: str, source: str) -> np.ndarray:
    """Validate decompressed bytes as MNIST file ``name``; return the writable array.

    ``raw`` may have been cut at one byte more than the expected size (see
    ``read_idx_bytes(max_size=)``), which is enough to report that it is too long.
    """
    spec = FILES[name]
    dtype, shape, offset = parse_idx_header(raw, source)
    if dtype != np.uint8 or shape != spec.shape:
        raise DataError(
            f"{source}: wrong file: expected {name} holding uint8 of shape {spec.shape}, "
            f"but its header says {dtype.name} of shape {shape}"
        )
    if len(raw) > _raw_size(spec):
        raise DataError(
            f"{source}: too long: header says {'x'.join(map(str, shape))} items of uint8 = "
            f"{_raw_size(spec) - offset} data bytes after the {offset}-byte header, "
            "file has more"
        )
    arr = parse_idx(raw, source=source, copy=False)  # raises if truncated
    digest = hashlib.sha256(raw).hexdigest()
    if digest != spec.sha256:
        raise DataError(
            f"{source}: expected SHA-256 {spec.sha256} for {name}, got {digest} "
            "(the file is damaged or is not the original MNIST file)"
        )
    return arr.copy()


def file_sha256(path: PathLike) -> str:
    """SHA-256 (hex) of a file's decompressed contents (gzip is undone first).

    Args:
        path: a raw or gzipped file.

    Returns:
        The hex digest, comparable to :data:`FILES` whatever the compression.
    """
    return hashlib.sha256(read_idx_bytes(path)).hexdigest()


def load_file(path: PathLike, name: str | None = None) -> np.ndarray:
    """Read one MNIST file (raw or gzipped), validate its header and verify its SHA-256.

    Args:
        path: the file.
        name: its canonical name (e.g. ``"t10k-labels-idx1-ubyte"``); by default taken
            from the file name, without ``.gz``.

    Returns:
        uint8 array: ``(N, 28, 28)`` for images, ``(N,)`` for labels.

    Raises:
        DataError: bad gzip, truncated, wrong magic, wrong file or checksum mismatch; the
            message names ``path``.
        ValueError: if ``name`` is not one of :data:`FILES`.
    """
    path = Path(path)
    name, spec = _spec_for(path, name)
    return _check(read_idx_bytes(path, max_size=_raw_size(spec)), name, str(path))


def verify_file(path: PathLike, name: str | None = None) -> None:
    """Check that ``path`` is the genuine MNIST file ``name`` (format and SHA-256).

    Args:
        path: the file (raw or gzipped).
        name: canonical name; by default taken from the file name.

    Raises:
        DataError: with a message naming the file and what is wrong.
    """
    load_file(path, name)


def download(
    dest: PathLike | None = None,
    mirrors: Mirrors = None,
    *,
    names: list[str] | None = None,
    timeout: float = 30.0,
    verbose: bool = True,
) -> dict[str, Path]:
    """Download MNIST files as ``<dest>/<name>.gz``, verifying each before it appears.

    Each file is streamed to a unique ``<name>.gz.<id>.part`` in ``dest``, decompressed and
    checked (header, shape, SHA-256), then renamed into place with ``os.replace``. On any
    failure the ``.part`` is removed and the next mirror is tried.

    Args:
        dest: target directory; default ``cache_dir() / "mnist"``.
        mirrors: base URLs tried in order (``<mirror><name>.gz``); default
            ``$NUMCNN_MNIST_MIRROR`` (whitespace/comma separated) or :data:`MIRRORS`.
        names: which files (default: all four).
        timeout: socket timeout in seconds for each connection and read.
        verbose: print one line per file to stderr.

    Returns:
        ``{name: path of the verified .gz file}``.

    Raises:
        DownloadError: if some file could not be fetched and verified from any mirror; the
            message lists every URL tried and why it failed.
    """
    dest = cache_dir() / "mnist" if dest is None else Path(dest).expanduser()
    urls = mirror_list(mirrors, ENV_MIRROR, MIRRORS)
    names = list(FILES) if names is None else names
    for name in names:
        _spec_for(Path(name), name)
    fix = (f"To fix: download the four MNIST files yourself and point ${ENV_DATA_DIR} (or "
           f"--data-dir) at their directory, or pass other mirrors= / set ${ENV_MIRROR}.")
    result: dict[str, Path] = {}
    for name in names:
        raw_size = _raw_size(FILES[name])

        def verify(part: Path, url: str, name: str = name, raw_size: int = raw_size) -> None:
            _check(read_idx_bytes(part, raw_size, gzipped=True, source=url), name, url)

        # gzip never grows data by more than ~0.1 % plus a few header bytes
        result[name], _ = download_file(
            f"{name}.gz", dest, urls, verify, max_bytes=raw_size + raw_size // 500 + 4096,
            timeout=timeout, verbose=verbose, fix=fix)
    return result


_download = download  # ``load_data``'s ``download`` flag shadows the function's name


def load_data(
    data_dir: PathLike | None = None,
    download: bool = True,
    *,
    mirrors: Mirrors = None,
    timeout: float = 30.0,
    verbose: bool = True,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST, like ``keras.datasets.mnist.load_data()``.

    Args:
        data_dir: a directory holding the four IDX files (raw or ``.gz``), searched before
            ``$NUMCNN_DATA_DIR`` and the cache.
        download: if a file is found nowhere, download it into the cache; if False, raise.
            A file missing while a folder was named (``data_dir`` or ``$NUMCNN_DATA_DIR``)
            is an error naming the places and the expected file names, never a download.
        mirrors: base URLs to download from (see :func:`download`).
        timeout: socket timeout in seconds for downloads.
        verbose: report downloads on stderr.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``, all uint8, writable.

    Shape:
        - x_train: ``(60000, 28, 28)``, grey levels 0..255 (0 is background)
        - y_train: ``(60000,)``, digits 0..9
        - x_test: ``(10000, 28, 28)``
        - y_test: ``(10000,)``

    Raises:
        FileNotFoundError: files missing and ``download=False`` (lists every place looked),
            or ``data_dir`` / ``$NUMCNN_DATA_DIR`` is not a directory.
        DataError: a file found on disk is corrupt, truncated or not genuine MNIST.
        DownloadError: a download failed on every mirror.

    >>> (x_train, y_train), (x_test, y_test) = load_data()  # doctest: +SKIP
    >>> x_train.shape, y_test.shape  # doctest: +SKIP
    ((60000, 28, 28), (10000,))
    """
    found = find_files(data_dir)
    missing = [name for name, path in found.items() if path is None]
    named = len(search_dirs(data_dir)) > 1  # a folder was named (data_dir or the variable)
    if missing and (not download or named):
        # a named folder that lacks files is a mistake to report (a typo, a half-copied
        # folder), not a reason to fall through to a download
        raise missing_files_error(
            "MNIST", missing, search_dirs(data_dir), f"the four IDX files ({', '.join(FILES)})",
            download, note=" (raw or .gz, under exactly these names)")
    if missing:
        found.update(_download(None, mirrors, names=missing, timeout=timeout, verbose=verbose))
    arrays = [load_file(found[name], name) for name in FILES]  # type: ignore[arg-type]
    return (arrays[0], arrays[1]), (arrays[2], arrays[3])
