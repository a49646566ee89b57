"""``numcnn.datasets.load(name, ...)``: the uniform entry point the command line uses."""

from __future__ import annotations

import pytest

from numcnn import datasets
from numcnn.datasets import _fetch, cifar10, fashion_mnist, mnist


def test_names_modules_and_shared_errors():
    assert datasets.DATASETS == {"mnist": mnist, "fashion_mnist": fashion_mnist,
                                 "cifar10": cifar10}
    assert datasets.DownloadError is mnist.DownloadError is _fetch.DownloadError
    assert issubclass(datasets.DownloadError, OSError)
    assert issubclass(datasets.DataError, ValueError)
    assert mnist.CLASS_NAMES == tuple("0123456789")
    for name, module in datasets.DATASETS.items():
        assert datasets.class_names(name) == module.CLASS_NAMES
        assert len(module.CLASS_NAMES) == 10


@pytest.mark.parametrize("name, module", [("mnist", mnist), ("fashion_mnist", fashion_mnist),
                                          ("Fashion-MNIST", fashion_mnist),
                                          ("cifar10", cifar10)])
def test_load_calls_the_module_at_call_time(monkeypatch, name, module):
    calls = []
    monkeypatch.setattr(module, "load_data", lambda *a, **k: calls.append((a, k)) or "data")
    assert datasets.load(name, "/data", False, timeout=3.0) == "data"
    assert calls == [(("/data", False), {"timeout": 3.0})]


@pytest.mark.parametrize("name", ["imagenet", "cifar100", "", "mnist2"])
def test_unknown_names_are_refused_with_the_list(name):
    with pytest.raises(ValueError, match=f"unknown dataset {name!r}; expected one of 'mnist', "
                                         "'fashion_mnist', 'cifar10'"):
        datasets.load(name)
    with pytest.raises(ValueError, match="unknown dataset"):
        datasets.class_names(name)
