"""The fault sweep's cases for the newer commands (imported by ``fault_sweep.py``).

``numcnn train --dataset`` (Fashion-MNIST, CIFAR-10: missing and damaged files), ``--clipnorm``
/ ``--clipvalue``, ``--distribute`` (malformed values only), ``numcnn predict`` (hostile
pictures, wrong models and options), ``numcnn plot`` (each picture with bad arguments, and
without matplotlib or Pillow), ``numcnn serve`` (bad addresses, a file that is not a model,
no web extra; a server that starts is a *hang*: the sweep kills it and counts it),
``numcnn export`` (bad opsets, outputs that are not ours, an unexportable model) and
``numcnn.onnx.load`` of hostile ``.onnx`` files (in a process whose address space is limited
to its size + 1 GiB, as every API case).

Each case is a ``cli(...)``/``api(...)`` of ``fault_sweep`` with the ``match`` its one error
line must satisfy (what was expected and/or what was received). ``python
benchmarks/fault_sweep.py --list --only predict`` prints them. This module holds the shared
file-making helpers and the training cases; ``fault_cases_pictures.py`` predict and plot,
``fault_cases_serving.py`` serve, export and the ONNX import.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fault_sweep import QUICK, Case, Fixtures, cli, mknod_char


# ----------------------------------------------------------------------------- helpers
def _shim(*modules: str) -> tuple[Callable[[Path, Fixtures], None], dict[str, str]]:
    """A setup and environment under which ``import <module>`` fails as if not installed."""

    def setup(work: Path, fx: Fixtures) -> None:
        for m in modules:
            d = work / "shim" / m
            d.mkdir(parents=True)
            (d / "__init__.py").write_text(f"raise ModuleNotFoundError(\"No module named "
                                           f"'{m}'\", name={m!r})\n")

    path = os.pathsep.join(p for p in ("{work}/shim", os.environ.get("PYTHONPATH", "")) if p)
    return setup, {"PYTHONPATH": path}


def _chain(*setups: Callable[[Path, Fixtures], Any] | None) -> Callable[[Path, Fixtures], None]:
    def setup(work: Path, fx: Fixtures) -> None:
        for s in setups:
            if s is not None:
                s(work, fx)
    return setup


def _png(w: int, h: int, rows: Callable[[], Any] | None = None, mode: int = 0) -> bytes:
    """A PNG of ``w``×``h`` pixels (grey 8-bit: colour type ``mode``), its pixel stream
    deflated chunk by chunk from ``rows()`` (default: all zero) — a few KiB can declare and
    hold a picture of a hundred million pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    z = zlib.compressobj(9)
    raw = bytearray()
    line = bytes(w + 1)
    for r in (rows() if rows else (line for _ in range(h))):
        raw += z.compress(r)
    raw += z.flush()
    head = struct.pack(">IIBBBBB", w, h, 8, mode, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", bytes(raw))
            + chunk(b"IEND", b""))


def _picture(fmt: str = "PNG", size: int = 160, **save: Any) -> bytes:
    """A noisy picture of a digit-like stroke (large enough that half of it is missing data)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    a = (rng.random((size, size)) * 60 + 180).astype(np.uint8)
    a[size // 8: -size // 8, size // 2 - size // 16: size // 2 + size // 16] = 10
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, fmt, **save)
    return buf.getvalue()


def _gif_animated() -> bytes:
    from PIL import Image

    frames = [Image.new("L", (28, 28), c) for c in (0, 255)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return buf.getvalue()


def _file(name: str, content: bytes | Callable[[], bytes]) -> Callable[[Path, Fixtures], None]:
    def setup(work: Path, fx: Fixtures) -> None:
        (work / name).write_bytes(content() if callable(content) else content)
    return setup


def _node(name: str, kind: str) -> Callable[[Path, Fixtures], None]:
    """A folder, FIFO, our own character device or a link at ``name``."""

    def setup(work: Path, fx: Fixtures) -> None:
        p = work / name
        if kind == "folder":
            p.mkdir()
        elif kind == "fifo":
            os.mkfifo(p)
        elif kind == "device":
            mknod_char(p)
        elif kind == "loop":
            os.symlink(p, p)
        elif kind.startswith("link:"):
            os.symlink(kind[5:], p)
    return setup


def _copy_model(name: str = "m.npz") -> Callable[[Path, Fixtures], None]:
    def setup(work: Path, fx: Fixtures) -> None:
        (work / name).write_bytes(fx.model.read_bytes())
    return setup


def _python(code: str) -> Callable[[Path, Fixtures], None]:
    """Run ``code`` with numcnn in the case's folder (to make a model or an ONNX file);
    ``MODEL`` in it is the good model's path."""

    def setup(work: Path, fx: Fixtures) -> None:
        proc = subprocess.run([sys.executable, "-c", code.replace("MODEL", repr(str(fx.model)))],
                              cwd=work, env=fx.env,
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"setup failed: {proc.stderr[-500:]}")
    return setup


