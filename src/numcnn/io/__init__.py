"""Saving and loading models (npz + JSON config, never pickle)."""

from .saving import load_model, save_model

__all__ = ["load_model", "save_model"]
