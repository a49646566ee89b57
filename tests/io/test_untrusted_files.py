"""Model files are untrusted input: every damaged or hostile file ends in ``ModelFileError``
(a ``ValueError``) naming the file, what was expected and what was found, within a memory
bound, without unpickling anything and without leaving anything in the folder.

The fuzz tests (hypothesis, derandomised and bounded) flip bits, truncate, mutate the JSON
config and forge ``.npy`` headers; the targeted tests build one file per class of damage.
Peak memory is measured with ``tracemalloc`` (NumPy reports its allocations to it), and once
in a subprocess under ``RLIMIT_AS``, where an attempt at a large allocation would surface
as ``MemoryError``.
"""

from __future__ import annotations

import copy
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import textwrap
import tracemalloc
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import numcnn
from numcnn import Sequential, load_model, save_model
from numcnn.io import ModelFileError, npzfile
from numcnn.io.config import pixel_scale
from numcnn.layers import (
    LAYERS,
    BatchNorm2D,
    Concatenate,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    ReLU,
)
from numcnn.layers.base import Layer

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
TABLE = [[1, 0, 1], [1, 1, 0]]  # a connection table: C_in=2 rows, C_out=3 columns
PEAK = 8 << 20  # bytes: every refusal of these small files stays far below


def small_model(seed=0):
    model = Sequential([Conv2D(2, 3), BatchNorm2D(), ReLU(), Conv2D(3, 1, connection_table=TABLE),
                        MaxPool2D(2), Dropout(0.1), Flatten(), Dense(3)],
                       input_shape=(1, 8, 8), seed=seed)
    model.compile(optimizer=numcnn.optimizers.Adam(lr=0.01), loss="softmax_cross_entropy")
    x = np.random.default_rng(0).standard_normal((8, 1, 8, 8)).astype(np.float32)
    model.fit(x, np.arange(8) % 3, batch_size=4, epochs=1, verbose=0, seed=0)
    return model


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "model.npz"
    save_model(small_model(), path, extra={"pixel_scale": 1 / 255})
    return path


