"""BLAS thread limits, read back through threadpoolctl (an independent observer)."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn import threads

threadpoolctl = pytest.importorskip("threadpoolctl")


def blas_count() -> int:
    infos = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    if not infos:
        pytest.skip("no BLAS library visible to threadpoolctl")
    return infos[0]["num_threads"]


@pytest.fixture
def two_threads():
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        if blas_count() != 2:
            pytest.skip("cannot set BLAS to 2 threads here")
        yield


def test_blas_threads_limits_and_restores(two_threads):
    with threads.blas_threads(1):
        assert blas_count() == 1
    assert blas_count() == 2
    with threads.blas_threads(None):
        assert blas_count() == 2


def test_ctypes_path_without_threadpoolctl(two_threads):
    funcs = threads._openblas_functions()
    if funcs is None:
        pytest.skip("NumPy is not linked to OpenBLAS here")
    get, _ = funcs
    assert get() == 2
    with threads.blas_threads(1):
        assert get() == 1 and blas_count() == 1
    assert get() == 2


def test_fit_runs_with_the_configured_count(two_threads):
    from numcnn.layers import Dense, Flatten
    from numcnn.training import Callback

    seen = []

    class Probe(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(blas_count())

    m = numcnn.Sequential([Flatten(), Dense(2)], input_shape=(1, 2, 2), seed=0)
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    x = np.zeros((128, 1, 2, 2), np.float32)
    y = np.zeros(128, np.int64)
    m.fit(x, y, batch_size=64, verbose=0, callbacks=[Probe()])
    assert seen == [1, 1]  # the default: one BLAS thread
    with threads.num_threads(2):
        seen.clear()  # one process whose BLAS uses both threads (never forks)
        m.fit(x, y, batch_size=64, verbose=0, callbacks=[Probe()])
        assert seen == [2, 2]
        seen.clear()  # two data-parallel processes of one BLAS thread each
        m.fit(x, y, batch_size=64, verbose=0, callbacks=[Probe()], distribute="local:2")
        assert seen == [1, 1]
    assert threads.get_num_threads() == 1
    assert blas_count() == 2  # restored after fit


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_are_rejected(bad):
    with pytest.raises(ValueError, match="positive int or None; received"):
        numcnn.set_num_threads(bad)


def test_environment_variable(monkeypatch):
    monkeypatch.setenv("NUMCNN_NUM_THREADS", "3")
    assert threads._from_env() == 3
    monkeypatch.setenv("NUMCNN_NUM_THREADS", "none")
    assert threads._from_env() is None
    monkeypatch.setenv("NUMCNN_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="NUMCNN_NUM_THREADS must be"):
        threads._from_env()
