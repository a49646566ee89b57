"""Saving and loading models (npz + JSON config, never pickle; files are untrusted input)."""

from ..models.weights import set_weights_reader
from .arrays import read_arrays
from .npzfile import MAX_CONFIG_BYTES, MAX_MODEL_BYTES, ModelFileError, max_model_bytes
from .saving import load_model, save_model

set_weights_reader(read_arrays)

__all__ = ["MAX_CONFIG_BYTES", "MAX_MODEL_BYTES", "ModelFileError", "load_model",
           "max_model_bytes", "read_arrays", "save_model"]
