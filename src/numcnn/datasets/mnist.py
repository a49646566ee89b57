"""Alias of :mod:`numcnn.data.mnist`, so ``numcnn.datasets.mnist.load_data()`` works."""

from ..data.mnist import (
    FILES,
    MIRRORS,
    DataError,
    DownloadError,
    cache_dir,
    download,
    file_sha256,
    find_files,
    load_data,
    load_file,
    search_dirs,
    verify_file,
)

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
