"""Tests for the MNIST loader, the IDX reader, the cache lookup and the verified download.

Tests marked ``mnist`` need the real files: point ``$NUMCNN_DATA_DIR`` at them (CI uses
``../shared/data/mnist``); otherwise they skip. Every other test builds its own small files.
No test touches the real cache or the internet: each one gets its own ``$NUMCNN_HOME`` and a
``$NUMCNN_MNIST_MIRROR`` on which nothing listens, and downloads are served by a local
``ThreadingHTTPServer`` on 127.0.0.1.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import re
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from numcnn.datasets import idx
from numcnn.datasets import mnist as m

# Read once, before the autouse fixture below hides it from the code under test.
REAL_DATA_DIR = os.environ.get("NUMCNN_DATA_DIR", "")

# Published label counts (MNIST README), an independent reference.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

NAMES = list(m.FILES)


# --------------------------------------------------------------------------- helpers


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    """Encode ``arr`` as an IDX file (written here independently of the reader)."""
    be = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return header + np.ascontiguousarray(arr, dtype=be).tobytes()


def dead_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def listing(d: Path) -> list[str]:
    return sorted(os.listdir(d)) if d.exists() else []


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins the handler threads
    requests: list[str]


@pytest.fixture
def serve():
    """Factory: ``serve(directory) -> (base_url, server)``; all servers stop at teardown."""
    running: list[tuple[_Server, threading.Thread]] = []

    def start(directory: Path) -> tuple[str, _Server]:
        handler = functools.partial(_Handler, directory=str(directory))
        server = _Server(("127.0.0.1", 0), handler)
        server.requests = []
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}/", server

    yield start
    for server, thread in running:
        stop(server, thread)


def stop(server: _Server, thread: threading.Thread | None = None) -> None:
    server.shutdown()
    server.server_close()
    if thread is not None:
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Private cache, no data dir, and a mirror that refuses connections."""
    monkeypatch.delenv("NUMCNN_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("NUMCNN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NUMCNN_MNIST_MIRROR", dead_url())
    return tmp_path / "home" / "mnist"


@pytest.fixture(scope="module")
def real_dir() -> Path:
    if not REAL_DATA_DIR:
        pytest.skip("MNIST not available: set NUMCNN_DATA_DIR to the directory of the files")
    d = Path(REAL_DATA_DIR)
    absent = [n for n in NAMES if not (d / n).is_file() and not (d / f"{n}.gz").is_file()]
    if absent:
        pytest.skip(f"MNIST not available: NUMCNN_DATA_DIR={d} lacks {', '.join(absent)}")
    return d


@pytest.fixture(scope="module")
def real_raw(real_dir) -> dict[str, bytes]:
    """The decompressed bytes of the four real files."""
    out = {}
    for n in NAMES:
        p = real_dir / n
        out[n] = (
            p.read_bytes() if p.is_file() else gzip.decompress((p.with_suffix(".gz")).read_bytes())
        )
    return out


@pytest.fixture(scope="module")
def good_site(real_dir, real_raw, tmp_path_factory) -> Path:
    """A directory to serve: ``good/<name>.gz`` for the four files."""
    site = tmp_path_factory.mktemp("site")
    (site / "good").mkdir()
    for n in NAMES:
        src = real_dir / f"{n}.gz"
        if src.is_file():
            shutil.copyfile(src, site / "good" / f"{n}.gz")
        else:
            (site / "good" / f"{n}.gz").write_bytes(gzip.compress(real_raw[n], compresslevel=1))
    return site


def check_mnist(data) -> None:
    (x_train, y_train), (x_test, y_test) = data
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    for a in (x_train, y_train, x_test, y_test):
        assert a.dtype == np.uint8 and a.flags.writeable and a.flags.c_contiguous
    assert np.bincount(y_train, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(y_test, minlength=10).tolist() == TEST_COUNTS
    assert x_train.max() == 255 and x_train.min() == 0


# --------------------------------------------------------------------------- real files


@pytest.mark.mnist
def test_real_files_load_from_env_dir(real_dir, monkeypatch):
    monkeypatch.setenv("NUMCNN_DATA_DIR", str(real_dir))
    check_mnist(m.load_data(download=False))


@pytest.mark.mnist
def test_real_files_load_from_data_dir_argument(real_dir):
    check_mnist(m.load_data(data_dir=real_dir, download=False))


@pytest.mark.mnist
def test_raw_files_load_and_match_gzipped(real_dir, real_raw, tmp_path):
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    for n, data in real_raw.items():
        (raw_dir / n).write_bytes(data)
    assert all(m.find_files(raw_dir)[n] == raw_dir / n for n in NAMES)
    data = m.load_data(raw_dir, download=False)
    check_mnist(data)
    # first training image is a 5, test image 0 a 7 (as every MNIST tutorial shows)
    assert data[0][1][0] == 5 and data[1][1][0] == 7
    for n in NAMES:
        assert m.file_sha256(raw_dir / n) == m.FILES[n].sha256


@pytest.mark.mnist
def test_corrupt_real_file_in_data_dir_names_it(real_dir, real_raw, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    for n, data in real_raw.items():
        (d / n).write_bytes(data)
    bad = bytearray(real_raw["t10k-images-idx3-ubyte"])
    bad[5000] ^= 0xFF
    (d / "t10k-images-idx3-ubyte").write_bytes(bytes(bad))
    with pytest.raises(m.DataError, match=re.escape(str(d / "t10k-images-idx3-ubyte"))) as e:
        m.load_data(d, download=False)
    assert "expected SHA-256 " + m.FILES["t10k-images-idx3-ubyte"].sha256 in str(e.value)


# --------------------------------------------------------------------------- bad files


def write(path: Path, data: bytes, gz: bool) -> Path:
    path = path.with_name(path.name + ".gz") if gz else path
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


LABELS = "t10k-labels-idx1-ubyte"


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize(
    "content, message",
    [
        pytest.param(
            idx_bytes(np.zeros(1000, np.uint8))[:4] + (10000).to_bytes(4, "big") + bytes(1000),
            "truncated: header says 10000 items of uint8 = 10000 data bytes after the 8-byte "
            "header, file has 1000",
            id="truncated",
        ),
        pytest.param(b"\x00\x00\x08", "too short to be an IDX file (3 bytes", id="tiny"),
        pytest.param(b"\x00\x00\x08\x02\x00\x00", "truncated header", id="short-header"),
        pytest.param(
            b"\x12\x34\x08\x01" + (10000).to_bytes(4, "big") + bytes(10000),
            "wrong magic number 0x12340801",
            id="wrong-magic",
        ),
        pytest.param(
            b"\x00\x00\x07\x01" + (10000).to_bytes(4, "big") + bytes(10000),
            "unknown IDX type code 0x07",
            id="bad-type-code",
        ),
        pytest.param(
            idx_bytes(np.zeros(10000, np.uint8)) + b"\x00",
            "too long: header says 10000 items of uint8 = 10000 data bytes after the 8-byte "
            "header, file has more",
            id="trailing-bytes",
        ),
        pytest.param(
            idx_bytes(np.zeros(10000, np.uint8)),
            "expected SHA-256 "
            + m.FILES[LABELS].sha256
            + " for "
            + LABELS
            + ", got "
            + hashlib.sha256(idx_bytes(np.zeros(10000, np.uint8))).hexdigest(),
            id="hash-mismatch",
        ),
        pytest.param(
            idx_bytes(np.zeros((10000, 2, 2), np.uint8)),
            "wrong file: expected t10k-labels-idx1-ubyte holding uint8 of shape (10000,), but "
            "its header says uint8 of shape (10000, 2, 2)",
            id="wrong-file",
        ),
        pytest.param(
            idx_bytes(np.zeros(10000, np.int32), code=0x0C),
            "header says int32 of shape (10000,)",
            id="wrong-dtype",
        ),
    ],
)
def test_bad_file_gets_clear_error_naming_it(tmp_path, content, message, gz):
    path = write(tmp_path / LABELS, content, gz)
    with pytest.raises(m.DataError) as e:
        m.load_file(path)
    assert str(path) in str(e.value)
    assert message in str(e.value)
    with pytest.raises(m.DataError):
        m.verify_file(path)


def test_bad_gzip_variants(tmp_path):
    good = gzip.compress(idx_bytes(np.arange(3000, dtype=np.uint8).reshape(3, 1000)))
    cases = {
        "garbage": (b"this is not gzip at all", "not a gzip file (starts with bytes 74 68"),
        "empty": (b"", "not a gzip file (starts with bytes nothing"),
        "cut": (good[: len(good) // 2], "corrupt or truncated gzip file"),
        "bad-crc": (good[:-8] + bytes(4) + good[-4:], "corrupt or truncated gzip file"),
        "bad-deflate": (good[:10] + b"\xff" * 40, "corrupt or truncated gzip file"),
    }
    for case, (data, message) in cases.items():
        path = tmp_path / case / f"{LABELS}.gz"
        path.parent.mkdir()
        path.write_bytes(data)
        for load in (m.load_file, idx.load_idx):
            with pytest.raises(m.DataError) as e:
                load(path)
            assert str(path) in str(e.value) and message in str(e.value), case


def test_oversized_gzip_is_refused_without_inflating_it_all(tmp_path):
    path = tmp_path / f"{LABELS}.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(10**7, np.uint8)), compresslevel=1))
    assert len(idx.read_idx_bytes(path, max_size=10008)) == 10009
    with pytest.raises(
        m.DataError, match=r"wrong file: .* header says uint8 of shape \(10000000,\)"
    ):
        m.load_file(path)


def test_unknown_file_name_needs_explicit_name(tmp_path):
    path = tmp_path / "labels.bin"
    path.write_bytes(idx_bytes(np.zeros(10000, np.uint8)))
    with pytest.raises(ValueError, match="unknown MNIST file name 'labels.bin'"):
        m.load_file(path)
    with pytest.raises(m.DataError, match="expected SHA-256"):
        m.load_file(path, name=LABELS)


# --------------------------------------------------------------------------- IDX reader


@pytest.mark.parametrize(
    "code, dtype",
    [
        (0x08, np.uint8),
        (0x09, np.int8),
        (0x0B, np.int16),
        (0x0C, np.int32),
        (0x0D, np.float32),
        (0x0E, np.float64),
    ],
)
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_load_idx_round_trip(tmp_path, code, dtype, gz):
    arr = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    if code == 0x08:
        arr = np.arange(30, dtype=np.uint8).reshape(2, 3, 5) * 8
    path = write(tmp_path / "x-idx3", idx_bytes(arr, code), gz)
    out = idx.load_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    assert out.flags.writeable
    np.testing.assert_array_equal(out, arr)


def test_gzip_is_detected_by_content_not_name(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "x-idx2-ubyte"  # no .gz suffix, gzipped content
    path.write_bytes(gzip.compress(idx_bytes(arr)))
    np.testing.assert_array_equal(idx.load_idx(path), arr)
    raw = idx.read_idx_bytes(path, gzipped=False)  # not decompressed on request
    with pytest.raises(m.DataError, match="wrong magic number 0x1F8B"):
        idx.parse_idx(raw, source=str(path))


def test_parse_idx_header():
    data = idx_bytes(np.zeros((4, 7, 9), np.uint8))
    assert idx.parse_idx_header(data) == (np.dtype(np.uint8), (4, 7, 9), 16)


# --------------------------------------------------------------------------- lookup


def test_lookup_order_and_raw_preferred(tmp_path, monkeypatch, isolated):
    arg, env, cache = tmp_path / "arg", tmp_path / "env", isolated
    for d in (arg, env, cache):
        d.mkdir(parents=True)
    monkeypatch.setenv("NUMCNN_DATA_DIR", str(env))
    a, b, c, d_ = NAMES
    (cache / f"{a}.gz").touch()
    (cache / f"{b}.gz").touch()
    (cache / c).touch()
    (env / f"{b}.gz").touch()
    (env / b).touch()
    (arg / f"{a}.gz").touch()
    found = m.find_files(arg)
    assert found == {a: arg / f"{a}.gz", b: env / b, c: cache / c, d_: None}
    assert [p for p, _ in m.search_dirs(arg)] == [arg, env, cache]
    assert m.find_files()[a] == cache / f"{a}.gz"


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMCNN_HOME", str(tmp_path / "nh"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert m.cache_dir() == tmp_path / "nh"
    monkeypatch.delenv("NUMCNN_HOME")
    assert m.cache_dir() == tmp_path / "xdg" / "numcnn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert m.cache_dir() == tmp_path / "h" / ".cache" / "numcnn"


def test_missing_data_without_download_says_where_it_looked(tmp_path, monkeypatch, isolated):
    arg, env = tmp_path / "arg", tmp_path / "env"
    arg.mkdir()
    env.mkdir()
    monkeypatch.setenv("NUMCNN_DATA_DIR", str(env))
    with pytest.raises(FileNotFoundError) as e:
        m.load_data(arg, download=False)
    msg = str(e.value)
    for place in (arg, env, isolated):
        assert str(place) in msg
    for n in NAMES:
        assert n in msg
    assert "NUMCNN_DATA_DIR" in msg and "--data-dir" in msg and "download=True" in msg
    assert listing(isolated) == []


def test_nonexistent_data_dir_is_an_error(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="typo'.*data_dir argument.*does not exist"):
        m.load_data(tmp_path / "typo")
    monkeypatch.setenv("NUMCNN_DATA_DIR", str(tmp_path / "typo2"))
    with pytest.raises(FileNotFoundError, match=r"typo2.*\$NUMCNN_DATA_DIR"):
        m.load_data()


def test_default_mirrors_and_mirror_validation(tmp_path):
    assert m.MIRRORS and all(u.startswith("https://") for u in m.MIRRORS)
    assert not any("lecun" in u for u in m.MIRRORS)
    with pytest.raises(ValueError, match="http:// or https://; received 'file:///etc/'"):
        m.download(tmp_path, mirrors=["file:///etc/"])
    with pytest.raises(ValueError, match="at least one URL"):
        m.download(tmp_path, mirrors=[])


# --------------------------------------------------------------------------- download


@pytest.mark.mnist
def test_download_verifies_renames_then_uses_cache(good_site, serve, isolated, capsys):
    url, server = serve(good_site)
    check_mnist(m.load_data(mirrors=[url + "good/"]))
    assert sorted(server.requests) == sorted(f"/good/{n}.gz" for n in NAMES)
    assert listing(isolated) == sorted(f"{n}.gz" for n in NAMES)  # no .part left
    assert "downloading" in capsys.readouterr().err
    stop(server)
    # offline now: the default (env) mirror refuses connections, so this must be the cache
    check_mnist(m.load_data(verbose=False))
    check_mnist(m.load_data(download=False))
    assert len(server.requests) == 4


@pytest.mark.mnist
def test_first_mirror_404_then_second_mirror(good_site, serve, isolated, monkeypatch):
    url, server = serve(good_site)
    monkeypatch.setenv("NUMCNN_MNIST_MIRROR", f"{url}missing/, {url}good")
    paths = m.download(verbose=False)
    assert paths == {n: isolated / f"{n}.gz" for n in NAMES}
    assert server.requests == [p for n in NAMES for p in (f"/missing/{n}.gz", f"/good/{n}.gz")]
    assert listing(isolated) == sorted(f"{n}.gz" for n in NAMES)


@pytest.mark.mnist
def test_download_only_fetches_missing_files(good_site, serve, isolated, real_dir):
    isolated.mkdir(parents=True)
    for n in NAMES[1:]:
        src = real_dir / f"{n}.gz"
        if src.is_file():
            shutil.copyfile(src, isolated / f"{n}.gz")
        else:
            shutil.copyfile(real_dir / n, isolated / n)
    url, server = serve(good_site)
    check_mnist(m.load_data(mirrors=url + "good/", verbose=False))
    assert server.requests == [f"/good/{NAMES[0]}.gz"]


TRAIN_IMAGES = NAMES[0]


@pytest.mark.parametrize(
    "content, message",
    [
        pytest.param(b"<html>Not the file</html>", "not a gzip file", id="garbage"),
        pytest.param(
            gzip.compress(idx_bytes(np.zeros(60000, np.uint8))),
            "wrong file: expected train-images-idx3-ubyte holding uint8 of shape "
            "(60000, 28, 28), but its header says uint8 of shape (60000,)",
            id="labels-as-images",
        ),
        pytest.param(
            gzip.compress(idx_bytes(np.zeros((60000, 28, 28), np.uint8)), compresslevel=1),
            "expected SHA-256 " + m.FILES[TRAIN_IMAGES].sha256,
            id="hash-mismatch",
        ),
        pytest.param(
            gzip.compress(idx_bytes(np.zeros((60000, 28, 28), np.uint8)))[:3000],
            "corrupt or truncated gzip file",
            id="cut-short",
        ),
    ],
)
def test_bad_download_leaves_nothing_in_cache(tmp_path, serve, isolated, content, message):
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{TRAIN_IMAGES}.gz").write_bytes(content)
    url, server = serve(site)
    with pytest.raises(m.DownloadError) as e:
        m.load_data(mirrors=[url], verbose=False)
    msg = str(e.value)
    assert f"{url}{TRAIN_IMAGES}.gz" in msg and message in msg and "NUMCNN_DATA_DIR" in msg
    assert server.requests == [f"/{TRAIN_IMAGES}.gz"]
    assert listing(isolated) == []


def test_all_mirrors_unreachable(tmp_path, serve, isolated):
    empty = tmp_path / "empty"
    empty.mkdir()
    url, server = serve(empty)
    dead = dead_url()
    with pytest.raises(m.DownloadError) as e:
        m.download(mirrors=[dead, url], verbose=False)
    msg = str(e.value)
    assert f"{dead}{TRAIN_IMAGES}.gz" in msg and "refused" in msg.lower()
    assert f"{url}{TRAIN_IMAGES}.gz: HTTP Error 404" in msg
    assert server.requests == [f"/{TRAIN_IMAGES}.gz"]  # gave up after the first file
    assert listing(isolated) == []


def test_download_timeout(isolated):
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        with pytest.raises(m.DownloadError, match="timed out"):
            m.download(mirrors=[url], names=[LABELS], timeout=0.2, verbose=False)
    assert listing(isolated) == []
