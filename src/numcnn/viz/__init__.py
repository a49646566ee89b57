"""Pictures of what a model computes: feature maps, filters, training curves, the confusion
matrix, saliency maps and deconvnet projections (``numcnn plot`` on the command line).

Every function returns a :class:`matplotlib.figure.Figure` drawn on its own Agg canvas —
no ``pyplot``, no global state, no display needed — which :func:`save` writes as PNG, SVG
or PDF (atomically). matplotlib is imported only when a picture is drawn: install it with
``pip install 'numcnn[plot]'``. See docs/viz.md.

>>> import numcnn, numpy as np
>>> from numcnn.viz import feature_maps
>>> maps = feature_maps(numcnn.models.lenet5(seed=0), np.zeros((1, 28, 28), np.float32))
>>> {name: a.shape for name, a in maps.items() if name.startswith("max")}
{'maxpool2d': (6, 14, 14), 'maxpool2d_1': (16, 5, 5)}
"""

from ._mpl import render, save
from .attribution import deconv_projection, plot_deconv, plot_saliency, saliency
from .classify import (
    class_probabilities,
    confident_errors,
    confusion_matrix,
    plot_confident_errors,
    plot_confusion,
)
from .curves import plot_history, read_csv_log
from .kernels import gabor_bank, plot_filters, plot_gabor_bank, plot_kernels, plot_rbf_bitmaps
from .maps import feature_maps, plot_feature_maps

__all__ = ["class_probabilities", "confident_errors", "confusion_matrix", "deconv_projection",
           "feature_maps", "gabor_bank", "plot_confident_errors", "plot_confusion",
           "plot_deconv", "plot_feature_maps", "plot_filters", "plot_gabor_bank",
           "plot_history", "plot_kernels", "plot_rbf_bitmaps", "plot_saliency", "read_csv_log",
           "render", "saliency", "save"]
