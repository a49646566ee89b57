"""CIFAR-10 loader (binary distribution): lookup, checksums, the tar reader on genuine-format
and hostile archives, and the verified download from a local HTTP server.

The real archive is not on this machine, so each test builds ``cifar-10-binary.tar.gz`` in the
real format with the real member names and order (the folder entry, then ``data_batch_1.bin``,
``batches.meta.txt``, ``data_batch_2.bin``, ``test_batch.bin``, ``data_batch_3.bin``,
``data_batch_4.bin``, ``readme.html``, ``data_batch_5.bin``) but 3 records per batch, and
replaces ``cifar10.SPEC`` with its checksums and record count (the documented hook).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numcnn import datasets
from numcnn.datasets import DataError, DownloadError
from numcnn.datasets import cifar10 as c

N = 3  # records per batch in these tests
FOLDER = "cifar-10-batches-bin"
ORDER = ["data_batch_1.bin", "batches.meta.txt", "data_batch_2.bin", "test_batch.bin",
         "data_batch_3.bin", "data_batch_4.bin", "readme.html", "data_batch_5.bin"]
META = b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n"
README = b"<meta HTTP-EQUIV=\"REFRESH\" content=\"0; url=http://www.cs.toronto.edu/~kriz/cifar.html\">\n"


def listing(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*")) if d.exists() else []


def records(labels, images) -> bytes:
    """The binary format, written record by record: label byte, then red, green, blue planes
    (each 32x32, row-major)."""
    out = b""
    for label, img in zip(labels, images):
        out += bytes([label]) + img[0].tobytes() + img[1].tobytes() + img[2].tobytes()
    return out


def batches(seed=0, n=N):
    """``{file name: (labels, images)}`` for the six batches."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in [o for o in ORDER if o.endswith(".bin")]:
        out[name] = (rng.integers(0, 10, n).astype(np.uint8),
                     rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8))
    return out


def entry(name, data=b"", kind=tarfile.REGTYPE, linkname="", size=None):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime, info.mode = kind, linkname, 1234567890, 0o644
    info.size = len(data) if size is None and kind == tarfile.REGTYPE else (size or 0)
    return info, data


def members(data=None, meta=META):
    """The archive's entries in the real order."""
    data = batches() if data is None else data
    out = [entry(FOLDER, kind=tarfile.DIRTYPE)]
    for name in ORDER:
        if name == "batches.meta.txt":
            out.append(entry(f"{FOLDER}/{name}", meta))
        elif name == "readme.html":
            out.append(entry(f"{FOLDER}/{name}", README))
        else:
            out.append(entry(f"{FOLDER}/{name}", records(*data[name])))
    return out


