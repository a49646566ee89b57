"""The fault sweep's cases for ``numcnn predict`` and ``numcnn plot`` (pictures in and out);
see ``fault_cases_newer.py``."""

from __future__ import annotations

import io
from typing import Any

from fault_cases_newer import (
    _chain,
    _copy_model,
    _file,
    _gif_animated,
    _node,
    _picture,
    _png,
    _printed,
    _python,
    _ranks,
    _shim,
)
from fault_sweep import Case, cli


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
        cli(c, "model: lenet5, a zoo name without --weights (valid)", ["predict", "lenet5",
                                                                     "a.png"],
            expect="ok", verify=_ranks(3), setup=good),
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
