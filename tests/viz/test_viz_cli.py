"""``numcnn plot``: every sub-command writes a valid picture (PNG signature, decoded by
Pillow at the figure's size; SVG parsed as XML), and bad input is one line on stderr."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET

import numpy as np
import pytest

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

import numcnn  # noqa: E402
from numcnn import cli  # noqa: E402
from numcnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MNIST_DIR = os.environ.get("NUMCNN_DATA_DIR")
needs_mnist = pytest.mark.skipif(
    not (MNIST_DIR and os.path.isdir(MNIST_DIR)),
    reason="MNIST not available: set NUMCNN_DATA_DIR to the folder with the IDX files")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small saved digit model, a drawn digit and a training log."""
    d = tmp_path_factory.mktemp("plot")
    model = numcnn.Sequential(
        [Conv2D(4, 5, padding=2, name="conv1"), ReLU(), MaxPool2D(2, name="pool1"), Flatten(),
         Dense(10, name="out")], input_shape=(1, 28, 28), seed=0)
    numcnn.save_model(model, d / "model.npz",
                      extra={"pixel_scale": 1 / 255, "dataset": "mnist", "epochs": 1})
    pad = np.full((60, 44), 255, np.uint8)
    pad[8:52, 19:25] = 0  # a black "1" on white paper
    Image.fromarray(pad).save(d / "one.png")
    (d / "run.csv").write_text("epoch,loss,val_loss,accuracy,val_accuracy,lr\n"
                               "0,0.9,0.5,0.7,0.85,0.05\n1,0.4,0.35,0.88,0.9,0.025\n"
                               "2,0.3,0.3,0.91,0.92,0.0\n")
    (d / "notes.txt").write_text("not a picture")
    return d


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_png(path, min_size=(100, 100)):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    with Image.open(io.BytesIO(data)) as img:
        img.load()  # decodes every pixel: a truncated file fails here
        assert img.size[0] >= min_size[0] and img.size[1] >= min_size[1]
        pixels = np.asarray(img.convert("L"))
    assert pixels.min() < 128 < pixels.max()  # something is drawn on the white page
    return img.size


@pytest.mark.parametrize("argv", [
    ["history", "{d}/run.csv"],
    ["maps", "{d}/model.npz", "--image", "{d}/one.png", "--layers", "conv1,pool1"],
    ["maps", "{d}/model.npz", "--image", "{d}/one.png", "--scale", "layer"],
    ["filters", "{d}/model.npz", "--layer", "conv1"],
    ["filters", "lenet5-1998", "--layer", "C3"],
    ["filters", "lenet5-1998", "--layer", "output"],
    ["gabor", "--filters", "8", "--size", "9"],
    ["saliency", "{d}/model.npz", "--image", "{d}/one.png"],
    ["deconv", "{d}/model.npz", "--image", "{d}/one.png", "--layer", "pool1", "--top", "3"],
    ["deconv", "{d}/model.npz", "--image", "{d}/one.png", "--layer", "conv1",
     "--channels", "0,2", "--rule", "guided", "--keep", "map"],
], ids=lambda a: "-".join(x for x in a[:3] if not x.startswith("{")))
def test_each_subcommand_writes_a_valid_png(files, capsys, tmp_path, argv):
    out = tmp_path / "fig.png"
    code, stdout, err = run(capsys, "plot", *[a.format(d=files) for a in argv], "-o", out)
    assert code == 0, err
    assert stdout.strip() == f"Saved {out}"
    assert_png(out)


def test_dpi_sets_the_pixel_size(files, capsys, tmp_path):
    sizes = []
    for dpi in (50, 100):
        out = tmp_path / f"h{dpi}.png"
        assert run(capsys, "plot", "history", files / "run.csv", "-o", out, "--dpi", dpi)[0] == 0
        sizes.append(assert_png(out, (10, 10)))
    assert abs(sizes[1][0] - 2 * sizes[0][0]) <= 2 and abs(sizes[1][1] - 2 * sizes[0][1]) <= 2


def test_svg_output_is_xml(files, capsys, tmp_path):
    out = tmp_path / "maps.svg"
    code, _, err = run(capsys, "plot", "maps", files / "model.npz", "--image",
                       files / "one.png", "-o", out)
    assert code == 0, err
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg") and len(list(root.iter())) > 50


