"""The ``numcnn`` command line: argument parsing only; the work is done by the library.

    numcnn train --model lenet5 --epochs 1 --output model.npz
    numcnn evaluate model.npz
    numcnn summary lenet5
    numcnn predict model.npz digit.png more.jpg --top 3 --json
    numcnn bench --threads 1 2 --batch-size 64 128
    numcnn export model.npz model.onnx --opset 17

Errors (unknown model, bad number, missing data) print one line on stderr and exit non-zero
(set ``NUMCNN_DEBUG=1`` to see the traceback instead).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from typing import Any

import numpy as np

from .onnx.export_command import add_parser as add_export_parser
from .onnx.export_command import cmd_export
from .serve.command import add_parser as add_serve_parser
from .serve.command import cmd_serve
from .training.runs import PIXEL_SCALE
from .training.runs import scale as scale_images
from .viz.cli import add_parser as add_plot_parser
from .viz.cli import cmd_plot


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        raise CLIError(message)


def _number(kind: type, name: str, allow_zero: bool = False):
    """An argparse type: a positive (or, with ``allow_zero``, non-negative) int or float."""
    what = f"{'a non-negative' if allow_zero else 'a positive'} {kind.__name__}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not (value >= 0 if allow_zero
                                                             else value > 0):
            raise argparse.ArgumentTypeError(f"{name} must be {what}; received {text!r}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="numcnn", description="Convolutional networks in NumPy.")
    sub = p.add_subparsers(dest="command",
                           metavar="{train,evaluate,summary,predict,bench,serve,plot,export}")
    sub.required = True

    t = sub.add_parser("train", help="train a model on MNIST and report test accuracy")
    t.add_argument("--model", default="lenet5",
                   help="zoo model name (default lenet5; alexnet, zfnet, vgg11…vgg19, googlenet, "
                        "resnet18…resnet152, resnet20/32/56: see `numcnn summary NAME`)")
    t.add_argument("--dataset", default="mnist", choices=("mnist", "fashion_mnist", "cifar10"),
                   help="training and test images (default mnist)")
    t.add_argument("--epochs", type=_number(int, "--epochs"), default=None,
                   help="passes over the training set (default 1; lenet5-1998: 20)")
    t.add_argument("--batch-size", type=_number(int, "--batch-size"), default=None,
                   help="patterns per update (default 64; lenet5-1998: 1, as the paper)")
    t.add_argument("--augment", choices=("none", "affine"), default="none",
                   help="lenet5-1998 only: random planar affine distortions of the training "
                        "patterns, as the paper")
    t.add_argument("--optimizer", default="sgd", help="registered optimizer name (default sgd)")
    t.add_argument("--lr", type=_number(float, "--lr"), default=0.05)
    t.add_argument("--momentum", type=_number(float, "--momentum", allow_zero=True), default=0.9,
                   help="momentum for sgd/rmsprop (default 0.9)")
    t.add_argument("--clipnorm", type=_number(float, "--clipnorm"), default=None,
                   help="scale the gradients so that their global norm is at most this, as "
                        "torch.nn.utils.clip_grad_norm_ (default: no clipping)")
    t.add_argument("--clipvalue", type=_number(float, "--clipvalue"), default=None,
                   help="clamp every gradient value to [-v, v], as clip_grad_value_ (after "
                        "--clipnorm; default: no clipping)")
    t.add_argument("--loss", default=None,
                   help="registered loss name (default: the model's, softmax_cross_entropy)")
    t.add_argument("--schedule", default="cosine",
                   help="learning-rate schedule spec, evaluated before every batch at the "
                        "fractional epoch (default cosine: from --lr to 0 over the run); e.g. "
                        "step:step_size=3,gamma=0.5, or constant")
    t.add_argument("--seed", type=_number(int, "--seed", allow_zero=True), default=0)
    t.add_argument("--validation-size", type=_number(int, "--validation-size", allow_zero=True),
                   default=5000,
                   help="training images held out for validation (default 5000; 0 = none)")
    t.add_argument("--train-size", type=_number(int, "--train-size"), default=None,
                   help="use only the first N training images (quick runs)")
    t.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    t.add_argument("--output", default=None, help="save the trained model here (.npz)")
    t.add_argument("--threads", type=_number(int, "--threads"), default=1,
                   help="BLAS threads of the training process (default 1); for "
                        "data-parallel processes use --distribute")
    t.add_argument("--distribute", default=None,
                   help="mpi: every rank of `mpiexec -n K numcnn train ...` trains a shard of "
                        "each batch (the default when started by mpiexec with K > 1); "
                        "local:K: K forked local processes of one BLAS thread each, every "
                        "one training a shard of each batch (equal to one process)")
    t.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                   help="0 silent, 1 progress bar, 2 one line per epoch (default: auto)")
    t.add_argument("--dropout", type=_number(float, "--dropout", allow_zero=True), default=0.0,
                   help="lenet5: dropout rate after each hidden dense layer (default 0)")
    t.add_argument("--checkpoint-dir", default=None,
                   help="save the whole training state here at every epoch end (and every "
                        "--checkpoint-every batches), atomically; see --resume")
    t.add_argument("--checkpoint-every", type=_number(int, "--checkpoint-every"), default=None,
                   help="also save the state every N batches")
    t.add_argument("--resume", action="store_true",
                   help="continue the run saved in --checkpoint-dir (same command line)")

    e = sub.add_parser("evaluate", help="evaluate a saved model on the MNIST test set")
    e.add_argument("path", help="model file written by `numcnn train --output`")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--batch-size", type=_number(int, "--batch-size"), default=1000)
    e.add_argument("--threads", type=_number(int, "--threads"), default=1)

    s = sub.add_parser("summary", help="print a model's layer table")
    s.add_argument("model", help="zoo model name, a saved .npz model, or a .json model config "
                                 "(counted without building: no weights allocated)")

    r = sub.add_parser(
        "predict", help="classify pictures with a saved model or a zoo network",
        description="numcnn predict MODEL IMAGE [IMAGE ...]: MODEL is a saved .npz model or a "
                    "zoo name (with --weights). Digit models (1×28×28) take any picture of a "
                    "digit, made an MNIST pattern as the model file says (see README, "
                    "Predicting on your own images). With --model, every positional is an "
                    "image (the older form).")
    r.add_argument("images", nargs="+", metavar="MODEL IMAGE",
                   help="the model, then image files (PNG, JPEG, …; needs Pillow)")
    r.add_argument("--model", default=None,
                   help="the model (zoo name or .npz) as an option: then all positionals are "
                        "images")
    r.add_argument("--weights", default=None,
                   help="a torchvision state_dict saved as .npz (see README, Classic networks)")
    r.add_argument("--top", type=_number(int, "--top"), default=None,
                   help="how many classes to show per image (default 5 for ImageNet's 1,000 "
                        "classes, else 3)")
    r.add_argument("--json", action="store_true",
                   help="print one JSON document: per image the top classes and probabilities")
    r.add_argument("--threads", type=_number(int, "--threads"), default=1)

    b = sub.add_parser(
        "bench", help="time numcnn alone (against PyTorch: python benchmarks/lenet_vs_torch.py)",
        description="Time numcnn alone: training seconds per 60,000-image epoch and images/s, "
                    "and inference images/s on the 10,000 test images, as medians (min–max) "
                    "over the repeats. To compare with PyTorch and ONNX Runtime (same weights, "
                    "batches and threads), run `python benchmarks/lenet_vs_torch.py` from a "
                    "source checkout.")
    b.add_argument("--model", default="lenet5", help="zoo model name (default lenet5)")
    b.add_argument("--threads", type=_number(int, "--threads"), nargs="+", default=[1],
                   help="thread counts to time at (default 1)")
    b.add_argument("--batch-size", type=_number(int, "--batch-size"), nargs="+", default=[128],
                   dest="batch_sizes", help="training batch sizes (default 128)")
    g = b.add_mutually_exclusive_group()
    g.add_argument("--steps", type=_number(int, "--steps"), default=100,
                   help="batches timed per repeat, extrapolated to an epoch (default 100)")
    g.add_argument("--epochs", type=_number(int, "--epochs"), default=None,
                   help="time whole epochs instead")
    b.add_argument("--repeats", type=_number(int, "--repeats"), default=5,
                   help="runs per measure (default 5)")
    b.add_argument("--no-inference", action="store_false", dest="inference",
                   help="skip the 10,000-image inference timing")
    b.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    b.add_argument("--synthetic", action="store_true", help="random images instead of MNIST")
    b.add_argument("--seed", type=_number(int, "--seed", allow_zero=True), default=0)
    add_serve_parser(sub, _number)  # the draw-a-digit page (issue 13): numcnn.serve
    add_plot_parser(sub, _number)  # pictures (issue 13): numcnn.viz
    add_export_parser(sub, _number)  # ONNX (issue 14): numcnn.onnx
    return p


def _threads(n: int):
    """fit/evaluate/predict inside use ``n`` cores (see :mod:`numcnn.threads`)."""
    from .threads import num_threads

    return num_threads(n)


def _warn(text: str) -> None:
    print(f"numcnn: warning: {text}", file=sys.stderr)


def _check_threads(n: int) -> None:
    from .training.runs import cores

    if n > cores():
        _warn(f"--threads {n} is more than the {cores()} core(s) this process may use; BLAS "
              "threads then compete for them and run slower")


def _mpi_rank(distribute: str | None) -> int:
    """This process's MPI rank when training over MPI, else 0."""
    from .training.distributed import MPIComm, launched_size

    if distribute == "mpi" or (distribute is None and launched_size() > 1):
        try:
            return MPIComm().rank
        except ImportError as e:
            raise CLIError(str(e)) from None
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .training.runs import RunSpec, run

    _check_threads(args.threads)
    spec = RunSpec(
        model=args.model, dataset=args.dataset, epochs=args.epochs,
        batch_size=args.batch_size,
        augment=args.augment, optimizer=args.optimizer, lr=args.lr, momentum=args.momentum,
        clipnorm=args.clipnorm, clipvalue=args.clipvalue, loss=args.loss,
        schedule=args.schedule, seed=args.seed,
        validation_size=args.validation_size, train_size=args.train_size,
        data_dir=args.data_dir, output=args.output, threads=args.threads,
        verbose="auto" if args.verbose is None else args.verbose, dropout=args.dropout,
        checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
        resume=args.resume, distribute=args.distribute)
    rank = _mpi_rank(args.distribute)
    result = run(spec, say=lambda text: print(text, flush=True) if rank == 0 else None)
    if rank != 0:  # the other MPI ranks print nothing (rank 0 reports)
        return result.exit_status if result.interrupted else 0
    if result.interrupted:
        saved = (f"; the state is saved in {args.checkpoint_dir} (continue with the same "
                 "command and --resume)" if args.checkpoint_dir else "")
        print(f"numcnn: stopped by {result.interrupted} {result.where}{saved}",
              file=sys.stderr)
        return result.exit_status
    unit = "pass" if spec.lenet1998 else "epoch"
    print(f"Training time: {result.wall:.1f} s ({result.wall / max(spec.epochs, 1):.1f} "
          f"s/{unit})")
    if spec.lenet1998:
        err = result.test["error"]
        print(f"Test error: {100 * err:.2f} % - test accuracy: {1 - err:.4f} "
              f"({100 * (1 - err):.2f} %)")
    else:
        acc = result.test["accuracy"]
        print(f"Test loss: {result.test['loss']:.4f} - test accuracy: {acc:.4f} "
              f"({100 * acc:.2f} %)")
    if args.output:
        print(f"Saved model to {args.output}")
    return 0


