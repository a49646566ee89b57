"""The page's engine: a saved image model, its input made from a drawing, an uploaded
picture or an array, and every layer's activations made compact for a browser.

No web framework here (see :mod:`numcnn.serve.app`): :meth:`Engine.predict` takes the
decoded JSON of a request and returns the JSON of the answer, or raises
:class:`RequestError` with an HTTP status and a message naming what was expected and what
was received.

**Activations.** Every layer's output for the one input, in the graph's order, as
:func:`encode`: a layer of feature maps ``(C, H, W)`` is sent as its first
:data:`MAX_MAPS` maps, each shrunk by a whole factor ``f`` (the mean of ``f × f`` blocks)
until its longer side is at most :data:`MAX_SIDE`, and quantised to bytes with its own
range: for map ``m`` with smallest value ``lo_m`` and largest ``hi_m``,

    q = round(255 · (v − lo_m) / (hi_m − lo_m)),   v ≈ lo_m + q · (hi_m − lo_m) / 255,

so a value is known to within ``(hi_m − lo_m) / 510``. A vector (a Dense layer's output,
shape ``(F,)``, or maps of one pixel ``(F, 1, 1)``) is one row of :data:`MAX_UNITS` values at
most; a sequence ``(T, F)`` one map of ``T`` rows.

**Outputs.** The model's first output ``z`` (its ``output_names[0]``): the class
probabilities are ``softmax(z)``, or ``z`` itself after a ``Softmax`` layer; for an RBF
output (LeNet-5 of 1998) ``z`` holds the ten squared distances ``y_i = Σ_j (x_j − w_ij)²``
of F6 to the class prototypes, the prediction is ``argmin_i y_i`` and the bars show
``softmax(−y)`` (the posterior of the paper's MAP criterion without its rejection class).

**Threads.** numcnn's layers keep per-call caches, so one lock serialises the forward
passes; the web server may run several requests at once around it.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import threading
import time
from typing import Any

import numpy as np

#: feature maps sent per layer (the rest are counted, not sent)
MAX_MAPS = 64
#: a map's longer side after shrinking by a whole factor
MAX_SIDE = 64
#: units of a vector sent (the rest are counted, not sent)
MAX_UNITS = 4096
#: the most bytes of an image a request may carry (after base64 decoding)
MAX_IMAGE_BYTES = 4 * 1024 * 1024
#: the most values an array in a request may hold
MAX_VALUES = 1024 * 1024

_DATA_URL = re.compile(r"data:image/[A-Za-z0-9.+-]+(;[A-Za-z0-9=.+-]+)*;base64,")


class RequestError(ValueError):
    """A request the engine cannot answer: ``status`` is the HTTP status to return."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def softmax(z: np.ndarray) -> np.ndarray:
    """``exp(z_i − max z) / Σ_j exp(z_j − max z)`` in float64."""
    e = np.exp(z - z.max())
    return e / e.sum()


def shrink(maps: np.ndarray, max_side: int = MAX_SIDE) -> tuple[np.ndarray, int]:
    """Maps ``(M, H, W)`` shrunk by the smallest whole factor ``f`` that brings the longer
    side to at most ``max_side``: each output value is the mean of an ``f × f`` block (the
    last blocks of a side that ``f`` does not divide are the mean of what is there)."""
    m, h, w = maps.shape
    f = max(1, math.ceil(max(h, w) / max_side))
    if f == 1:
        return maps, 1
    hs, ws = math.ceil(h / f), math.ceil(w / f)
    sums = np.zeros((m, hs, ws), np.float64)
    counts = np.zeros((hs, ws), np.float64)
    for dy in range(f):
        for dx in range(f):
            part = maps[:, dy::f, dx::f]
            sums[:, : part.shape[1], : part.shape[2]] += part
            counts[: part.shape[1], : part.shape[2]] += 1
    return sums / counts, f


