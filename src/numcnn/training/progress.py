"""Progress display for ``fit``: a live bar on a terminal, one line per epoch otherwise.

Keras's meanings of ``verbose``: 0 silent, 1 live bar, 2 one line per epoch, ``"auto"`` → 1
when stderr is a terminal, else 2.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def resolve_verbose(verbose: Any, stream: TextIO | None = None) -> int:
    """Map ``"auto"``/0/1/2 to 0, 1 or 2, raising on anything else."""
    if verbose == "auto":
        stream = stream or sys.stderr
        return 1 if getattr(stream, "isatty", lambda: False)() else 2
    if verbose in (0, 1, 2) and not isinstance(verbose, bool):
        return int(verbose)
    raise ValueError(f"verbose must be 'auto', 0, 1 or 2; received verbose={verbose!r}")


def format_logs(logs: dict[str, float]) -> str:
    """``loss: 0.1234 - accuracy: 0.9876 - lr: 0.0005`` (rates in 3 significant digits)."""
    return " - ".join(f"{k}: {v:.3g}" if k == "lr" else f"{k}: {v:.4f}" for k, v in logs.items())


def format_seconds(s: float) -> str:
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}" if s >= 60 else f"{s}s"


class Progress:
    """Prints training progress.

    Args:
        epochs: total epochs. steps: batches per epoch. samples: images per epoch.
        verbose: 0, 1 (live bar on ``bar_stream``) or 2 (one line per epoch on ``line_stream``).
    """

    width = 30
    refresh = 0.1  # seconds between bar redraws

    def __init__(self, epochs: int, steps: int, samples: int, verbose: int,
                 bar_stream: TextIO | None = None, line_stream: TextIO | None = None):
        self.epochs, self.steps, self.samples = epochs, steps, samples
        self.verbose = verbose
        self.bar_stream = bar_stream or sys.stderr
        self.line_stream = line_stream or sys.stdout
        self._t0 = 0.0
        self._last = 0.0

    def epoch_begin(self, epoch: int) -> None:
        self._t0 = self._last = time.perf_counter()
        if self.verbose == 1:
            print(f"Epoch {epoch + 1}/{self.epochs}", file=self.bar_stream, flush=True)

    def batch_end(self, step: int, seen: int, logs: dict[str, float]) -> None:
        if self.verbose != 1:
            return
        now = time.perf_counter()
        if now - self._last < self.refresh and step + 1 < self.steps:
            return
        self._last = now
        elapsed = now - self._t0
        done = (step + 1) / self.steps
        filled = int(self.width * done)
        bar = "=" * max(filled - 1, 0) + (">" if filled < self.width else "=")
        rate = seen / elapsed if elapsed > 0 else 0.0
        eta = elapsed / done - elapsed if done > 0 else 0.0
        text = (f"\r{step + 1}/{self.steps} [{bar:<{self.width}}] - ETA {format_seconds(eta)}"
                f" - {rate:,.0f} img/s - {format_logs(logs)}")
        self.bar_stream.write(text + "\x1b[K")
        self.bar_stream.flush()

    def epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        elapsed = time.perf_counter() - self._t0
        rate = self.samples / elapsed if elapsed > 0 else 0.0
        summary = f"{format_seconds(elapsed)} {rate:,.0f} img/s - {format_logs(logs)}"
        if self.verbose == 1:
            self.bar_stream.write(f"\r{self.steps}/{self.steps} [{'=' * self.width}] - "
                                  f"{summary}\x1b[K\n")
            self.bar_stream.flush()
        elif self.verbose == 2:
            print(f"Epoch {epoch + 1}/{self.epochs} - {summary}", file=self.line_stream,
                  flush=True)
