"""The IDX reader on damaged and hostile files: ``DataError`` (a ``ValueError``) naming the
file, within a memory bound — declared sizes are checked before anything is allocated, and
a gzip bomb is refused after inflating at most one byte more than the header promised.

Peak memory is measured with ``tracemalloc`` (NumPy and ``bytearray`` report to it).
"""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numcnn.datasets import idx
from numcnn.datasets.idx import DataError

FUZZ = settings(max_examples=80, deadline=None, derandomize=True, database=None)
CODES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def idx_bytes(arr, code=0x08):
    head = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return head + np.ascontiguousarray(arr, dtype=np.dtype(CODES[code])).tobytes()


def header(code, dims):
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


def peak_of(fn, *args):
    """``(result or exception, peak traced bytes)`` of ``fn(*args)``."""
    tracemalloc.start()
    try:
        try:
            out = fn(*args)
        except DataError as e:
            out = e
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _gzip_stream(path, head, zeros, level=9):
    with gzip.open(path, "wb", compresslevel=level) as f:
        f.write(head)
        chunk = bytes(1 << 20)
        for _ in range(zeros >> 20):
            f.write(chunk)
    return path


def test_gzip_bomb_is_refused_after_reading_at_most_the_limit(tmp_path, monkeypatch):
    path = _gzip_stream(tmp_path / "bomb-idx1-ubyte.gz", header(0x08, (16,)), 64 << 20)
    assert path.stat().st_size < 1 << 20  # 64 MiB of zeros
    err, peak = peak_of(idx.load_idx, path)
    assert isinstance(err, DataError) and str(path) in str(err)
    assert "too long: header says 16 items of uint8 = 16 data bytes after the 8-byte header, " \
           "file has more" in str(err)
    assert peak < 1 << 20
    monkeypatch.setenv("NUMCNN_MAX_IDX_BYTES", "1M")
    err, peak = peak_of(idx.read_idx_bytes, path)
    assert isinstance(err, DataError)
    assert "holds more than 1048576 bytes (decompressed), the limit" in str(err)
    assert peak < 4 << 20  # the limit, one byte, and the gzip reader's chunks and join
    assert sorted(os.listdir(tmp_path)) == [path.name]


def test_declared_size_above_the_limit_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMCNN_MAX_IDX_BYTES", "1M")
    path = _gzip_stream(tmp_path / "big-idx1-ubyte.gz", header(0x08, (8 << 20,)), 8 << 20)
    err, peak = peak_of(idx.load_idx, path)
    assert isinstance(err, DataError)
    assert "the header declares 8388608 items of uint8 = 8388616 bytes, more than the limit " \
           "of 1048576 ($NUMCNN_MAX_IDX_BYTES raises it)" in str(err)
    assert peak < 1 << 20


@pytest.mark.parametrize("dims", [(2 ** 32 - 1,) * 3, (65536,) * 4, (2 ** 31, 2 ** 31, 4)],
                         ids=["huge", "wraps-int64-to-0", "wraps-int64-to-0b"])
def test_absurd_dimensions_are_checked_before_allocating(tmp_path, dims):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(header(0x0D, dims) + bytes(64))
    err, peak = peak_of(idx.load_idx, path)
    assert isinstance(err, DataError) and "more than the limit" in str(err)
    assert peak < 1 << 20
    # the in-memory parser compares with the exact product too (was: int64 overflow)
    with pytest.raises(DataError, match="truncated: header says"):
        idx.parse_idx(header(0x0D, dims) + bytes(64), source="x")


def test_too_many_dimensions(tmp_path):
    path = tmp_path / "x-idx-ubyte"
    path.write_bytes(header(0x08, (1,) * 200) + b"\x07")
    with pytest.raises(DataError, match=r"declares 200 dimensions; expected at most 32"):
        idx.load_idx(path)


def test_limit_variable_must_be_a_size(tmp_path, monkeypatch):
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(idx_bytes(np.arange(5, dtype=np.uint8)))
    monkeypatch.setenv("NUMCNN_MAX_IDX_BYTES", "2G")
    np.testing.assert_array_equal(idx.load_idx(path), np.arange(5))
    monkeypatch.setenv("NUMCNN_MAX_IDX_BYTES", "-5")
    with pytest.raises(ValueError, match="NUMCNN_MAX_IDX_BYTES must be a positive number"):
        idx.load_idx(path)


arrays = st.sampled_from(list(CODES)).flatmap(lambda code: st.tuples(
    st.just(code), st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple)))


@FUZZ
@given(spec=arrays, gz=st.booleans(),
       flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 7)), max_size=3),
       cut=st.one_of(st.none(), st.integers(0, 1 << 20)))
def test_fuzz_flips_and_truncations(spec, gz, flips, cut):
    code, shape = spec
    arr = (np.arange(int(np.prod(shape))) % 100).reshape(shape).astype(np.dtype(CODES[code]))
    data = bytearray(gzip.compress(idx_bytes(arr, code)) if gz else idx_bytes(arr, code))
    for pos, bit in flips:
        data[pos % len(data)] ^= 1 << bit
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x-idx-ubyte"
        path.write_bytes(bytes(data))
        out, peak = peak_of(idx.load_idx, path)
        assert os.listdir(d) == ["x-idx-ubyte"]
    assert peak < 1 << 20
    if isinstance(out, DataError):
        assert str(path) in str(out)
    else:
        assert isinstance(out, np.ndarray) and out.dtype.isnative
        if not flips and cut is None:
            np.testing.assert_array_equal(out, arr)


@FUZZ
@given(code=st.integers(0, 255), dims=st.lists(st.integers(0, 2 ** 32 - 1), max_size=6),
       tail=st.binary(max_size=256), gz=st.booleans(), magic=st.binary(min_size=2, max_size=2))
def test_fuzz_forged_headers(code, dims, tail, gz, magic):
    head = (magic if magic != b"\x1f\x8b" else b"\x00\x00") + header(code, dims)[2:]
    data = head + tail
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x-idx-ubyte"
        path.write_bytes(gzip.compress(data) if gz else data)
        out, peak = peak_of(idx.load_idx, path)
    assert peak < 1 << 20
    if not isinstance(out, DataError):  # only a file that matches its own header loads
        assert out.shape == tuple(dims) and out.nbytes == len(tail)
    with pytest.raises(DataError) if isinstance(out, DataError) else _nothing():
        idx.parse_idx(data, source="x")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
