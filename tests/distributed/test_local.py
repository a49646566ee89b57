"""``fit(distribute="local:K")``: K symmetric forked processes (shared-memory allreduce)
equal one process after every step; the negative control; a failing process."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from mpi_equal import Record, data, dense_model, optimizer, trainer_params

import numcnn
from numcnn.training import Callback


def steps(distribute, opt, case="dense", no_allreduce=False):
    from mpi_equal import conv_model

    make = conv_model if case == "resnet" else dense_model
    model = make(seed=1, optimizer=optimizer(opt))
    model.trainer_params = lambda: trainer_params(model)
    rec = Record(no_allreduce)
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=2, seed=5, verbose=0, callbacks=[rec],
              distribute=distribute, validation_data=(x[:7], y[:7]))
    return np.array(rec.steps), model.history.history


@pytest.mark.parametrize("case", ["dense", "resnet"])
@pytest.mark.parametrize("k", [2, 3])
def test_every_step_equals_one_process(k, case):
    """dense: Dropout, an uneven last batch; resnet: SyncBatchNorm2D; SGD and Adam."""
    for opt in ("sgd", "adam"):
        got, hist = steps(f"local:{k}", opt, case)
        ref, ref_hist = steps("local:1", opt, case)
        assert len(got) == 6
        assert np.abs(got - ref).max() <= 1e-12
        assert max(abs(hist[key][-1] - ref_hist[key][-1]) for key in ref_hist) <= 1e-12


def test_negative_control_without_the_allreduce():
    got, _ = steps("local:2", "sgd", no_allreduce=True)
    ref, _ = steps("local:1", "sgd")
    assert np.abs(got - ref).max() > 1e-3


class Boom(Callback):
    def on_batch_end(self, batch, logs=None):
        if self.model.trainer.rank == 1 and batch == 1:
            raise RuntimeError("boom")


def test_a_failing_process_stops_the_run_and_leaves_no_process(capfd):
    model = dense_model(seed=1, optimizer=optimizer("sgd"))
    x, y = data()
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="^another local data-parallel process failed: "
                                           "rank 1: RuntimeError: boom$"):
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[Boom()],
                  distribute="local:2")
    assert time.monotonic() - start < 30
    assert capfd.readouterr().err == ""  # the parent's error says it all, once
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # every forked process was collected


def test_bad_models_are_refused_before_forking():
    model = numcnn.Sequential([numcnn.layers.Flatten(), numcnn.layers.Dense(3)],
                              input_shape=(2, 5, 5), dtype="float64")
    model.compile(optimizer="lbfgs", loss="softmax_cross_entropy")
    x, y = data()
    with pytest.raises(ValueError, match=r"fit\(distribute='local:2'\): an optimizer that"):
        model.fit(x, y, batch_size=8, verbose=0, distribute="local:2")