def tar_gz(entries, fmt=tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return gzip.compress(buf.getvalue(), mtime=0)


def spec_of(data: bytes, records=N) -> c.ArchiveSpec:
    return c.ArchiveSpec(hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(),
                         len(data), records)


@pytest.fixture(autouse=True)
def isolated(offline):
    return offline / "cifar10"


@pytest.fixture
def put(tmp_path, monkeypatch):
    """``put(archive bytes, folder="site") -> path``: writes ``<folder>/cifar-10-binary.tar.gz``
    and makes SPEC expect exactly those bytes (3 records per batch)."""
    def write(data: bytes, folder="site", records=N) -> Path:
        d = tmp_path / folder
        d.mkdir(exist_ok=True)
        path = d / c.ARCHIVE
        path.write_bytes(data)
        monkeypatch.setattr(c, "SPEC", spec_of(data, records))
        return path
    return write


def expected(data):
    train = [data[f"data_batch_{i}.bin"] for i in range(1, 6)]
    test = data["test_batch.bin"]
    return ((np.concatenate([im for _, im in train]), np.concatenate([lb for lb, _ in train])),
            (test[1], test[0]))


def check(got, want):
    for g, w in zip((*got[0], *got[1]), (*want[0], *want[1])):
        assert g.dtype == np.uint8 and g.flags.writeable and g.flags.c_contiguous
        np.testing.assert_array_equal(g, w)


# --------------------------------------------------------------------------- constants


def test_published_constants():
    assert c.SPEC == c.ArchiveSpec(
        "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",  # TFDS
        "c32a1d4ab5d03f1284b67883e8d87530", 170052171, 10000)  # the CIFAR page; TFDS
    assert c.MIRRORS == ("https://www.cs.toronto.edu/~kriz/",)
    assert c.ARCHIVE == "cifar-10-binary.tar.gz"
    assert sorted(c.MEMBERS) == sorted(f"{FOLDER}/{n}" for n in ORDER)
    assert c.CLASS_NAMES == tuple(META.decode().split())
    assert datasets.class_names("cifar10")[9] == "truck"
    assert c.inflate_limit() < 185_000_000 + 300_000  # six batches of 30,730,000 bytes


# --------------------------------------------------------------------------- reading


def test_loads_nchw_batches_in_order(put, monkeypatch, isolated):
    data = batches()
    path = put(tar_gz(members(data)))
    got = c.load_data(path.parent, download=False)
    check(got, expected(data))
    (x_train, y_train), (x_test, y_test) = got
    assert x_train.shape == (5 * N, 3, 32, 32) and y_test.shape == (N,)
    # channel 0 is the first 1024 bytes of a record (red), row-major
    raw = records(*data["data_batch_2.bin"])
    assert x_train[N + 1, 0, 0, 5] == raw[c.RECORD_BYTES + 1 + 5]
    assert x_train[N + 1, 2, 31, 31] == raw[2 * c.RECORD_BYTES - 1]
    check(datasets.load("cifar10", path.parent), expected(data))
    monkeypatch.setenv("NUMCNN_DATA_DIR", str(path.parent))
    check(c.load_data(), expected(data))
    assert listing(isolated) == []


def test_pax_and_ustar_archives_and_a_dot_slash_prefix(put):
    data = batches(1)
    check(c.load_data(put(tar_gz(members(data), tarfile.PAX_FORMAT)).parent), expected(data))
    dotted = [entry("./" + i.name, d) if i.isreg() else (i, d) for i, d in members(data)]
    check(c.load_data(put(tar_gz(dotted, tarfile.USTAR_FORMAT)).parent), expected(data))


def test_subfolder_of_a_named_folder_comes_first(put, tmp_path, monkeypatch):
    data = batches(2)
    shared = tmp_path / "data"
    (shared / "cifar10").mkdir(parents=True)
    (shared / c.ARCHIVE).write_bytes(b"decoy")
    path = put(tar_gz(members(data)), folder="data/cifar10")
    monkeypatch.setenv("NUMCNN_DATA_DIR", str(shared))
    assert c.find_archive() == path
    check(c.load_data(), expected(data))


def test_named_folder_lacking_the_archive_is_an_error_not_a_download(put, tmp_path, serve,
                                                                     isolated):
    site = put(tar_gz(members())).parent
    url, server = serve(site)
    d = tmp_path / "d"
    (d / FOLDER).mkdir(parents=True)
    (d / "cifar-10-python.tar.gz").write_bytes(b"pickles")
    with pytest.raises(FileNotFoundError) as e:
        c.load_data(d, mirrors=[url])
    msg = str(e.value)
    assert f"CIFAR-10 files not found: {c.ARCHIVE}" in msg and str(d) in msg
    assert f"found the extracted folder {d / FOLDER}" in msg
    assert "the pickled version, which numcnn never reads" in msg
    assert server.requests == [] and listing(isolated) == []
    with pytest.raises(FileNotFoundError, match="allow download=True"):
        c.load_data(download=False)
    with pytest.raises(FileNotFoundError, match=r"CIFAR-10 data directory '.*typo'"):
        c.load_data(tmp_path / "typo")


# --------------------------------------------------------------------------- checksums


def test_checksums_and_size_are_checked_first(put, monkeypatch):
    good = tar_gz(members())
    path = put(good)
    spec = c.SPEC
    path.write_bytes(good[:-5])
    with pytest.raises(DataError, match=f"truncated: expected the published {c.ARCHIVE} of "
                                        f"{len(good)} bytes, the file has {len(good) - 5}"):
        c.load_data(path.parent)
    path.write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])
    with pytest.raises(DataError, match=f"expected SHA-256 {spec.sha256} for {c.ARCHIVE}"):
        c.load_data(path.parent)
    path.write_bytes(good)
    monkeypatch.setattr(c, "SPEC", spec._replace(md5="f" * 32))
    with pytest.raises(DataError, match=f"expected MD5 f{{32}} for {c.ARCHIVE}, got {spec.md5}"):
        c.load_archive(path)