def arrays_of(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def config_of(arrays):
    return json.loads(str(arrays["__config__"]))


def with_config(arrays, cfg):
    return {**arrays, "__config__": np.array(json.dumps(cfg))}


def npy(arr, allow_pickle=False):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def write_zip(path, members, compression=zipfile.ZIP_STORED):
    """``members``: ``{key: bytes or array}``, written as ``<key>.npy``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w", compression=compression) as z:
            for key, value in members:
                z.writestr(key + ".npy", value if isinstance(value, bytes) else npy(value))
    return path


def refused(path, *fragments, compile=True, peak=PEAK):
    """Load ``path``: assert a ModelFileError naming the file and ``fragments``, a peak of
    traced memory below ``peak``, and the folder unchanged. Returns the message."""
    path = Path(path)
    before = sorted(os.listdir(path.parent))
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError) as e:
            load_model(path, compile=compile)
        top = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    msg = str(e.value)
    assert str(path) in msg, msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)
    assert top < peak, f"peak {top} bytes"
    assert sorted(os.listdir(path.parent)) == before
    return msg


def loads_or_refuses(path, peak=PEAK):
    """What every mutated file must do: load, or raise ModelFileError — nothing else."""
    tracemalloc.start()
    try:
        try:
            load_model(path)
        except ModelFileError as e:
            assert str(path) in str(e)
        top = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert top < peak, f"peak {top} bytes"


# ---------------------------------------------------------------------------- round trips
def test_a_good_file_loads_whole(good):
    model = load_model(good)
    assert model.saved_extra == {"pixel_scale": 1 / 255}
    assert model.optimizer.iterations == 2 and model.trainer.epoch == 1
    ref = arrays_of(good)
    for q, layer, k in model.named_params():
        np.testing.assert_array_equal(layer.params[k], ref[f"param/{q}"])


def test_save_arrays_come_back(tmp_path):
    model = small_model()
    save_model(model, tmp_path / "m.npz", arrays={"callback/0/history": np.arange(3.0)})
    loaded = load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.saved_arrays["callback/0/history"], np.arange(3.0))
    with pytest.raises(ValueError, match="numeric arrays"):
        save_model(model, tmp_path / "x.npz", arrays={"a": np.array(["text"])})


def test_graph_with_nested_model_and_shared_layer_loads(tmp_path):
    x = numcnn.Input((2, 6, 6))
    conv = Conv2D(2, 3, padding="same")
    inner = Sequential([Conv2D(2, 1), BatchNorm2D()], name="inner")
    y = Concatenate()([inner(conv(x)), ReLU()(conv(x))])
    model = numcnn.Model(x, Dense(4)(Flatten()(Dropout(0.2)(y))), seed=1)
    save_model(model, tmp_path / "g.npz")
    loaded = load_model(tmp_path / "g.npz")
    xs = np.random.default_rng(0).standard_normal((3, 2, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(xs), model.predict(xs))


# numcnn's format 1, as the version before the graph engine (38a6ac4) wrote it
FORMAT1_CONFIG = {
    "format": 1,
    "model": {"name": None, "dtype": "float32", "trainable": True, "input_shape": [1, 8, 8],
              "seed": 0, "layers": [
                  {"class_name": "Conv2D", "config": {
                      "name": None, "dtype": "float32", "trainable": True, "out_channels": 3,
                      "kernel_size": [3, 3], "stride": [1, 1], "padding": "valid",
                      "use_bias": True, "kernel_initializer": "glorot_uniform",
                      "bias_initializer": "zeros"}},
                  {"class_name": "BatchNorm2D", "config": {
                      "name": None, "dtype": "float32", "trainable": True, "momentum": 0.1,
                      "eps": 1e-05, "affine": True}},
                  {"class_name": "ReLU", "config": {"name": None, "dtype": "float32",
                                                    "trainable": True}},
                  {"class_name": "MaxPool2D", "config": {
                      "name": None, "dtype": "float32", "trainable": True, "pool_size": [2, 2],
                      "stride": [2, 2], "padding": 0}},
                  {"class_name": "Dropout", "config": {"name": None, "dtype": "float32",
                                                       "trainable": True, "rate": 0.2,
                                                       "seed": None}},
                  {"class_name": "Flatten", "config": {"name": None, "dtype": "float32",
                                                       "trainable": True}},
                  {"class_name": "Dense", "config": {
                      "name": None, "dtype": "float32", "trainable": True, "units": 4,
                      "use_bias": True, "kernel_initializer": "glorot_uniform",
                      "bias_initializer": "zeros"}}]},
    "extra": {"pixel_scale": 0.00392156862745098},
    "training": {"metrics": ["accuracy"],
                 "optimizer": {"name": "sgd", "config": {"lr": 0.05, "momentum": 0.9,
                                                         "nesterov": False,
                                                         "weight_decay": 0.0}},
                 "loss": {"name": "softmax_cross_entropy", "config": {}}},
}
FORMAT1_SHAPES = {"param/conv2d/W": (3, 1, 3, 3), "param/conv2d/b": (3,),
                  "param/batchnorm2d/gamma": (3,), "param/batchnorm2d/beta": (3,),
                  "param/dense/W": (27, 4), "param/dense/b": (4,),
                  "buffer/batchnorm2d/running_mean": (3,), "buffer/batchnorm2d/running_var": (3,)}


def test_format_1_files_still_load(tmp_path):
    rng = np.random.default_rng(3)
    arrays = {k: rng.uniform(0.5, 1, s).astype(np.float32) for k, s in FORMAT1_SHAPES.items()}
    params = [k for k in FORMAT1_SHAPES if k.startswith("param/")]
    for i, k in enumerate(params):  # momentum by parameter position
        arrays[f"optim/{i}/v"] = np.full(FORMAT1_SHAPES[k], i, np.float32)
    arrays.update({"optim/iterations": np.array(7), "optim/lr": np.array(0.05),
                   "__config__": np.array(json.dumps(FORMAT1_CONFIG))})
    np.savez(tmp_path / "old.npz", **arrays)
    model = load_model(tmp_path / "old.npz")
    assert model.saved_extra["pixel_scale"] == pytest.approx(1 / 255)
    for q, layer, k in model.named_params():
        np.testing.assert_array_equal(layer.params[k], arrays[f"param/{q}"])
    state = model.optimizer.state_dict()
    assert model.optimizer.iterations == 7
    for i, k in enumerate(params):
        np.testing.assert_array_equal(state[f"state/{k[len('param/'):]}/v"], i)
    arrays["optim/6/v"] = arrays.pop("optim/5/v")  # a position past the parameters
    np.savez(tmp_path / "bad.npz", **arrays)
    refused(tmp_path / "bad.npz", "'optim/6/v'", "index below 6")


# ------------------------------------------------------------ one test per class of damage
def _config_case(mutate):
    def make(tmp, arrays):
        cfg = config_of(arrays)
        mutate(cfg)
        np.savez(tmp, **with_config(arrays, cfg))
    return make


def _layers(cfg):
    return cfg["model"]["config"]["layers"]


def _replace(key, value):
    def make(tmp, arrays):
        np.savez(tmp, **{**arrays, key: value})
    return make


def _drop(key):
    def make(tmp, arrays):
        np.savez(tmp, **{k: v for k, v in arrays.items() if k != key})
    return make


def _with_nan(key, value=np.nan, index=0):
    def make(tmp, arrays):
        arr = arrays[key].copy()
        arr.flat[index] = value
        np.savez(tmp, **{**arrays, key: arr})
    return make


def _raw(data):
    def make(tmp, arrays):
        Path(tmp).write_bytes(data)
    return make


def _members(extra):
    def make(tmp, arrays):
        write_zip(tmp, list(arrays.items()) + list(extra.items()))
    return make


def _set(path_keys, value):
    def mutate(cfg):
        node = cfg
        for k in path_keys[:-1]:
            node = node[k]
        node[path_keys[-1]] = value
    return mutate


CASES = {
    "not-a-zip": (_raw(b"this is no archive" * 20), ["expected a zip (.npz) archive"]),
    "single-npy": (_raw(npy(np.zeros(3))), ["a single .npy array, not an .npz archive"]),
    "no-config": (lambda t, a: np.savez(t, w=np.zeros(2)), ["no __config__ entry"]),
    "config-not-text": (_replace("__config__", np.zeros(3)),
                        ["must be one string (0-d unicode); received <f8 of shape (3,)"]),
    "config-not-json": (_replace("__config__", np.array("{nope")),
                        ["damaged model config (not JSON"]),
    "config-not-object": (_replace("__config__", np.array("[1, 2]")),
                          ["must be a JSON object; received list"]),
    "config-too-deep": (_replace("__config__", np.array("[" * 50000 + "]" * 50000)),
                        ["JSON nested too deeply"]),
    "unknown-top-key": (_config_case(_set(["hello"], 1)),
                        ["unknown keys ['hello']", "expected ['format', 'model'"]),
    "format": (_config_case(_set(["format"], 3)),
               ["unsupported model format 3; expected 1 or 2"]),
    "format-bool": (_config_case(_set(["format"], True)),
                    ["unsupported model format True; expected 1 or 2"]),
    "model-not-object": (_config_case(_set(["model"], [1])), ["'model' must be", "received [1]"]),
    "unknown-layer": (_config_case(lambda c: _layers(c)[0].update(class_name="Nope")),
                      ["unknown layer class 'Nope'", "expected one of the registered layers"]),
    "layer-not-a-model": (_config_case(_set(["model", "class_name"], "Dense")),
                          ["is a Dense layer; expected a model"]),
    "bad-layer-argument": (_config_case(lambda c: _layers(c)[0]["config"].update(stride=[0, 1])),
                           ["layer 'conv2d' (Conv2D): bad layer config",
                            "stride must be positive; received stride=(0, 1)"]),
    "absurd-dense": (_config_case(lambda c: _layers(c)[-1]["config"].update(units=10 ** 12)),
                     ["layer 'dense' (Dense)", "would allocate at least", "over the budget of "
                      "2147483648 bytes (2.0 GiB)"]),
    "absurd-input": (_config_case(_set(["model", "config", "input_shape"], [1, 10 ** 6, 10 ** 6])),
                     ["holds more than 1099511627776 values per sample"]),
    "absurd-window": (_config_case(lambda c: _layers(c).insert(0, {
        "class_name": "WeightedPool2D", "config": {"pool_size": 10 ** 6}})),
        ["layer 'weightedpool2d' (WeightedPool2D)", "over the budget"]),
    "config-disagrees": (_config_case(lambda c: _layers(c)[-1]["config"].update(units=4)),
                         ["entry 'param/dense/W': expected shape (27, 4) (from the model "
                          "config); received (27, 3)"]),
    "config-contradicts-itself": (
        _config_case(lambda c: _layers(c)[0]["config"].update(out_channels=5)),
        ["layer 'conv2d_1' (Conv2D)", "connection_table has 2 input rows but the input has 5 "
         "maps"]),
    "missing-weight": (_drop("param/dense/b"),
                       ["needs the weights ['param/dense/b'], which the file does not hold"]),
    "missing-generator": (_drop("extra/dropout/rng"), ["lacks the layer state "
                                                       "['extra/dropout/rng']"]),
    "unknown-weight": (_replace("param/dense/zzz", np.zeros(3, np.float32)),
                       ["unexpected entries ['param/dense/zzz']"]),
    "misshaped-weight": (_replace("param/dense/W", np.zeros((2, 2), np.float32)),
                         ["entry 'param/dense/W': expected shape (27, 3)", "received (2, 2)"]),
    "float64-weight": (_replace("param/dense/b", np.zeros(3)),
                       ["entry 'param/dense/b': expected float32 weights", "received <f8"]),
    "integer-weight": (_replace("param/dense/b", np.zeros(3, np.int32)),
                       ["expected float32 weights", "received <i4"]),
    "nan-weight": (_with_nan("param/dense/W"),
                   ["entry 'param/dense/W': expected finite weights; received 1 NaN or "
                    "infinite value(s) among 81"]),
    "inf-buffer": (_with_nan("buffer/batchnorm2d/running_var", np.inf),
                   ["entry 'buffer/batchnorm2d/running_var': expected finite weights"]),
    # W[1, 0] of the (3, 2, 1, 1) kernels: output map 1 does not read input map 0
    "outside-connection-table": (_with_nan("param/conv2d_1/W", 1.0, index=2),
                                 ["entry 'param/conv2d_1/W': expected zeros outside the "
                                  "layer's connection table"]),
    "object-member": (_members({"param/x": npy(np.array([{}], dtype=object), True)}),
                      ["entry 'param/x': dtype 'object' is refused"]),
    "record-member": (_members({"param/x": np.zeros(2, "i4,f4")}),
                      ["entry 'param/x': dtype", "is refused; expected plain numbers"]),
    "not-npy-member": (lambda t, a: write_zip(t, list(a.items())) and _append(t, "README.txt"),
                       ["entry 'README.txt' is not a .npy array"]),
    "duplicate-member": (_members({"param/dense/b": np.zeros(3, np.float32)}),
                         ["holds two entries named 'param/dense/b.npy'"]),
    "rng-words": (_replace("trainer/rng", np.zeros(5, np.uint64)),
                  ["entry 'trainer/rng'", "6 uint64 words", "received <u8 of shape (5,)"]),
    "rng-dtype": (_replace("extra/dropout/rng", np.zeros(6, np.int64)),
                  ["entry 'extra/dropout/rng'", "received <i8 of shape (6,)"]),
    "unknown-trainer-entry": (_replace("trainer/what", np.zeros(1)),
                              ["unexpected entries ['trainer/what']"]),
    "optimizer-state-shape": (_replace("optim/state/dense/W/m", np.zeros(3, np.float32)),
                              ["entry 'optim/state/dense/W/m': expected float values (a scalar "
                               "or shape (27, 3)); received <f4 of shape (3,)"]),
    "optimizer-state-name": (_replace("optim/state/nothere/W/m", np.zeros(3, np.float32)),
                             ["entry 'optim/state/nothere/W/m': expected "
                              "optim/state/<parameter>/<slot>"]),
    "optimizer-nan": (_with_nan("optim/state/dense/W/exp_avg"),
                      ["entry 'optim/state/dense/W/exp_avg': expected finite optimizer state"]),
    "optimizer-lr": (_replace("optim/lr", np.array(-1.0)), ["damaged training state",
                                                            "lr must be positive"]),
    "negative-epoch": (_replace("trainer/epoch", np.array(-3)),
                       ["entry 'trainer/epoch': expected a count >= 0; received -3"]),
    "unknown-optimizer": (_config_case(_set(["training", "optimizer", "name"], "nope")),
                          ["unknown optimizer 'nope'; expected one of"]),
    "pixel-scale": (_config_case(_set(["extra", "pixel_scale"], -1)),
                    ["extra['pixel_scale'] must be a finite positive number; received -1"]),
    "pixel-scale-text": (_config_case(_set(["extra", "pixel_scale"], "1/255")),
                         ["received '1/255'"]),
    "pixel-scale-infinite": (_config_case(_set(["extra", "pixel_scale"], float("inf"))),
                             ["received inf"]),
}


def _append(path, name):
    with zipfile.ZipFile(path, "a") as z:
        z.writestr(name, b"hello")
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_each_kind_of_bad_file_names_what_was_expected_and_received(good, tmp_path, case):
    make, fragments = CASES[case]
    path = tmp_path / f"{case}.npz"
    make(path, arrays_of(good))
    refused(path, *fragments)


def test_config_larger_than_its_bound(good, tmp_path):
    cfg = config_of(arrays_of(good))
    cfg["extra"]["notes"] = "x" * (npzfile.MAX_CONFIG_BYTES // 4)  # UCS-4: 4 bytes each
    np.savez(tmp_path / "big.npz", **with_config(arrays_of(good), cfg))
    refused(tmp_path / "big.npz", "the model config (__config__)",
            "expected at most 16777216 bytes (16.0 MiB)")


def test_budget_comes_from_the_environment(good, tmp_path, monkeypatch):
    monkeypatch.setenv("NUMCNN_MAX_MODEL_BYTES", "1K")
    refused(good, "more than the budget of 1024 bytes", "NUMCNN_MAX_MODEL_BYTES")
    monkeypatch.setenv("NUMCNN_MAX_MODEL_BYTES", "64M")
    load_model(good)
    monkeypatch.setenv("NUMCNN_MAX_MODEL_BYTES", "lots")
    with pytest.raises(ValueError, match="NUMCNN_MAX_MODEL_BYTES must be a positive number of "
                                         "bytes, such as 4294967296 or 4G; received 'lots'"):
        load_model(good)


def test_directory_bounds_are_checked_before_zipfile_reads_it(good, monkeypatch):
    monkeypatch.setattr(npzfile, "MAX_ENTRIES", 5)
    refused(good, "the archive directory declares", "expected at most 5 entries")


def _patch_central(data, name, **fields):
    """Change fields of member ``name``'s central-directory record and local header."""
    data = bytearray(data)
    offsets = {"flags": (8, 6, "<H"), "method": (10, 8, "<H"), "crc": (16, 14, "<L"),
               "compressed": (20, 18, "<L"), "size": (24, 22, "<L")}
    eocd = data.rindex(b"PK\x05\x06")
    count, _, cd = struct.unpack("<HLL", data[eocd + 10: eocd + 20])
    for _ in range(count):
        n, m, k = struct.unpack("<HHH", data[cd + 28: cd + 34])
        local = struct.unpack("<L", data[cd + 42: cd + 46])[0]
        if data[cd + 46: cd + 46 + n].decode() == name:
            for field, value in fields.items():
                central, loc, fmt = offsets[field]
                struct.pack_into(fmt, data, cd + central, value)
                struct.pack_into(fmt, data, local + loc, value)
            return bytes(data)
        cd += 46 + n + m + k
    raise KeyError(name)


def test_encrypted_and_unknown_compression_are_refused(good, tmp_path):
    raw = good.read_bytes()
    (tmp_path / "enc.npz").write_bytes(_patch_central(raw, "param/dense/W.npy", flags=1))
    refused(tmp_path / "enc.npz", "entry 'param/dense/W' is encrypted")
    (tmp_path / "bz.npz").write_bytes(_patch_central(raw, "param/dense/W.npy", method=12))
    refused(tmp_path / "bz.npz", "compression method 12; expected stored (0) or deflated (8)")
    (tmp_path / "st.npz").write_bytes(_patch_central(raw, "param/dense/W.npy", size=10))
    refused(tmp_path / "st.npz", "stored uncompressed but the archive declares")


def test_npy_header_that_disagrees_with_the_zip_size(good, tmp_path):
    arrays = arrays_of(good)
    data = npy(arrays["param/dense/b"])
    header_len = len(data) - 12
    forged = data[:header_len].replace(b"(3,)", b"(9,)") + data[header_len:]
    write_zip(tmp_path / "h.npz", [(k, v) for k, v in arrays.items() if k != "param/dense/b"]
              + [("param/dense/b", forged)])
    refused(tmp_path / "h.npz", "entry 'param/dense/b': its .npy header describes <f4 values "
            "of shape (9,) = 36 data bytes after a 128-byte header, but the archive declares "
            "140 bytes")


# ------------------------------------------------------------------ bombs and lying headers
def _bomb(path, arrays, key, header_shape, inflate, declared=None, crc=None):
    """``arrays`` with ``key`` replaced by a deflated member: an .npy header for
    ``header_shape`` float32, then ``inflate`` zero bytes; the directory may then be made
    to declare ``declared`` bytes (a lying header)."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f4", "fortran_order": False, "shape": header_shape})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for k, v in arrays.items():
            if k != key:
                z.writestr(k + ".npy", npy(v))
        with z.open(key + ".npy", "w") as w:
            w.write(head.getvalue())
            chunk = bytes(1 << 20)
            for _ in range(inflate >> 20):
                w.write(chunk)
    if declared is not None:
        fields = {"size": declared}
        if crc is not None:
            fields["crc"] = crc
        path.write_bytes(_patch_central(path.read_bytes(), key + ".npy", **fields))
    return path


def test_zip_bomb_is_refused_from_its_declared_size(good, tmp_path, monkeypatch):
    monkeypatch.setenv("NUMCNN_MAX_MODEL_BYTES", "4M")
    path = _bomb(tmp_path / "bomb.npz", arrays_of(good), "param/dense/W", (16 << 20,),
                 64 << 20)
    assert path.stat().st_size < 1 << 20  # 64 MiB of zeros in well under 1 MiB
    refused(path, "the arrays declare 67", "more than the budget of 4194304 bytes")


def test_lying_zip_header_never_inflates_past_what_it_declares(good, tmp_path):
    arrays = arrays_of(good)
    n = 128 + arrays["param/dense/W"].nbytes  # what the header of param/dense/W promises
    path = _bomb(tmp_path / "liar.npz", arrays, "param/dense/W", (27, 3), 64 << 20,
                 declared=n)
    refused(path, "entry 'param/dense/W': damaged archive entry", "Bad CRC-32", peak=4 << 20)
    # with the CRC of the first n bytes forged too, only those n bytes are ever inflated
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f4", "fortran_order": False, "shape": (27, 3)})
    crc = zlib.crc32(head.getvalue() + bytes(n - 128))
    path = _bomb(tmp_path / "liar2.npz", arrays, "param/dense/W", (27, 3), 64 << 20,
                 declared=n, crc=crc)
    tracemalloc.start()
    try:
        model = load_model(path)
        top = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert top < 4 << 20 and not model.get_layer("dense").params["W"].any()


def test_hostile_files_under_an_address_space_limit(good, tmp_path):
    """In a fresh process limited to its size + 256 MiB of address space, each hostile file
    is refused with ModelFileError — none reaches a large allocation (MemoryError)."""
    arrays = arrays_of(good)
    cfg = config_of(arrays)
    dense = copy.deepcopy(cfg)
    dense["model"]["config"]["layers"][-1]["config"]["units"] = 10 ** 9  # 48 GB before
    np.savez(tmp_path / "dense.npz", **with_config(arrays, dense))
    # a member whose header and directory both declare 1 GiB: within the default budget,
    # but not what the config expects, so it is never read
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f4", "fortran_order": False, "shape": (1 << 28,)})
    write_zip(tmp_path / "gib.npz", [(k, v) for k, v in arrays.items() if k != "param/dense/W"]
              + [("param/dense/W", head.getvalue() + bytes(64))])
    gib = len(head.getvalue()) + (1 << 30)
    (tmp_path / "gib.npz").write_bytes(_patch_central(
        (tmp_path / "gib.npz").read_bytes(), "param/dense/W.npy", size=gib, compressed=gib))
    _bomb(tmp_path / "liar.npz", arrays, "param/dense/W", (27, 3), 64 << 20,
          declared=128 + arrays["param/dense/W"].nbytes)
    script = textwrap.dedent("""
        import resource, sys
        import numcnn
        from numcnn.io import ModelFileError
        pages = int(open("/proc/self/statm").read().split()[0])
        limit = pages * resource.getpagesize() + (256 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        for path in sys.argv[1:]:
            try:
                numcnn.load_model(path)
                print("loaded", path)
            except ModelFileError as e:
                print("ModelFileError", str(e)[:100])
    """)
    files = [str(tmp_path / f) for f in ("dense.npz", "gib.npz", "liar.npz")]
    proc = subprocess.run([sys.executable, "-c", script, *files], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("ModelFileError") for line in lines), lines


# ----------------------------------------------------------------------------- fuzzing
@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(0, 7)), min_size=1,
                      max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 1 << 30)))
def test_fuzz_bit_flips_and_truncations(good, flips, cut):
    data = bytearray(good.read_bytes())
    for pos, bit in flips:
        data[pos % len(data)] ^= 1 << bit
    if cut is not None:
        data = data[: cut % len(data)]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz.npz"
        path.write_bytes(bytes(data))
        loads_or_refuses(path)
        assert os.listdir(d) == ["fuzz.npz"]


VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 4), st.sampled_from([10 ** 12, -10 ** 9, 2 ** 63]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(
        ["", "x", "float64", "same", "Dense", "Sequential", "Model", "InputLayer", "zeros"]),
    st.lists(st.integers(-1, 3), max_size=4), st.just({}), st.just([[1, 0], [0, 1]]),
    st.just({"name": "constant", "config": {"value": 1e308}}))


def _paths(node, here=()):
    yield here
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for k, v in items:
        yield from _paths(v, here + (k,))


@FUZZ
@given(data=st.data())
def test_fuzz_config_mutations(good, data):
    arrays = arrays_of(good)
    cfg = config_of(arrays)
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from([p for p in _paths(cfg) if p]))
        node = cfg
        for k in where[:-1]:
            node = node[k]
        if data.draw(st.booleans()) and isinstance(node, dict):
            node.pop(where[-1])
        else:
            node[where[-1]] = copy.deepcopy(data.draw(VALUES))  # st.just shares its value
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz.npz"
        np.savez(path, **with_config(arrays, cfg))
        with np.errstate(all="raise"), warnings.catch_warnings():
            warnings.simplefilter("error")
            loads_or_refuses(path)
        assert os.listdir(d) == ["fuzz.npz"]


@FUZZ
@given(descr=st.sampled_from(["<f4", "<f8", ">f4", "|O", "<U3", "<c8", "|V8", "<i4", "<f16",
                              "|b1", "bad", [("a", "<f4")]]),
       shape=st.lists(st.integers(-3, 1 << 40), max_size=5).map(tuple),
       fortran=st.booleans(), extra=st.binary(max_size=64))
def test_fuzz_forged_npy_headers(good, descr, shape, fortran, extra):
    head = "{" + f"'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {shape!r}, " + "}"
    header = head.encode("latin1") + b" " * (63 - len(head) % 64) + b"\n"
    member = (b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + extra)
    arrays = arrays_of(good)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz.npz"
        write_zip(path, [(k, v) for k, v in arrays.items() if k != "param/dense/W"]
                  + [("param/dense/W", member)])
        loads_or_refuses(path)
        assert os.listdir(d) == ["fuzz.npz"]


@FUZZ
@given(header=st.binary(max_size=300), length=st.integers(0, (1 << 32) - 1),
       version=st.sampled_from([b"\x01\x00", b"\x02\x00", b"\x03\x00", b"\x09\x09"]))
def test_fuzz_garbage_npy_headers(good, header, length, version):
    size = struct.pack("<H" if version == b"\x01\x00" else "<L", length % (1 << 16)
                       if version == b"\x01\x00" else length)
    arrays = arrays_of(good)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz.npz"
        write_zip(path, [(k, v) for k, v in arrays.items() if k != "buffer/batchnorm2d/"
                         "running_var"]
                  + [("buffer/batchnorm2d/running_var", b"\x93NUMPY" + version + size + header)],
                  compression=zipfile.ZIP_DEFLATED)
        with pytest.raises(ModelFileError, match="buffer/batchnorm2d/running_var"):
            load_model(path)


# ---------------------------------------------------------------- param_shapes contract
def test_param_shapes_match_what_build_creates():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from layer_examples import LAYER_EXAMPLES

    for name, examples in LAYER_EXAMPLES.items():
        cls = LAYERS.lookup(name)
        for example in examples:
            kwargs, shape = example[0], example[1]
            layer = cls(**kwargs)
            predicted = (layer.param_shapes(shape), layer.buffer_shapes(shape))
            assert not layer.params  # nothing allocated
            layer.build(shape)
            assert predicted == ({k: v.shape for k, v in layer.params.items()},
                                 {k: v.shape for k, v in layer.buffers.items()}), name
    with pytest.raises(ValueError, match="must be known"):
        Dense(3).param_shapes((None,))


def test_a_layer_of_your_own_without_param_shapes_still_loads(tmp_path, monkeypatch):
    monkeypatch.setattr(LAYERS, "_items", dict(LAYERS._items))

    @LAYERS.register("Bias")
    class Bias(Layer):
        def build(self, input_shape, rng=None):
            super().build(input_shape, rng)
            self.add_param("c", np.arange(self.input_shape[0]))

        def fprop(self, x, call):
            return x + self.params["c"]

    model = Sequential([Flatten(), Bias(), Dense(2)], input_shape=(1, 2, 2), seed=0)
    save_model(model, tmp_path / "own.npz")
    loaded = load_model(tmp_path / "own.npz")
    np.testing.assert_array_equal(loaded.get_layer("bias").params["c"], np.arange(4))
    arrays = arrays_of(tmp_path / "own.npz")
    arrays["param/bias/c"] = np.zeros(5, np.float32)  # its build disagrees with the file
    np.savez(tmp_path / "bad.npz", **arrays)
    refused(tmp_path / "bad.npz", "builds parameters that differ")


# ---------------------------------------------------------------------------- metadata
def test_pixel_scale_validator():
    assert pixel_scale({"pixel_scale": 0.5}, 1.0) == 0.5
    assert pixel_scale({}, 1 / 255) == 1 / 255
    for bad in (0, -1, float("nan"), float("inf"), "0.5", True, None, [1]):
        with pytest.raises(ModelFileError, match="must be a finite positive number"):
            pixel_scale({"pixel_scale": bad}, 1.0, "m.npz")


def test_optimizer_state_of_a_removed_layer_is_not_saved(tmp_path):
    model = small_model()
    model.pop()  # Dense: its Adam state stays in the optimizer, keyed by name
    model.add(Dense(2, name="head"))
    assert any(k.startswith("state/dense/") for k in model.optimizer.state_dict())
    save_model(model, tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert not any(k.startswith("state/dense/") for k in loaded.optimizer.state_dict())
