"""Datasets and data-file readers: MNIST, Fashion-MNIST and CIFAR-10 (find, download, verify,
cache, read) and the IDX format.

Keras-style access: ``numcnn.datasets.mnist.load_data()``, ``fashion_mnist.load_data()``,
``cifar10.load_data()``; or by name, ``numcnn.datasets.load("cifar10")``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import cifar10, fashion_mnist, mnist
from ._fetch import DownloadError
from .idx import DataError, PathLike, load_idx, parse_idx

__all__ = ["DATASETS", "DataError", "DownloadError", "cifar10", "class_names", "fashion_mnist",
           "load", "load_idx", "mnist", "parse_idx"]

#: The dataset names :func:`load` accepts, each with its module.
DATASETS = {"mnist": mnist, "fashion_mnist": fashion_mnist, "cifar10": cifar10}


def _module(name: str) -> Any:
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else name
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of "
                         + ", ".join(repr(n) for n in DATASETS))
    return DATASETS[key]


def load(name: str, data_dir: PathLike | None = None, download: bool = True, **kwargs: Any
         ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load a dataset by name: ``<module>.load_data(data_dir, download, **kwargs)``.

    Args:
        name: ``"mnist"``, ``"fashion_mnist"`` (or ``"fashion-mnist"``) or ``"cifar10"``.
        data_dir: a folder holding the dataset's files (``--data-dir``); see each module
            for where else it looks and what it downloads.
        download: download what is found nowhere into the cache; if False, raise.
        kwargs: passed on (``mirrors=``, ``timeout=``, ``verbose=``).

    Returns:
        ``((x_train, y_train), (x_test, y_test))``, uint8:

    Shape:
        - mnist, fashion_mnist: x ``(N, 28, 28)`` (no channel axis, like Keras), y ``(N,)``;
          N = 60000 and 10000
        - cifar10: x ``(N, 3, 32, 32)`` (NCHW), y ``(N,)``; N = 50000 and 10000

    Raises:
        ValueError: an unknown name.
        FileNotFoundError, DataError, DownloadError: as the dataset's ``load_data``.

    >>> load("imagenet")
    Traceback (most recent call last):
    ...
    ValueError: unknown dataset 'imagenet'; expected one of 'mnist', 'fashion_mnist', 'cifar10'
    """
    return _module(name).load_data(data_dir, download, **kwargs)


def class_names(name: str) -> tuple[str, ...]:
    """The dataset's class names, in label order.

    >>> class_names("fashion_mnist")[:3]
    ('T-shirt/top', 'Trouser', 'Pullover')
    """
    return _module(name).CLASS_NAMES
