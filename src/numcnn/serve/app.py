"""The page's web application (Flask, the ``web`` extra): the static page and the JSON API
of ``docs/serve.md`` around an :class:`~numcnn.serve.engine.Engine`.

- ``GET /`` the page; ``GET /static/…`` its script and style;
- ``GET /api/model`` the model's layers and shapes;
- ``POST /api/predict`` a drawing, an upload or an array in, every layer's activations and
  the output out.

Limits: a request body of more than ``max_body`` bytes is refused with 413 before it is
read; each client address may make ``rate`` requests a second to the API (a token bucket
holding ``burst``), then 429 with a ``Retry-After``; every error is a JSON object
``{"error": message, "status": code}``. Only the ``Host`` names in ``hosts`` are served
(403 otherwise: a page on another site cannot reach this one by DNS rebinding).
"""

from __future__ import annotations

import json
import math
import threading
import time
from importlib import resources
from typing import Any

from .engine import Engine, RequestError

#: default request-body limit (a 280×280 drawing as PNG is about 10 kB)
MAX_BODY = 2 * 1024 * 1024
#: default API requests per second per client address, and the bucket size
RATE, BURST = 20.0, 40


def flask() -> Any:
    """The ``flask`` module, or a one-line error saying how to get it."""
    try:
        import flask as module
    except ImportError:
        raise RuntimeError("numcnn serve needs Flask and waitress: pip install 'numcnn[web]'") \
            from None
    return module


class RateLimiter:
    """A token bucket per client: ``burst`` tokens, refilled at ``rate`` a second; a
    request takes one. ``rate <= 0`` turns it off. At most ``clients`` addresses are
    remembered (the longest idle are forgotten first)."""

    def __init__(self, rate: float = RATE, burst: int = BURST, clients: int = 4096):
        self.rate, self.burst, self.clients = float(rate), max(1, int(burst)), clients
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def wait(self, client: str, now: float | None = None) -> float:
        """0 when ``client`` may go on (a token is taken), else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self.lock:
            tokens, last = self.buckets.pop(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self.buckets[client] = (tokens - 1 if wait == 0 else tokens, now)
            while len(self.buckets) > self.clients:  # dicts keep insertion order
                del self.buckets[next(iter(self.buckets))]
        return wait


def create_app(engine: Engine, max_body: int = MAX_BODY, rate: float = RATE,
               burst: int = BURST, hosts: list[str] | None = None) -> Any:
    """The Flask application serving ``engine``.

    Args:
        engine: the model.
        max_body: the largest request body accepted, in bytes (larger: 413).
        rate, burst: the API's rate limit per client address (see :class:`RateLimiter`).
        hosts: the ``Host`` names served (without port), or None for any (a server bound
            to a public address).
    """
    fl = flask()
    static = resources.files("numcnn.serve") / "static"
    app = fl.Flask("numcnn.serve", static_folder=str(static), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = int(max_body)
    app.json.sort_keys = False
    limiter = RateLimiter(rate, burst)
    allowed = None if hosts is None else {h.lower() for h in hosts}

    def error(message: str, status: int, headers: dict | None = None) -> Any:
        response = fl.jsonify({"error": message, "status": status})
        response.status_code = status
        response.headers.update(headers or {})
        return response

    @app.before_request
    def _guard() -> Any:
        host = fl.request.host.rsplit(":", 1)[0] if not fl.request.host.endswith("]") \
            else fl.request.host
        host = host.lower().strip("[]")
        if allowed is not None and host not in allowed:
            return error(f"host {fl.request.host!r} is not served here; open the address "
                         "numcnn serve printed", 403)
        if fl.request.path.startswith("/api/"):
            wait = limiter.wait(fl.request.remote_addr or "?")
            if wait > 0:
                return error(f"too many requests: at most {limiter.rate:g} a second "
                             f"(bursts of {limiter.burst}); retry in {wait:.2f} s", 429,
                             {"Retry-After": str(max(1, math.ceil(wait)))})
        return None

    @app.after_request
    def _headers(response: Any) -> Any:
        response.headers.setdefault(
            "Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; "
            "style-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if fl.request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/")
    def index() -> Any:
        return app.send_static_file("index.html")

    @app.get("/api/model")
    def model() -> Any:
        return fl.jsonify(engine.describe())

    @app.post("/api/predict")
    def predict() -> Any:
        kind = (fl.request.mimetype or "").lower()
        if kind != "application/json":
            return error(f"expected Content-Type application/json; received {kind or 'none'}",
                         415)
        raw = fl.request.get_data(cache=False)  # past MAX_CONTENT_LENGTH: 413 (below)
        try:
            payload = json.loads(raw)
        except (ValueError, RecursionError) as e:
            return error(f"the body is not valid JSON ({type(e).__name__}: "
                         f"{str(e)[:80]})", 400)
        try:
            return fl.jsonify(engine.predict(payload))
        except RequestError as e:
            return error(str(e), e.status)

    @app.errorhandler(413)
    def too_large(e: Any) -> Any:
        return error(f"the request body is larger than the {int(max_body):,} bytes accepted",
                     413)

    @app.errorhandler(404)
    def not_found(e: Any) -> Any:
        return error(f"no such page or API: {fl.request.path}", 404)

    @app.errorhandler(405)
    def not_allowed(e: Any) -> Any:
        return error(f"{fl.request.method} is not allowed on {fl.request.path}", 405)

    @app.errorhandler(400)
    def bad(e: Any) -> Any:
        return error(f"bad request: {getattr(e, 'description', e)}", 400)

    @app.errorhandler(Exception)
    def internal(e: Any) -> Any:  # never a crash: one JSON line, the server goes on
        code = getattr(e, "code", None)
        if isinstance(code, int) and 400 <= code < 600:
            return error(str(getattr(e, "description", e)), code)
        app.logger.exception("numcnn serve: internal error")
        return error(f"internal error: {type(e).__name__}: {e}", 500)

    return app
