"""Datasets and data-file readers: MNIST (download, cache, checksum) and the IDX format.

Keras-style access: ``numcnn.datasets.mnist.load_data()``.
"""

from . import mnist
from .idx import DataError, load_idx, parse_idx
from .mnist import DownloadError

__all__ = ["DataError", "DownloadError", "load_idx", "mnist", "parse_idx"]