def test_default_output_is_the_kind_in_the_current_folder(files, capsys, tmp_path,
                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, err = run(capsys, "plot", "gabor")
    assert code == 0, err
    assert stdout.strip() == "Saved gabor.png"
    assert_png(tmp_path / "gabor.png")
    assert [p.name for p in tmp_path.iterdir()] == ["gabor.png"]  # no temporary file left


@needs_mnist
@pytest.mark.mnist
@pytest.mark.parametrize("argv", [
    ["confusion", "{d}/model.npz", "--limit", "300"],
    ["errors", "{d}/model.npz", "--limit", "300", "--count", "6"],
    ["maps", "{d}/model.npz", "--index", "3"],
    ["saliency", "{d}/model.npz", "--index", "3", "--target", "5"],
    ["maps", "lenet5-1998", "--layers", "C1,S2,C3"],
])
def test_mnist_subcommands(files, capsys, tmp_path, argv):
    out = tmp_path / "m.png"
    code, _, err = run(capsys, "plot", *[a.format(d=files) for a in argv], "-o", out)
    assert code == 0, err
    assert_png(out)


@pytest.mark.parametrize("argv, pattern", [
    (["maps", "{d}/model.npz", "--image", "{d}/one.png", "--layers", "conv1,C9"],
     r"no layer named 'C9' in .*; its layers: conv1, relu, pool1, flatten, out"),
    (["filters", "{d}/model.npz", "--layer", "out"], r"layer 'out' is a Dense"),
    (["deconv", "{d}/model.npz", "--image", "{d}/one.png", "--layer", "nope"],
     r"no layer named 'nope'"),
    (["deconv", "{d}/model.npz", "--image", "{d}/one.png", "--layer", "conv1", "--channels",
      "a,b"], r"--channels must be comma-separated map numbers"),
    (["maps", "{d}/model.npz", "--image", "{d}/notes.txt"], r"notes.txt"),
    (["maps", "{d}/model.npz", "--image", "{d}/absent.png"], r"absent.png"),
    (["maps", "{d}/absent.npz"], r"absent.npz"),
    (["maps", "nosuchnet"], r"unknown model 'nosuchnet'"),
    (["history", "{d}/notes.txt"], r"notes.txt: line 1: expected a header|a header but no "),
    (["history", "{d}/run.csv", "-o", "{d}/fig.txt"], r"expected a file name ending in .png"),
    (["history", "{d}/run.csv", "-o", "{d}"], r"is a folder"),
    (["history", "{d}/run.csv", "-o", "{d}/run.csv/x.png"], r"run.csv is not a folder"),
    (["history", "{d}/run.csv", "--metrics", "f1"], r"no metric 'f1' in the log"),
    (["gabor", "--filters", "0"], r"--filters must be a positive int; received '0'"),
    (["plot"], r"invalid choice"),
])
def test_bad_input_is_one_line(files, capsys, argv, pattern):
    code, _, err = run(capsys, "plot", *[a.format(d=files) for a in argv])
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("numcnn: error:"), lines[0]
    import re

    assert re.search(pattern, lines[0]), lines[0]


def test_missing_matplotlib_says_how_to_install(files, capsys, monkeypatch, tmp_path):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends",
                 "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # `import matplotlib` now fails
    code, _, err = run(capsys, "plot", "history", files / "run.csv", "-o", tmp_path / "x.png")
    assert code == 2
    assert err.strip() == ("numcnn: error: pictures need matplotlib, which is not installed: "
                           "pip install 'numcnn[plot]' (or pip install matplotlib)")
    assert not (tmp_path / "x.png").exists()
    from numcnn.viz import plot_history

    with pytest.raises(ImportError, match=r"pip install 'numcnn\[plot\]'"):
        plot_history({"loss": [1.0, 0.5]})


def test_no_pyplot_and_no_display_needed(files, tmp_path):
    code = ("import sys; from numcnn.cli import main; "
            f"assert main(['plot', 'filters', 'lenet5-1998', '-o', {str(tmp_path / 'f.png')!r}])"
            " == 0; assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    env["MPLBACKEND"] = "TkAgg"  # an interactive backend must not be touched either
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert_png(tmp_path / "f.png")


def test_figures_drawn_in_threads_equal_serial_ones(files):
    from numcnn.viz import plot_feature_maps, save

    model = numcnn.load_model(files / "model.npz", compile=False)
    xs = [np.random.default_rng(k).random((1, 28, 28)).astype(np.float32) for k in range(4)]

    def png(x):
        buf = io.BytesIO()
        plot_feature_maps(model, x, layers="conv1,pool1").savefig(buf, format="png",
                                                                   metadata={"Software": None})
        return buf.getvalue()

    serial = [png(x) for x in xs]
    threaded: list = [None] * 4

    def work(k):
        threaded[k] = png(xs[k])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert threaded == serial
    assert len(set(serial)) == 4
    assert save  # the writer used by the command line (atomic; tested above through -o)
