"""Gradient arrays are made on first use (``numcnn.layers.grads``): a model that only
predicts allocates none, training makes each once and fills it in place, and what the
optimizer and the weights export see is unchanged."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn.layers import BatchNorm2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU
from numcnn.layers.grads import GradDict
from numcnn.models import Sequential, torchvision_state_dict


def net(seed=0):
    return Sequential([Conv2D(4, 3, padding=1), BatchNorm2D(), ReLU(), MaxPool2D(2),
                       Flatten(), Dense(3)], input_shape=(2, 6, 6), seed=seed)


def made(model):
    return {model.layer_name(lay): lay.grads.made() for lay in model.leaf_layers()
            if lay.params}


def test_predict_makes_no_gradient_arrays():
    model = net()
    assert all(v == [] for v in made(model).values())
    assert {k: set(lay.grads) for k, lay in
            ((model.layer_name(lay), lay) for lay in model.leaf_layers())} == {
        model.layer_name(lay): set(lay.params) for lay in model.leaf_layers()}
    model.predict(np.random.default_rng(0).standard_normal((5, 2, 6, 6)).astype(np.float32))
    assert all(v == [] for v in made(model).values())


def test_training_makes_each_gradient_once_and_fills_it_in_place():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 2, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    model = net()
    model.compile(optimizer=numcnn.optimizers.SGD(lr=0.1, momentum=0.9),
                  loss="softmax_cross_entropy")
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert all(sorted(v) == sorted(model.get_layer(k).params) for k, v in made(model).items())
    ids = {q: id(g) for q, g in model.trainable_grads().items()}
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert {q: id(g) for q, g in model.trainable_grads().items()} == ids
    # the same numbers as a model whose gradients were all made before training
    twin = net()
    for lay in twin.leaf_layers():
        for k in lay.params:
            lay.grads[k]  # noqa: B018 - made up front, as before gradients were lazy
    twin.compile(optimizer=numcnn.optimizers.SGD(lr=0.1, momentum=0.9),
                 loss="softmax_cross_entropy")
    twin.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    for (q, p), (_, p2) in zip(model.trainable_params().items(),
                               twin.trainable_params().items()):
        np.testing.assert_array_equal(p, p2, err_msg=q)


def test_an_unmade_gradient_reads_as_zeros():
    model = net()
    grads = model.trainable_grads()
    assert all(g.shape == p.shape and not g.any()
               for g, p in zip(grads.values(), model.trainable_params().values()))
    exported = torchvision_state_dict(model, grads=True)
    assert len(exported) == 6 and not any(v.any() for v in exported.values())


def test_grad_dict_follows_its_parameters():
    params = {"W": np.ones((2, 3), np.float32)}
    grads = GradDict(params)
    g = grads["W"]
    assert g.dtype == np.float32 and g.shape == (2, 3) and grads["W"] is g
    params["b"] = np.ones(4)
    assert list(grads) == ["W", "b"] and len(grads) == 2 and grads.made() == ["W"]
    with pytest.raises(KeyError):
        grads["nope"]
    dense = Dense(3)
    dense.build((4,))
    dense.grads["W"][...] = 1.0
    dense.build((5,))  # rebuilt with another input size: no stale (4, 3) gradient
    assert dense.grads["W"].shape == (5, 3) and not dense.grads["W"].any()
