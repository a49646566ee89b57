"""The Layer contract (design notes §3), checked for every registered layer.

Examples come from ``tests/layer_examples.py``; a registered layer without an entry there
fails ``test_every_registered_layer_has_examples``. ``Sequential`` is tested in
``test_sequential.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from layer_examples import LAYER_EXAMPLES
from numcnn.layers import LAYERS, deserialize, serialize
from references import off_kink

SKIP = {"sequential", "model", "functional"}


def _classes() -> dict[type, list[str]]:
    """Registered classes with all their names (aliases grouped)."""
    out: dict[type, list[str]] = {}
    for name in LAYERS.names():
        if name in SKIP:
            continue
        out.setdefault(LAYERS.lookup(name), []).append(name)
    return out


def _examples_for(cls: type) -> list[tuple]:
    ex = []
    for key, items in LAYER_EXAMPLES.items():
        if key in LAYERS and LAYERS.lookup(key) is cls:
            ex += items
    return ex


def test_every_registered_layer_has_examples():
    missing = [names[0] for cls, names in _classes().items() if not _examples_for(cls)]
    assert not missing, (
        f"registered layers without an entry in tests/layer_examples.py: {missing}; add "
        "(constructor kwargs, per-sample input shape) examples for them"
    )


def test_layer_examples_keys_are_registered():
    unknown = [k for k in LAYER_EXAMPLES if k not in LAYERS]
    assert not unknown, f"LAYER_EXAMPLES names not in numcnn.layers.LAYERS: {unknown}"
    for key, items in LAYER_EXAMPLES.items():
        assert items, f"LAYER_EXAMPLES[{key!r}] is empty"
        for item in items:
            assert len(item) in (2, 3) and isinstance(item[0], dict), (key, item)


def _cases():
    cases = []
    for cls, names in sorted(_classes().items(), key=lambda kv: kv[1][0]):
        examples = _examples_for(cls)
        if not examples:
            # reported by test_every_registered_layer_has_examples
            continue
        for i, ex in enumerate(examples):
            cases.append(pytest.param(cls, ex, id=f"{names[0]}-{i}"))
    return cases


def _unpack(ex):
    shape = [tuple(s) for s in ex[1]] if isinstance(ex[1], list) else tuple(ex[1])
    opts = ex[2] if len(ex) > 2 else {}
    return ex[0], shape, opts


def _input(opts, rng, shape, dtype):
    """An input for a per-sample ``shape`` with the batch axis first; a list of inputs when
    ``shape`` is a list of shapes (merge layers)."""
    if isinstance(shape, list):
        return [_input(opts, rng, s, dtype) for s in shape]
    make = opts.get("make_input")
    x = make(rng, shape, dtype) if make else off_kink(shape, rng)
    return np.ascontiguousarray(x, dtype=dtype)


def _out_batch(opts, n):
    """The size of the output's axis 0 for a batch of ``n``: ``n``, unless the layer's
    output has an axis 0 of its own (``"output_batch"``: a stored array, a shape)."""
    return opts["output_batch"](n) if "output_batch" in opts else n


def _batched(shape, n):
    return [(n,) + s for s in shape] if isinstance(shape, list) else (n,) + shape


def _as_list(a):
    return a if isinstance(a, list) else [a]


def _jsonable(cfg):
    return json.loads(json.dumps(cfg))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls,example", _cases())
def test_layer_contract(cls, example, dtype):
    kwargs, in_shape, opts = _unpack(example)
    rng = np.random.default_rng(0)
    N = 3
    x = _input(opts, rng, _batched(in_shape, N), dtype)

    layer = cls(**kwargs, dtype=dtype)
    expected_out = layer.output_shape(in_shape)  # works before build (summary before data)
    layer.build(in_shape, np.random.default_rng(1))
    assert layer.built and layer.input_shape == in_shape
    assert layer.output_shape(in_shape) == tuple(expected_out)

    # ---- params / grads: same keys, shapes, dtypes; count_params
    assert set(layer.params) == set(layer.grads)
    for k, p in layer.params.items():
        assert p.dtype == np.dtype(dtype), (k, p.dtype)
        assert layer.grads[k].shape == p.shape and layer.grads[k].dtype == p.dtype, k
    for k, b in layer.buffers.items():
        assert b.dtype.kind != "f" or b.dtype == np.dtype(dtype), (k, b.dtype)
    expected_count = opts.get("count_params", sum(p.size for p in layer.params.values()))
    assert layer.count_params() == expected_count

    # ---- forward: shape and dtype
    y = layer.forward(x, training=True)
    assert isinstance(y, np.ndarray)
    assert y.shape == (_out_batch(opts, N),) + tuple(expected_out), (y.shape, expected_out)
    assert y.dtype == np.dtype(dtype), y.dtype

    # ---- backward: leaves params untouched, fills grads in place, overwrites
    params_before = {k: v.copy() for k, v in layer.params.items()}
    param_ids = {k: id(v) for k, v in layer.params.items()}
    grad_ids = {k: id(v) for k, v in layer.grads.items()}
    for g in layer.grads.values():
        g.fill(np.nan)  # every gradient must be written by backward
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy)
    for d, xi in zip(_as_list(dx), _as_list(x)):
        assert isinstance(d, np.ndarray) and d.shape == xi.shape and d.dtype == np.dtype(dtype)
    for k in layer.params:
        np.testing.assert_array_equal(layer.params[k], params_before[k], err_msg=k)
        assert id(layer.params[k]) == param_ids[k], f"param {k} replaced, not updated in place"
        assert id(layer.grads[k]) == grad_ids[k], f"grad {k} replaced, not filled in place"
        assert np.isfinite(layer.grads[k]).all(), f"grad {k} not fully written"
        assert layer.grads[k].dtype == np.dtype(dtype)
    grads1 = {k: v.copy() for k, v in layer.grads.items()}
    dx2 = layer.backward(dy)
    for a, b in zip(_as_list(dx2), _as_list(dx)):
        np.testing.assert_array_equal(a, b)
    for k in layer.grads:
        np.testing.assert_array_equal(layer.grads[k], grads1[k], err_msg=f"{k} accumulated")

    # ---- returned arrays are fresh: a later call must not overwrite them
    y_old = layer.forward(x, training=True)
    dx_old = _as_list(layer.backward(dy))
    y_keep, dx_keep = y_old.copy(), [d.copy() for d in dx_old]
    x2 = _input(opts, np.random.default_rng(5), _batched(in_shape, N), dtype)
    layer.forward(x2, training=True)
    layer.backward(2 * dy)
    np.testing.assert_array_equal(y_old, y_keep, err_msg="forward output was overwritten")
    for d, k in zip(dx_old, dx_keep):
        np.testing.assert_array_equal(d, k, err_msg="backward dx was overwritten")

    # ---- need_input_grad=False: returns None, still fills the parameter gradients
    layer.need_input_grad = False
    layer.forward(x, training=True)
    none = layer.backward(dy)
    assert none is None or all(d is None for d in none)
    for k in layer.grads:
        np.testing.assert_allclose(layer.grads[k], grads1[k], rtol=1e-6, err_msg=k)
    layer.need_input_grad = True

    # ---- wrong dtype is refused, not silently coerced
    other = np.float64 if np.dtype(dtype) == np.float32 else np.float32
    with pytest.raises((TypeError, ValueError)):
        layer.forward([a.astype(other) for a in x] if isinstance(x, list) else x.astype(other))

    # ---- config round trip (through JSON) and same output with copied weights
    cfg = layer.get_config()
    json.dumps(cfg)  # raises if not JSON-serialisable
    assert cfg.get("dtype") == np.dtype(dtype).name
    clone = cls.from_config(_jsonable(cfg))
    assert _jsonable(clone.get_config()) == _jsonable(cfg)
    clone2 = deserialize(_jsonable(serialize(layer)))
    assert type(clone2) is cls and _jsonable(clone2.get_config()) == _jsonable(cfg)
    clone.build(in_shape, np.random.default_rng(2))
    assert set(clone.params) == set(layer.params) and set(clone.buffers) == set(layer.buffers)
    for k in layer.params:
        clone.params[k][...] = layer.params[k]
    for k in layer.buffers:
        clone.buffers[k][...] = layer.buffers[k]
    np.testing.assert_array_equal(clone.forward(x), layer.forward(x))


@pytest.mark.parametrize("cls,example", _cases())
def test_layer_builds_lazily_on_first_call(cls, example):
    kwargs, in_shape, opts = _unpack(example)
    x = _input(opts, np.random.default_rng(0), _batched(in_shape, 2), "float32")
    layer = cls(**kwargs)
    if cls.__name__ == "InputLayer":
        pytest.skip("an InputLayer is built by its constructor")
    assert not layer.built
    y = layer(x)
    assert layer.built and layer.input_shape == in_shape
    assert y.shape == (_out_batch(opts, 2),) + tuple(layer.output_shape(in_shape))
    assert y.dtype == np.float32


@pytest.mark.parametrize("cls,example", _cases())
def test_layer_rejects_wrong_input_shape(cls, example):
    kwargs, in_shape, opts = _unpack(example)
    layer = cls(**kwargs)
    layer.build(in_shape, np.random.default_rng(0))
    if isinstance(in_shape, list):
        bad = [(s[0] + 1,) + s[1:] for s in in_shape]
        with pytest.raises(ValueError, match="shape"):
            layer.forward([np.zeros((2,) + s, np.float32) for s in bad])
        return
    bad = (in_shape[0] + 1,) + in_shape[1:]
    with pytest.raises(ValueError, match="shape"):
        layer.forward(np.zeros((2,) + bad, np.float32))
