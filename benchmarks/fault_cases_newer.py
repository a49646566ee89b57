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
benchmarks/fault_sweep.py --list --only predict`` prints them.
"""

from __future__ import annotations

import io
import os
import socket
import struct
import subprocess
import sys
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fault_sweep import QUICK, Case, Fixtures, api, cli, mknod_char

#: listening sockets held open by a case's setup (a port that is taken), closed at teardown
_HELD: dict[str, socket.socket] = {}


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


def _port_taken(case: Case) -> Case:
    """Make ``case`` run while a socket of the sweep listens on the port its ``PORT``
    argument names (the case's argv gets the number at setup)."""
    template = list(case.argv or [])

    def setup(work: Path, fx: Fixtures) -> None:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        _HELD[str(work)] = s
        case.argv = [a.replace("PORT", str(s.getsockname()[1])) for a in template]

    case.setup, case.teardown = setup, _release_port
    return case


def _release_port(work: Path) -> None:
    s = _HELD.pop(str(work), None)
    if s is not None:
        s.close()


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


# ------------------------------------------------------------------------------ predict
def predict_cases() -> list[Case]:
    """``numcnn predict`` with hostile pictures, wrong models and bad options."""
    c = "predict"
    cases: list[Case] = []
    pred = ["predict", "{model}"]

    def img(name: str, content: Any, match: str, **kw: Any) -> None:
        """``content``: the file's bytes, a function making them, or a setup (``_node``)."""
        setup = kw.pop("setup", None) or _file(name, content)
        cases.append(cli(c, f"image: {kw.pop('what', name)}", [*pred, name], match,
                         setup=setup, **kw))

    big = _picture("PNG", 400)
    jpg = _picture("JPEG", 400, quality=90)
    img("cut.png", big[: len(big) // 2], r"cut\.png.*(truncated|damaged|not a readable)",
        what="a PNG cut in half")
    img("cut.jpg", jpg[: len(jpg) // 2], r"cut\.jpg.*(truncated|damaged|not a readable)",
        what="a JPEG cut in half")
    img("head.png", big[:40], r"head\.png.*(truncated|damaged|not a readable)",
        what="a PNG of its first 40 bytes")
    img("crc.png", big[:200] + bytes([big[200] ^ 0xFF]) + big[201:],
        r"crc\.png.*(broken|damaged|not a readable|CRC|corrupt)", what="a PNG with a bit flip")
    img("empty.png", b"", r"empty\.png: empty \(0 bytes\); expected an image", what="an empty file")
    img("text.png", b"just some text\n" * 10, r"text\.png.*not a readable image",
        what="a text file named .png")
    img("m.npz", None, r"m\.npz.*not a readable image", setup=_copy_model("m.npz"),
        what="the model file as the image")
    img("zero.png", _png(0, 0, rows=lambda: iter(())), r"zero\.png.*empty image",
        what="a PNG declaring 0x0 pixels")
    img("wide.png", _png(100000, 1, rows=lambda: iter([bytes(100001)])),
        r"wide\.png.*(no ink|blank)", what="a 100000x1 PNG (black: blank)")
    img("huge.png", lambda: _png(100000, 100000, rows=lambda: iter([bytes(100001)])),
        r"huge\.png.*declares 100000×100000 pixels, more than",
        what="a PNG header declaring 100000x100000 pixels")
    img("bomb.png", lambda: _png(9000, 9000), r"bomb\.png.*declares 9000×9000 pixels",
        what="a deflate bomb of 9000x9000 pixels (81 M, 80 KB on disk)")
    img("anim.gif", _gif_animated, r"anim\.gif.*animated", what="an animated GIF")
    img("blank.png", lambda: _png(28, 28, rows=lambda: iter([b"\x00" + b"\xff" * 28] * 28)),
        r"blank\.png.*(ink|blank)", what="a blank white picture")
    for kind, match in (("folder", r"pic.*(folder|directory)"), ("fifo", r"pic.*FIFO"),
                        ("device", r"pic.*(character device|device)"),
                        ("loop", r"pic.*(symbolic link|loop|no image)"),
                        ("link:nowhere", r"pic.*(broken|no image|not exist)")):
        img("pic", None, match, setup=_node("pic", kind), timeout=30,
            what=f"a {kind.split(':')[0]} at the path")
    cases += [
        cli(c, "image: /dev/zero", [*pred, "/dev/zero"], r"/dev/zero.*(character device|device)",
            timeout=30),
        cli(c, "image: /dev/urandom", [*pred, "/dev/urandom"], r"/dev/urandom.*device",
            timeout=30),
        cli(c, "image: missing", [*pred, "nope.png"], r"nope\.png"),
        cli(c, "image: the second of two missing", [*pred, "a.png", "nope.png"],
            r"nope\.png", setup=_file("a.png", big)),
        cli(c, "image: a 16-bit greyscale PNG (valid)", [*pred, "g16.png"], expect="ok",
            verify=_printed("1. "), setup=_file("g16.png", _png16)),
    ]
    # the model and its options
    good = _file("a.png", big)
    cases += [
        cli(c, "model: nosuch (a zoo name)", ["predict", "nosuch", "a.png"],
            r"unknown model 'nosuch'; expected one of", setup=good),
        cli(c, "model: missing .npz", ["predict", "missing.npz", "a.png"], r"missing\.npz",
            setup=good),
        cli(c, "model: a text file named .npz", ["predict", "t.npz", "a.png"],
            r"t\.npz.*not a readable numcnn model", setup=_chain(good, _file("t.npz", b"no"))),
        cli(c, "model: a folder named .npz", ["predict", "f.npz", "a.png"],
            r"f\.npz.*(folder|directory|not a regular)", setup=_chain(good, _node("f.npz",
                                                                             "folder"))),
        cli(c, "model: a FIFO named .npz", ["predict", "f.npz", "a.png"], r"f\.npz",
            setup=_chain(good, _node("f.npz", "fifo")), timeout=30),
        cli(c, "model: an .onnx file", ["predict", "m.onnx", "a.png"],
            r"m\.onnx.*(expected|model)", setup=_chain(good, _file("m.onnx", b"\x08\x07"))),
        cli(c, "model: the image given first", ["predict", "a.png", "{model}"],
            r"first argument is the model", setup=good),
        cli(c, "model: only one positional", ["predict", "{model}"],
            r"needs a model and at least one image"),
        cli(c, "model: --model and a model positional", ["predict", "--model", "{model}",
                                                         "{model}"],
            r"not a readable image|image"),
        cli(c, "--weights with a .npz model", [*pred, "a.png", "--weights", "w.npz"],
            r"--weights is for zoo models", setup=good),
        cli(c, "--weights missing", ["predict", "resnet18", "a.png", "--weights", "w.npz"],
            r"w\.npz", setup=good),
        cli(c, "--weights a text file", ["predict", "resnet18", "a.png", "--weights", "w.npz"],
            r"w\.npz", setup=_chain(good, _file("w.npz", b"no"))),
        cli(c, "--weights for lenet5 (no torchvision twin)", ["predict", "lenet5", "a.png",
                                                              "--weights", "w.npz"],
            r"--weights.*lenet5.*(expected|one of|takes no)",
            setup=_chain(good, _file("w.npz", b"no"))),
        cli(c, "--weights a numcnn model file", ["predict", "resnet18", "a.png", "--weights",
                                                 "{model}"],
            r"good\.npz.*(state_dict|expected|missing|torchvision)", setup=good, timeout=120),
    ]
    for v in ("0", "-1", "abc", "1.5", "nan", ""):
        match = rf"--top must be a positive int; received {v!r}".replace(".", r"\.")
        cases.append(cli(c, f"--top {v!r}", [*pred, "a.png", "--top", v], match, setup=good))
    cases += [
        cli(c, "--top 10**9 (all ten classes)", [*pred, "a.png", "--top", str(10**9)],
            expect="ok", setup=good, verify=_ranks(10)),
        cli(c, "--threads 0", [*pred, "a.png", "--threads", "0"],
            r"--threads must be a positive int; received '0'", setup=good),
        cli(c, "--json with a bad image", [*pred, "a.png", "cut.png", "--json"],
            r"cut\.png", setup=_chain(good, _file("cut.png", big[:300]))),
    ]
    setup, env = _shim("PIL")
    cases.append(cli(c, "without Pillow", [*pred, "a.png"], r"Pillow", env=env,
                     setup=_chain(good, setup)))
    return cases


def _png16() -> bytes:
    import numpy as np
    from PIL import Image

    a = np.full((64, 64), 60000, np.uint16)
    a[8:56, 28:36] = 1000
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------------- plot
def plot_cases() -> list[Case]:
    """Every ``numcnn plot`` picture with bad arguments, and without matplotlib/Pillow."""
    c = "plot"
    csv = b"epoch,loss,accuracy,val_loss,val_accuracy,lr\n0,1.0,0.5,1.1,0.4,0.1\n" \
          b"1,0.8,0.6,0.9,0.5,0.05\n"
    log = _file("run.csv", csv)
    pic = _file("a.png", _picture("PNG", 100))
    cases = [
        cli(c, "no kind", ["plot"], r"required: \{history,maps"),
        cli(c, "kind nosuch", ["plot", "nosuch"], r"invalid choice: 'nosuch'"),
        # history
        cli(c, "history: missing log", ["plot", "history", "nope.csv"], r"nope\.csv"),
        cli(c, "history: an empty log", ["plot", "history", "e.csv"], r"e\.csv.*empty",
            setup=_file("e.csv", b"")),
        cli(c, "history: a binary file", ["plot", "history", "b.csv"],
            r"b\.csv.*(not a text|UTF-8|CSV)", setup=_file("b.csv", bytes(range(256)) * 8)),
        cli(c, "history: the model file", ["plot", "history", "{model}"],
            r"good\.npz.*(not a text|UTF-8|CSV)"),
        cli(c, "history: a header only", ["plot", "history", "h.csv"], r"h\.csv.*(row|epoch)",
            setup=_file("h.csv", b"epoch,loss\n")),
        cli(c, "history: a value not a number", ["plot", "history", "v.csv"],
            r"v\.csv.*'abc'", setup=_file("v.csv", b"epoch,loss\n0,abc\n")),
        cli(c, "history: rows of other lengths", ["plot", "history", "r.csv"],
            r"r\.csv.*(row|column|field)", setup=_file("r.csv", b"epoch,loss\n0,1,2,3\n1\n")),
        cli(c, "history: --metrics nosuch", ["plot", "history", "run.csv", "--metrics",
                                             "nosuch"],
            r"nosuch.*(loss|accuracy)", setup=log),
        cli(c, "history: a folder", ["plot", "history", "f"], r"f.*(folder|directory)",
            setup=_node("f", "folder")),
        cli(c, "history: a FIFO", ["plot", "history", "f"], r"f.*(FIFO|regular)",
            setup=_node("f", "fifo"), timeout=30),
        cli(c, "history: /dev/zero", ["plot", "history", "/dev/zero"],
            r"/dev/zero.*(device|regular)", timeout=30),
        cli(c, "history: 64 MiB of digits", ["plot", "history", "big.csv"],
            r"big\.csv.*(MiB|bytes|larger|more than)", timeout=60,
            setup=_file("big.csv", lambda: b"epoch,loss\n" + b"1,2\n" * (16 << 20))),
        cli(c, "history: -o a folder", ["plot", "history", "run.csv", "-o", "out"],
            r"out.*folder", setup=_chain(log, _node("out", "folder"))),
        cli(c, "history: -o notes.txt (not a picture format)", ["plot", "history", "run.csv",
                                                                "-o", "notes.txt"],
            r"notes\.txt.*(\.png|png|svg|pdf)", setup=log),
        cli(c, "history: -o a FIFO", ["plot", "history", "run.csv", "-o", "f.png"],
            r"f\.png.*FIFO", setup=_chain(log, _node("f.png", "fifo")), timeout=30),
        cli(c, "history: -o our device", ["plot", "history", "run.csv", "-o", "d.png"],
            r"d\.png.*character device", setup=_chain(log, _node("d.png", "device"))),
        cli(c, "history: -o /dev/null", ["plot", "history", "run.csv", "-o", "/dev/null"],
            r"/dev/null.*character device", setup=log),
        cli(c, "history: --dpi 0", ["plot", "history", "run.csv", "--dpi", "0"],
            r"--dpi must be a positive float; received '0'", setup=log),
        cli(c, "history: --dpi 1e6 (a gigapixel canvas)", ["plot", "history", "run.csv",
                                                           "--dpi", "1e6"],
            r"--dpi 1e\+06: the picture would be .* pixels, more than", setup=log, timeout=60),
        # maps, saliency, deconv: the input
        cli(c, "maps: model nosuch", ["plot", "maps", "nosuch"],
            r"unknown model 'nosuch'; expected one of"),
        cli(c, "maps: model missing.npz", ["plot", "maps", "missing.npz"], r"missing\.npz"),
        cli(c, "maps: a text file named .npz", ["plot", "maps", "t.npz"],
            r"t\.npz.*not a readable numcnn model", setup=_file("t.npz", b"no")),
        cli(c, "maps: the image as the model", ["plot", "maps", "a.png"],
            r"a\.png.*(expected a saved model|model)", setup=pic),
        cli(c, "maps: --image truncated", ["plot", "maps", "{model}", "--image", "cut.png"],
            r"cut\.png.*(truncated|not a readable)",
            setup=_file("cut.png", _picture("PNG", 400)[:3000])),
        cli(c, "maps: --image missing", ["plot", "maps", "{model}", "--image", "nope.png"],
            r"nope\.png"),
        cli(c, "maps: --image a bomb", ["plot", "maps", "{model}", "--image", "bomb.png"],
            r"bomb\.png.*declares 9000×9000", setup=_file("bomb.png", lambda: _png(9000, 9000))),
        cli(c, "maps: --image and --index", ["plot", "maps", "{model}", "--image", "a.png",
                                             "--index", "0"], r"not allowed with", setup=pic),
        cli(c, "maps: --index -1", ["plot", "maps", "{model}", "--index", "-1"],
            r"--index must be a non-negative int; received '-1'"),
        cli(c, "maps: --index 10**9", ["plot", "maps", "{model}", "--index", str(10**9)],
            r"--index 1000000000.*10,000 images"),
        cli(c, "maps: --layers nosuch", ["plot", "maps", "{model}", "--layers", "nosuch"],
            r"nosuch.*(layer|expected)"),
        cli(c, "maps: --layers ','", ["plot", "maps", "{model}", "--layers", ","],
            r"--layers|layer"),
        cli(c, "maps: --cols 0", ["plot", "maps", "{model}", "--cols", "0"],
            r"--cols must be a positive int; received '0'"),
        cli(c, "maps: --cmap nosuch", ["plot", "maps", "{model}", "--cmap", "nosuch"],
            r"nosuch.*(colou?r ?map|cmap)"),
        cli(c, "maps: --scale nosuch", ["plot", "maps", "{model}", "--scale", "nosuch"],
            r"invalid choice: 'nosuch'"),
        cli(c, "maps: --data-dir missing", ["plot", "maps", "{model}", "--data-dir", "nowhere"],
            r"'nowhere'.*does not exist"),
        cli(c, "saliency: --target 10 (of 10 classes)", ["plot", "saliency", "{model}",
                                                         "--target", "10"],
            r"--target|target.*10"),
        cli(c, "saliency: --target -1", ["plot", "saliency", "{model}", "--target", "-1"],
            r"--target must be a non-negative int; received '-1'"),
        cli(c, "deconv: no --layer", ["plot", "deconv", "{model}"],
            r"required: --layer"),
        cli(c, "deconv: --layer nosuch", ["plot", "deconv", "{model}", "--layer", "nosuch"],
            r"nosuch.*(layer|expected)"),
        cli(c, "deconv: --layer a Dense layer (valid: its units projected)",
            ["plot", "deconv", "{model}", "--layer", "dense_1"], expect="ok",
            changes=("deconv.png",), verify=_printed("Saved")),
        cli(c, "deconv: --channels abc", ["plot", "deconv", "{model}", "--layer", "conv2d",
                                          "--channels", "abc"],
            r"--channels must be comma-separated map numbers; received 'abc'"),
        cli(c, "deconv: --channels 99", ["plot", "deconv", "{model}", "--layer", "conv2d",
                                         "--channels", "99"],
            r"channel must be in \[0, 6\) for 'conv2d'.*received channel=99"),
        cli(c, "deconv: --channels -1", ["plot", "deconv", "{model}", "--layer", "conv2d",
                                         "--channels=-1"],
            r"channel must be in \[0, 6\) for 'conv2d'.*received channel=-1"),
        cli(c, "deconv: --top 0", ["plot", "deconv", "{model}", "--layer", "conv2d", "--top",
                                   "0"], r"--top must be a positive int; received '0'"),
        # filters, gabor
        cli(c, "filters: --layer nosuch", ["plot", "filters", "{model}", "--layer", "nosuch"],
            r"nosuch.*(layer|expected)"),
        cli(c, "filters: --layer a pooling layer", ["plot", "filters", "{model}", "--layer",
                                                    "maxpool2d"],
            r"maxpool2d.*(Conv2D|kernels|expected)"),
        cli(c, "filters: --max-filters 0", ["plot", "filters", "{model}", "--max-filters",
                                            "0"],
            r"--max-filters must be a positive int; received '0'"),
        cli(c, "gabor: --filters 0", ["plot", "gabor", "--filters", "0"],
            r"--filters must be a positive int; received '0'"),
        cli(c, "gabor: --size 10**5 (a 10^10-value bank)", ["plot", "gabor", "--size",
                                                            str(10**5)],
            r"--size.*(100000|at most|too large|more than)", timeout=60),
        cli(c, "gabor: --filters 10**6", ["plot", "gabor", "--filters", str(10**6)],
            r"--filters.*(1000000|at most|too many|more than)", timeout=60),
        cli(c, "gabor: --orientations 0", ["plot", "gabor", "--orientations", "0"],
            r"--orientations must be a positive int; received '0'"),
        # confusion, errors
        cli(c, "confusion: --data-dir missing", ["plot", "confusion", "{model}", "--data-dir",
                                                 "nowhere"], r"'nowhere'.*does not exist"),
        cli(c, "confusion: --limit 0", ["plot", "confusion", "{model}", "--limit", "0"],
            r"--limit must be a positive int; received '0'"),
        cli(c, "confusion: --batch-size abc", ["plot", "confusion", "{model}", "--batch-size",
                                               "abc"],
            r"--batch-size must be a positive int; received 'abc'"),
        cli(c, "errors: --count 0", ["plot", "errors", "{model}", "--count", "0"],
            r"--count must be a positive int; received '0'"),
        cli(c, "errors: a model of another dataset's metadata", ["plot", "errors", "m.npz"],
            r"m\.npz.*dataset.*received 'imagenet'",
            setup=_python("import numcnn\nm = numcnn.models.get('lenet5')\n"
                          "numcnn.save_model(m, 'm.npz', extra={'dataset': 'imagenet'})")),
    ]
    setup, env = _shim("matplotlib")
    for kind, extra in (("history", ["run.csv"]), ("maps", ["{model}"]),
                        ("gabor", []), ("filters", ["{model}"])):
        cases.append(cli(c, f"{kind} without matplotlib", ["plot", kind, *extra],
                         r"matplotlib.*pip install", env=env, setup=_chain(log, setup)))
    setup, env = _shim("PIL")
    cases.append(cli(c, "maps --image without Pillow", ["plot", "maps", "{model}", "--image",
                                                        "a.png"],
                     r"matplotlib.*pip install", env=env, setup=_chain(pic, setup)))
    return cases  # (matplotlib needs Pillow: without it, matplotlib is what is missing)


# -------------------------------------------------------------------------------- serve
def serve_cases() -> list[Case]:
    """``numcnn serve`` with bad addresses and files; a server that starts counts as a
    hang (it never should here: every case is an error)."""
    c = "serve"
    s = ["serve", "{model}"]
    cases: list[Case] = []
    for v in ("-1", "65536", "70000", "abc", "1.5", ""):
        match = r"--port.*(0 to 65535|0\.\.65535|at most 65535|received)"
        if v == "-1":
            match = r"--port must be a non-negative int; received '-1'"
        cases.append(cli(c, f"--port {v!r}", [*s, "--port", v], match, timeout=20))
    cases += [
        _port_taken(cli(c, "--port taken", [*s, "--port", "PORT"],
                        r"(port|address).*(in use|taken)", timeout=20)),
        cli(c, "--host nosuch.invalid", [*s, "--host", "nosuch.invalid"],
            r"nosuch\.invalid", timeout=20),
        cli(c, "--host 999.1.1.1", [*s, "--host", "999.1.1.1"], r"999\.1\.1\.1", timeout=20),
        cli(c, "--host 192.0.2.1 (not ours)", [*s, "--host", "192.0.2.1", "--port", "0"],
            r"192\.0\.2\.1", timeout=20),
        cli(c, "--host ''", [*s, "--host", ""], r"--host|host", timeout=20),
        cli(c, "--rate-limit -1", [*s, "--rate-limit", "-1"],
            r"--rate-limit must be a non-negative float; received '-1'", timeout=20),
        cli(c, "--max-body 0", [*s, "--max-body", "0"],
            r"--max-body must be a positive int; received '0'", timeout=20),
        cli(c, "--threads 0", [*s, "--threads", "0"],
            r"--threads must be a positive int; received '0'", timeout=20),
        cli(c, "--threads 10**6", [*s, "--threads", str(10**6), "--port", "0"],
            r"--threads.*(at most|too many|1000000)", timeout=20),
        cli(c, "model: missing", ["serve", "nope.npz", "--port", "0"], r"nope\.npz",
            timeout=20),
        cli(c, "model: a text file", ["serve", "t.npz", "--port", "0"],
            r"t\.npz.*not a readable numcnn model", setup=_file("t.npz", b"no"), timeout=20),
        cli(c, "model: an image", ["serve", "a.png", "--port", "0"],
            r"a\.png.*(not a readable numcnn model|model)", timeout=20,
            setup=_file("a.png", _picture("PNG", 64))),
        cli(c, "model: a folder", ["serve", "f", "--port", "0"], r"f.*(folder|directory)",
            setup=_node("f", "folder"), timeout=20),
        cli(c, "model: a FIFO", ["serve", "f.npz", "--port", "0"], r"f\.npz",
            setup=_node("f.npz", "fifo"), timeout=20),
        cli(c, "model: /dev/zero", ["serve", "/dev/zero", "--port", "0"], r"/dev/zero",
            timeout=20),
        cli(c, "model: a zoo name", ["serve", "lenet5", "--port", "0"], r"lenet5", timeout=20),
        cli(c, "model: truncated", ["serve", "m.npz", "--port", "0"], r"m\.npz",
            setup=lambda w, fx: (w / "m.npz").write_bytes(fx.model.read_bytes()[:3000]),
            timeout=20),
        cli(c, "model: not a picture model (a sequence model)", ["serve", "r.npz", "--port",
                                                                  "0"],
            r"needs a model of one image input.*r\.npz takes \(5, 3\)", timeout=20,
            setup=_python("import numcnn\nfrom numcnn.layers import LSTM, Dense, Input\n"
                          "x = Input((5, 3))\n"
                          "m = numcnn.Model(x, Dense(2)(LSTM(4)(x)))\n"
                          "numcnn.save_model(m, 'r.npz')")),
    ]
    setup, env = _shim("waitress")
    cases.append(cli(c, "without waitress", [*s, "--port", "0"], r"waitress.*pip install",
                     setup=setup, env=env, timeout=20))
    return cases


# ------------------------------------------------------------------------------- export
def export_cases() -> list[Case]:
    """``numcnn export`` with bad opsets, outputs that are not ours and models that cannot
    be exported."""
    c = "export"
    ex = ["export", "{model}"]
    cases: list[Case] = []
    for v in ("0", "8", "29", "-1", "abc", "1.5", "", "99999999999999999999"):
        match = r"opset must be an int from 9 to 28|--opset must be an int; received"
        if v.startswith("-"):
            match = r"opset must be an int from 9 to 28|expected one argument"
        cases.append(cli(c, f"--opset {v!r}", [*ex, "m.onnx", "--opset", v], match))
    cases += [
        cli(c, "output over notes.txt (not an ONNX file)", [*ex, "notes.txt"],
            r"notes\.txt.*not an ONNX", setup=_file("notes.txt", b"my notes\n")),
        cli(c, "output over a picture", [*ex, "a.png"], r"a\.png.*not an ONNX",
            setup=_file("a.png", _picture("PNG", 64))),
        cli(c, "output over an older ONNX export (replaced)", [*ex, "old.onnx"],
            expect="ok", changes=("old.onnx",), verify=_printed("wrote"),
            setup=_python("import numcnn, os\nfrom numcnn.onnx import export\n"
                          "export(numcnn.load_model(MODEL), 'old.onnx', opset=9)")),
        cli(c, "output over an empty file (replaced)", [*ex, "e.onnx"], expect="ok",
            changes=("e.onnx",), verify=_printed("wrote"), setup=_file("e.onnx", b"")),
        cli(c, "output a folder", [*ex, "out"], r"out is a folder",
            setup=_node("out", "folder")),
        cli(c, "output a FIFO", [*ex, "f.onnx"], r"f\.onnx is a FIFO",
            setup=_node("f.onnx", "fifo"), timeout=30),
        cli(c, "output our device", [*ex, "d.onnx"], r"d\.onnx is a character device",
            setup=_node("d.onnx", "device")),
        cli(c, "output /dev/null", [*ex, "/dev/null"], r"/dev/null is a character device"),
        cli(c, "output /dev/full", [*ex, "/dev/full"], r"/dev/full is a character device"),
        cli(c, "output a broken link", [*ex, "b.onnx"], r"b\.onnx is a broken symbolic link",
            setup=_node("b.onnx", "link:nowhere")),
        cli(c, "output under a file", [*ex, "notes.txt/m.onnx"], r"notes\.txt is not a folder",
            setup=_file("notes.txt", b"x")),
        cli(c, "output ''", [*ex, ""], r"the path is empty"),
        cli(c, "output /proc/m.onnx", [*ex, "/proc/m.onnx"], r"/proc"),
        cli(c, "output the model itself", ["export", "m.npz", "m.npz"],
            r"would replace the model file itself", setup=_copy_model()),
        cli(c, "output a link to the model", ["export", "m.npz", "l.onnx"],
            r"would replace the model file itself",
            setup=_chain(_copy_model(), _node("l.onnx", "link:m.npz"))),
        cli(c, "model: missing", ["export", "nope.npz", "m.onnx"], r"nope\.npz"),
        cli(c, "model: a text file", ["export", "t.npz", "m.onnx"],
            r"t\.npz.*not a readable numcnn model", setup=_file("t.npz", b"no")),
        cli(c, "model: a zoo name", ["export", "lenet5", "m.onnx"], r"lenet5"),
        cli(c, "model: an ONNX file", ["export", "old.onnx", "m.onnx"],
            r"old\.onnx.*(not a readable numcnn model|numcnn model)",
            setup=_file("old.onnx", b"\x08\x08\x12\x04test")),
        cli(c, "model: a FIFO", ["export", "f.npz", "m.onnx"], r"f\.npz",
            setup=_node("f.npz", "fifo"), timeout=30),
        cli(c, "model: a stateful LSTM (cannot be exported)", ["export", "s.npz", "s.onnx"],
            r"cannot export layer 'memory' \(LSTM\): stateful=True",
            setup=_python("import numcnn\nfrom numcnn.layers import LSTM, Input\n"
                          "x = Input((4, 3))\n"
                          "m = numcnn.Model(x, LSTM(2, stateful=True, batch_size=3, "
                          "name='memory')(x))\nnumcnn.save_model(m, 's.npz')")),
        cli(c, "the model at opset 9 (valid)", ["export", "{model}", "m.onnx",
                                                        "--opset", "9"],
            expect="ok", verify=_printed("opset 9")),
    ]
    setup, env = _shim("onnx")
    cases.append(cli(c, "without onnx", [*ex, "m.onnx"], r"onnx.*pip install", setup=setup,
                     env=env))
    return cases


# ----------------------------------------------------------------- ONNX import (API)
ONNX_PRELUDE = """
import onnx
from onnx import TensorProto, helper
import numcnn.onnx
def tensor(name, dtype, dims, floats=(), raw=None, external=()):
    t = TensorProto(name=name, data_type=dtype, dims=dims)  # unchecked, unlike make_tensor
    t.float_data.extend(floats)
    if raw is not None:
        t.raw_data = raw
    if external:
        t.data_location = TensorProto.EXTERNAL
        for k, v in external:
            e = t.external_data.add(); e.key = k; e.value = v
    return t
def graph_model(nodes, inits=(), inputs=None, outputs=None, opset=17):
    inputs = inputs if inputs is not None else [
        helper.make_tensor_value_info('x', TensorProto.FLOAT, ['N', 4])]
    outputs = outputs if outputs is not None else [
        helper.make_tensor_value_info('y', TensorProto.FLOAT, None)]
    g = helper.make_graph(nodes, 'g', inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid('', opset)])
def relu():
    return graph_model([helper.make_node('Relu', ['x'], ['y'])])
def save(m, name='m.onnx'):
    (WORK / name).write_bytes(m.SerializeToString())
    return WORK / name
"""


def onnx_cases() -> list[Case]:
    """``numcnn.onnx.load`` of hostile files: each must end in ``OnnxImportError`` (a
    ``ValueError``) naming what it found, with bounded memory (the API cases' ``RLIMIT_AS``:
    the process's size + 1 GiB)."""
    c = "ONNX import (API)"
    err = "OnnxImportError"

    def load(body: str, match: str, exc: str = err, **kw: Any) -> Case:
        return api(c, kw.pop("name"), ONNX_PRELUDE + body + "\nresult = numcnn.onnx.load(p)",
                   exc=exc, match=match, **kw)

    good_relu = "p = save(relu())\n"
    return [
        load(good_relu, "", name="a valid Relu graph (loads)", expect="ok", verify=_ok_load),
        load("p = save(relu())\np.write_bytes(p.read_bytes()[:-7])", r"m\.onnx.*(truncated|"
             r"corrupt|not a valid|no ONNX graph)", name="truncated protobuf"),
        load("p = WORK / 'e.onnx'\np.write_bytes(b'')", r"e\.onnx.*(empty|no ONNX graph)",
             name="an empty file"),
        load("p = WORK / 't.onnx'\np.write_text('not a model at all ' * 50)",
             r"t\.onnx.*(not a valid|corrupt|no ONNX graph)", name="a text file"),
        load("p = WORK / 'z.onnx'\np.write_bytes(bytes(4096))",
             r"z\.onnx.*(not a valid|corrupt|no ONNX graph)", name="4 KiB of zeros"),
        load("p = MODEL", r"good\.npz.*(not a valid|corrupt|no ONNX graph)",
             name="a numcnn .npz model"),
        load("p = WORK / 'nope.onnx'", r"nope\.onnx", exc=f"{err}|FileNotFoundError",
             name="a missing file"),
        load("p = WORK / 'd'\np.mkdir()", r"d.*(not a regular file|folder)", name="a folder"),
        load("p = WORK / 'f'\nos.mkfifo(p)", r"f.*not a regular file", name="a FIFO",
             timeout=30),
        load("p = '/dev/zero'", r"/dev/zero.*not a regular file", name="/dev/zero",
             timeout=30),
        load("p = WORK / 'l.onnx'\np.symlink_to(p)", r"l\.onnx", name="a symbolic link loop"),
        load("w = tensor('W', TensorProto.FLOAT, [10**6, 10**6])\n"
             "p = save(graph_model([helper.make_node('MatMul', ['x', 'W'], ['y'])], [w]))",
             r"W.*(budget|bytes)", name="an initializer declaring 10^12 floats"),
        load("w = tensor('W', TensorProto.FLOAT, [2**62, 4])\n"
             "p = save(graph_model([helper.make_node('MatMul', ['x', 'W'], ['y'])], [w]))",
             r"W.*(budget|bytes|dimensions)", name="an initializer declaring 2^64 floats"),
        load("w = tensor('W', TensorProto.FLOAT, [4, 4], [1.0] * 3)\n"
             "p = save(graph_model([helper.make_node('MatMul', ['x', 'W'], ['y'])], [w]))",
             r"W.*(16|3).*(values|expected)", name="an initializer with too few values"),
        load("w = tensor('W', TensorProto.FLOAT, [4, 4], raw=b'\\0' * 10)\n"
             "p = save(graph_model([helper.make_node('MatMul', ['x', 'W'], ['y'])], [w]))",
             r"W.*(64|10).*(bytes|expected)", name="raw_data of the wrong length"),
        load("w = tensor('W', TensorProto.STRING, [1])\n"
             "p = save(graph_model([helper.make_node('MatMul', ['x', 'W'], ['y'])], [w]))",
             r"W.*element type", name="a string initializer"),
        load("w = tensor('W', 1, [4, 4], external=[('location', '/etc/passwd')])\n"
             "p = save(graph_model([helper.make_node('MatMul', ['x', 'W'], ['y'])], [w]))",
             r"W.*external", name="external data at /etc/passwd (not allowed)"),
        api(c, "external data at /etc/passwd (allowed: still outside)", ONNX_PRELUDE
            + "w = tensor('W', 1, [4, 4], external=[('location', '/etc/passwd')])\n"
            "p = save(graph_model([helper.make_node('MatMul', ['x', 'W'], ['y'])], [w]))\n"
            "result = numcnn.onnx.load(p, allow_external_data=True)", exc=err,
            match=r"/etc/passwd.*(absolute|outside|inside)"),
        api(c, "external data at ../../secret (allowed: still outside)", ONNX_PRELUDE
            + "(WORK.parent / 'secret').write_bytes(bytes(64))\n"
            "w = tensor('W', 1, [4, 4], external=[('location', '../secret')])\n"
            "p = save(graph_model([helper.make_node('MatMul', ['x', 'W'], ['y'])], [w]))\n"
            "result = numcnn.onnx.load(p, allow_external_data=True)", exc=err,
            match=r"\.\./secret.*(\.\.|outside|inside)"),
        api(c, "external data through a link out of the folder (allowed)", ONNX_PRELUDE
            + "(WORK / 'w.bin').symlink_to('/etc/hostname')\n"
            "w = tensor('W', 1, [4, 4], external=[('location', 'w.bin')])\n"
            "p = save(graph_model([helper.make_node('MatMul', ['x', 'W'], ['y'])], [w]))\n"
            "result = numcnn.onnx.load(p, allow_external_data=True)", exc=err,
            match=r"w\.bin.*(link|outside|inside)"),
        api(c, "external data past the file's end (allowed)", ONNX_PRELUDE
            + "(WORK / 'w.bin').write_bytes(bytes(16))\n"
            "w = tensor('W', 1, [4, 4], external=[('location', 'w.bin'), ('offset', '8'),"
            " ('length', '64')])\n"
            "p = save(graph_model([helper.make_node('MatMul', ['x', 'W'], ['y'])], [w]))\n"
            "result = numcnn.onnx.load(p, allow_external_data=True)", exc=err,
            match=r"w\.bin.*(offset|length|bytes|holds)"),
        api(c, "external data: a FIFO (allowed)", ONNX_PRELUDE
            + "os.mkfifo(WORK / 'w.bin')\n"
            "w = tensor('W', 1, [4, 4], external=[('location', 'w.bin')])\n"
            "p = save(graph_model([helper.make_node('MatMul', ['x', 'W'], ['y'])], [w]))\n"
            "result = numcnn.onnx.load(p, allow_external_data=True)", exc=err,
            match=r"w\.bin.*(regular|FIFO)", timeout=30),
        load("p = save(graph_model([helper.make_node('Erf', ['x'], ['y'], name='e1')]))",
             r"Erf.*'e1'.*opset 17.*not supported", name="an unsupported operator (Erf)"),
        load("p = save(graph_model([helper.make_node('Relu', ['x'], ['y'], domain='evil')]))",
             r"evil", name="an operator of a foreign domain"),
        load("p = save(graph_model([helper.make_node('Relu', ['x'], ['y'])], opset=99))",
             r"m\.onnx.*opset 99.*expected 1 to", name="opset 99"),
        load("p = save(graph_model([helper.make_node('Relu', ['a'], ['b']),"
             " helper.make_node('Relu', ['b'], ['a']), helper.make_node('Relu', ['a'], ['y'])]))",
             r"cycle|defines", name="a cycle"),
        load("p = save(graph_model([helper.make_node('Relu', ['q'], ['y'])]))",
             r"'q'", name="a value nothing defines"),
        load("p = save(graph_model([helper.make_node('Relu', ['x'], ['y']),"
             " helper.make_node('Relu', ['x'], ['y'])]))", r"'y'.*(two|twice|defined)",
             name="a value two nodes define"),
        load("s = helper.make_tensor('s', TensorProto.INT64, [2], [10**7, 10**7])\n"
             "p = save(graph_model([helper.make_node('ConstantOfShape', ['s'], ['c']),"
             " helper.make_node('Add', ['x', 'c'], ['y'])], [s]))",
             r"(ConstantOfShape|budget|bytes)", name="ConstantOfShape of 10^14 values"),
        load("p = save(graph_model([helper.make_node('Relu', ['x'], ['y'])], inputs=["
             "helper.make_tensor_value_info('x', TensorProto.FLOAT, ['N', 2**40, 2**40])]))",
             r"x.*(2|values|per sample|large)", name="a graph input of 2^80 values per sample"),
        load("m = relu()\nfor i in range(3000):\n"
             "    m.graph.node.append(helper.make_node('Relu', ['x'], [f'v{i}']))\n"
             "p = save(m)", "", name="3,000 unused nodes (loads)", expect="ok",
             verify=_ok_load, timeout=120),
        load("p = save(graph_model([helper.make_node('Relu', ['x'], ['y'])], outputs=[]))",
             r"(no ONNX graph with outputs|output)", name="a graph without outputs"),
        load("import zipfile\np = WORK / 'zip.onnx'\n"
             "with zipfile.ZipFile(p, 'w', zipfile.ZIP_DEFLATED) as z:\n"
             "    z.writestr('x', bytes(1 << 24))", r"zip\.onnx", name="a zip file named .onnx"),
        load("p = save(relu())", r"m\.onnx.*budget of 10 bytes",
             name="$NUMCNN_MAX_MODEL_BYTES=10", env={"NUMCNN_MAX_MODEL_BYTES": "10"}),
    ]


def _ok_load(work: Path, fx: Fixtures, out: str, err: str) -> str | None:
    return None if "@@RESULT" in out and '"raised": null' in out else "the valid file failed"


def newer_cases() -> list[Case]:
    return (dataset_cases() + training_option_cases() + predict_cases() + plot_cases()
            + serve_cases() + export_cases() + onnx_cases())
