"""Ctrl-C while fitting: the first press asks the loop to stop after the current iteration
(so the state saved is consistent); a second press interrupts at once. A data-parallel run
also takes SIGUSR1 (mpirun passes it on to every rank; it does not pass SIGINT). Only the
signal handling; what is saved then is the trainer's decision.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any


class StopFlag:
    """A context manager installing the handler of ``signals`` (main thread only);
    ``requested`` turns true on the first of them. ``quiet``: say nothing (ranks but 0)."""

    def __init__(
        self, signals: tuple[signal.Signals, ...] = (signal.SIGINT,), quiet: bool = False
    ) -> None:
        self.requested = False
        self.signals = signals
        self.quiet = quiet
        self._old: dict[signal.Signals, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if not self.quiet:
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            print(
                f"\nfastcnn: {name}: stopping after the current iteration (again to abort)",
                file=sys.stderr,
                flush=True,
            )

    def __enter__(self) -> StopFlag:
        # Signal handlers can only be set from the main thread; elsewhere SIGINT never arrives.
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}
