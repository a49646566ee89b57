"""save_model / load_model: round trip, exact resumption of training, pickle-free format,
clear errors for damaged files, and atomic writes that never leave debris."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import numcnn
from numcnn import Sequential, load_model, optimizers, save_model
from numcnn.layers import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Tanh


def make_model(seed=0):
    return Sequential(
        [Conv2D(3, (3, 2), padding=(1, 0, 0, 1)), ReLU(), MaxPool2D(2), Conv2D(4, 2),
         Tanh(), AvgPool2D(2, count_include_pad=False), Flatten(), Dense(3)],
        input_shape=(1, 10, 9), seed=seed,
    )


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 10, 9)).astype(np.float32)
    y = (x[:, 0, :5].mean(axis=(1, 2)) > 0).astype(np.int64) + (x[:, 0, 5:].mean((1, 2)) > 0)
    return x, y


def compiled(seed=0):
    model = make_model(seed)
    model.compile(optimizer=optimizers.SGD(lr=0.05, momentum=0.9, nesterov=True,
                                           weight_decay=1e-3),
                  loss="softmax_cross_entropy", metrics=["accuracy"])
    return model


def _listing(d):
    return sorted(os.listdir(d))


def test_round_trip_predictions_config_and_optimizer(tmp_path):
    x, y = data()
    model = compiled()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, seed=0)
    path = tmp_path / "m.npz"
    save_model(model, path, extra={"epoch": 1})
    assert _listing(tmp_path) == ["m.npz"]  # no temp file left
    loaded = load_model(path)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.predict(x).dtype == np.float32
    assert loaded.saved_extra == {"epoch": 1}
    assert type(loaded.optimizer) is optimizers.SGD
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations == 5
    sd, sd2 = model.optimizer.state_dict(), loaded.optimizer.state_dict()
    assert set(sd) == set(sd2)
    for k in sd:
        np.testing.assert_array_equal(sd[k], sd2[k])
    assert list(loaded.metrics) == ["accuracy"]
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def test_file_is_plain_npz_without_pickle(tmp_path):
    model = compiled()
    path = tmp_path / "m.npz"
    save_model(model, path)
    with np.load(path, allow_pickle=False) as f:
        names = set(f.files)
        cfg = json.loads(str(f["__config__"]))
        for q, layer, k in model.named_params():
            np.testing.assert_array_equal(f[f"param/{q}"], layer.params[k])
    assert cfg["model"]["class_name"] == "Sequential"
    assert cfg["model"]["config"]["layers"][0]["class_name"] == "Conv2D"
    assert sum(n.startswith("param/") for n in names) == len(model.named_params())


def test_resumed_training_matches_uninterrupted_run(tmp_path):
    x, y = data()
    xv, yv = data(16, 1)
    # uninterrupted: 2 epochs (shuffle off, so the shuffle RNG plays no part)
    full = compiled()
    h_full = full.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
                      validation_data=(xv, yv)).history
    # interrupted: 1 epoch, save, load, 1 more epoch from initial_epoch=1
    part = compiled()
    h1 = part.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
                  validation_data=(xv, yv)).history
    path = tmp_path / "ckpt.npz"
    save_model(part, path)
    del part
    resumed = load_model(path)
    h2 = resumed.fit(x, y, batch_size=8, epochs=2, initial_epoch=1, shuffle=False, verbose=0,
                     validation_data=(xv, yv)).history
    for k in h_full:
        assert h1[k] + h2[k] == h_full[k], k
    wf, wr = full.get_weights(), resumed.get_weights()
    for k in wf:
        np.testing.assert_array_equal(wr[k], wf[k], err_msg=k)
    assert resumed.optimizer.iterations == full.optimizer.iterations

    # control: without the optimizer state the continuation differs (momentum matters)
    save_model(load_model(path), tmp_path / "noopt.npz", include_optimizer=False)
    fresh = load_model(tmp_path / "noopt.npz")
    assert fresh.optimizer is None
    fresh.compile(optimizer=optimizers.SGD(lr=0.05, momentum=0.9, nesterov=True,
                                           weight_decay=1e-3),
                  loss="softmax_cross_entropy")
    fresh.fit(x, y, batch_size=8, epochs=2, initial_epoch=1, shuffle=False, verbose=0)
    assert not np.array_equal(fresh.get_weights()["dense/W"], wf["dense/W"])


def test_load_without_compile(tmp_path):
    model = compiled()
    save_model(model, tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz", compile=False)
    assert loaded.optimizer is None and loaded.loss is None
    x, _ = data(4)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_float64_model_round_trip(tmp_path):
    model = Sequential([Flatten(), Dense(4), ReLU(), Dense(2)], input_shape=(2, 3, 3), seed=1,
                       dtype="float64")
    save_model(model, tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert all(lay.params[k].dtype == np.float64 for _, lay, k in loaded.named_params())
    x = np.random.default_rng(0).standard_normal((3, 2, 3, 3))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


# -------------------------------------------------------------------- damaged files


def test_truncated_file_gives_clear_error(tmp_path):
    path = tmp_path / "m.npz"
    save_model(compiled(), path)
    raw = path.read_bytes()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated.npz"):
        load_model(bad)


def test_garbage_file_gives_clear_error(tmp_path):
    bad = tmp_path / "garbage.npz"
    bad.write_bytes(b"this is not a zip file at all" * 10)
    with pytest.raises(ValueError, match="garbage.npz"):
        load_model(bad)


def test_npz_that_is_not_a_model(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz"):
        load_model(other)


def test_single_npy_array_is_not_a_model(tmp_path):
    bad = tmp_path / "single.npz"
    with open(bad, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ValueError, match="single.npz"):
        load_model(bad)


def test_damaged_config_is_reported(tmp_path):
    bad = tmp_path / "cfg.npz"
    np.savez(bad, __config__=np.array("{not json"))
    with pytest.raises(ValueError, match="cfg.npz.*config"):
        load_model(bad)


def test_wrong_weight_shapes_are_reported(tmp_path):
    path = tmp_path / "m.npz"
    save_model(compiled(), path)
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["param/dense/W"] = np.zeros((2, 2), np.float32)
    bad = tmp_path / "shapes.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match="shapes.npz.*dense/W"):
        load_model(bad)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.npz"):
        load_model(tmp_path / "nothere.npz")


# -------------------------------------------------------------------- atomic writes


def _failing_savez(f, **arrays):
    f.write(b"PK\x03\x04 half a file")
    raise OSError("simulated disk full")


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(numcnn.io.saving.np, "savez", _failing_savez)
    with pytest.raises(OSError, match="simulated"):
        save_model(compiled(), tmp_path / "m.npz")
    assert _listing(tmp_path) == []


def test_failed_save_does_not_clobber_existing_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    good = compiled(seed=0)
    save_model(good, path)
    before = path.read_bytes()
    monkeypatch.setattr(numcnn.io.saving.np, "savez", _failing_savez)
    with pytest.raises(OSError, match="simulated"):
        save_model(compiled(seed=1), path)
    monkeypatch.undo()
    assert _listing(tmp_path) == ["m.npz"]
    assert path.read_bytes() == before
    x, _ = data(4)
    np.testing.assert_array_equal(load_model(path).predict(x), good.predict(x))


def test_save_unbuilt_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        save_model(Sequential([Flatten(), Dense(2)]), tmp_path / "m.npz")
    assert _listing(tmp_path) == []
