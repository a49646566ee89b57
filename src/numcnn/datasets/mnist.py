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
import http.client
import os
import re
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .idx import DataError, PathLike, parse_idx, parse_idx_header, read_idx_bytes

__all__ = [
    "DataError",
    "DownloadError",
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

#: Public mirrors serving ``<name>.gz`` for each file (LeCun's own site is gone).
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

ENV_DATA_DIR = "NUMCNN_DATA_DIR"
ENV_HOME = "NUMCNN_HOME"
ENV_MIRROR = "NUMCNN_MNIST_MIRROR"

_CHUNK = 1 << 16


def _raw_size(spec: FileSpec) -> int:
    return 4 + 4 * len(spec.shape) + int(np.prod(spec.shape))  # header + uint8 data


def _env_path(var: str) -> Path | None:
    value = os.environ.get(var, "")
    return Path(value).expanduser() if value.strip() else None


def cache_dir() -> Path:
    """Return numcnn's cache root (created lazily, only when something is downloaded).

    Returns:
        ``$NUMCNN_HOME`` if set, else ``$XDG_CACHE_HOME/numcnn`` (if that is an absolute
        path), else ``~/.cache/numcnn``. MNIST lives in its ``mnist/`` subfolder.
    """
    home = _env_path(ENV_HOME)
    if home is not None:
        return home
    xdg = _env_path("XDG_CACHE_HOME")
    if xdg is not None and xdg.is_absolute():
        return xdg / "numcnn"
    return Path.home() / ".cache" / "numcnn"


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
    dirs: list[tuple[Path, str]] = []
    if data_dir is not None:
        dirs.append((Path(data_dir).expanduser(), "data_dir argument (--data-dir)"))
    env = _env_path(ENV_DATA_DIR)
    if env is not None:
        dirs.append((env, f"${ENV_DATA_DIR}"))
    for d, origin in dirs:
        if not d.is_dir():
            raise FileNotFoundError(
                f"MNIST data directory {str(d)!r} (from the {origin}) does not exist or is "
                "not a directory; fix the path, or unset it to use the cache"
            )
    dirs.append((cache_dir() / "mnist", "cache ($NUMCNN_HOME, $XDG_CACHE_HOME or ~/.cache)"))
    return dirs


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


class DownloadError(OSError):
    """No mirror delivered a file that passed verification."""


def _mirror_list(mirrors: list[str] | tuple[str, ...] | str | None) -> list[str]:
    if mirrors is None:
        env = os.environ.get(ENV_MIRROR, "")
        mirrors = env if env.strip() else MIRRORS
    if isinstance(mirrors, str):
        mirrors = re.split(r"[\s,]+", mirrors.strip())
    out = [m for m in mirrors if m]
    if not out:
        raise ValueError("mirrors must name at least one URL; received an empty list")
    for m in out:
        if urllib.parse.urlsplit(m).scheme not in ("http", "https"):
            raise ValueError(f"mirror URLs must be http:// or https://; received {m!r}")
    return [m if m.endswith("/") else m + "/" for m in out]


def _fetch(url: str, part: Path, max_bytes: int, timeout: float) -> None:
    """Stream ``url`` into the new file ``part`` (at most ``max_bytes`` bytes)."""
    req = urllib.request.Request(url, headers={"User-Agent": "numcnn (python urllib)"})
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "wb") as out:
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            e.close()
            raise
        with resp:
            total = 0
            while chunk := resp.read(_CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise DataError(f"{url}: response is larger than {max_bytes} bytes")
                out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


def download(
    dest: PathLike | None = None,
    mirrors: list[str] | tuple[str, ...] | str | None = None,
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
    urls = _mirror_list(mirrors)
    names = list(FILES) if names is None else names
    for name in names:
        _spec_for(Path(name), name)
    dest.mkdir(parents=True, exist_ok=True)
    result: dict[str, Path] = {}
    for name in names:
        raw_size = _raw_size(FILES[name])
        final = dest / f"{name}.gz"
        failures: list[str] = []
        for base in urls:
            url = f"{base}{name}.gz"
            part = dest / f"{name}.gz.{os.getpid()}.{secrets.token_hex(4)}.part"
            if verbose:
                print(f"numcnn: downloading {url}", file=sys.stderr)
            try:
                # gzip never grows data by more than ~0.1 % plus a few header bytes
                _fetch(url, part, raw_size + raw_size // 500 + 4096, timeout)
                raw = read_idx_bytes(part, raw_size, gzipped=True, source=url)
                _check(raw, name, url)
                os.replace(part, final)
            except (OSError, DataError, http.client.HTTPException) as e:
                failures.append(f"  {url}: {e}")
            else:
                result[name] = final
                break
            finally:
                part.unlink(missing_ok=True)
        else:
            raise DownloadError(
                f"could not download {name}.gz from any mirror:\n"
                + "\n".join(failures)
                + f"\nTo fix: download the four MNIST files yourself and point "
                f"${ENV_DATA_DIR} (or --data-dir) at their directory, or pass other "
                f"mirrors= / set ${ENV_MIRROR}."
            )
    return result


_download = download  # ``load_data``'s ``download`` flag shadows the function's name


def load_data(
    data_dir: PathLike | None = None,
    download: bool = True,
    *,
    mirrors: list[str] | tuple[str, ...] | str | None = None,
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
        places = "\n".join(f"  {d}  ({origin})" for d, origin in search_dirs(data_dir))
        raise FileNotFoundError(
            "MNIST files not found: "
            + ", ".join(missing)
            + " (raw or .gz, under exactly these names). Looked in:\n"
            + places
            + f"\nTo fix: put the four IDX files ({', '.join(FILES)}) in the folder named by "
            f"data_dir / --data-dir / ${ENV_DATA_DIR}"
            + (", or allow download=True." if not download else
               ", or name no folder to download them into the cache.")
        )
    if missing:
        found.update(_download(None, mirrors, names=missing, timeout=timeout, verbose=verbose))
    arrays = [load_file(found[name], name) for name in FILES]  # type: ignore[arg-type]
    return (arrays[0], arrays[1]), (arrays[2], arrays[3])
