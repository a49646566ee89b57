"""How a model takes a picture: the ``preprocessing`` entry stored with a saved model, the
default for models saved without one, and :func:`model_input`, which applies it.

A saved model's metadata (``model.saved_extra``, written by ``save_model(..., extra=...)``;
``numcnn train --output`` writes it) may hold ``"preprocessing"``, one of:

* ``{"kind": "mnist_digit", "pixel_scale": 1/255, "invert": "auto"}`` — a picture of a
  handwritten digit made an MNIST pattern (:func:`numcnn.io.images.digit_input`: grey,
  inverted when the background is light, cropped to the ink, fitted into 20×20, centred by
  centre of mass in 28×28), times ``pixel_scale``. Optional ``"box"`` (20) and ``"center"``
  (``"mass"``; ``"box"`` centres the fitted box, as Fashion-MNIST was made with ``box`` 28).
* ``{"kind": "resize", "pixel_scale": 1/255}`` — the whole picture, grey or RGB as the model's
  channels, its shorter side resized to the input's and the centre cut out, times
  ``pixel_scale``.
* ``{"kind": "imagenet", "mean": [...], "std": [...], "resize": 256}`` — torchvision's
  ImageNet evaluation transform (:func:`numcnn.io.images.imagenet_input`).

Models saved without it get a default from their input shape and metadata
(:func:`default_preprocessing`): a ``(1, 28, 28)`` model is a digit model (``mnist_digit``;
trained on Fashion-MNIST: ``box`` 28, ``center`` ``"box"``), any other ``resize``; the
``pixel_scale`` is the file's (when absent: 1 if the model begins with a ``Rescale`` layer,
as LeNet-5 (1998), which takes grey levels 0–255, else 1/255). Networks not loaded from a
file (the zoo, or built in Python) take ImageNet photos when they take RGB images
(GoogLeNet with mean and std 0.5, as torchvision's ``transform_input``), else the same
default.

The entry is metadata read from an untrusted file: :func:`check_preprocessing` validates it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .images import IMAGENET_MEAN, IMAGENET_STD, digit_input, imagenet_input, load_image

#: what ``numcnn train`` multiplies MNIST's uint8 levels by (as numcnn.training.runs)
DEFAULT_PIXEL_SCALE = 1.0 / 255.0

KINDS = ("mnist_digit", "resize", "imagenet")


def mnist_digit_preprocessing(pixel_scale: float = DEFAULT_PIXEL_SCALE,
                              dataset: str = "mnist") -> dict[str, Any]:
    """The entry ``numcnn train`` stores with a model of 28×28 grey images."""
    spec: dict[str, Any] = {"kind": "mnist_digit", "pixel_scale": pixel_scale,
                            "invert": "auto"}
    if dataset == "fashion_mnist":
        spec.update(box=28, center="box")
    return spec


def default_preprocessing(input_shape: Any, extra: dict | None = None,
                          scales_inside: bool = False) -> dict[str, Any]:
    """The preprocessing of a model whose file stores none (see the module docstring);
    ``scales_inside``: the model begins with a ``Rescale`` layer, so without a stored
    ``pixel_scale`` it takes grey levels 0–255 (``pixel_scale`` 1), as LeNet-5 (1998)."""
    extra = extra if isinstance(extra, dict) else {}
    scale = extra.get("pixel_scale", 1.0 if scales_inside else DEFAULT_PIXEL_SCALE)
    if tuple(input_shape or ()) == (1, 28, 28):
        dataset = extra.get("dataset", "mnist")
        return mnist_digit_preprocessing(scale, dataset if isinstance(dataset, str) else "")
    return {"kind": "resize", "pixel_scale": scale}


def zoo_preprocessing(name: str, size: int = 224) -> dict[str, Any]:
    """A zoo network's ImageNet transform for ``size`` × ``size`` inputs: shorter side to
    ``round(size·256/224)`` (256 for 224, torchvision's ratio), the centre cut out,
    normalised (GoogLeNet: mean and std 0.5, torchvision's ``transform_input``)."""
    resize = max(size, round(size * 256 / 224))
    if name.lower() == "googlenet":
        return {"kind": "imagenet", "mean": [0.5] * 3, "std": [0.5] * 3, "resize": resize}
    return {"kind": "imagenet", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
            "resize": resize}


def _positive(value: Any, what: str, fail: Any, upper: float = 1e6) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not 0 < value <= upper:
        fail(f"{what} must be a positive finite number up to {upper:g}; received {value!r}")
    return float(value)


def check_preprocessing(spec: Any, input_shape: Any, where: str = "the model") -> dict:
    """``spec`` validated against a model of ``input_shape`` ``(C, H, W)``: a clean copy, or a
    ``ValueError`` naming ``where`` and what is wrong (the entry is untrusted metadata)."""
    def fail(msg: str) -> None:
        raise ValueError(f"{where}: damaged metadata: preprocessing: {msg}")

    if not isinstance(spec, dict):
        fail(f"expected a dict with a 'kind'; received {type(spec).__name__}")
    kind = spec.get("kind")
    if kind not in KINDS:
        fail(f"kind must be one of {', '.join(KINDS)}; received {kind!r}")
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else ()
    if len(shape) != 3 or shape[0] not in (1, 3):
        fail(f"pictures go to models of (1 or 3, H, W) images; this one takes {input_shape}")
    c, h, w = shape
    known = {"mnist_digit": {"kind", "pixel_scale", "invert", "box", "center"},
             "resize": {"kind", "pixel_scale"},
             "imagenet": {"kind", "mean", "std", "resize"}}[kind]
    unknown = sorted(set(spec) - known)
    if unknown:
        fail(f"unknown key(s) {unknown} for kind {kind!r}")
    out: dict[str, Any] = {"kind": kind}
    if kind in ("mnist_digit", "resize"):
        out["pixel_scale"] = _positive(spec.get("pixel_scale", DEFAULT_PIXEL_SCALE),
                                       "pixel_scale", fail)
    if kind == "mnist_digit":
        if c != 1 or h != w:
            fail(f"mnist_digit needs a model of square grey images (1, H, H); this one "
                 f"takes {shape}")
        invert = spec.get("invert", "auto")
        if not (invert == "auto" or isinstance(invert, bool)):
            fail(f"invert must be 'auto', true or false; received {invert!r}")
        box = spec.get("box", round(20 * h / 28))
        if isinstance(box, bool) or not isinstance(box, int) or not 1 <= box <= h:
            fail(f"box must be an int from 1 to {h}; received {box!r}")
        center = spec.get("center", "mass")
        if center not in ("mass", "box"):
            fail(f"center must be 'mass' or 'box'; received {center!r}")
        out.update(invert=invert, box=box, center=center)
    elif kind == "imagenet":
        if c != 3:
            fail(f"imagenet needs a model of RGB images (3, H, W); this one takes {shape}")
        for key, default in (("mean", IMAGENET_MEAN), ("std", IMAGENET_STD)):
            v = spec.get(key, list(default))
            if not isinstance(v, list) or len(v) != 3 or any(
                    isinstance(t, bool) or not isinstance(t, (int, float))
                    or not math.isfinite(t) for t in v):
                fail(f"{key} must be a list of 3 finite numbers; received {v!r}")
            if key == "std" and min(v) <= 0:
                fail(f"std must be positive; received {v!r}")
            out[key] = [float(t) for t in v]
        resize = spec.get("resize", 256)
        if isinstance(resize, bool) or not isinstance(resize, int) \
                or not max(h, w) <= resize <= 8192:
            fail(f"resize must be an int from {max(h, w)} to 8192; received {resize!r}")
        out["resize"] = resize
    return out


def preprocessing_of(model: Any, name: str | None = None) -> dict[str, Any]:
    """The checked preprocessing of ``model``: its file's entry, else the default by input
    shape (a saved model — one with ``saved_extra`` — or any model of grey images), else the
    ImageNet transform of the zoo network ``name``."""
    extra = getattr(model, "saved_extra", None)
    shape = getattr(model, "input_shape", None)
    where = name or getattr(model, "name", None) or "the model"
    layers = getattr(model, "layers", None) or [None]
    inside = type(layers[0]).__name__ == "Rescale"
    if isinstance(extra, dict):
        spec = extra.get("preprocessing")
        if spec is None:
            spec = default_preprocessing(shape, extra, inside)
    elif isinstance(shape, tuple) and len(shape) == 3 and shape[0] == 3:
        spec = zoo_preprocessing(name or "", shape[1])
    else:
        spec = default_preprocessing(shape, None, inside)
    return check_preprocessing(spec, shape, where)


def model_input(model: Any, image: Any, spec: dict | None = None,
                name: str | None = None) -> np.ndarray:
    """``image`` (a path, an image file's bytes, or an array as
    :func:`numcnn.preprocessing.digits.image_levels` takes) as a batch of one for ``model``:
    ``(1, C, H, W)`` in the model's dtype, preprocessed by ``spec`` (default
    :func:`preprocessing_of` the model)."""
    spec = check_preprocessing(spec, model.input_shape, name or "the model") if spec \
        else preprocessing_of(model, name)
    c, h, w = model.input_shape
    dtype = getattr(model, "dtype", np.float32)
    if spec["kind"] == "mnist_digit":
        x = digit_input(image, pixel_scale=spec["pixel_scale"], invert=spec["invert"],
                        size=h, box=spec["box"], center=spec["center"], dtype=np.float64)
    elif spec["kind"] == "resize":
        x = load_image(image, "L" if c == 1 else "RGB", resize=min(h, w), crop=(h, w))
        x = x.astype(np.float64) * spec["pixel_scale"]
    else:
        x = imagenet_input(image, size=h, resize=spec["resize"], mean=spec["mean"],
                           std=spec["std"], dtype=np.float64)[0]
    return x[None].astype(dtype)


def output_kind(model: Any) -> str:
    """How to read the model's outputs: ``"rbf"`` (LeNet-5 (1998)'s distances, the smallest
    wins), ``"probabilities"`` (a final Softmax layer) or ``"logits"``."""
    extra = getattr(model, "saved_extra", None)
    layers = getattr(model, "layers", None) or [None]
    last = type(layers[-1]).__name__
    if isinstance(extra, dict) and extra.get("output") == "rbf" or last == "RBFOutput":
        return "rbf"
    return "probabilities" if last == "Softmax" else "logits"


def class_probabilities(out: Any, kind: str) -> np.ndarray:
    """One output vector as probabilities, float64: ``softmax(z) = exp(z − max z) / Σ exp(…)``
    of logits, the probabilities themselves, or for RBF penalties ``y`` the posterior
    ``softmax(−y)`` of LeNet-5's MAP criterion (the ``lenet_map`` loss, LeCun et al. 1998
    eq. 9, without its rubbish class)."""
    z = np.asarray(out, dtype=np.float64).reshape(-1)
    if kind == "probabilities":
        return z
    if kind == "rbf":
        z = -z
    e = np.exp(z - z.max())
    return e / e.sum()


def class_labels(model: Any, n: int) -> list[str]:
    """Names of the ``n`` classes: ImageNet's for 1,000 outputs, the saved model's dataset's
    (``digit 7`` for MNIST, and for 10 classes of 1×28×28 images of no named dataset), else
    ``class k``."""
    from ..datasets import class_names
    from ..models import imagenet_classes

    extra = getattr(model, "saved_extra", None)
    dataset = extra.get("dataset") if isinstance(extra, dict) else None
    if n == 1000 and dataset is None:
        return [f"{name} ({k})" for k, name in enumerate(imagenet_classes())]
    digits = dataset is None and tuple(getattr(model, "input_shape", ())) == (1, 28, 28)
    if (dataset == "mnist" or digits) and n == 10:  # unnamed 1×28×28 models: digit models
        return [f"digit {k}" for k in range(n)]
    if dataset in ("fashion_mnist", "cifar10") and n == 10:
        return [f"{name} ({k})" for k, name in enumerate(class_names(dataset))]
    return [f"class {k}" for k in range(n)]


def classify(model: Any, image: Any, top: int | None = None, spec: dict | None = None,
             name: str | None = None) -> dict[str, Any]:
    """``image`` through ``model`` (preprocessed by :func:`model_input`): the ``top``
    classes (default 5 of ImageNet's 1,000, else 3), most probable first, as
    ``{"output": kind, "top": [{"class": k, "label": ..., "probability": p}, ...]}``
    (RBF models: also each class's ``"penalty"``)."""
    x = model_input(model, image, spec, name)
    out = model.predict(x)
    out = np.asarray(out[0] if isinstance(out, list) else out, dtype=np.float64)[0].reshape(-1)
    kind = output_kind(model)
    probs = class_probabilities(out, kind)
    labels = class_labels(model, probs.size)
    rows = []
    top = (5 if probs.size == 1000 else 3) if top is None else max(1, int(top))
    for k in np.argsort(-probs, kind="stable")[:top]:
        row = {"class": int(k), "label": labels[k], "probability": float(probs[k])}
        if kind == "rbf":
            row["penalty"] = float(out[k])
        rows.append(row)
    return {"output": kind, "top": rows}


__all__ = ["DEFAULT_PIXEL_SCALE", "check_preprocessing", "class_labels", "class_probabilities",
           "classify", "default_preprocessing", "mnist_digit_preprocessing", "model_input",
           "output_kind", "preprocessing_of", "zoo_preprocessing"]