def _printed(text: str) -> Callable[..., str | None]:
    def verify(work: Path, fx: Fixtures, out: str, err: str) -> str | None:
        return None if text in out else f"{text!r} not in the output"
    return verify


def _ranks(n: int) -> Callable[..., str | None]:
    def verify(work: Path, fx: Fixtures, out: str, err: str) -> str | None:
        got = sum(1 for ln in out.splitlines() if ln.strip().startswith(f"{n}. "))
        return None if got == 1 and f"{n + 1}. " not in out else f"not {n} classes shown"
    return verify


# --------------------------------------------------------------------- train --dataset
def dataset_cases() -> list[Case]:
    """Fashion-MNIST and CIFAR-10 through ``numcnn train --dataset``: nothing on disk is
    downloaded (the mirrors are a refused port), folders that lack or hold damaged files."""
    c = "datasets: fashion_mnist, cifar10"
    cases: list[Case] = []
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    tar = "cifar-10-binary.tar.gz"
    nodata = {"NUMCNN_DATA_DIR": None}

    def train(ds: str) -> list[str]:  # resnet20 takes CIFAR-10's 3×32×32 images
        model = ["--model", "resnet20"] if ds == "cifar10" else []
        return ["train", *QUICK, *model, "--dataset", ds, "--data-dir", "d"]

    def folder(files: dict[str, Any], sub: str = "") -> Callable[[Path, Fixtures], None]:
        def setup(work: Path, fx: Fixtures) -> None:
            d = work / "d" / sub
            d.mkdir(parents=True)
            for name, content in files.items():
                t = d / name
                if callable(content):
                    content(t, fx)
                else:
                    t.write_bytes(content)
        return setup

    def mnist_link(t: Path, fx: Fixtures) -> None:
        os.symlink(fx.data / t.name, t)

    def cifar_tar(members: list[tuple[str, bytes]], cut: float = 1.0) -> Callable:
        def write(t: Path, fx: Fixtures) -> None:
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w:gz") as z:
                for name, data in members:
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    z.addfile(info, io.BytesIO(data))
            data = buf.getvalue()
            t.write_bytes(data[: int(len(data) * cut)])
        return write

    fm = "fashion_mnist"
    cases += [
        cli(c, "fashion_mnist: --data-dir missing", train(fm), r"'d'.*does not exist",
            env=nodata),
        cli(c, "fashion_mnist: --data-dir empty", train(fm),
            r"not found: train-images-idx3-ubyte.*Looked in:; d ", env=nodata,
            setup=lambda w, fx: (w / "d").mkdir()),
        cli(c, "fashion_mnist: MNIST's files in the folder", train(fm),
            r"MNIST", env=nodata, setup=folder({n: mnist_link for n in names})),
        cli(c, "fashion_mnist: MNIST's files in $NUMCNN_DATA_DIR",
            ["train", *QUICK, "--dataset", fm], r"MNIST"),
        cli(c, "fashion_mnist: one file missing", train(fm), r"t10k-labels-idx1-ubyte",
            env=nodata, setup=folder({n: b"x" for n in names[:3]}, sub="fashion_mnist")),
        cli(c, "fashion_mnist: garbage files", train(fm),
            r"train-images-idx3-ubyte\.gz.*(expected|size|bytes|SHA)", env=nodata,
            setup=folder({n: bytes(range(256)) * 4 for n in names})),
        cli(c, "fashion_mnist: empty files", train(fm),
            r"train-images-idx3-ubyte\.gz.*(expected|size|bytes|empty)", env=nodata,
            setup=folder({n: b"" for n in names})),
        cli(c, "fashion_mnist: a file is a folder", train(fm), r"train-images-idx3-ubyte",
            env=nodata, setup=folder({n: (lambda t, fx: t.mkdir()) if i == 0 else b"x"
                                      for i, n in enumerate(names)})),
        cli(c, "fashion_mnist: a file is a FIFO", train(fm), r"train-images-idx3-ubyte",
            env=nodata, setup=folder({n: (lambda t, fx: os.mkfifo(t)) if i == 0 else b"x"
                                      for i, n in enumerate(names)}), timeout=30),
        cli(c, "fashion_mnist: a file links to /dev/zero", train(fm),
            r"train-images-idx3-ubyte", env=nodata, timeout=30,
            setup=folder({n: (lambda t, fx: os.symlink("/dev/zero", t)) if i == 0 else b"x"
                          for i, n in enumerate(names)})),
        cli(c, "fashion_mnist: nothing anywhere, no network", ["train", *QUICK, "--dataset",
                                                                fm],
            r"(download|mirror).*(127\.0\.0\.1|refused)", env={"NUMCNN_DATA_DIR": ""},
            changes=("*",)),
        cli(c, "cifar10: --data-dir missing", train("cifar10"), r"'d'.*does not exist",
            env=nodata),
        cli(c, "cifar10: --data-dir empty", train("cifar10"),
            r"d.*cifar-10-binary\.tar\.gz", env=nodata,
            setup=lambda w, fx: (w / "d").mkdir()),
        cli(c, "cifar10: the archive empty", train("cifar10"),
            r"cifar-10-binary\.tar\.gz.*(expected|size|bytes|empty)", env=nodata,
            setup=folder({tar: b""})),
        cli(c, "cifar10: the archive garbage", train("cifar10"),
            r"cifar-10-binary\.tar\.gz.*(expected|size|bytes|SHA)", env=nodata,
            setup=folder({tar: bytes(range(256)) * 64})),
        cli(c, "cifar10: a small archive of foreign members", train("cifar10"),
            r"cifar-10-binary\.tar\.gz.*(expected|size|bytes|SHA)", env=nodata,
            setup=folder({tar: cifar_tar([("../../etc/evil", b"x" * 100)])})),
        cli(c, "cifar10: the archive truncated", train("cifar10"),
            r"cifar-10-binary\.tar\.gz.*(expected|size|bytes|SHA|truncated)", env=nodata,
            setup=folder({tar: cifar_tar([("cifar-10-batches-bin/data_batch_1.bin",
                                           bytes(30730))], cut=0.5)})),
        cli(c, "cifar10: the archive a folder", train("cifar10"), r"cifar-10-binary\.tar\.gz",
            env=nodata, setup=folder({tar: lambda t, fx: t.mkdir()})),
        cli(c, "cifar10: the archive a FIFO", train("cifar10"), r"cifar-10-binary\.tar\.gz",
            env=nodata, setup=folder({tar: lambda t, fx: os.mkfifo(t)}), timeout=30),
        cli(c, "cifar10: the archive links to /dev/zero", train("cifar10"),
            r"cifar-10-binary\.tar\.gz", env=nodata, timeout=30,
            setup=folder({tar: lambda t, fx: os.symlink("/dev/zero", t)})),
        cli(c, "cifar10: the archive a broken link", train("cifar10"),
            r"cifar-10-binary\.tar\.gz", env=nodata,
            setup=folder({tar: lambda t, fx: os.symlink("nowhere", t)})),
        cli(c, "cifar10: nothing anywhere, no network", ["train", *QUICK, "--model",
                                                         "resnet20", "--dataset", "cifar10"],
            r"(download|mirror).*(127\.0\.0\.1|refused)", env={"NUMCNN_DATA_DIR": ""},
            changes=("*",)),
        cli(c, "--dataset nosuch", ["train", *QUICK, "--dataset", "nosuch"],
            r"invalid choice: 'nosuch' \(choose from"),
        cli(c, "--dataset ''", ["train", *QUICK, "--dataset", ""], r"invalid choice: ''"),
        cli(c, "--dataset cifar10 with lenet5", ["train", *QUICK, "--dataset", "cifar10"],
            r"--model lenet5 takes 1×28×28 images; --dataset cifar10 has 3×32×32"),
        cli(c, "evaluate a model whose metadata names another dataset", ["evaluate", "m.npz"],
            r"m\.npz.*dataset.*received 'imagenet'",
            setup=_python("import numcnn\nm = numcnn.models.get('lenet5')\n"
                          "numcnn.save_model(m, 'm.npz', extra={'dataset': 'imagenet'})")),
    ]
    return cases


