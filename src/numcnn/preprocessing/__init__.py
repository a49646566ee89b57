"""Data-layer preprocessing: transforms fitted on training data, applied unchanged to test data.

The course's data-layer steps (去均值 mean subtraction, 归一化 normalisation, PCA/白化
whitening), its bit-plane decomposition (比特平面), and the padding LeNet-5 needs
(MNIST 28×28 → 32×32), and :func:`.digits.mnist_digit`, which makes any picture of a digit
an MNIST pattern as LeCun et al. made MNIST. Every fitted step has ``fit(X)``
(learns statistics from training data only), ``transform(X)``, ``fit_transform(X)``,
``inverse_transform(Y)`` where one exists, and ``get_state()`` / ``set_state()`` returning
plain arrays plus JSON-able parameters, so a fitted step can be saved without pickle
(:func:`save_preprocessor`, :func:`load_preprocessor`).

Data is ``(N, ...)``: samples on axis 0. Integer input (e.g. uint8 images) gives float32
output; float32/float64 input keeps its dtype. Statistics are computed in float64.

>>> X = np.arange(12.0).reshape(3, 4)
>>> MeanSubtraction().fit(X).transform(X)[0]
array([-4., -4., -4., -4.])

One concept per module: :mod:`.base` (the protocol, the registry, ``get``), :mod:`.scalers`,
:mod:`.pca` (PCA and whitening), :mod:`.bit_planes`, :mod:`.padding`, :mod:`.saving`,
:mod:`.digits` and :mod:`.patches` (:func:`extract_patches`, the sparse autoencoder's
training patches).
"""

from . import base
from .base import PREPROCESSORS, Preprocessor, get
from .bit_planes import BitPlanes, from_blocks, to_blocks
from .digits import mnist_digit
from .padding import Pad
from .patches import extract_patches
from .pca import PCA, PCAWhitening, ZCAWhitening
from .saving import load_preprocessor, save_preprocessor
from .scalers import MeanSubtraction, MinMaxScaler, Standardize

# the steps Preprocessor.from_state (and so load_preprocessor) can rebuild, by class name
base._CLASSES.update({
    c.__name__: c
    for c in (MeanSubtraction, Standardize, MinMaxScaler, PCA, PCAWhitening, ZCAWhitening,
              BitPlanes, Pad)
})

__all__ = [
    "PCA",
    "PREPROCESSORS",
    "BitPlanes",
    "MeanSubtraction",
    "MinMaxScaler",
    "PCAWhitening",
    "Pad",
    "Preprocessor",
    "Standardize",
    "ZCAWhitening",
    "extract_patches",
    "from_blocks",
    "get",
    "load_preprocessor",
    "mnist_digit",
    "save_preprocessor",
    "to_blocks",
]
