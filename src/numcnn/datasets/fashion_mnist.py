"""Fashion-MNIST: find, download, verify and load the four gzipped IDX files.

``load_data()`` returns ``((x_train, y_train), (x_test, y_test))`` exactly like
``keras.datasets.fashion_mnist.load_data()`` (and like :mod:`numcnn.datasets.mnist`): uint8
arrays ``x_train (60000, 28, 28)``, ``y_train (60000,)``, ``x_test (10000, 28, 28)``,
``y_test (10000,)``; the labels index :data:`CLASS_NAMES`.

Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017; © Zalando SE, MIT licence) is the MNIST
format with the MNIST file names. The four files are read as Zalando distributes them,
gzipped: ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``. Each comes from the first of:

1. the ``data_dir`` argument (the CLI's ``--data-dir``), then ``$NUMCNN_DATA_DIR`` — in each,
   a ``fashion_mnist/`` subfolder if there is one, else the folder itself;
2. the cache, ``<cache>/fashion_mnist`` (``<cache>`` as for MNIST: ``$NUMCNN_HOME``, else
   ``$XDG_CACHE_HOME/numcnn``, else ``~/.cache/numcnn``);
3. otherwise it is downloaded into the cache from :data:`MIRRORS` (or ``mirrors=``, or the
   URLs in ``$NUMCNN_FASHION_MNIST_MIRROR``). A folder that was named but lacks a file is an
   error naming it and the expected file names, never a reason to download.

**Verification.** The published checksums are of the ``.gz`` files: Zalando's README gives
their MD5, and TensorFlow Datasets and Keras record their SHA-256 (:data:`FILES`). Every load
checks a file's size, SHA-256 and MD5 against those, then its IDX header (uint8, the expected
shape), its length and its labels (0..9). An uncompressed file cannot be matched to the
published checksums, so it is not accepted (the error says so); decompression is bounded by
the expected size. Tests replace :data:`FILES` with the checksums of their own small files.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import mnist
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
from .idx import DataError, PathLike, parse_idx, parse_idx_header, read_idx_bytes

__all__ = [
    "CLASS_NAMES",
    "ENV_MIRROR",
    "FILES",
    "MIRRORS",
    "SUBDIR",
    "download",
    "find_files",
    "load_data",
    "load_file",
    "search_dirs",
]


class FileSpec(NamedTuple):
    """One published ``.gz`` file: its SHA-256, MD5 and size, and the shape of its array."""

    sha256: str
    md5: str
    size: int
    shape: tuple[int, ...]


#: The four files (without ``.gz``), in load order. SHA-256 and sizes as recorded by
#: TensorFlow Datasets (``url_checksums/fashion_mnist.txt``) and Keras
#: (``datasets/fashion_mnist.py``); MD5 as published in Zalando's README.
FILES: dict[str, FileSpec] = {
    "train-images-idx3-ubyte": FileSpec(
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880, (60000, 28, 28)),
    "train-labels-idx1-ubyte": FileSpec(
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "25c81989df183df01b3e8a0aad5dffbe", 29515, (60000,)),
    "t10k-images-idx3-ubyte": FileSpec(
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "bef4ecab320f06d8554ea6380940ec79", 4422102, (10000, 28, 28)),
    "t10k-labels-idx1-ubyte": FileSpec(
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        "bb300cfdad3c16e7a12a480ee83cd310", 5148, (10000,)),
}

#: The ten classes, in label order (Zalando's README).
CLASS_NAMES: tuple[str, ...] = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

#: Where ``<name>.gz`` is served: Zalando's repository and its own download site, then the
#: copy Keras downloads (the same bytes: Keras checks the same SHA-256).
MIRRORS: tuple[str, ...] = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
)

#: the environment variable naming other mirrors
ENV_MIRROR = "NUMCNN_FASHION_MNIST_MIRROR"
#: the dataset's folder in the cache (and, optionally, in a named data folder)
SUBDIR = "fashion_mnist"


def _raw_size(spec: FileSpec) -> int:
    return 4 + 4 * len(spec.shape) + int(np.prod(spec.shape))  # header + uint8 data


def search_dirs(data_dir: PathLike | None = None) -> list[tuple[Path, str]]:
    """The directories searched for the files, in order (see the module docstring).

    Raises:
        FileNotFoundError: ``data_dir`` or ``$NUMCNN_DATA_DIR`` is not a directory.
    """
    return dataset_dirs(data_dir, "Fashion-MNIST", SUBDIR)[0]


def find_files(data_dir: PathLike | None = None) -> dict[str, Path | None]:
    """Locate each ``<name>.gz`` in the first directory of :func:`search_dirs` that has it.

    Returns:
        ``{name (without .gz): path or None}``. Nothing is read or verified here.
    """
    dirs = search_dirs(data_dir)
    return {name: next((d / f"{name}.gz" for d, _ in dirs if (d / f"{name}.gz").is_file()),
                       None) for name in FILES}


def _mnist_hint(path: Path, spec: FileSpec) -> str:
    """A hint when a file is the MNIST file of the same name (the names are shared)."""
    try:
        digest = hashlib.sha256(read_idx_bytes(path, _raw_size(spec))).hexdigest()
    except (OSError, DataError):
        return ""
    if any(digest == s.sha256 for s in mnist.FILES.values()):
        return (" It is an MNIST file: Fashion-MNIST uses the same file names, so keep the "
                f"two in separate folders (e.g. a '{SUBDIR}' subfolder).")
    return ""


def load_file(path: PathLike, name: str | None = None, *, source: str | None = None
              ) -> np.ndarray:
    """Verify one Fashion-MNIST ``.gz`` file and read it.

    Checks, in order: the size, SHA-256 and MD5 of the file against :data:`FILES`; then the
    IDX header (uint8 of the expected shape), the length, and for labels the range 0..9.

    Args:
        path: the gzipped file.
        name: its name in :data:`FILES` (``"t10k-labels-idx1-ubyte"``); by default the file
            name without ``.gz``.
        source: the name used in messages (default ``path``; the URL for a download).

    Returns:
        uint8 array, writable: ``(N, 28, 28)`` images or ``(N,)`` labels.

    Raises:
        DataError: the file is not the published one or is damaged; the message names it,
            what was expected and what was found.
        ValueError: ``name`` is not one of :data:`FILES`.
    """
    path = Path(path)
    source = str(path) if source is None else source
    if name is None:
        name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if name not in FILES:
        raise ValueError(f"unknown Fashion-MNIST file name {name!r}; expected one of "
                         f"{sorted(f + '.gz' for f in FILES)}, or pass name=")
    spec = FILES[name]
    size = os.stat(path).st_size
    if size != spec.size:
        what = "truncated" if size < spec.size else "too long"
        raise DataError(f"{source}: {what}: expected the published {name}.gz of {spec.size} "
                        f"bytes, the file has {size}.{_mnist_hint(path, spec)}")
    got = file_digests(path, "sha256", "md5")
    for algo, want in (("sha256", spec.sha256), ("md5", spec.md5)):
        if got[algo] != want:
            raise DataError(f"{source}: expected {algo.upper().replace('SHA', 'SHA-')} "
                            f"{want} for {name}.gz, got {got[algo]} (the file is damaged or "
                            f"is not the original Fashion-MNIST file).{_mnist_hint(path, spec)}")
    raw = read_idx_bytes(path, _raw_size(spec), gzipped=True, source=source)
    dtype, shape, offset = parse_idx_header(raw, source)
    if dtype != np.uint8 or shape != spec.shape:
        raise DataError(f"{source}: wrong file: expected {name} holding uint8 of shape "
                        f"{spec.shape}, but its header says {dtype.name} of shape {shape}")
    if len(raw) > _raw_size(spec):
        raise DataError(f"{source}: too long: {name} holds {_raw_size(spec) - offset} data "
                        "bytes after its header, the file has more")
    arr = parse_idx(raw, source=source)  # raises if truncated
    if arr.ndim == 1 and arr.size and int(arr.max()) >= len(CLASS_NAMES):
        i = int(np.flatnonzero(arr >= len(CLASS_NAMES))[0])
        raise DataError(f"{source}: label {int(arr[i])} at index {i}; Fashion-MNIST labels "
                        f"are 0..{len(CLASS_NAMES) - 1}")
    return arr


def download(
    dest: PathLike | None = None,
    mirrors: Mirrors = None,
    *,
    names: list[str] | None = None,
    timeout: float = 30.0,
    verbose: bool = True,
) -> dict[str, Path]:
    """Download Fashion-MNIST files as ``<dest>/<name>.gz``, each verified before it appears.

    Args:
        dest: target directory; default ``cache_dir() / "fashion_mnist"``.
        mirrors: base URLs tried in order (``<mirror><name>.gz``); default
            ``$NUMCNN_FASHION_MNIST_MIRROR`` or :data:`MIRRORS`.
        names: which files (default: all four).
        timeout: socket timeout in seconds.
        verbose: print one line per file to stderr.

    Returns:
        ``{name: path of the verified .gz file}``.

    Raises:
        DownloadError: a file could not be fetched and verified from any mirror; the
            message lists every URL tried and why it failed.
    """
    return {n: p for n, (p, _) in _download(dest, mirrors, names, timeout, verbose).items()}


def _download(dest: PathLike | None, mirrors: Mirrors, names: list[str] | None,
              timeout: float, verbose: bool) -> dict[str, tuple[Path, np.ndarray]]:
    dest = cache_dir() / SUBDIR if dest is None else Path(dest).expanduser()
    urls = mirror_list(mirrors, ENV_MIRROR, MIRRORS)
    names = list(FILES) if names is None else names
    for name in names:
        if name not in FILES:
            raise ValueError(f"unknown Fashion-MNIST file name {name!r}; expected one of "
                             f"{list(FILES)}")
    fix = (f"To fix: download the four Fashion-MNIST .gz files yourself and point "
           f"${ENV_DATA_DIR} (or --data-dir) at their directory, or pass other mirrors= / "
           f"set ${ENV_MIRROR}.")
    out = {}
    for name in names:
        def verify(part: Path, url: str, name: str = name) -> np.ndarray:
            return load_file(part, name, source=url)

        out[name] = download_file(f"{name}.gz", dest, urls, verify, max_bytes=FILES[name].size,
                                  timeout=timeout, verbose=verbose, fix=fix)
    return out


def load_data(
    data_dir: PathLike | None = None,
    download: bool = True,
    *,
    mirrors: Mirrors = None,
    timeout: float = 30.0,
    verbose: bool = True,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load Fashion-MNIST, like ``keras.datasets.fashion_mnist.load_data()``.

    Args:
        data_dir: a directory holding the four ``.gz`` files (or a ``fashion_mnist/``
            subfolder that does), searched before ``$NUMCNN_DATA_DIR`` and the cache.
        download: download files found nowhere into the cache; if False, raise. A file
            missing while a folder was named is an error, never a download.
        mirrors: base URLs to download from (see :func:`download`).
        timeout: socket timeout in seconds for downloads.
        verbose: report downloads on stderr.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``, all uint8, writable.

    Shape:
        - x_train: ``(60000, 28, 28)``, grey levels 0..255 (0 is background)
        - y_train: ``(60000,)``, classes 0..9 (:data:`CLASS_NAMES`)
        - x_test: ``(10000, 28, 28)``
        - y_test: ``(10000,)``

    Raises:
        FileNotFoundError: files missing and a folder named or ``download=False`` (the
            message lists every place looked and the file names expected), or ``data_dir``
            / ``$NUMCNN_DATA_DIR`` is not a directory.
        DataError: a file found on disk is damaged or not the published one.
        DownloadError: a download failed on every mirror.

    >>> (x_train, y_train), (x_test, y_test) = load_data()  # doctest: +SKIP
    >>> CLASS_NAMES[y_train[0]]  # doctest: +SKIP
    'Ankle boot'
    """
    dirs, named = dataset_dirs(data_dir, "Fashion-MNIST", SUBDIR)
    found = find_files(data_dir)
    missing = [name for name, path in found.items() if path is None]
    if missing and (not download or named):
        raw = [str(d / n) for n in missing for d, _ in dirs if (d / n).is_file()]
        note = ("" if not raw else " (found uncompressed " + ", ".join(raw) + ": Fashion-MNIST "
                "is verified by the published checksums of the .gz files, so only those are "
                "read)")
        raise missing_files_error(
            "Fashion-MNIST", [f"{n}.gz" for n in missing], dirs,
            f"the four gzipped IDX files ({', '.join(f + '.gz' for f in FILES)}), or a "
            f"'{SUBDIR}' subfolder holding them,", download, note=note)
    arrays = {}
    if missing:
        arrays = {n: a for n, (_, a) in _download(None, mirrors, missing, timeout,
                                                   verbose).items()}
    for name, path in found.items():
        if name not in arrays:
            arrays[name] = load_file(path, name)  # type: ignore[arg-type]
    a = [arrays[name] for name in FILES]
    return (a[0], a[1]), (a[2], a[3])
