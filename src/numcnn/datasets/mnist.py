"""Alias of :mod:`numcnn.data.mnist`, so ``numcnn.datasets.mnist.load_data()`` works."""

from ..data.mnist import *  # noqa: F403 - the whole public API, as listed below
from ..data.mnist import __all__  # noqa: F401
