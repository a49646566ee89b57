"""The fault sweep's cases for ``numcnn serve``, ``numcnn export`` and ``numcnn.onnx.load``
(models going out and coming in); see ``fault_cases_newer.py``."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from fault_cases_newer import _chain, _copy_model, _file, _node, _picture, _printed, _python, _shim
from fault_sweep import Case, Fixtures, api, cli

#: listening sockets held open by a case's setup (a port that is taken), closed at teardown
_HELD: dict[str, socket.socket] = {}


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
        api(c, "numcnn.onnx after a bare `import numcnn` (the README's form)",
            "result = callable(numcnn.onnx.load) and callable(numcnn.onnx.export)",
            expect="ok"),
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
