"""The page's JSON API (docs/serve.md) through Flask's test client and a real waitress
server: answers against the model's own ``predict``, a naive convolution and the RBF
distances written out; bad payloads, oversized bodies, the rate limit, the host check and
concurrent requests."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from numcnn.io.inputs import model_input
from numcnn.serve.app import RateLimiter, create_app
from numcnn.serve.engine import MAX_SIDE, Engine, decode, shrink
from references import conv2d_ref

Image = pytest.importorskip("PIL.Image")


def png_url(a: np.ndarray, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, fmt)
    kind = "png" if fmt == "PNG" else "jpeg"
    return f"data:image/{kind};base64," + base64.b64encode(buf.getvalue()).decode()


def drawn_seven(size: int = 200) -> np.ndarray:
    """A black '7' on white paper, as a user might upload it."""
    a = np.full((size, size), 255, np.uint8)
    u = size / 200
    a[round(40 * u): round(56 * u), round(50 * u): round(150 * u)] = 0
    for r in range(round(56 * u), round(170 * u)):
        c = round((150 - (r / u - 56) * 0.6) * u)
        a[r, c - round(8 * u): c + round(8 * u)] = 0
    return a


def digit_pixels(seed: int) -> np.ndarray:
    """A 28×28 MNIST-like pattern (bright ink on black, integers 0–255)."""
    rng = np.random.default_rng(seed)
    a = np.zeros((28, 28))
    a[6:22, 8:20] = rng.integers(0, 256, (16, 12))
    return a


def softmax(z):
    z = np.asarray(z, np.float64)
    return np.exp(z - z.max()) / np.exp(z - z.max()).sum()


@pytest.fixture(scope="module")
def lenet5(lenet5_file):
    return Engine.from_file(lenet5_file)


@pytest.fixture(scope="module")
def lenet1998(lenet1998_file):
    return Engine.from_file(lenet1998_file)


@pytest.fixture
def client(lenet5):
    return create_app(lenet5, rate=0).test_client()


def post(client, payload, **kwargs):
    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    return client.post("/api/predict", data=body,
                       content_type=kwargs.pop("content_type", "application/json"), **kwargs)


# ------------------------------------------------------------------------ answers
def test_model_lists_every_layer_with_its_shape(client, lenet5):
    info = client.get("/api/model").get_json()
    model = lenet5.model
    assert [lay["name"] for lay in info["layers"]] == [lay.name for lay in model.layers]
    shape = model.input_shape
    for lay, layer in zip(info["layers"], model.layers):
        shape = layer.output_shape(shape)
        assert lay["shape"] == list(shape), lay["name"]
        assert lay["type"] == type(layer).__name__
    assert info["input_shape"] == [1, 28, 28] and info["classes"] == 10
    assert info["output"] == "logits" and info["digits"] is True


def test_pixels_answer_equals_predict_and_a_naive_convolution(client, lenet5):
    a = digit_pixels(0)
    answer = post(client, {"pixels": a.tolist()}).get_json()
    x = (a / 255.0).astype(np.float32)[None, None]
    z = lenet5.model.predict(x)[0].astype(np.float64)
    np.testing.assert_allclose(answer["output"], z, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(answer["probabilities"], softmax(z), rtol=1e-6, atol=1e-9)
    assert answer["prediction"] == int(np.argmax(z))
    layers = {lay["name"]: lay for lay in answer["layers"]}
    assert list(layers) == [lay.name for lay in lenet5.model.layers]
    conv = lenet5.model.layers[0]
    ref = conv2d_ref(x.astype(np.float64), conv.params["W"].astype(np.float64),
                     conv.params["b"].astype(np.float64), pads=(2, 2, 2, 2))[0]
    c1 = layers["conv2d"]
    span = np.asarray(c1["max"]) - np.asarray(c1["min"])
    assert c1["shape"] == [6, 28, 28] and c1["layout"] == "maps"
    np.testing.assert_allclose(c1["min"], ref.reshape(6, -1).min(1), rtol=1e-5, atol=1e-6)
    err = np.abs(decode(c1) - ref).reshape(6, -1).max(1)
    assert np.all(err <= span / 510 + 1e-5), (err, span / 510)
    np.testing.assert_allclose(decode(answer["input"]), x[0], atol=1 / 510 + 1e-7)
    dense = layers["dense_2"]
    assert dense["layout"] == "vector" and dense["w"] == 10
    np.testing.assert_allclose(decode(dense)[0, 0], z, atol=np.ptp(z) / 510 + 1e-6)


def test_lenet1998_answer_has_the_ten_rbf_distances(lenet1998):
    client = create_app(lenet1998, rate=0).test_client()
    info = client.get("/api/model").get_json()
    assert info["output"] == "rbf"
    a = digit_pixels(1)
    answer = post(client, {"pixels": a.tolist()}).get_json()
    model = lenet1998.model
    acts = model.intermediates(a[None, None].astype(np.float32), ["f_F6"])
    f6 = acts["f_F6"][0].astype(np.float64)
    prototypes = model.get_layer("output").params["W"].astype(np.float64)  # (10, 84)
    y = ((f6[None, :] - prototypes) ** 2).sum(axis=1)  # y_i = Σ_j (x_j − w_ij)²
    np.testing.assert_allclose(answer["distances"], y, rtol=1e-5)
    assert answer["prediction"] == int(np.argmin(y))
    np.testing.assert_allclose(answer["probabilities"], softmax(-y), rtol=1e-5, atol=1e-12)
    names = [lay["name"] for lay in answer["layers"]]
    assert names[:3] == ["normalize", "pad", "C1"] and names[-1] == "output"
    c5 = answer["layers"][names.index("C5")]  # 120 maps of one pixel: one strip
    assert c5["layout"] == "vector" and c5["w"] == 120 and c5["shape"] == [120, 1, 1]


def test_image_answer_is_the_model_on_its_preprocessed_input(client, lenet5):
    picture = drawn_seven()
    answer = post(client, {"image": png_url(picture)}).get_json()
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, "PNG")
    x = model_input(lenet5.model, buf.getvalue())  # MNIST-style, as `numcnn predict`
    np.testing.assert_allclose(decode(answer["input"]), x[0], atol=1 / 510 + 1e-7)
    z = lenet5.model.predict(x)[0]
    # the page runs the layers one by one (it shows them), predict the fused inference
    # path: the same float32 sums in another order, a few roundings of the largest logit
    np.testing.assert_allclose(answer["output"], z, rtol=1e-6,
                               atol=8 * np.finfo(np.float32).eps * np.abs(z).max())
    # the ink became bright on black, fitted into 20×20 (one more for the filter's reach)
    inp = decode(answer["input"])[0]
    rows, cols = np.nonzero(inp > 0)
    assert inp.max() > 0.9 and np.ptp(rows) < 21 and np.ptp(cols) < 21
    jpeg = post(client, {"image": png_url(picture, "JPEG")})
    assert jpeg.status_code == 200


def test_preprocess_pixels_matches_an_uploaded_picture(client):
    picture = drawn_seven(120)
    a = post(client, {"pixels": picture.tolist(), "preprocess": True}).get_json()
    b = post(client, {"image": png_url(picture)}).get_json()
    assert a["input"]["data"] == b["input"]["data"] and a["prediction"] == b["prediction"]


def test_layers_false_leaves_the_maps_out(client):
    answer = post(client, {"pixels": digit_pixels(2).tolist(), "layers": False}).get_json()
    assert "layers" not in answer and len(answer["probabilities"]) == 10


def test_large_maps_are_shown_as_block_means():
    maps = np.random.default_rng(0).standard_normal((2, 130, 97))
    small, f = shrink(maps)
    assert f == 3 and small.shape == (2, 44, 33) and max(small.shape[1:]) <= MAX_SIDE
    for i in (0, 43):
        for j in (0, 32):
            block = maps[:, 3 * i: 3 * i + 3, 3 * j: 3 * j + 3]
            np.testing.assert_allclose(small[:, i, j], block.mean(axis=(1, 2)))


# ------------------------------------------------------------------------ bad requests
BAD = [
    (b"{not json", 400, "not valid JSON"),
    ("[1, 2]", 400, "JSON object"),
    ({}, 400, "exactly one of"),
    ({"image": "x", "pixels": []}, 400, "exactly one of"),
    ({"pixels": [[0]], "colour": 1}, 400, "unknown keys"),
    ({"image": 12}, 400, "data URL string"),
    ({"image": "http://example.com/a.png"}, 400, "data URL"),
    ({"image": "data:image/png;base64,@@@="}, 400, "base64"),
    ({"image": "data:image/png;base64," + base64.b64encode(b"hello" * 40).decode()}, 422,
     "not a readable image"),
    ({"pixels": [[0] * 28] * 27}, 400, "(28, 28)"),
    ({"pixels": [["a"] * 28] * 28}, 400, "numbers"),
    ({"pixels": [[0] * 28, [0] * 27]}, 400, "ragged"),
    ({"pixels": [[300] * 28] * 28}, 400, "[0, 255]"),
    ({"pixels": [[-1] * 28] * 28}, 400, "[0, 255]"),
    ("{\"pixels\": [[NaN]]}", 400, "finite"),
    ({"pixels": [[0] * 28] * 28, "preprocess": "yes"}, 400, "true or false"),
    ({"pixels": [[0] * 28] * 28, "layers": 1}, 400, "true or false"),
    ({"pixels": [[0] * 28] * 28, "preprocess": True}, 422, "no ink"),
    ({"image": png_url(np.full((50, 50), 255, np.uint8))}, 422, "no ink"),
    ("[" * 100000 + "]" * 100000, 400, "JSON"),
]


@pytest.mark.parametrize("payload, status, words", BAD,
                         ids=[f"{i}-{w}" for i, (_, _, w) in enumerate(BAD)])
def test_bad_payloads_get_a_json_error_naming_the_problem(client, payload, status, words):
    r = post(client, payload)
    assert r.status_code == status, r.get_data(as_text=True)
    body = r.get_json()
    assert body["status"] == status and words in body["error"], body


def test_wrong_method_type_and_path_are_json_errors(client):
    r = client.get("/api/predict")
    assert r.status_code == 405 and "GET is not allowed" in r.get_json()["error"]
    r = post(client, {"pixels": []}, content_type="text/plain")
    assert r.status_code == 415 and "application/json" in r.get_json()["error"]
    r = client.get("/api/nothing")
    assert r.status_code == 404 and r.get_json()["status"] == 404


def test_oversized_body_is_413_before_it_is_used(lenet5):
    client = create_app(lenet5, max_body=1000, rate=0).test_client()
    r = post(client, {"pixels": [[0] * 28] * 28})  # about 1,700 bytes
    assert r.status_code == 413 and "1,000 bytes" in r.get_json()["error"]
    assert post(client, {"pixels": [[0] * 10] * 10}).status_code == 400  # small: read


def test_rate_limit_answers_429_with_retry_after(lenet5):
    client = create_app(lenet5, rate=0.5, burst=3).test_client()
    codes = [client.get("/api/model").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    r = client.get("/api/model")
    assert r.headers["Retry-After"] == "2" and "too many requests" in r.get_json()["error"]
    with client.get("/") as page:
        assert page.status_code == 200  # the page itself is not limited


def test_token_bucket_refills_at_the_rate():
    limiter = RateLimiter(rate=2.0, burst=2)
    assert [limiter.wait("a", now=t) for t in (0.0, 0.0)] == [0.0, 0.0]
    assert limiter.wait("a", now=0.0) == pytest.approx(0.5)  # one token takes 1/2 s
    assert limiter.wait("b", now=0.0) == 0.0                  # per client
    assert limiter.wait("a", now=0.5) == 0.0                  # refilled
    assert limiter.wait("a", now=0.6) == pytest.approx(0.4)


def test_other_host_names_are_refused(lenet5):
    client = create_app(lenet5, rate=0, hosts=["127.0.0.1", "localhost"]).test_client()
    assert client.get("/api/model", headers={"Host": "localhost:8000"}).status_code == 200
    r = client.get("/api/model", headers={"Host": "attacker.example:8000"})
    assert r.status_code == 403 and "not served here" in r.get_json()["error"]


def test_page_has_the_promised_ids_and_a_strict_policy(client):
    with client.get("/") as r:
        html = r.get_data(as_text=True)
    for element in ('id="pad"', 'id="prediction"', 'id="clear"'):
        assert element in html
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    with client.get("/static/page.js") as js:
        assert js.status_code == 200 and "pointerdown" in js.get_data(as_text=True)


def test_missing_flask_is_a_one_line_hint(monkeypatch):
    from numcnn.serve import app

    monkeypatch.setitem(sys.modules, "flask", None)
    with pytest.raises(RuntimeError, match=r"pip install 'numcnn\[web\]'"):
        app.flask()


# ------------------------------------------------------------------------ a real server
def fetch(url, payload=None, data=None):
    body = data if data is not None else (json.dumps(payload).encode() if payload else None)
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_concurrent_requests_each_get_their_own_answer(running, lenet1998):
    server = running(lenet1998, threads=4, rate=0)
    inputs = [digit_pixels(seed) for seed in range(6)]
    expected = [lenet1998.model.predict(a[None, None].astype(np.float32))[0] for a in inputs]
    results, errors = {}, []

    def worker(k):
        for rep in range(4):
            i = (k + rep) % len(inputs)
            status, body = fetch(server.url + "api/predict", {"pixels": inputs[i].tolist()})
            if status != 200:
                errors.append(body)
                continue
            results.setdefault(i, []).append(json.loads(body)["distances"])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sum(len(v) for v in results.values()) == 32
    for i, answers in results.items():
        for d in answers:
            np.testing.assert_allclose(d, expected[i], rtol=1e-5)


def test_real_server_survives_garbage_and_huge_bodies(running, lenet5):
    server = running(lenet5, max_body=8192, rate=0)
    host, port = server.url[7:-1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"\x00\xff garbage \r\n\r\n")
        s.recv(1024)
    status, body = fetch(server.url + "api/predict", data=b"{" + b" " * 9000 + b"}")
    assert status == 413 and json.loads(body)["status"] == 413
    with socket.create_connection((host, int(port)), timeout=10) as s:  # 3 MB announced
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                  b"application/json\r\nContent-Length: 3145728\r\n\r\n{")
        assert s.recv(1024).startswith(b"HTTP/1.1 413")  # refused before it is read
    status, body = fetch(server.url + "api/predict", {"pixels": digit_pixels(0).tolist()})
    assert status == 200 and len(json.loads(body)["layers"]) == 12


def test_serve_command_prints_its_address_and_warns_off_loopback(lenet5_file):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for host, warn in (("127.0.0.1", False), ("0.0.0.0", True)):
        p = subprocess.Popen([sys.executable, "-m", "numcnn", "serve", str(lenet5_file),
                              "--port", "0", "--host", host], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
        try:
            line = p.stdout.readline()
            assert "serving lenet5.npz" in line, (line, p.stderr.read() if p.poll() else "")
            url = line.split(" at ")[1].split()[0]
            status, body = fetch(url + "api/model")
            assert status == 200 and json.loads(body)["name"] == "lenet5.npz"
        finally:
            p.terminate()
            _, err = p.communicate(timeout=30)
        assert ("warning: serving on 0.0.0.0" in err) == warn, err


def test_serve_command_errors_are_one_line(tmp_path):
    from numcnn import cli

    p = subprocess.run([sys.executable, "-m", "numcnn", "serve", str(tmp_path / "no.npz")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "no.npz" in p.stderr
    with pytest.raises(cli.CLIError, match="--port"):
        cli.build_parser().parse_args(["serve", "m.npz", "--port", "-1"])


def test_a_classic_graph_network_works_too(tmp_path):
    """ResNet-20 for MNIST (a graph with additions): every layer is sent, in the graph's
    order, and the answer is the model's prediction."""
    from numcnn import models
    from numcnn.io.saving import save_model

    path = tmp_path / "resnet20.npz"
    save_model(models.resnet20(input_shape=(1, 28, 28), seed=0), path,
               extra={"pixel_scale": 1 / 255})
    engine = Engine.from_file(path)
    answer = post(create_app(engine, rate=0).test_client(),
                  {"pixels": digit_pixels(4).tolist()}).get_json()
    x = (digit_pixels(4) / 255).astype(np.float32)[None, None]
    acts = engine.model.intermediates(x)
    assert [lay["name"] for lay in answer["layers"]] == list(acts)
    np.testing.assert_allclose(answer["output"], engine.model.predict(x)[0], rtol=1e-5,
                               atol=1e-6)
    for lay in answer["layers"]:
        assert lay["shape"] == list(acts[lay["name"]].shape[1:])