def quantise(maps: np.ndarray) -> tuple[list[float], list[float], np.ndarray]:
    """Per-map ranges and bytes: ``lo_m = min``, ``hi_m = max`` and
    ``q = round(255 (v − lo_m) / (hi_m − lo_m))`` (0 for a constant map)."""
    flat = maps.reshape(len(maps), -1).astype(np.float64)
    lo, hi = flat.min(axis=1), flat.max(axis=1)
    span = np.where(hi > lo, hi - lo, 1.0)
    q = np.rint((flat - lo[:, None]) * (255.0 / span[:, None]))
    return lo.tolist(), hi.tolist(), np.clip(q, 0, 255).astype(np.uint8).reshape(maps.shape)


def encode(name: str, kind: str, value: np.ndarray) -> dict[str, Any]:
    """One layer's output for one input (no batch axis) in the page's compact form."""
    a = np.asarray(value, dtype=np.float64)
    shape = list(a.shape)
    finite = bool(np.isfinite(a).all())
    if not finite:
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    if a.ndim == 3 and a.shape[1] * a.shape[2] > 1:
        maps, layout = a[:MAX_MAPS], "maps"
    elif a.ndim == 2:
        maps, layout = a[None], "maps"
    else:
        maps, layout = a.reshape(1, 1, -1)[:, :, :MAX_UNITS], "vector"
    maps, factor = shrink(maps) if layout == "maps" else (maps, 1)
    lo, hi, q = quantise(maps)
    return {"name": name, "type": kind, "shape": shape, "layout": layout,
            "count": len(a) if layout == "maps" and a.ndim == 3 else 1, "shown": len(maps),
            "units": int(a.size) if layout == "vector" else None,
            "h": int(q.shape[1]), "w": int(q.shape[2]), "factor": factor,
            "min": lo, "max": hi, "finite": finite,
            "data": base64.b64encode(q.tobytes()).decode("ascii")}


