"""``fit(distribute=...)`` without MPI: the choices, their errors, and Dropout's shard rule."""

from __future__ import annotations

import numpy as np
import pytest

from numcnn.layers import Dropout
from numcnn.training import distributed


def test_local_k_forks_and_none_is_one_process(monkeypatch):
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE"):
        monkeypatch.delenv(name, raising=False)
    pending = distributed.resolve("local:2")
    assert pending.size == 2  # forked by fit itself
    assert distributed.resolve("local:1") is None
    assert distributed.resolve(None) is None
    assert distributed.resolve(None, 1) is None  # processes=1: nothing changes
    with pytest.warns(DeprecationWarning, match="use distribute='local:3'"):
        assert distributed.resolve(None, 3).size == 3
    monkeypatch.setenv("PMI_SIZE", "1")  # mpiexec -n 1: one process, no MPI needed
    assert distributed.resolve(None) is None


@pytest.mark.parametrize("bad", ["mpi:2", "local", "local:0", "local:x", 2, "gpu"])
def test_bad_choices_name_what_is_accepted(bad):
    with pytest.raises(ValueError, match="distribute must be 'mpi', 'local:K'"):
        distributed.resolve(bad, None)


def test_local_and_processes_are_not_given_together():
    with pytest.raises(ValueError, match="processes=3. is distribute='local:3'; received "
                                         "distribute='local:2'"):
        distributed.resolve("local:2", 3)


def test_a_last_batch_smaller_than_the_ranks_is_refused_up_front():
    distributed.check_batches(21, 8, 3)  # 8, 8, 5: every rank gets a sample
    with pytest.raises(ValueError, match="a batch of 1 sample"):
        distributed.check_batches(17, 8, 2)


def test_dropout_shard_keeps_the_rows_of_the_global_mask():
    """A rank's rows of a Dropout mask are the same rows one process draws for the whole
    batch (reference: a copy of the generator drawing the full mask)."""
    x = np.ones((7, 5), np.float32)
    whole = Dropout(0.4, seed=9)
    whole.build((5,))
    full = whole.forward(x, training=True)
    for lo, hi in [(0, 3), (3, 5), (5, 7)]:
        part = Dropout(0.4, seed=9)
        part.build((5,))
        part.batch_shard = (lo, hi, 7)
        np.testing.assert_array_equal(part.forward(x[lo:hi], training=True), full[lo:hi])
    part.batch_shard = (0, 3, 7)
    with pytest.raises(ValueError, match="expects 3 rows; received 4"):
        part.forward(x[:4], training=True)


@pytest.mark.parametrize("bad", ["abc", "0", "-1", "nan", "inf"])
def test_a_bad_timeout_is_refused_before_forking(bad, monkeypatch):
    import os

    import numcnn
    from numcnn.layers import Dense, Flatten

    monkeypatch.setenv("NUMCNN_MPI_TIMEOUT", bad)
    m = numcnn.Sequential([Flatten(), Dense(3)], input_shape=(1, 4, 4), seed=0)
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    with pytest.raises(ValueError, match=f"NUMCNN_MPI_TIMEOUT='{bad}': expected a positive"):
        m.fit(np.zeros((8, 1, 4, 4)), np.zeros(8, np.int64), batch_size=4, verbose=0,
              distribute="local:2")
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)
