"""``numcnn serve model.npz``: the page on a local web server (waitress, the ``web`` extra).

    numcnn serve model.npz                 # http://127.0.0.1:8000/
    numcnn serve model.npz --port 0        # a free port, printed
    numcnn serve model.npz --host 0.0.0.0  # reachable from other machines (a warning)
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from typing import Any, Callable

from .app import BURST, MAX_BODY, RATE

LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1"]
#: waitress reads bodies up to this much beyond ``max_body``, so that Flask answers them
#: with a JSON 413; waitress refuses larger ones itself (413, plain text) before reading
SLACK = 1024 * 1024
#: the most server threads ``--threads`` may ask for (each is an OS thread with its stack)
MAX_THREADS = 256


def add_parser(sub: Any, number: Callable[..., Any]) -> None:
    """Register ``serve`` on the command line's subparsers (``number`` is its checker of
    positive numbers)."""
    v = sub.add_parser("serve", help="a local page: draw a digit and watch every layer",
                       description="Serve a page where you draw a digit (or upload an image) "
                                   "and see the model's input, every layer's feature maps "
                                   "and its output, computed by numcnn. JSON API: "
                                   "docs/serve.md. Needs pip install 'numcnn[web]'.")
    v.add_argument("path", help="model file written by `numcnn train --output`")
    v.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    v.add_argument("--port", type=_port(number(int, "--port", allow_zero=True)), default=8000,
                   help="port (default 8000; 0 picks a free one)")
    v.add_argument("--rate-limit", type=number(float, "--rate-limit", allow_zero=True),
                   default=RATE, help=f"API requests per second per client (default {RATE:g}, "
                                      f"bursts of {BURST}; 0 = no limit)")
    v.add_argument("--max-body", type=number(int, "--max-body"), default=MAX_BODY,
                   help=f"largest request body in bytes (default {MAX_BODY:,})")
    v.add_argument("--threads", type=_at_most(number(int, "--threads"), "--threads",
                                              MAX_THREADS), default=4,
                   help=f"server threads (default 4, at most {MAX_THREADS}; forward passes run "
                        "one at a time)")


def _port(parse: Callable[[str], int]) -> Callable[[str], int]:
    """``--port``: ``parse`` (a non-negative int), then at most 65535."""

    def port(text: str) -> int:
        value = parse(text)
        if value > 65535:
            raise argparse.ArgumentTypeError(f"--port must be an int from 0 to 65535; "
                                             f"received {text!r}")
        return value
    return port


def _at_most(parse: Callable[[str], int], name: str, top: int) -> Callable[[str], int]:
    def bounded(text: str) -> int:
        value = parse(text)
        if value > top:
            raise argparse.ArgumentTypeError(f"{name} must be at most {top}; received {text!r}")
        return value
    return bounded


def _check_host(host: str) -> None:
    """Refuse an empty host (waitress would listen on every interface) and a name that does
    not resolve, naming it, before the model is loaded."""
    if not host.strip():
        raise ValueError("--host is empty; expected an address such as 127.0.0.1 (this "
                         "machine only) or 0.0.0.0 (every interface)")
    try:
        socket.getaddrinfo(host.strip("[]"), None)
    except (socket.gaierror, UnicodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise ValueError(f"--host {host!r}: not an address or a name this machine can "
                         f"resolve ({reason})") from None


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_bindable(host: str, port: int) -> None:
    """Bind (and close) a socket on every address ``host`` resolves to, as waitress will:
    a port in use or an address that is not this machine's is an ``OSError`` naming host
    and port — before waitress, which leaves its half-made sockets open when it fails."""
    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise OSError(f"cannot listen on {host} port {port}: {reason}") from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                s.bind(address)
            except OSError as e:
                raise OSError(f"cannot listen on {host} port {port}: {e.strerror or e}") \
                    from None


def make_server(engine: Any, host: str = "127.0.0.1", port: int = 0, threads: int = 4,
                max_body: int = MAX_BODY, rate: float = RATE, burst: int = BURST) -> Any:
    """A waitress server for ``engine`` (not started: call ``.run()``; ``.close()`` stops
    it); ``server.url`` is the page's address (the port chosen when ``port`` is 0)."""
    from .app import create_app

    try:
        from waitress.server import create_server
    except ImportError:
        raise RuntimeError("numcnn serve needs Flask and waitress: pip install 'numcnn[web]'") \
            from None
    _check_bindable(host, port)
    hosts = LOOPBACK_NAMES if _loopback(host) else None
    app = create_app(engine, max_body=max_body, rate=rate, burst=burst, hosts=hosts)
    try:
        server = create_server(app, host=host, port=port, threads=threads,
                               max_request_body_size=max_body + SLACK, ident="numcnn",
                               clear_untrusted_proxy_headers=True)
    except (OSError, ValueError) as e:  # a port in use, an address not of this machine, …
        reason = getattr(e, "strerror", None) or str(e)
        raise OSError(f"cannot listen on {host} port {port}: {reason}") from None
    bound = server.effective_port
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    server.url = f"http://{shown}:{bound}/"
    return server


def cmd_serve(args: argparse.Namespace) -> int:
    """Load the model, print the address, serve until Ctrl-C."""
    from .engine import Engine

    _check_host(args.host)
    engine = Engine.from_file(args.path)
    server = make_server(engine, args.host, args.port, args.threads, args.max_body,
                         args.rate_limit)
    if not _loopback(args.host):  # listening: the warning is true now
        print(f"numcnn: warning: serving on {args.host}: anyone who can reach this machine "
              "can use the page and its API (no authentication, no TLS)", file=sys.stderr)
    print(f"numcnn: serving {engine.name} ({len(engine.layers)} layers) at {server.url} "
          "(Ctrl-C stops)", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
