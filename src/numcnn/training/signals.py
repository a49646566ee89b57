"""Stop training cleanly on SIGINT or SIGTERM: at the next batch boundary, state intact.

Inside :func:`stop_on_signals`, the first SIGINT (Ctrl-C) or SIGTERM asks the trainer to
stop after the batch in progress (:meth:`Trainer.request_stop`), so the optimizer step is
whole and the trainer's state says exactly where to continue; the caller can then write a
checkpoint. A second signal interrupts at once (``KeyboardInterrupt``). The previous
handlers are restored on exit. The conventional exit status of a process stopped by a
signal is ``128 + signal number`` (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


class SignalStop:
    """What :func:`stop_on_signals` saw: ``signum`` (None when no signal came)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def name(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        """``128 + signal number`` (0 when no signal came)."""
        return 0 if self.signum is None else 128 + int(self.signum)


@contextlib.contextmanager
def stop_on_signals(model: Any,
                    signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
                    ) -> Iterator[SignalStop]:
    """Within the block, SIGINT/SIGTERM stop ``model``'s training at the next batch.

    Handlers can only be installed from the main thread; elsewhere the block runs with the
    handlers unchanged.
    """
    seen = SignalStop()
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def handler(signum: int, frame: Any) -> None:
        if seen.signum is not None:
            raise KeyboardInterrupt  # a second signal: stop now
        seen.signum = signum
        trainer = getattr(model, "trainer", None)
        if trainer is not None:
            trainer.request_stop(signal.Signals(signum).name)

    before = {s: signal.signal(s, handler) for s in signals}
    try:
        yield seen
    finally:
        for s, h in before.items():
            signal.signal(s, h)
