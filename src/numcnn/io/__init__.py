"""Saving and loading models (npz + JSON config, never pickle; files are untrusted input)."""

from .npzfile import MAX_CONFIG_BYTES, MAX_MODEL_BYTES, ModelFileError, max_model_bytes
from .saving import load_model, save_model

__all__ = ["MAX_CONFIG_BYTES", "MAX_MODEL_BYTES", "ModelFileError", "load_model",
           "max_model_bytes", "save_model"]
