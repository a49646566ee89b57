"""The draw-a-digit page: ``numcnn serve model.npz`` (the ``web`` extra: Flask, waitress).

:mod:`.engine` runs numcnn's forward pass on a drawing, an upload or an array and makes
every layer's activations compact for the browser (no web framework needed);
:mod:`.app` is the Flask application (the page and the JSON API of ``docs/serve.md``);
:mod:`.command` the command and its waitress server. The page itself is
``static/index.html``, ``static/page.js`` and ``static/page.css``.
"""

from .engine import Engine, RequestError, decode, encode

__all__ = ["Engine", "RequestError", "decode", "encode"]
