"""Models and servers for the page's tests: untrained LeNet-5s saved as ``numcnn train``
saves them (no data needed), a LeNet-5 trained briefly on MNIST once per session (when
``NUMCNN_DATA_DIR`` is set), and a real waitress server on a free port."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from numcnn import models, optimizers
from numcnn.io.saving import save_model

pytest.importorskip("flask")
pytest.importorskip("waitress")

MNIST_DIR = os.environ.get("NUMCNN_DATA_DIR")
#: set by CI (.ci/run): the browser test must run there, never skip
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def lenet5_file(tmp_path_factory):
    """The modern LeNet-5, untrained, saved as `numcnn train --model lenet5` does."""
    path = tmp_path_factory.mktemp("serve") / "lenet5.npz"
    save_model(models.get("lenet5", seed=3), path,
               extra={"pixel_scale": 1 / 255, "epochs": 0, "dataset": "mnist"})
    return path


@pytest.fixture(scope="session")
def lenet1998_file(tmp_path_factory):
    """LeNet-5 (1998), untrained (RBF prototypes from its stylised digits), saved as
    `numcnn train --model lenet5-1998` does."""
    path = tmp_path_factory.mktemp("serve") / "lenet5_1998.npz"
    save_model(models.get("lenet5-1998", seed=3), path,
               extra={"pixel_scale": 1.0, "epochs": 0, "dataset": "mnist", "output": "rbf"})
    return path


@pytest.fixture(scope="session")
def mnist_test():
    if not MNIST_DIR:
        if IN_CI:
            pytest.fail("CI must have MNIST: NUMCNN_DATA_DIR is not set")
        pytest.skip("MNIST not available: set NUMCNN_DATA_DIR to the IDX files")
    from numcnn import datasets

    (x, y), (xt, yt) = datasets.load("mnist", data_dir=MNIST_DIR)
    return x, y, xt, yt


@pytest.fixture(scope="session")
def trained_lenet5_file(mnist_test, tmp_path_factory):
    """LeNet-5 after one epoch on 20,000 MNIST images (about 97 % on the test set; a few
    seconds), saved with `numcnn train`'s metadata."""
    x, y, _, _ = mnist_test
    model = models.get("lenet5", seed=0)
    model.compile(optimizer=optimizers.get("sgd", lr=0.05, momentum=0.9),
                  loss="softmax_cross_entropy")
    model.fit(x[:20000, None].astype(np.float32) / 255, y[:20000], batch_size=64, epochs=1,
              verbose=0, seed=0)
    path = tmp_path_factory.mktemp("serve") / "lenet5_trained.npz"
    save_model(model, path, extra={"pixel_scale": 1 / 255, "epochs": 1, "dataset": "mnist"})
    return path


class Running:
    """A waitress server for an engine, polled in a thread until :meth:`close`, which
    closes it in that same thread (closing a waitress server from another thread while its
    loop polls its sockets fails); ``.url`` its address."""

    def __init__(self, engine, **kwargs):
        from numcnn.serve.command import make_server

        self.server = make_server(engine, "127.0.0.1", 0, **kwargs)
        self.url = self.server.url
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        s = self.server
        while not self.stop.is_set():
            s.asyncore.loop(timeout=0.05, map=s._map, count=1)
        s.task_dispatcher.shutdown()
        s.close()
        for channel in list(s._map.values()):
            channel.close()

    def close(self):
        self.stop.set()
        self.thread.join(timeout=30)


@pytest.fixture
def running():
    """``running(engine, **kwargs)`` starts a server, closed after the test."""
    started = []

    def start(engine, **kwargs):
        started.append(Running(engine, **kwargs))
        return started[-1]

    yield start
    for r in started:
        r.close()
