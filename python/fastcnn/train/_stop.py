"""Ctrl-C while fitting: the first press asks the loop to stop after the current iteration
(so the state saved is consistent); a second press interrupts at once. Only the signal
handling; what is saved then is the trainer's decision.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any


class StopFlag:
    """A context manager installing the SIGINT handler (main thread only); ``requested``
    turns true on the first Ctrl-C."""

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None
        self._installed = False

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nfastcnn: Ctrl-C: stopping after the current iteration (press again to abort)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> StopFlag:
        # Signal handlers can only be set from the main thread; elsewhere SIGINT never arrives.
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._old)
            self._installed = False
