"""Bad input to the newer commands (predict, plot, serve, export, ONNX import) found by the
fault sweep's newer catalogue (``benchmarks/fault_cases_newer.py``): each is one clear line
naming what was expected and what was received, and nothing that is not ours is replaced."""

from __future__ import annotations

import gc
import os
import socket
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

import numcnn
from _cli import one_error_line, run_cli
from numcnn.models import lenet5


def png(w: int, h: int) -> bytes:
    """A PNG header declaring ``w``×``h`` grey pixels and one zero row (nothing more)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    head = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head)
            + chunk(b"IDAT", zlib.compress(bytes(w + 1))) + chunk(b"IEND", b""))


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.npz"
    numcnn.save_model(lenet5(seed=0), path, extra={"dataset": "mnist", "pixel_scale": 1 / 255})
    return path


@pytest.fixture
def digit(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    path = tmp_path / "one.png"
    img = pil.new("L", (64, 64), 255)
    img.paste(0, (28, 8, 36, 56))
    img.save(path)
    return path


# -- a path that is not a regular file: say what it is, never open it (a FIFO would block) --
@pytest.mark.parametrize("kind, said", [("folder", "is a folder"), ("fifo", "is a FIFO"),
                                        ("device", "is a character device"),
                                        ("broken", "is a broken symbolic link"),
                                        ("loop", "is a symbolic link loop")])
def test_an_image_that_is_not_a_file_says_what_it_is(capsys, tmp_path, saved, kind, said):
    pytest.importorskip("PIL")
    p = tmp_path / "pic.png"
    {"folder": lambda: p.mkdir(), "fifo": lambda: os.mkfifo(p),
     "device": lambda: os.symlink("/dev/null", p), "broken": lambda: os.symlink("nowhere", p),
     "loop": lambda: os.symlink(p, p)}[kind]()
    code, _, err = run_cli(capsys, "predict", saved, p)
    assert code == 1
    line = one_error_line(err)
    assert f"no image file at {p} ({p} {said}; expected a regular file)" in line


def test_a_model_or_log_that_is_a_folder_says_so(tmp_path):
    (tmp_path / "m.npz").mkdir()
    with pytest.raises(FileNotFoundError, match=r"m\.npz is a folder; expected a regular"):
        numcnn.load_model(tmp_path / "m.npz")
    os.mkfifo(tmp_path / "log.csv")
    from numcnn.viz import read_csv_log

    with pytest.raises(FileNotFoundError, match=r"log\.csv is a FIFO; expected a regular"):
        read_csv_log(tmp_path / "log.csv")
    with pytest.raises(FileNotFoundError, match=r"^no model file at \S+nope\.npz$"):
        numcnn.load_model(tmp_path / "nope.npz")  # nothing there: the message as before


def test_an_empty_image_file_is_called_empty(capsys, tmp_path, saved):
    pytest.importorskip("PIL")
    (tmp_path / "e.png").write_bytes(b"")
    code, _, err = run_cli(capsys, "predict", saved, tmp_path / "e.png")
    assert code == 1
    assert "e.png: empty (0 bytes); expected an image" in one_error_line(err)


def test_a_png_declaring_too_many_pixels_is_refused_with_its_size(capsys, tmp_path, saved):
    pytest.importorskip("PIL")
    (tmp_path / "huge.png").write_bytes(png(100000, 100000))
    code, _, err = run_cli(capsys, "predict", saved, tmp_path / "huge.png")
    assert code == 1
    assert "huge.png: the image declares 100000×100000 pixels, more than the 67,108,864" \
        in one_error_line(err)


def test_a_missing_extra_is_one_line_not_an_internal_error(capsys, monkeypatch, saved,
                                                           digit):
    monkeypatch.setitem(sys.modules, "PIL", None)  # `from PIL import Image` raises
    code, _, err = run_cli(capsys, "predict", saved, digit)
    assert code == 1
    line = one_error_line(err)
    assert "internal error" not in line and "needs Pillow: pip install" in line


# -- predict: zoo models and --weights --------------------------------------------------
def test_predict_with_a_zoo_model_that_takes_no_weights(capsys, digit):
    code, out, err = run_cli(capsys, "predict", "lenet5", digit)
    assert code == 0, err  # before: "lenet5() got an unexpected keyword argument 'weights'"
    assert [ln.split()[0] for ln in out.splitlines()[1:]] == ["1.", "2.", "3."]
    code, _, err = run_cli(capsys, "predict", "lenet5", digit, "--weights", "w.npz")
    assert code == 2
    line = one_error_line(err)
    assert "--weights: lenet5 takes no torchvision weights; expected one of: alexnet" in line
    assert "lenet5," not in line


# -- serve: addresses are checked, errors name the host and port -------------------------
@pytest.mark.parametrize("args, expected, code", [
    (("--port", "65536"), "--port must be an int from 0 to 65535; received '65536'", 2),
    (("--threads", "1000000"), "--threads must be at most 256; received '1000000'", 2),
    (("--host", ""), "--host is empty; expected an address such as 127.0.0.1", 1),
    (("--host", "999.1.1.1"), "--host '999.1.1.1': not an address or a name", 1),
])
def test_serve_refuses_bad_addresses(capsys, saved, args, expected, code):
    got, out, err = run_cli(capsys, "serve", saved, *args)
    assert got == code
    assert expected in one_error_line(err)  # one line: no "serving on ..." warning first
    assert "serving" not in out


def test_serve_on_a_port_in_use_names_it(capsys, saved):
    pytest.importorskip("waitress")
    pytest.importorskip("flask")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        code, out, err = run_cli(capsys, "serve", saved, "--port", str(port))
    assert code == 1
    assert f"cannot listen on 127.0.0.1 port {port}: Address already in use" \
        in one_error_line(err)
    assert "serving" not in out
    gc.collect()  # a socket left open by the failed start would warn now, in this test


# -- plot: pictures and banks of bounded size ---------------------------------------------
def test_plot_refuses_a_gigapixel_canvas_and_a_huge_gabor_bank(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    log = tmp_path / "run.csv"
    log.write_text("epoch,loss\n0,1.0\n1,0.5\n")
    out = tmp_path / "h.png"
    code, _, err = run_cli(capsys, "plot", "history", log, "--dpi", "1e6", "-o", out)
    assert code == 1
    assert "--dpi 1e+06: the picture would be" in one_error_line(err)
    assert not out.exists()
    code, _, err = run_cli(capsys, "plot", "gabor", "--size", "100000", "-o", out)
    assert code == 1  # before: "out of memory; use a smaller --batch-size"
    assert "--filters × --size² must be at most 4,194,304 kernel values" in one_error_line(err)
    assert "received 16 × 100000² = 160,000,000,000" in err


# -- export: never over a file that is not an ONNX file -----------------------------------
def test_export_never_replaces_a_file_that_is_not_onnx(capsys, tmp_path, saved):
    onnx = pytest.importorskip("onnx")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    code, _, err = run_cli(capsys, "export", saved, notes)
    assert code == 1
    assert f"the ONNX file {notes} exists and is not an ONNX file" in one_error_line(err)
    assert notes.read_text() == "my notes\n"
    older = tmp_path / "m.onnx"  # an earlier export, and an empty file, are replaced
    for opset in ("9", "17"):
        code, _, err = run_cli(capsys, "export", saved, older, "--opset", opset)
        assert code == 0, err
        assert onnx.load(str(older)).opset_import[0].version == int(opset)
    (tmp_path / "e.onnx").write_bytes(b"")
    assert run_cli(capsys, "export", saved, tmp_path / "e.onnx")[0] == 0


# -- ONNX import -------------------------------------------------------------------------
def test_numcnn_onnx_is_there_after_import_numcnn_without_importing_onnx():
    code = ("import sys, numcnn\nf = numcnn.onnx.load\nd = numcnn.datasets.load\n"
            "print('onnx' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    assert out == ["False", "False"]  # the README's `import numcnn; numcnn.onnx.export(...)`


def test_onnx_import_names_the_whole_path_and_refuses_unknown_opsets(tmp_path):
    onnx = pytest.importorskip("onnx")
    from numcnn.onnx.import_checks import OnnxImportError
    from onnx import TensorProto, helper

    folder = tmp_path / ("a-long-folder-name-" * 5)
    folder.mkdir()
    cut = folder / "model.onnx"
    cut.write_bytes(b"\x08\x07\x3a\xff\xff\x01")  # a graph field promising 32 KiB
    with pytest.raises(OnnxImportError, match=rf"{cut}' is not a valid ONNX file"):
        numcnn.onnx.load(cut)
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    newest = onnx.defs.onnx_opset_version()
    for version, ok in ((newest, True), (newest + 1, False), (99, False)):
        path = tmp_path / f"relu{version}.onnx"
        path.write_bytes(helper.make_model(g, opset_imports=[
            helper.make_opsetid("", version)]).SerializeToString())
        if ok:  # the newest opset still loads: Relu(x) = max(x, 0)
            x = np.array([[-2.0, -0.5, 0.0, 3.0]] * 2, np.float32)
            assert np.array_equal(numcnn.onnx.load(path).predict(x), np.maximum(x, 0))
        else:
            with pytest.raises(OnnxImportError,
                               match=rf"declares opset {version} .*expected 1 to {newest}"):
                numcnn.onnx.load(path)