def _pixel_scale(value: Any, path: str) -> float:
    """The model file's pixel scale, validated (metadata is not trusted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not 0 < value <= 1e6:
        raise ValueError(f"{path}: damaged metadata: pixel_scale must be a positive finite "
                         f"number; received {value!r}")
    return float(value)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .io.saving import load_model

    _check_threads(args.threads)
    model = load_model(args.path)
    extra = getattr(model, "saved_extra", {})
    rbf = extra.get("output") == "rbf"  # distance outputs: the smallest penalty wins
    metric = "argmin_accuracy" if rbf else "accuracy"
    model.compile(optimizer=model.optimizer or "sgd",
                  loss=model.loss or ("lenet_map" if rbf else "softmax_cross_entropy"),
                  metrics=[metric])
    scale = _pixel_scale(extra.get("pixel_scale", PIXEL_SCALE), args.path)
    dataset = extra.get("dataset", "mnist")
    if dataset not in ("mnist", "fashion_mnist", "cifar10"):
        raise ValueError(f"{args.path}: damaged metadata: dataset must be mnist, "
                         f"fashion_mnist or cifar10; received {dataset!r}")
    from .datasets import load as load_dataset

    _, (x_test, y_test) = load_dataset(dataset, data_dir=args.data_dir)
    with _threads(args.threads):
        result = model.evaluate(scale_images(x_test, scale), y_test, batch_size=args.batch_size)
    result["accuracy"] = result.pop(metric)
    print(f"Test loss: {result['loss']:.4f} - test accuracy: {result['accuracy']:.4f} "
          f"({100 * result['accuracy']:.2f} %)")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from . import models
    from .io.saving import load_model

    if args.model.endswith(".json"):
        models.summary_of(_read_model_spec(args.model))
        return 0
    if args.model.endswith(".npz"):
        model = load_model(args.model, compile=False)
    else:
        model = models.get(args.model)
    model.summary()
    return 0


def _read_model_spec(path: str) -> dict:
    """A model spec ``{"class_name", "config"}`` from a JSON file (or the ``"model"`` of a
    saved file's config), its structure checked by the loader's config walk — with no
    memory budget: nothing is built."""
    import json

    from .io.npzfile import ModelFileError
    from .io.plan import plan_model

    if os.path.getsize(path) > 64 << 20:
        raise CLIError(f"{path}: a model config over 64 MiB")
    with open(path, encoding="utf-8") as f:
        try:
            spec = json.load(f)
        except ValueError as e:
            raise CLIError(f"{path}: not a JSON model config ({e})") from None
    if isinstance(spec, dict) and isinstance(spec.get("model"), dict):
        spec = spec["model"]
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict) \
            or "class_name" not in spec:
        raise CLIError(f'{path}: expected a model spec {{"class_name": ..., "config": {{...}}}}')
    plan_model(spec, lambda msg: ModelFileError(f"{path}: {msg}"), budget=1 << 62)
    return spec


def cmd_bench(args: argparse.Namespace) -> int:
    from .benchmark import run_benchmark

    run_benchmark(threads=args.threads, batch_sizes=args.batch_sizes,
                  steps=None if args.epochs is not None else args.steps,
                  epochs=args.epochs or 1, repeats=args.repeats, inference=args.inference,
                  model=args.model, data_dir=args.data_dir, synthetic=args.synthetic,
                  seed=args.seed)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import json

    from .io.inputs import classify, preprocessing_of
    from .io.saving import load_model
    from .models import get

    _check_threads(args.threads)
    if args.model is not None:
        name, images = args.model, args.images
    elif len(args.images) < 2:
        raise CLIError("predict needs a model and at least one image: numcnn predict MODEL "
                       "IMAGE [IMAGE ...] (MODEL: a saved .npz model or a zoo name)")
    else:
        name, images = args.images[0], args.images[1:]
    if name.lower().endswith((".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff",
                              ".webp")):
        raise CLIError(f"predict's first argument is the model (a saved .npz model or a zoo "
                       f"name), then the images; received the image {name}")
    if name.endswith(".npz"):
        if args.weights:
            raise CLIError("--weights is for zoo models; a saved .npz model holds its own")
        model = load_model(name, compile=False)
    else:
        model = get(name, **_weights_option(name, args.weights))
    spec = preprocessing_of(model, name)
    results = []
    for path in images:
        try:
            with _threads(args.threads):
                result = classify(model, path, top=args.top, spec=spec, name=name)
        except ValueError as e:  # name the picture ("no ink: ..." does not)
            raise ValueError(str(e) if str(e).startswith(path) else f"{path}: {e}") from None
        results.append({"image": path, **result})
        if not args.json:
            print(f"{path}:")
            width = max(len(row["label"]) for row in result["top"])
            for rank, row in enumerate(result["top"], start=1):
                penalty = f"  (penalty {row['penalty']:.3f})" if "penalty" in row else ""
                print(f"  {rank}. {row['label']:<{width}s} {100 * row['probability']:6.2f} %"
                      f"{penalty}")
    if args.json:
        print(json.dumps({"model": name, "preprocessing": spec, "predictions": results},
                         indent=2))
    return 0


def _weights_option(name: str, weights: str | None) -> dict[str, Any]:
    """``get``'s keyword for ``--weights``: none without it; refused for a zoo model that
    has no torchvision twin to take a state_dict from (naming those that do)."""
    import inspect

    from .models import ZOO

    def takes(factory: Any) -> bool:
        params = inspect.signature(factory).parameters.values()
        return any(p.name == "weights" or p.kind is p.VAR_KEYWORD for p in params)

    if weights is None:
        return {}
    factory = ZOO.get(name.lower())
    if factory is not None and not takes(factory):
        takers = sorted(n for n, f in ZOO.items() if takes(f))
        raise CLIError(f"--weights: {name} takes no torchvision weights; expected one of: "
                       f"{', '.join(takers)}")
    return {"weights": weights}


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "summary": cmd_summary,
            "predict": cmd_predict, "bench": cmd_bench, "serve": cmd_serve, "plot": cmd_plot,
            "export": cmd_export}


def _error(e: BaseException) -> None:
    """Print an exception as one line (multi-line messages are joined with "; ")."""
    text = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
    print(f"numcnn: error: {text}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``numcnn`` console script and ``python -m numcnn``."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(argv)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            # overflow in a diverging run is reported once, as the loss becoming NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            return COMMANDS[args.command](args)
    except CLIError as e:
        _error(e)
        return 2
    except KeyboardInterrupt:
        print("numcnn: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        if os.environ.get("NUMCNN_DEBUG"):
            raise
        print("numcnn: error: out of memory; use a smaller --batch-size (or --train-size)",
              file=sys.stderr)
        return 1
    except FloatingPointError as e:
        if os.environ.get("NUMCNN_DEBUG"):
            raise
        _error(e)
        return 1
    except (FileNotFoundError, ValueError, TypeError, RuntimeError, OSError,
            ImportError) as e:  # ImportError: an extra that is not installed (says which)
        if os.environ.get("NUMCNN_DEBUG"):
            raise
        _error(e)
        return 1
    except Exception as e:  # anything else: still one line, the traceback on request
        if os.environ.get("NUMCNN_DEBUG"):
            raise
        print(f"numcnn: internal error: {type(e).__name__}: {e} (set NUMCNN_DEBUG=1 for the "
              "traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
