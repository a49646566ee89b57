"""``numcnn plot``: the pictures of :mod:`numcnn.viz` from the command line.

    numcnn plot history run.csv -o curves.png
    numcnn plot maps model.npz --image 7.png --layers C1,S2,C3 -o maps.svg
    numcnn plot filters model.npz --layer conv2d
    numcnn plot confusion model.npz            # the test set of the model's dataset
    numcnn plot errors model.npz --count 24
    numcnn plot saliency model.npz --index 0
    numcnn plot deconv model.npz --layer conv2d_1 --index 0
    numcnn plot gabor --filters 16 --size 7

MODEL is a saved ``.npz`` model or a zoo name (fresh weights). The input of ``maps``,
``saliency`` and ``deconv`` is a picture (``--image``: made the model's input as ``numcnn
predict`` makes it, an MNIST pattern for digit models) or a test image of the model's
dataset (``--index``, default 0; ``NUMCNN_DATA_DIR`` or ``--data-dir``). The picture is
written to ``-o`` (``.png``, ``.svg`` or ``.pdf``; default ``<kind>.png``), atomically.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import numpy as np

KINDS = ("history", "maps", "filters", "gabor", "confusion", "errors", "saliency", "deconv")
#: the largest picture written (pixels: about 270 MB of RGBA while it is rendered)
MAX_CANVAS = 1 << 26
#: the most Gabor kernel values computed for ``plot gabor`` (filters × size²)
MAX_GABOR_VALUES = 1 << 22


def add_parser(sub: Any, number: Any) -> None:
    """Register ``plot`` and its sub-commands on the ``numcnn`` parser's ``sub``; ``number``
    makes the positive-number argument types (``cli._number``)."""
    p = sub.add_parser("plot", help="draw pictures: feature maps, filters, training curves, "
                                    "confusion matrix, saliency (needs matplotlib)",
                       description=__doc__.split("\n\n")[2] if __doc__ else None)
    kinds = p.add_subparsers(dest="kind", metavar="{" + ",".join(KINDS) + "}")
    kinds.required = True

    def common(q: Any) -> None:
        q.add_argument("-o", "--output", default=None,
                       help="the picture to write: .png, .svg or .pdf (default <kind>.png)")
        q.add_argument("--dpi", type=number(float, "--dpi"), default=100,
                       help="pixels per inch of a PNG (default 100)")
        q.add_argument("--title", default=None, help="the figure's title")

    def model_arg(q: Any) -> None:
        q.add_argument("model", help="a saved .npz model or a zoo name (fresh weights)")

    def data(q: Any) -> None:
        q.add_argument("--data-dir", default=None,
                       help="folder with the dataset files (default $NUMCNN_DATA_DIR)")

    def one_input(q: Any) -> None:
        g = q.add_mutually_exclusive_group()
        g.add_argument("--image", default=None,
                       help="a picture (PNG, JPEG, …; needs Pillow), made the model's input "
                            "as `numcnn predict` makes it")
        g.add_argument("--index", type=number(int, "--index", allow_zero=True), default=None,
                       help="a test image of the model's dataset instead (default 0)")
        data(q)

    q = kinds.add_parser("history", help="training curves from a CSVLogger file")
    q.add_argument("log", help="the CSV file a CSVLogger wrote (epoch, loss, val_loss, …)")
    q.add_argument("--metrics", default=None,
                   help="comma-separated panels (default: every metric in the file)")
    q.add_argument("--no-lr", action="store_false", dest="lr",
                   help="leave out the learning rate")
    common(q)

    q = kinds.add_parser("maps", help="feature maps of chosen layers for one input")
    model_arg(q)
    one_input(q)
    q.add_argument("--layers", default=None,
                   help="comma-separated layer names (default: every image-shaped layer)")
    q.add_argument("--scale", choices=("map", "layer", "all"), default="map",
                   help="colour range per map (default), per layer or over all layers")
    q.add_argument("--cmap", default="gray", help="colour map (default gray)")
    q.add_argument("--cols", type=number(int, "--cols"), default=8, help="maps per row")
    common(q)

    q = kinds.add_parser("filters", help="a layer's kernels (Conv2D) or RBF bitmaps")
    model_arg(q)
    q.add_argument("--layer", default=None, help="the layer (default: the first Conv2D)")
    q.add_argument("--max-filters", type=number(int, "--max-filters"), default=64)
    common(q)

    q = kinds.add_parser("gabor", help="the Gabor initial bank (kernel_initializer='gabor')")
    q.add_argument("--filters", type=number(int, "--filters"), default=16)
    q.add_argument("--size", type=number(int, "--size"), default=7, help="kernel size")
    q.add_argument("--orientations", type=number(int, "--orientations"), default=4)
    q.add_argument("--scales", type=number(int, "--scales"), default=2)
    common(q)

    for kind, text in (("confusion", "the confusion matrix on the test set"),
                       ("errors", "the most confidently wrong test images")):
        q = kinds.add_parser(kind, help=text)
        model_arg(q)
        data(q)
        q.add_argument("--limit", type=number(int, "--limit"), default=None,
                       help="use only the first N test images")
        q.add_argument("--batch-size", type=number(int, "--batch-size"), default=1000)
        q.add_argument("--threads", type=number(int, "--threads"), default=1)
        if kind == "errors":
            q.add_argument("--count", type=number(int, "--count"), default=24,
                           help="images to show (default 24)")
        common(q)

    q = kinds.add_parser("saliency", help="gradient of a class score w.r.t. the input")
    model_arg(q)
    one_input(q)
    q.add_argument("--target", type=number(int, "--target", allow_zero=True), default=None,
                   help="the class (default: the predicted one)")
    common(q)

    q = kinds.add_parser("deconv", help="deconvnet projections of a layer's feature maps "
                                        "(Zeiler & Fergus 2014)")
    model_arg(q)
    one_input(q)
    q.add_argument("--layer", required=True, help="the layer whose maps are projected")
    q.add_argument("--channels", default=None,
                   help="comma-separated map numbers (default: the --top strongest)")
    q.add_argument("--top", type=number(int, "--top"), default=8)
    q.add_argument("--keep", choices=("max", "map"), default="max",
                   help="project the map's strongest activation (default) or all of it")
    q.add_argument("--rule", choices=("deconvnet", "guided", "gradient"), default="deconvnet")
    common(q)


def cmd_plot(args: argparse.Namespace) -> int:
    """Draw the picture ``args.kind`` asks for and write it; one-line errors."""
    from ..cli import CLIError
    from . import _mpl

    output = args.output or f"{args.kind}.png"
    try:
        from ..io.paths import check_output_file

        check_output_file(output, "--output")  # before any work: never a folder or device
        _mpl.output_format(output)
        _mpl.require()
        fig = _DRAW[args.kind](args)
    except ImportError as e:
        raise CLIError(str(e)) from None
    w, h = (float(v) * args.dpi for v in fig.get_size_inches())
    if w * h > MAX_CANVAS:
        raise ValueError(f"--dpi {args.dpi:g}: the picture would be {w:,.0f}×{h:,.0f} pixels, "
                         f"more than the {MAX_CANVAS:,} numcnn draws; use a smaller --dpi")
    path = _mpl.save(fig, output, dpi=args.dpi)
    print(f"Saved {path}")
    return 0


# ------------------------------------------------------------------ the sub-commands
def _history(args: argparse.Namespace) -> Any:
    from .curves import plot_history

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics \
        else None
    return plot_history(args.log, metrics=metrics, lr=args.lr, title=args.title)


def _maps(args: argparse.Namespace) -> Any:
    from .maps import plot_feature_maps

    model, name = _model(args.model)
    x, what = _input(model, name, args)
    return plot_feature_maps(model, x, layers=args.layers, scale=args.scale, cmap=args.cmap,
                             cols=args.cols, title=args.title or f"{name}: {what}")


def _filters(args: argparse.Namespace) -> Any:
    from .kernels import plot_filters

    model, _ = _model(args.model)
    kwargs = {"max_filters": args.max_filters}
    if args.title:
        kwargs["title"] = args.title
    return plot_filters(model, args.layer, **kwargs)


def _gabor(args: argparse.Namespace) -> Any:
    from .kernels import plot_gabor_bank

    values = args.filters * args.size ** 2
    if values > MAX_GABOR_VALUES:
        raise ValueError(f"--filters × --size² must be at most {MAX_GABOR_VALUES:,} kernel "
                         f"values (the picture shows 64 kernels); received {args.filters} × "
                         f"{args.size}² = {values:,}")
    fig = plot_gabor_bank(args.filters, args.size, n_orientations=args.orientations,
                          n_scales=args.scales)
    if args.title:
        fig.suptitle(args.title)
    return fig


def _confusion(args: argparse.Namespace) -> Any:
    from .classify import plot_confusion

    model, name = _model(args.model)
    x, y, probs, names = _test_predictions(model, name, args)
    return plot_confusion(y, probs.argmax(axis=1), class_names=names, n_classes=probs.shape[1],
                          title=args.title)


def _errors(args: argparse.Namespace) -> Any:
    from .classify import plot_confident_errors

    model, name = _model(args.model)
    x, y, probs, names = _test_predictions(model, name, args)
    return plot_confident_errors(x, y, probs, k=args.count, class_names=names,
                                 title=args.title)


def _saliency(args: argparse.Namespace) -> Any:
    from .attribution import plot_saliency

    model, name = _model(args.model)
    x, what = _input(model, name, args)
    return plot_saliency(model, x, target=args.target,
                         title=args.title or None)


def _deconv(args: argparse.Namespace) -> Any:
    from .attribution import plot_deconv

    model, name = _model(args.model)
    x, _ = _input(model, name, args)
    channels = None
    if args.channels:
        try:
            channels = [int(c) for c in args.channels.split(",") if c.strip()]
        except ValueError:
            raise ValueError(f"--channels must be comma-separated map numbers; received "
                             f"{args.channels!r}") from None
    return plot_deconv(model, x, args.layer, channels=channels, top=args.top, keep=args.keep,
                       rule=args.rule, title=args.title)


_DRAW = {"history": _history, "maps": _maps, "filters": _filters, "gabor": _gabor,
         "confusion": _confusion, "errors": _errors, "saliency": _saliency,
         "deconv": _deconv}


# ------------------------------------------------------------------ models and data
def _model(spec: str) -> tuple[Any, str]:
    """A saved model (``.npz``) or a zoo model by name, and its display name."""
    from .. import models
    from ..io.saving import load_model

    if spec.endswith(".npz"):
        return load_model(spec, compile=False), os.path.basename(spec)
    if os.path.isfile(spec):
        raise ValueError(f"{spec}: expected a saved model (.npz) or a zoo model name")
    return models.get(spec), spec


def _is_1998(model: Any) -> bool:
    from .attribution import is_rbf

    return is_rbf(model)


def _pixel_scale(model: Any, name: str) -> float:
    from ..cli import _pixel_scale as checked
    from ..training.runs import PIXEL_SCALE

    extra = getattr(model, "saved_extra", None)
    if isinstance(extra, dict):
        return checked(extra.get("pixel_scale", PIXEL_SCALE), name)
    return 1.0 if _is_1998(model) else PIXEL_SCALE  # a zoo model: as numcnn train feeds it


def _dataset(model: Any, name: str) -> str:
    extra = getattr(model, "saved_extra", None)
    dataset = extra.get("dataset", "mnist") if isinstance(extra, dict) else "mnist"
    if dataset not in ("mnist", "fashion_mnist", "cifar10"):
        raise ValueError(f"{name}: damaged metadata: dataset must be mnist, fashion_mnist or "
                         f"cifar10; received {dataset!r}")
    return dataset


def _input(model: Any, name: str, args: argparse.Namespace) -> tuple[np.ndarray, str]:
    """The one input of ``maps``/``saliency``/``deconv`` and a description of it."""
    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, tuple):
        raise ValueError(f"{name} takes {shape}; the pictures need a model of one input")
    if args.image is not None:
        if len(shape) != 3 or shape[0] not in (1, 3):
            raise ValueError(f"--image needs a model of (1 or 3, H, W) images; {name} takes "
                             f"{shape}")
        from ..io.inputs import default_preprocessing, model_input

        spec = None
        if not isinstance(getattr(model, "saved_extra", None), dict):  # a zoo model
            spec = default_preprocessing(shape, {"pixel_scale": _pixel_scale(model, name)})
        x = model_input(model, args.image, spec, name)
        return x[0], os.path.basename(args.image)
    from ..datasets import load as load_dataset

    index = 0 if args.index is None else args.index
    dataset = _dataset(model, name)
    _, (x_test, y_test) = load_dataset(dataset, data_dir=args.data_dir)
    if index >= len(x_test):
        raise ValueError(f"--index {index}: the {dataset} test set has {len(x_test):,} images")
    from ..training.runs import scale

    x = scale(x_test[index: index + 1], _pixel_scale(model, name))[0]  # (C, H, W)
    if x.shape != shape:
        if None in shape or x.size != int(np.prod(shape)):
            raise ValueError(f"{name} takes {shape}; a {dataset} test image is {x.shape}")
        x = x.reshape(shape)  # e.g. a sequence model reading the 28 rows of a digit
    return x.astype(model.dtype), f"{dataset} test image {index} (label {int(y_test[index])})"


def _test_predictions(model: Any, name: str, args: argparse.Namespace
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str] | None]:
    """The test images (as stored), labels, class probabilities and class names."""
    from ..datasets import class_names
    from ..datasets import load as load_dataset
    from ..threads import num_threads
    from ..training.runs import scale
    from .attribution import is_rbf
    from .classify import class_probabilities

    dataset = _dataset(model, name)
    _, (x_test, y_test) = load_dataset(dataset, data_dir=args.data_dir)
    if args.limit:
        x_test, y_test = x_test[: args.limit], y_test[: args.limit]
    xs = scale(x_test, _pixel_scale(model, name)).astype(model.dtype, copy=False)
    if xs.shape[1:] != tuple(model.input_shape):
        raise ValueError(f"{name} takes {model.input_shape}; the {dataset} test images are "
                         f"{xs.shape[1:]}")
    with num_threads(args.threads):
        out = model.predict(xs, batch_size=args.batch_size)
    out = out[0] if isinstance(out, list) else out
    probs = class_probabilities(out, rbf=is_rbf(model))
    names = None if dataset == "mnist" else [str(n) for n in class_names(dataset)]
    if names is not None and len(names) != probs.shape[1]:
        names = None
    return x_test, np.asarray(y_test, dtype=np.int64), probs, names


if __name__ == "__main__":  # pragma: no cover
    from ..cli import main

    sys.exit(main(["plot", *sys.argv[1:]]))