# --------------------------------------------------------------------------- hostile archives


def with_batch(payload: bytes, name="data_batch_3.bin"):
    return [(e if not e[0].name.endswith(name) else entry(e[0].name, payload))
            for e in members()]


def hostile_cases():
    ok = members()
    one = records(*batches()["data_batch_1.bin"])
    bad_labels = bytearray(one)
    bad_labels[c.RECORD_BYTES] = 10  # record 1
    yield "traversal", ok + [entry("cifar-10-batches-bin/../../evil.sh", b"x")], \
        "unsafe member path 'cifar-10-batches-bin/../../evil.sh'"
    yield "absolute", [entry("/etc/cron.d/evil", b"x")] + ok, "unsafe member path '/etc/cron"
    yield "symlink", [ok[0], entry(f"{FOLDER}/data_batch_1.bin", kind=tarfile.SYMTYPE,
                                   linkname="/etc/shadow")] + ok[2:], \
        "member cifar-10-batches-bin/data_batch_1.bin is a symbolic link (to '/etc/shadow')"
    yield "hardlink", ok[:-1] + [entry(f"{FOLDER}/data_batch_5.bin", kind=tarfile.LNKTYPE,
                                       linkname=f"{FOLDER}/data_batch_1.bin")], \
        "is a hard link (to 'cifar-10-batches-bin/data_batch_1.bin')"
    yield "device", [ok[0], entry(f"{FOLDER}/readme.html", kind=tarfile.CHRTYPE)] + ok[1:], \
        "member cifar-10-batches-bin/readme.html is a device"
    yield "extra-member", ok + [entry(f"{FOLDER}/extra.bin", b"x")], \
        "unexpected member 'cifar-10-batches-bin/extra.bin' (a regular file)"
    yield "other-folder", [entry("cifar-10-batches-py", kind=tarfile.DIRTYPE)] + ok, \
        "unexpected member 'cifar-10-batches-py' (a directory)"
    yield "duplicate", ok + [ok[1]], "member cifar-10-batches-bin/data_batch_1.bin appears twice"
    yield "missing", [e for e in ok if "test_batch" not in e[0].name], \
        "the archive lacks cifar-10-batches-bin/test_batch.bin"
    yield "oversized-batch", with_batch(one + one[: c.RECORD_BYTES]), \
        "member cifar-10-batches-bin/data_batch_3.bin holds 4 records; expected 3 (9219 bytes)"
    yield "records-do-not-divide", with_batch(one + b"12345"), \
        "has 9224 bytes, not a whole number of 3073-byte records (1 label byte + 3072 pixel"
    yield "labels-out-of-range", with_batch(bytes(bad_labels)), \
        "member cifar-10-batches-bin/data_batch_3.bin: record 1 has label 10; CIFAR-10 " \
        "labels are 0..9"
    yield "oversized-text", [ok[0], entry(f"{FOLDER}/readme.html", size=1 << 30)], \
        "member cifar-10-batches-bin/readme.html declares 1073741824 bytes; expected a small"
    yield "wrong-meta", members(meta=b"cat\ndog\n"), \
        "batches.meta.txt: lists ['cat', 'dog']; expected the ten CIFAR-10 class names"


CASES = list(hostile_cases())


def raw_tar(entries) -> bytes:
    """Entries as tar headers (+ data) without tarfile's consistency (declared sizes kept)."""
    out = b""
    for info, data in entries:
        out += info.tobuf(tarfile.GNU_FORMAT)
        out += data + bytes(-len(data) % 512)
    return out + bytes(1024)


