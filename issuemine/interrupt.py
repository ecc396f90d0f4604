"""Ctrl-C at safe points: long jobs stop between transactions, never inside one.

Inside ``deferred_interrupt()``, the first SIGINT only sets a flag and ``check()`` raises
KeyboardInterrupt at the next safe point (between stored batches, between pages, during waits).
A second SIGINT restores the default behaviour and interrupts at once, for a user who insists.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_requested = threading.Event()


def check() -> None:
    """Raise KeyboardInterrupt if the user asked to stop."""
    if _requested.is_set():
        raise KeyboardInterrupt


def _handler(signum: int, frame: FrameType | None) -> None:
    _requested.set()
    signal.signal(signal.SIGINT, signal.default_int_handler)


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are only delivered to the main thread
        return
    previous = signal.signal(signal.SIGINT, _handler)
    _requested.clear()
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested.clear()