def decode(layer: dict[str, Any]) -> np.ndarray:
    """The values an :func:`encode` d layer stands for, ``(shown, h, w)`` (for tests and
    scripts: ``lo + q (hi − lo) / 255``)."""
    q = np.frombuffer(base64.b64decode(layer["data"]), np.uint8)
    q = q.reshape(layer["shown"], layer["h"], layer["w"]).astype(np.float64)
    lo, hi = np.asarray(layer["min"]), np.asarray(layer["max"])
    return lo[:, None, None] + q * ((hi - lo) / 255.0)[:, None, None]


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Engine:
    """A model and what the page needs of it (see the module docstring).

    Args:
        model: a built numcnn model taking one image input ``(C, H, W)``.
        name: shown on the page.
        preprocessing: how a picture becomes its input, a spec of
            :mod:`numcnn.io.inputs` (default: the one saved with the model, else the default
            for its input shape — a 1×28×28 model takes digits as MNIST was made).
        rbf: its output is LeNet-5 (1998)'s RBF distances (default: when its last layer
            is an ``RBFOutput``).
    """

    def __init__(self, model: Any, name: str = "model", preprocessing: dict | None = None,
                 rbf: bool | None = None):
        from ..io.inputs import check_preprocessing, preprocessing_of

        shape = getattr(model, "input_shape", None)
        if not (isinstance(shape, tuple) and len(shape) == 3
                and all(isinstance(s, int) and s > 0 for s in shape)):
            raise ValueError(f"the page needs a model of one image input (C, H, W); {name} "
                             f"takes {shape}")
        self.model, self.name, self.input_shape = model, name, shape
        self.spec = check_preprocessing(preprocessing, shape, name) if preprocessing \
            else preprocessing_of(model, name)
        self.digits = self.spec["kind"] == "mnist_digit"  # drawings made MNIST patterns
        self.lock = threading.Lock()
        self.output_name = model.output_names[0]
        last = type(model.get_layer(self.output_name)).__name__
        self.rbf = last == "RBFOutput" if rbf is None else bool(rbf)
        self.softmax_output = last == "Softmax"
        probe = model.intermediates(np.zeros((1, *shape), model.dtype))
        self.layers = [{"name": n, "type": type(model.get_layer(n)).__name__,
                        "shape": list(np.shape(v[0] if isinstance(v, list) else v)[1:])}
                       for n, v in probe.items()]
        out = probe[self.output_name]
        self.classes = int(np.size((out[0] if isinstance(out, list) else out)[0]))

    @classmethod
    def from_file(cls, path: str) -> Engine:
        """The model saved at ``path`` (read as untrusted input by ``load_model``)."""
        import os

        from ..io.saving import load_model

        model = load_model(path, compile=False)
        extra = getattr(model, "saved_extra", {}) or {}
        rbf = True if extra.get("output") == "rbf" else None
        return cls(model, name=os.path.basename(str(path)), rbf=rbf)

    def describe(self) -> dict[str, Any]:
        """``GET /api/model``: the model's name, input, layers and output."""
        return {"name": self.name, "input_shape": list(self.input_shape),
                "preprocessing": self.spec, "digits": self.digits,
                "output": "rbf" if self.rbf else "probabilities" if self.softmax_output
                else "logits", "classes": self.classes, "layers": self.layers,
                "limits": {"max_maps": MAX_MAPS, "max_side": MAX_SIDE,
                           "max_units": MAX_UNITS, "max_image_bytes": MAX_IMAGE_BYTES}}

    # ------------------------------------------------------------------ inputs
    def input_from_image(self, data_url: Any) -> np.ndarray:
        """``(C, H, W)`` from a ``data:image/…;base64,…`` URL, preprocessed as the model
        takes pictures (:func:`numcnn.io.inputs.model_input`: a digit model's as MNIST was
        made, others resized and cropped)."""
        if not isinstance(data_url, str):
            raise RequestError(f"'image' must be a data URL string "
                               f"'data:image/png;base64,…'; received {type(data_url).__name__}")
        head = _DATA_URL.match(data_url[:200])
        if head is None:
            raise RequestError(f"'image' must be a data URL 'data:image/<type>;base64,…'; "
                               f"received {_show(data_url[:40])}")
        body = data_url[head.end():]
        if len(body) > (MAX_IMAGE_BYTES * 4) // 3 + 4:
            raise RequestError(f"'image' holds more than the {MAX_IMAGE_BYTES:,} bytes an "
                               "image may have", status=413)
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError("'image' is not valid base64 after 'base64,'") from None
        from ..io.inputs import model_input

        try:
            return model_input(self.model, raw, self.spec)[0]
        except ValueError as e:  # not an image, damaged, too large, blank
            raise RequestError(str(e), status=422) from None

    def input_from_pixels(self, pixels: Any, preprocess: bool = False) -> np.ndarray:
        """``(C, H, W)`` from nested lists of levels 0–255 shaped as the model's input
        (``(H, W)`` for one channel), scaled as the model's training scaled its pixels; or,
        with ``preprocess``, any grey picture ``(H, W)`` made an MNIST pattern as a drawing
        is."""
        from ..io.inputs import model_input

        c, h, w = self.input_shape
        try:
            a = np.array(pixels, dtype=np.float64)
        except (ValueError, TypeError, OverflowError):
            raise RequestError(f"'pixels' must be nested lists of numbers shaped ({h}, {w}) or "
                               f"({c}, {h}, {w}); received a ragged or non-numeric array") \
                from None
        if a.size > MAX_VALUES:
            raise RequestError(f"'pixels' holds {a.size:,} values, more than the "
                               f"{MAX_VALUES:,} a request may send", status=413)
        if not np.isfinite(a).all() or a.size == 0 or a.min() < 0 or a.max() > 255:
            raise RequestError("'pixels' must hold finite grey levels in [0, 255]")
        if preprocess:
            if not self.digits or a.ndim != 2:
                raise RequestError("'preprocess' takes a grey picture (H, W) and a model of "
                                   f"1×N×N digits; this model takes {self.input_shape}")
            try:
                return model_input(self.model, a / 255.0, self.spec)[0]
            except ValueError as e:
                raise RequestError(str(e), status=422) from None
        if a.shape == (h, w) and c == 1:
            a = a[None]
        if a.shape != (c, h, w):
            raise RequestError(f"'pixels' must be shaped ({h}, {w}) or ({c}, {h}, {w}) as the "
                               f"model's input; received {a.shape}")
        if self.spec["kind"] == "imagenet":
            mean = np.asarray(self.spec["mean"], np.float64)[:, None, None]
            std = np.asarray(self.spec["std"], np.float64)[:, None, None]
            return ((a / 255.0 - mean) / std).astype(self.model.dtype)
        return (a * self.spec["pixel_scale"]).astype(self.model.dtype)

    def input_of(self, payload: Any) -> np.ndarray:
        """The model input a request's JSON asks for: ``{"image": data URL}`` or
        ``{"pixels": [[...]], "preprocess": false}``."""
        if not isinstance(payload, dict):
            raise RequestError(f"expected a JSON object {{\"image\": …}} or {{\"pixels\": …}}; "
                               f"received {type(payload).__name__}")
        unknown = set(payload) - {"image", "pixels", "preprocess", "layers"}
        if unknown:
            raise RequestError(f"unknown keys {sorted(unknown)}; expected 'image' or "
                               "'pixels' (with 'preprocess', 'layers')")
        if ("image" in payload) == ("pixels" in payload):
            raise RequestError("expected exactly one of 'image' (a data URL) and 'pixels' "
                               f"(an array); received keys {sorted(payload)}")
        pre = payload.get("preprocess", False)
        if not isinstance(pre, bool):
            raise RequestError(f"'preprocess' must be true or false; received {_show(pre)}")
        if "image" in payload:
            if pre:
                raise RequestError("'preprocess' goes with 'pixels'; an image is always "
                                   "preprocessed")
            return self.input_from_image(payload["image"])
        return self.input_from_pixels(payload["pixels"], preprocess=pre)

    # ------------------------------------------------------------------ forward
    def run(self, x: np.ndarray, layers: bool = True) -> dict[str, Any]:
        """One input ``(C, H, W)`` through the model: the answer's JSON."""
        t0 = time.perf_counter()
        with self.lock:
            acts = self.model.intermediates(x[None].astype(self.model.dtype, copy=False))
        ms = 1000 * (time.perf_counter() - t0)
        out = acts[self.output_name]
        z = np.asarray(out[0] if isinstance(out, list) else out, np.float64)[0].ravel()
        answer: dict[str, Any] = {"input": encode("input", "Input", x)}
        if self.rbf:
            probs = softmax(-z)
            answer["distances"] = z.tolist()
        else:
            probs = z if self.softmax_output else softmax(z)
        answer["probabilities"] = probs.tolist()
        answer["prediction"] = int(np.argmin(z) if self.rbf else np.argmax(probs))
        answer["output"] = z.tolist()
        if layers:
            answer["layers"] = [
                encode(lay["name"], lay["type"],
                       (v[0] if isinstance(v, list) else v)[0])
                for lay in self.layers for v in [acts[lay["name"]]]]
        answer["ms"] = round(ms, 3)
        return answer

    def predict(self, payload: Any) -> dict[str, Any]:
        """``POST /api/predict``: a request's JSON in, the answer's JSON out."""
        want = payload.get("layers", True) if isinstance(payload, dict) else True
        if not isinstance(want, bool):
            raise RequestError(f"'layers' must be true or false; received {_show(want)}")
        return self.run(self.input_of(payload), layers=want)