# ----------------------------------------------------------- clipping and --distribute
def training_option_cases() -> list[Case]:
    """``--clipnorm``/``--clipvalue`` with bad values and ``--distribute`` malformed."""
    c = "train: clipping, --distribute"
    train = ["train", *QUICK]
    cases: list[Case] = []
    for flag in ("--clipnorm", "--clipvalue"):
        for v in ("-1", "0", "abc", "nan", "inf", "-inf", "", "1e999"):
            match = rf"{flag} must be a positive float; received {v!r}".replace(".", r"\.")
            if v.startswith("-") and v not in ("-1",):
                match = rf"argument {flag}: expected one argument"
            cases.append(cli(c, f"{flag} {v!r}", [*train, flag, v], match))
        cases.append(cli(c, f"{flag} (no value)", [*train, flag],
                         rf"argument {flag}: expected one argument"))
    cases.append(cli(c, "--clipnorm 1e-300 (valid, tiny steps)", [*train, "--clipnorm",
                                                                  "1e-300"],
                     expect="ok", verify=_printed("Test loss")))
    for v in ("local:0", "local:x", "local:", "local:-1", "local:1.5", "local:2:3", "mpi:2",
              "tcp", "", " "):
        cases.append(cli(c, f"--distribute {v!r}", [*train, "--distribute", v],
                         r"--distribute|distribute.*(mpi|local:K).*received"))
    setup, env = _shim("mpi4py")
    cases.append(cli(c, "--distribute mpi without mpi4py", [*train, "--distribute", "mpi"],
                     r"mpi4py", setup=setup, env=env))
    return cases


def newer_cases() -> list[Case]:
    """Every case of the newer commands (this module and its two siblings)."""
    from fault_cases_pictures import plot_cases, predict_cases
    from fault_cases_serving import export_cases, onnx_cases, serve_cases

    return (dataset_cases() + training_option_cases() + predict_cases() + plot_cases()
            + serve_cases() + export_cases() + onnx_cases())
