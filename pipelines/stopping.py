"""SIGINT and SIGTERM as an exception, for the moments before a runner watches them.

A command that is asked to stop while it imports, loads or prepares should stop
there, clean up on the way out (``finally`` blocks run), and exit with the usual
``128 + signal`` code (130 for SIGINT, 143 for SIGTERM) rather than die with a
traceback. :func:`stop_on_signals` turns both signals into :class:`Stopped`, a
:class:`KeyboardInterrupt`, for as long as it is entered, and puts the previous
handlers back when it is left. An asyncio signal receiver opened inside takes the
signals over, and leaves the default handlers when it closes: enter again around
the code that follows it.

This module imports nothing heavy, so a command line can enter it first.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["Stopped", "stop_on_signals", "stopped_in"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; :attr:`exit_code` is what the process should exit with."""

    def __init__(self, signum: int) -> None:
        self.signal = signal.Signals(signum)
        super().__init__(self.signal.name)

    @property
    def exit_code(self) -> int:
        """``128 + signal``, as a shell reports a process ended by the signal."""
        return 128 + int(self.signal)


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Raise :class:`Stopped` on SIGINT or SIGTERM while entered (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_stopped) for s in _SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stopped_in(exc: BaseException) -> Stopped | None:
    """The :class:`Stopped` that ``exc`` is or holds (in exception groups), if any."""
    if isinstance(exc, Stopped):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = stopped_in(inner)
            if found is not None:
                return found
    return None
