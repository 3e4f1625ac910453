"""Foreground work: a short computation someone is waiting for, which background work yields to.

On a machine with few cores, the synthesis of a reply's first piece is what the
user waits for, while the language model writes the rest of the reply, which
nobody will hear for another second: on two cores the two compete and the first
audio comes later. A stage wraps such work in :meth:`Foreground.running`; work
that can wait calls :meth:`Foreground.wait_clear` between its steps (the language
model, between two tokens) and waits, at most a given time, while any runs.

One per process: :data:`FOREGROUND`. Everything here is thread-safe; the waits
block a worker thread, never the event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["FOREGROUND", "Foreground"]


class Foreground:
    """Counts the foreground computations running; lets background work wait for none."""

    def __init__(self) -> None:
        """Nothing runs in the foreground yet."""
        self._cond = threading.Condition()
        self._running = 0
        self.waited_s = 0.0
        """Seconds background work has spent waiting, in total (a diagnostic)."""

    @contextmanager
    def running(self) -> Iterator[None]:
        """Mark the block as foreground work for its duration (nestable, any thread)."""
        with self._cond:
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                if not self._running:
                    self._cond.notify_all()

    def active(self) -> bool:
        """True while some foreground work runs."""
        with self._cond:
            return self._running > 0

    def wait_clear(self, limit_s: float) -> float:
        """Block while foreground work runs, ``limit_s`` at most; the seconds waited."""
        with self._cond:
            if not self._running:
                return 0.0
            began = time.perf_counter()
            self._cond.wait_for(lambda: not self._running, timeout=max(0.0, limit_s))
            waited = time.perf_counter() - began
            self.waited_s += waited
            return waited


FOREGROUND = Foreground()