@pytest.mark.parametrize("entries, message", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_hostile_archive_is_refused_on_disk_and_in_a_download(put, serve, isolated, entries,
                                                              message):
    data = gzip.compress(raw_tar(entries), mtime=0)
    path = put(data)
    before = listing(path.parent)
    with pytest.raises(DataError) as e:
        c.load_data(path.parent)
    assert str(path) in str(e.value) and message in str(e.value)
    assert listing(path.parent) == before  # nothing extracted, nothing written
    url, server = serve(path.parent)
    with pytest.raises(DownloadError) as e:
        c.load_data(mirrors=[url], verbose=False)
    assert f"{url}{c.ARCHIVE}: " in str(e.value) and message in str(e.value)
    assert listing(isolated) == []  # no .part, no archive


@pytest.mark.parametrize("data, message", [
    (b"not gzip at all", "not a gzip file"),
    (gzip.compress(b"\x07" * 5000), "not a valid tar archive"),
    (gzip.compress(raw_tar(members()))[:-300], "corrupt or truncated gzip data"),
    (gzip.compress(bytes(2048)), "the archive lacks cifar-10-batches-bin/data_batch_1.bin"),
], ids=["not-gzip", "not-tar", "cut", "empty-tar"])
def test_damaged_archives(put, data, message):
    path = put(data)
    with pytest.raises(DataError) as e:
        c.load_data(path.parent)
    assert str(path) in str(e.value) and message in str(e.value)


def test_gzip_bomb_stops_at_the_inflate_limit(put):
    """A 64 MiB pax header (a few kB compressed) is refused once decompression passes what
    the archive can hold, with little memory."""
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, 64 << 20
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(info.tobuf(tarfile.USTAR_FORMAT))
        for _ in range(64):
            gz.write(bytes(1 << 20))
    assert len(buf.getvalue()) < 200_000
    path = put(buf.getvalue())
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as e:
            c.load_data(path.parent)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"decompresses to more than {c.inflate_limit()} bytes" in str(e.value)
    assert peak < 8 << 20


FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None)


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 7)), max_size=3),
       cut=st.one_of(st.none(), st.integers(0, 1 << 20)), in_gzip=st.booleans())
def test_fuzz_flips_and_truncations(flips, cut, in_gzip):
    """Damage the compressed bytes (``in_gzip``) or the tar inside a sound gzip stream."""
    plain = raw_tar(members())
    data = bytearray(gzip.compress(plain, mtime=0) if in_gzip else plain)
    for pos, bit in flips:
        data[pos % len(data)] ^= 1 << bit
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    if not in_gzip:
        data = bytearray(gzip.compress(bytes(data), mtime=0))
    spec = spec_of(bytes(data))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / c.ARCHIVE
        path.write_bytes(bytes(data))
        tracemalloc.start()
        try:
            out = c.read_archive(path, spec=spec)
        except DataError as e:
            out = e
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert os.listdir(d) == [c.ARCHIVE]
    assert peak < 8 << 20
    if isinstance(out, DataError):
        assert str(path) in str(out)
    else:
        (x, y), (xt, yt) = out
        assert x.shape == (5 * N, 3, 32, 32) and int(max(y.max(), yt.max())) <= 9


# --------------------------------------------------------------------------- download


def test_download_verifies_then_the_cache_serves_offline(put, serve, isolated, capsys):
    data = batches(3)
    site = put(tar_gz(members(data))).parent
    url, server = serve(site)
    check(c.load_data(mirrors=url), expected(data))
    assert server.requests == [f"/{c.ARCHIVE}"]
    assert listing(isolated) == [c.ARCHIVE]
    assert "downloading" in capsys.readouterr().err
    server.stop()
    check(c.load_data(verbose=False), expected(data))
    check(c.load_data(download=False), expected(data))


def test_mirror_variable_failover_and_oversized_response(put, serve, isolated, monkeypatch,
                                                         tmp_path):
    data = batches(4)
    good = tar_gz(members(data))
    put(good)
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / c.ARCHIVE).write_bytes(good + bytes(10))
    url, server = serve(tmp_path)
    monkeypatch.setenv("NUMCNN_CIFAR10_MIRROR", f"{url}missing/,{url}big/,{url}site/")
    assert c.download(verbose=False) == isolated / c.ARCHIVE
    assert server.requests == [f"/{d}/{c.ARCHIVE}" for d in ("missing", "big", "site")]
    check(c.load_data(download=False), expected(data))
    isolated.joinpath(c.ARCHIVE).unlink()
    monkeypatch.setenv("NUMCNN_CIFAR10_MIRROR", f"{url}missing/ {url}big/")
    with pytest.raises(DownloadError) as e:
        c.load_data(verbose=False)
    msg = str(e.value)
    assert f"{url}missing/{c.ARCHIVE}: HTTP Error 404" in msg
    assert f"{url}big/{c.ARCHIVE}: response is larger than {len(good)} bytes" in msg
    assert "NUMCNN_CIFAR10_MIRROR" in msg and listing(isolated) == []
