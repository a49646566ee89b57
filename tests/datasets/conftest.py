"""Fixtures for the dataset loaders' tests, in the style of ``test_mnist.py`` (which keeps its
own copies): a local HTTP server on 127.0.0.1 that records the paths requested, and a URL
on which nothing listens. No test here touches the real cache or the internet.
"""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from pathlib import Path

import pytest


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class LocalServer(http.server.ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins the handler threads
    requests: list[str]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def serve():
    """Factory: ``serve(directory) -> (base_url, server)``; all servers stop at teardown."""
    running: list[tuple[LocalServer, threading.Thread]] = []

    def start(directory: Path) -> tuple[str, LocalServer]:
        handler = functools.partial(_Handler, directory=str(directory))
        server = LocalServer(("127.0.0.1", 0), handler)
        server.requests = []
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}/", server

    yield start
    for server, thread in running:
        server.stop()
        thread.join(timeout=5)


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def dead_url():
    """An http URL on 127.0.0.1 where nothing listens (connections are refused)."""
    return _dead_url()


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """A private cache (``$NUMCNN_HOME``), no data folder, and every dataset's mirror variable
    pointing where nothing listens. Returns the cache root."""
    monkeypatch.delenv("NUMCNN_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("NUMCNN_HOME", str(tmp_path / "home"))
    for var in ("NUMCNN_MNIST_MIRROR", "NUMCNN_FASHION_MNIST_MIRROR", "NUMCNN_CIFAR10_MIRROR"):
        monkeypatch.setenv(var, _dead_url())
    return tmp_path / "home"
