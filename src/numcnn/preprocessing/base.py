"""The preprocessing protocol: the ``Preprocessor`` base class, the registry, shared checks.

Every step has ``fit(X)`` (learns statistics from training data only), ``transform(X)``,
``fit_transform(X)``, ``inverse_transform(Y)`` where one exists, and ``get_state()`` /
``set_state()`` returning plain arrays plus JSON-able parameters. Data is ``(N, ...)``:
samples on axis 0. Integer input (e.g. uint8 images) gives float32 output; float32/float64
input keeps its dtype. Statistics are computed in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._registry import Registry

PREPROCESSORS = Registry("preprocessor")

_PER = ("pixel", "channel", "global")


def _as_data(X: Any, what: str = "X", min_ndim: int = 2) -> np.ndarray:
    if not isinstance(X, np.ndarray):
        raise TypeError(f"{what} must be a numpy array; received {type(X).__name__}")
    if X.ndim < min_ndim:
        raise ValueError(
            f"{what} must have at least {min_ndim} dimensions (N, ...); received shape {X.shape}"
        )
    if X.dtype.kind not in "uif":
        raise TypeError(f"{what} must be numeric; received dtype={X.dtype}")
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return X


def _out_dtype(X: np.ndarray) -> np.dtype:
    return X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float32)


def _axes(per: str, ndim: int) -> tuple[int, ...]:
    if per == "pixel":
        return (0,)
    if per == "channel":
        if ndim < 3:
            raise ValueError(
                f"per='channel' needs (N, C, ...) data with at least 3 dimensions; received "
                f"{ndim} dimensions (use per='pixel' or per='global')"
            )
        return (0,) + tuple(range(2, ndim))
    return tuple(range(ndim))


def _check_per(per: str) -> str:
    if per not in _PER:
        raise ValueError(f"per must be one of {_PER}; received per={per!r}")
    return per


class Preprocessor:
    """Base class: the fit/transform protocol and the state round trip.

    Subclasses list their fitted arrays in ``_arrays`` and JSON-able fitted values in
    ``_attrs`` (attribute names ending in ``_``).
    """

    _arrays: tuple[str, ...] = ()
    _attrs: tuple[str, ...] = ("feature_shape_",)
    needs_fit = True

    def __init__(self) -> None:
        self.fitted = False
        self.feature_shape_: tuple[int, ...] | None = None

    # ---------------------------------------------------------------- protocol
    def fit(self, X: np.ndarray) -> Preprocessor:
        """Learn the statistics from training data ``X`` (N, ...) and return ``self``."""
        X = _as_data(X)
        self.feature_shape_ = tuple(int(d) for d in X.shape[1:])
        self._fit(X)
        self.fitted = True
        return self

    def _fit(self, X: np.ndarray) -> None:
        pass

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Apply the fitted transform (the statistics are not changed)."""
        X = self._check(X)
        return self._transform(X)

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X)

    def inverse_transform(self, Y: np.ndarray) -> np.ndarray:
        """Map transformed data back to the input space."""
        raise NotImplementedError(f"{type(self).__name__} has no inverse transform")

    def _transform(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = _as_data(X)
        if self.needs_fit and not self.fitted:
            raise RuntimeError(f"{type(self).__name__} must be fitted before transform")
        if self.needs_fit and tuple(X.shape[1:]) != self.feature_shape_:
            raise ValueError(
                f"{type(self).__name__} was fitted on samples of shape {self.feature_shape_}; "
                f"received data of shape {X.shape}"
            )
        return X

    # ------------------------------------------------------------------- state
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable)."""
        return {}

    def get_state(self) -> dict[str, Any]:
        """``{"class_name", "config", "attrs", "arrays"}``: JSON-able values plus arrays."""
        attrs = {}
        for k in self._attrs:
            v = getattr(self, k, None)
            attrs[k] = list(v) if isinstance(v, tuple) else v
        arrays = {k: np.array(getattr(self, k)) for k in self._arrays if self.fitted}
        return {"class_name": type(self).__name__, "config": self.get_config(),
                "fitted": self.fitted, "attrs": attrs, "arrays": arrays}

    def set_state(self, state: dict[str, Any]) -> Preprocessor:
        """Restore what :meth:`get_state` returned (same class); returns ``self``."""
        if state.get("class_name") != type(self).__name__:
            raise ValueError(
                f"state is for {state.get('class_name')!r}, not {type(self).__name__!r}"
            )
        for k in self._attrs:
            v = state["attrs"].get(k)
            setattr(self, k, tuple(v) if isinstance(v, list) else v)
        self.fitted = bool(state.get("fitted", True))
        if self.fitted:
            for k in self._arrays:
                setattr(self, k, np.array(state["arrays"][k], dtype=np.float64))
        return self

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Preprocessor:
        """Build the right class from a state (works on the base class too)."""
        klass = _CLASSES.get(state.get("class_name", ""))
        if klass is None:
            raise ValueError(f"unknown preprocessor class {state.get('class_name')!r}")
        if cls is not Preprocessor and klass is not cls:
            raise ValueError(f"state is for {klass.__name__!r}, not {cls.__name__!r}")
        return klass(**state["config"]).set_state(state)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


#: class name → class, for :meth:`Preprocessor.from_state`; the package ``__init__`` lists
#: the concrete steps here once they are all defined
_CLASSES: dict[str, type] = {}


def get(identifier: Any, **kwargs: Any) -> Preprocessor:
    """A preprocessing step from a registered name (``"pca"``, ``"pad"``, ...)."""
    return PREPROCESSORS.get(identifier, **kwargs)
