"""Fashion-MNIST loader: lookup, verification against the published checksums, the verified
download from a local HTTP server, and damaged or hostile files.

The real files are not on this machine, so each test writes small files in the real format
under the real names (gzipped IDX, 6 training and 4 test images) and replaces
``fashion_mnist.FILES`` with their checksums (the documented hook); the published checksums
stay in the code and are checked against the published values below.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from numcnn import datasets
from numcnn.datasets import DataError, DownloadError
from numcnn.datasets import fashion_mnist as fm

REAL_DATA_DIR = os.environ.get("NUMCNN_DATA_DIR", "")  # MNIST (read before `offline`)
NAMES = list(fm.FILES)
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = NAMES


def idx_bytes(arr: np.ndarray) -> bytes:
    """uint8 IDX, written here independently of the reader."""
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return head + np.ascontiguousarray(arr, np.uint8).tobytes()


def spec_of(path: Path, shape) -> fm.FileSpec:
    data = path.read_bytes()
    return fm.FileSpec(hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(),
                       len(data), tuple(shape))


def listing(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*")) if d.exists() else []


@pytest.fixture(autouse=True)
def isolated(offline):
    return offline / "fashion_mnist"


def small_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {TRAIN_IMAGES: rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
            TRAIN_LABELS: np.array([9, 0, 0, 3, 0, 2], np.uint8),
            TEST_IMAGES: rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
            TEST_LABELS: np.array([9, 2, 1, 1], np.uint8)}


@pytest.fixture
def small(tmp_path, monkeypatch):
    """A folder ``site/`` with the four small ``.gz`` files; FILES now holds their checksums.
    Returns ``(folder, arrays)``."""
    site = tmp_path / "site"
    site.mkdir()
    arrays = small_arrays()
    specs = {}
    for name, arr in arrays.items():
        path = site / f"{name}.gz"
        path.write_bytes(gzip.compress(idx_bytes(arr), mtime=0))
        specs[name] = spec_of(path, arr.shape)
    monkeypatch.setattr(fm, "FILES", specs)
    return site, arrays


def check(data, arrays):
    (x_train, y_train), (x_test, y_test) = data
    for got, name in zip((x_train, y_train, x_test, y_test), NAMES):
        assert got.dtype == np.uint8 and got.flags.writeable and got.flags.c_contiguous
        np.testing.assert_array_equal(got, arrays[name])


def replace(site: Path, name: str, data: bytes, *, respec: bool = False,
            shape=None, monkeypatch=None) -> Path:
    """Write ``data`` as ``<name>.gz``; with ``respec``, make FILES expect exactly it (so the
    checks after the checksums are what is tested)."""
    path = site / f"{name}.gz"
    path.write_bytes(data)
    if respec:
        monkeypatch.setitem(fm.FILES, name, spec_of(path, shape or fm.FILES[name].shape))
    return path


# --------------------------------------------------------------------------- the constants


def test_published_checksums_and_names():
    # Zalando's README (MD5, sizes in its table), TFDS url_checksums/fashion_mnist.txt and
    # Keras datasets/fashion_mnist.py (SHA-256, byte sizes)
    published = {
        "train-images-idx3-ubyte": (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880,
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        "train-labels-idx1-ubyte": (
            "25c81989df183df01b3e8a0aad5dffbe", 29515,
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        "t10k-images-idx3-ubyte": (
            "bef4ecab320f06d8554ea6380940ec79", 4422102,
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        "t10k-labels-idx1-ubyte": (
            "bb300cfdad3c16e7a12a480ee83cd310", 5148,
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    }
    assert {n: (s.md5, s.size, s.sha256) for n, s in fm.FILES.items()} == published
    assert [s.shape for s in fm.FILES.values()] == [(60000, 28, 28), (60000,), (10000, 28, 28),
                                                    (10000,)]
    assert fm.CLASS_NAMES == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                              "Shirt", "Sneaker", "Bag", "Ankle boot")
    assert datasets.class_names("fashion-mnist") == fm.CLASS_NAMES
    assert any("zalandoresearch/fashion-mnist" in u for u in fm.MIRRORS)
    assert any("fashion-mnist.s3-website" in u for u in fm.MIRRORS)


# --------------------------------------------------------------------------- lookup


def test_loads_from_data_dir_env_and_by_name(small, monkeypatch, isolated):
    site, arrays = small
    check(fm.load_data(site, download=False), arrays)
    check(datasets.load("fashion_mnist", site), arrays)
    monkeypatch.setenv("NUMCNN_DATA_DIR", str(site))
    check(fm.load_data(download=False), arrays)
    assert listing(isolated) == []


def test_subfolder_of_a_named_folder_comes_first(small, tmp_path, monkeypatch):
    site, arrays = small
    shared = tmp_path / "data"
    (shared / "fashion_mnist").mkdir(parents=True)
    for name in NAMES:  # decoys in the folder itself (MNIST's files have the same names)
        (shared / f"{name}.gz").write_bytes(b"decoy")
        os.replace(site / f"{name}.gz", shared / "fashion_mnist" / f"{name}.gz")
    monkeypatch.setenv("NUMCNN_DATA_DIR", str(shared))
    assert fm.find_files() == {n: shared / "fashion_mnist" / f"{n}.gz" for n in NAMES}
    check(fm.load_data(), arrays)
    assert [d for d, _ in fm.search_dirs()][:2] == [shared / "fashion_mnist", shared]


def test_named_folder_lacking_files_is_an_error_not_a_download(small, tmp_path, serve,
                                                                isolated):
    site, _ = small
    url, server = serve(site)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / TEST_LABELS).write_bytes(b"raw")  # uncompressed: named in the message
    with pytest.raises(FileNotFoundError) as e:
        fm.load_data(empty, mirrors=[url])
    msg = str(e.value)
    assert str(empty) in msg and "Fashion-MNIST files not found" in msg
    for name in NAMES:
        assert f"{name}.gz" in msg
    assert f"found uncompressed {empty / TEST_LABELS}" in msg
    assert "name no folder to download them into the cache" in msg
    assert server.requests == [] and listing(isolated) == []
    with pytest.raises(FileNotFoundError, match="download=True"):
        fm.load_data(download=False)
    with pytest.raises(FileNotFoundError, match=r"data directory '.*typo' \(from the data_dir"):
        fm.load_data(tmp_path / "typo")


@pytest.mark.mnist
def test_mnist_files_under_the_same_names_are_recognised(offline):
    d = Path(REAL_DATA_DIR) if REAL_DATA_DIR else None
    if d is None or not all((d / f"{n}.gz").is_file() for n in NAMES):
        pytest.skip("MNIST .gz files not available: set NUMCNN_DATA_DIR to their folder")
    with pytest.raises(DataError) as e:
        fm.load_data(d)
    msg = str(e.value)
    assert str(d / f"{TRAIN_IMAGES}.gz") in msg
    assert "expected the published train-images-idx3-ubyte.gz of 26421880 bytes" in msg
    assert "It is an MNIST file" in msg


# --------------------------------------------------------------------------- bad files


def test_damaged_files_name_the_file_and_the_problem(small, monkeypatch):
    site, arrays = small
    good = (site / f"{TRAIN_LABELS}.gz").read_bytes()
    spec = fm.FILES[TRAIN_LABELS]
    cases = {
        "truncated": (good[:-7], f"truncated: expected the published {TRAIN_LABELS}.gz of "
                                 f"{spec.size} bytes, the file has {spec.size - 7}"),
        "too long": (good + b"\0", "too long: expected the published"),
        "flipped": (good[:-9] + bytes([good[-9] ^ 1]) + good[-8:],
                    f"expected SHA-256 {spec.sha256} for {TRAIN_LABELS}.gz, got "),
    }
    for case, (data, message) in cases.items():
        path = replace(site, TRAIN_LABELS, data)
        with pytest.raises(DataError) as e:
            fm.load_data(site)
        assert str(path) in str(e.value) and message in str(e.value), case
    path = replace(site, TRAIN_LABELS, good)
    monkeypatch.setitem(fm.FILES, TRAIN_LABELS, spec._replace(md5="0" * 32))
    with pytest.raises(DataError, match=f"expected MD5 0{{32}} for {TRAIN_LABELS}.gz, got "
                                        f"{spec.md5}"):
        fm.load_file(path)


@pytest.mark.parametrize("content, shape, message", [
    pytest.param(gzip.compress(idx_bytes(np.zeros((6, 2), np.uint8))), None,
                 "wrong file: expected train-labels-idx1-ubyte holding uint8 of shape (6,), "
                 "but its header says uint8 of shape (6, 2)", id="wrong-shape"),
    pytest.param(gzip.compress(idx_bytes(np.array([1, 2, 10, 3, 4, 5], np.uint8))), None,
                 "label 10 at index 2; Fashion-MNIST labels are 0..9", id="label-out-of-range"),
    pytest.param(gzip.compress(idx_bytes(np.zeros(6, np.uint8)) + b"\0"), None,
                 "too long: train-labels-idx1-ubyte holds 6 data bytes after its header",
                 id="trailing-bytes"),
    pytest.param(gzip.compress(idx_bytes(np.zeros(6, np.uint8)))[:-12], None,
                 "corrupt or truncated gzip file", id="cut-gzip"),
    pytest.param(idx_bytes(np.zeros(6, np.uint8)), None, "not a gzip file", id="not-gzip"),
    pytest.param(gzip.compress(b"\0\0\x08\x01" + struct.pack(">I", 6) + bytes(3)), None,
                 "truncated: header says 6 items of uint8", id="truncated-data"),
])
def test_structure_is_checked_after_the_checksums(small, monkeypatch, content, shape, message):
    site, _ = small
    path = replace(site, TRAIN_LABELS, content, respec=True, shape=shape,
                   monkeypatch=monkeypatch)
    with pytest.raises(DataError) as e:
        fm.load_data(site)
    assert str(path) in str(e.value) and message in str(e.value)


def test_gzip_bomb_inflates_no_further_than_the_expected_size(small, monkeypatch):
    site, _ = small
    path = site / f"{TRAIN_IMAGES}.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:  # the right header, then 64 MiB more
        f.write(idx_bytes(np.zeros((6, 28, 28), np.uint8)))
        for _ in range(64):
            f.write(bytes(1 << 20))
    assert path.stat().st_size < 1 << 20
    monkeypatch.setitem(fm.FILES, TRAIN_IMAGES, spec_of(path, (6, 28, 28)))
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="too long"):
            fm.load_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20


# --------------------------------------------------------------------------- download


def test_download_verifies_then_the_cache_serves_offline(small, serve, isolated, capsys):
    site, arrays = small
    url, server = serve(site)
    check(fm.load_data(mirrors=[url]), arrays)
    assert sorted(server.requests) == sorted(f"/{n}.gz" for n in NAMES)
    assert listing(isolated) == sorted(f"{n}.gz" for n in NAMES)  # no .part left
    assert "downloading" in capsys.readouterr().err
    server.stop()
    check(fm.load_data(verbose=False), arrays)  # the mirror variable refuses: the cache
    check(datasets.load("fashion-mnist", download=False), arrays)


def test_mirror_variable_and_failover(small, serve, isolated, monkeypatch, tmp_path):
    site, arrays = small
    url, server = serve(tmp_path)  # serves site/ as a subfolder: "missing/" is a 404
    monkeypatch.setenv("NUMCNN_FASHION_MNIST_MIRROR", f"{url}missing/ {url}site")
    paths = fm.download(verbose=False)
    assert paths == {n: isolated / f"{n}.gz" for n in NAMES}
    assert server.requests == [p for n in NAMES for p in (f"/missing/{n}.gz", f"/site/{n}.gz")]
    check(fm.load_data(download=False), arrays)


@pytest.mark.parametrize("case", ["truncated", "flipped", "garbage", "labels", "too-large"])
def test_bad_download_leaves_nothing_in_the_cache(small, serve, isolated, monkeypatch, case,
                                                  tmp_path):
    site, _ = small
    good = (site / f"{TEST_LABELS}.gz").read_bytes()
    bad = tmp_path / "bad"
    bad.mkdir()
    if case == "truncated":
        data, message = good[:10], "truncated: expected the published"
    elif case == "flipped":
        data, message = good[:-9] + bytes([good[-9] ^ 4]) + good[-8:], "expected SHA-256"
    elif case == "garbage":
        data, message = b"<html>gone</html>", "bytes, the file has 17"
    elif case == "labels":
        data = gzip.compress(idx_bytes(np.array([1, 2, 3, 77], np.uint8)))
        message = "label 77 at index 3"
    else:
        data, message = good + bytes(100), "response is larger than"
    (bad / f"{TEST_LABELS}.gz").write_bytes(data)
    if case == "labels":
        monkeypatch.setitem(fm.FILES, TEST_LABELS, spec_of(bad / f"{TEST_LABELS}.gz", (4,)))
    url, server = serve(bad)
    with pytest.raises(DownloadError) as e:
        fm.download(mirrors=url, names=[TEST_LABELS], verbose=False)
    msg = str(e.value)
    assert f"{url}{TEST_LABELS}.gz: " in msg and message in msg, msg
    assert "NUMCNN_FASHION_MNIST_MIRROR" in msg and "NUMCNN_DATA_DIR" in msg
    assert server.requests == [f"/{TEST_LABELS}.gz"]
    assert listing(isolated) == []


def test_unreachable_mirrors(offline, isolated, dead_url):
    with pytest.raises(DownloadError, match=re.escape(f"{dead_url}{TRAIN_IMAGES}.gz: ")) as e:
        fm.load_data(mirrors=[dead_url], verbose=False)
    assert "refused" in str(e.value).lower()
    assert listing(isolated) == []
    with pytest.raises(ValueError, match="http:// or https://"):
        fm.download(mirrors="ftp://example.org/")
