"""A few llama.cpp contexts of one model, lent one reply at a time.

A ``Llama`` object is one context with one KV cache: two threads may not generate
with it at once. With one object per process, conversations that end a turn at
about the same time queue for it, and each of them re-evaluates its whole prompt
because the one before left another conversation's tokens in the cache. A
:class:`LlamaPool` holds up to ``size`` contexts of the same model file (the
weights are memory-mapped and shared; each extra context costs its own KV cache
and compute buffers, ~80 MiB of anonymous memory for SmolLM2-135M at ``n_ctx``
2048, though the RSS grows by ~160 MiB because the second mapping of the file
counts again):

- :meth:`LlamaPool.take` lends a free context, preferring the one the caller used
  last (its cache still holds that conversation's prompt), else the one idle the
  longest; when none is free and fewer than ``size`` exist, it loads one more
  (so a process that never answers two turns at once never holds a second);
  otherwise it waits for one to be given back, and gives up once ``stop`` is set;
- :meth:`LlamaPool.give` returns it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["LlamaPool"]


class LlamaPool:
    """Up to ``size`` contexts made by ``load()``; the first is made at once."""

    def __init__(self, load: Callable[[], Any], size: int) -> None:
        """Load the first context now; the others when replies overlap."""
        if size < 1:
            raise ValueError(f"a llama pool needs at least one context, got size={size}")
        self.size = size
        self._load = load
        first = load()
        self.instances: list[Any] = [first]
        """Every context loaded so far, the first one first."""
        self._free: list[Any] = [first]  # idle the longest first
        self._loading = 0
        self._cond = threading.Condition()

    @property
    def first(self) -> Any:
        """The context loaded with the pool."""
        return self.instances[0]

    @property
    def busy(self) -> int:
        """Contexts lent out now."""
        with self._cond:
            return len(self.instances) - len(self._free)

    def take(
        self, stop: threading.Event | None = None, prefer: Any = None, poll_s: float = 0.05
    ) -> Any | None:
        """A context for one reply (blocking); None once ``stop`` is set."""
        with self._cond:
            while True:
                if stop is not None and stop.is_set():
                    return None
                if self._free:
                    chosen = next((c for c in self._free if c is prefer), self._free[0])
                    self._free.remove(chosen)
                    return chosen
                if len(self.instances) + self._loading < self.size:
                    self._loading += 1
                    break
                self._cond.wait(poll_s)
        try:
            context = self._load()
        except BaseException:
            with self._cond:
                self._loading -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._loading -= 1
            self.instances.append(context)
        if stop is not None and stop.is_set():
            self.give(context)
            return None
        return context

    def give(self, context: Any) -> None:
        """Give back a context from :meth:`take`."""
        with self._cond:
            self._free.append(context)
            self._cond.notify()

    def close(self, close_one: Callable[[Any], None]) -> None:
        """Close every context with ``close_one``."""
        with self._cond:
            contexts, self.instances, self._free = self.instances, [], []
        for context in contexts:
            close_one(context)
