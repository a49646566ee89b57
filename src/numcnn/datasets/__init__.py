"""Keras-style dataset access: ``numcnn.datasets.mnist.load_data()``.

A thin alias of :mod:`numcnn.data`, which holds the implementation.
"""

from . import mnist

__all__ = ["mnist"]
