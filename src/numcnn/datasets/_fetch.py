"""What every dataset loader shares: where files are looked for, the cache, the mirrors, and
the verified download (design notes §7).

A loader names its dataset (``"MNIST"``), its cache subfolder (``"mnist"``) and its file
names; this module finds the files, or downloads a missing one from a list of mirrors into
the cache. A download is streamed into a private ``<file>.<pid>.<random>.part`` file in the
destination folder, at most ``max_bytes`` long, handed to the loader's ``verify`` function
(which reads and checks it and may return what it read), and only then renamed into place
with ``os.replace``; any failure removes the ``.part`` and moves on to the next mirror, so
nothing half-written or unverified is ever left in the cache.
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar, Union

from .idx import DataError, PathLike

__all__ = [
    "DownloadError",
    "ENV_DATA_DIR",
    "ENV_HOME",
    "Mirrors",
    "cache_dir",
    "dataset_dirs",
    "download_file",
    "file_digests",
    "missing_files_error",
    "mirror_list",
    "named_dirs",
]

ENV_DATA_DIR = "NUMCNN_DATA_DIR"
ENV_HOME = "NUMCNN_HOME"

Mirrors = Union[Sequence[str], str, None]
T = TypeVar("T")

_CHUNK = 1 << 16
_HASH_CHUNK = 1 << 20


class DownloadError(OSError):
    """No mirror delivered a file that passed verification."""


def env_path(var: str) -> Path | None:
    """The path in environment variable ``var``, or None when it is unset or blank."""
    value = os.environ.get(var, "")
    return Path(value).expanduser() if value.strip() else None


def cache_dir() -> Path:
    """Return numcnn's cache root (created lazily, only when something is downloaded).

    Returns:
        ``$NUMCNN_HOME`` if set, else ``$XDG_CACHE_HOME/numcnn`` (if that is an absolute
        path), else ``~/.cache/numcnn``. Each dataset lives in its own subfolder
        (``mnist/``, ``fashion_mnist/``, ``cifar10/``).
    """
    home = env_path(ENV_HOME)
    if home is not None:
        return home
    xdg = env_path("XDG_CACHE_HOME")
    if xdg is not None and xdg.is_absolute():
        return xdg / "numcnn"
    return Path.home() / ".cache" / "numcnn"


def named_dirs(data_dir: PathLike | None, what: str) -> list[tuple[Path, str]]:
    """The folders the user named: ``data_dir`` (``--data-dir``), then ``$NUMCNN_DATA_DIR``.

    Args:
        data_dir: an explicit directory, or None.
        what: the dataset's name for messages (``"MNIST"``).

    Returns:
        ``[(directory, where it came from), ...]``, leaving out the ones not given.

    Raises:
        FileNotFoundError: if one is given but is not an existing directory (a typo should
            not silently fall through to a download).
    """
    dirs: list[tuple[Path, str]] = []
    if data_dir is not None:
        dirs.append((Path(data_dir).expanduser(), "data_dir argument (--data-dir)"))
    env = env_path(ENV_DATA_DIR)
    if env is not None:
        dirs.append((env, f"${ENV_DATA_DIR}"))
    for d, origin in dirs:
        if not d.is_dir():
            raise FileNotFoundError(
                f"{what} data directory {str(d)!r} (from the {origin}) does not exist or is "
                "not a directory; fix the path, or unset it to use the cache"
            )
    return dirs


CACHE_ORIGIN = "cache ($NUMCNN_HOME, $XDG_CACHE_HOME or ~/.cache)"


def dataset_dirs(data_dir: PathLike | None, what: str, subdir: str
                 ) -> tuple[list[tuple[Path, str]], bool]:
    """The folders searched for one dataset's files, in order, for every dataset but MNIST.

    Each named folder ``D`` (see :func:`named_dirs`) is searched as ``D/<subdir>`` (when that
    folder exists: one ``$NUMCNN_DATA_DIR`` can then hold several datasets laid out like the
    cache) and then as ``D`` itself; the cache's ``<cache>/<subdir>`` comes last.

    Args:
        data_dir: an explicit directory, or None.
        what: the dataset's name for messages (``"CIFAR-10"``).
        subdir: its folder in the cache (``"cifar10"``).

    Returns:
        ``([(directory, where it came from), ...], whether a folder was named)``.

    Raises:
        FileNotFoundError: a named folder does not exist (see :func:`named_dirs`).
    """
    named = named_dirs(data_dir, what)
    dirs: list[tuple[Path, str]] = []
    for d, origin in named:
        if (d / subdir).is_dir():
            dirs.append((d / subdir, origin))
        dirs.append((d, origin))
    return dirs + [(cache_dir() / subdir, CACHE_ORIGIN)], bool(named)


def missing_files_error(what: str, missing: Sequence[str], places: Sequence[tuple[Path, str]],
                        expected: str, download: bool, note: str = "") -> FileNotFoundError:
    """The error for files found nowhere while a folder was named or downloads are off.

    Args:
        what: the dataset's name (``"MNIST"``).
        missing: the file names not found.
        places: every ``(directory, origin)`` looked in.
        expected: how the files must be named and where (``"the four IDX files (...)"``).
        download: whether downloading was allowed (changes the advice).
        note: an extra sentence (e.g. files found under a name that is not accepted).
    """
    where = "\n".join(f"  {d}  ({origin})" for d, origin in places)
    return FileNotFoundError(
        f"{what} files not found: " + ", ".join(missing) + note + ". Looked in:\n" + where
        + f"\nTo fix: put {expected} in the folder named by data_dir / --data-dir / "
        f"${ENV_DATA_DIR}"
        + (", or allow download=True." if not download else
           ", or name no folder to download them into the cache.")
    )


def mirror_list(mirrors: Mirrors, env_var: str, defaults: Sequence[str]) -> list[str]:
    """Base URLs to download from, each ending in ``/``.

    Args:
        mirrors: URLs, or one string of URLs separated by whitespace or commas; None for
            ``$<env_var>`` if set, else ``defaults``.
        env_var: the environment variable that overrides the defaults.
        defaults: the loader's public mirrors.

    Raises:
        ValueError: an empty list, or a URL that is not http:// or https://.
    """
    if mirrors is None:
        env = os.environ.get(env_var, "")
        mirrors = env if env.strip() else defaults
    if isinstance(mirrors, str):
        mirrors = re.split(r"[\s,]+", mirrors.strip())
    out = [m for m in mirrors if m]
    if not out:
        raise ValueError("mirrors must name at least one URL; received an empty list")
    for m in out:
        if urllib.parse.urlsplit(m).scheme not in ("http", "https"):
            raise ValueError(f"mirror URLs must be http:// or https://; received {m!r}")
    return [m if m.endswith("/") else m + "/" for m in out]


def fetch(url: str, part: Path, max_bytes: int, timeout: float) -> None:
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
                    raise DataError(f"{url}: response is larger than {max_bytes} bytes, more "
                                    "than the file expected can be")
                out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


def download_file(
    filename: str,
    dest: Path,
    urls: Sequence[str],
    verify: Callable[[Path, str], T],
    *,
    max_bytes: int,
    timeout: float,
    verbose: bool,
    fix: str,
) -> tuple[Path, T]:
    """Download ``<mirror><filename>`` into ``dest/filename``, verified before it appears.

    Args:
        filename: the file's name on the mirrors and in ``dest``.
        dest: the target folder (created if needed).
        urls: base URLs ending in ``/`` (see :func:`mirror_list`), tried in order.
        verify: ``verify(path, source)`` reads the downloaded file and raises
            :class:`DataError` (or ``OSError``) if it is not the file expected; what it
            returns is handed back, so the caller need not read the file twice.
        max_bytes: a response longer than this is refused while it arrives.
        timeout: socket timeout in seconds for each connection and read.
        verbose: print one line per attempt to stderr.
        fix: the advice appended to the error when every mirror failed.

    Returns:
        ``(path of the verified file, what verify returned)``.

    Raises:
        DownloadError: no mirror delivered a file that passed ``verify``; the message lists
            every URL tried and why it failed, then ``fix``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / filename
    failures: list[str] = []
    for base in urls:
        url = f"{base}{filename}"
        part = dest / f"{filename}.{os.getpid()}.{secrets.token_hex(4)}.part"
        if verbose:
            print(f"numcnn: downloading {url}", file=sys.stderr)
        try:
            fetch(url, part, max_bytes, timeout)
            result = verify(part, url)
            os.replace(part, final)
        except (OSError, DataError, http.client.HTTPException) as e:
            failures.append(f"  {url}: {e}")
        else:
            return final, result
        finally:
            part.unlink(missing_ok=True)
    raise DownloadError(f"could not download {filename} from any mirror:\n"
                        + "\n".join(failures) + "\n" + fix)


def file_digests(path: PathLike, *names: str) -> dict[str, str]:
    """Hex digests of a file's bytes as stored (no decompression), read once in chunks.

    Args:
        path: the file.
        names: hashlib algorithm names, e.g. ``"sha256", "md5"``.

    Returns:
        ``{name: hex digest}``.

    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile(delete=False) as f:
    ...     _ = f.write(b"abc")
    >>> file_digests(f.name, "md5")["md5"]
    '900150983cd24fb0d6963f7d28e17f72'
    >>> os.unlink(f.name)
    """
    # MD5 here identifies a published file; it is not used for security (FIPS builds)
    hashes = {n: hashlib.new(n, usedforsecurity=False) if n == "md5" else hashlib.new(n)
              for n in names}
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            for h in hashes.values():
                h.update(chunk)
    return {n: h.hexdigest() for n, h in hashes.items()}
