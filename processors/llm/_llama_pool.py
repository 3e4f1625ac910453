"""A few llama.cpp contexts of one model, lent one caller at a time.

A ``Llama`` object is one context with one KV cache: two threads may not use it
at once. With one object per process, conversations that end a turn at about the
same time queue for it, and each re-evaluates its whole prompt because the one
before left another conversation's tokens in the cache. A :class:`LlamaPool`
holds up to ``size`` contexts of the same model file (the weights are
memory-mapped, so each extra context costs its KV cache and compute buffers,
tens of MiB for SmolLM2-135M, not another copy of the model):

- :meth:`LlamaPool.take` lends a free context, preferring the one its ``owner``
  gave back last (its cache holds that conversation's latest prompt), else the one
  idle the longest; when none is free and fewer than ``size`` exist, it loads one
  more (so a process that never has two callers at once never holds a second);
  otherwise it waits for one to be given back, and gives up once ``stop`` is set.
  With ``wait=False`` it only lends a context that is free now.
- :meth:`LlamaPool.give` returns it, remembering the owner.

The owner is whatever object names a conversation: a cascade passes its
``LLMContext``, so the words' end-of-utterance check, which evaluates the
conversation at a pause, and the reply that follows land on the same context and
the reply evaluates only what the check did not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["LlamaPool"]


class LlamaPool:
    """Up to ``size`` contexts made by ``load()``; the first is made at once."""

    def __init__(self, load: Callable[[], Any], size: int) -> None:
        """Load the first context now; the others when callers overlap."""
        if size < 1:
            raise ValueError(f"a llama pool needs at least one context, got size={size}")
        self.size = size
        self._load = load
        first = load()
        self.instances: list[Any] = [first]
        """Every context loaded so far, the first one first."""
        self._free: list[Any] = [first]  # idle the longest first
        self._owner: dict[int, int] = {}  # id(context) -> id(owner) of its last caller
        self._lent: dict[int, int] = {}  # id(context) -> id(owner) of its caller now
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

    def room(self) -> int:
        """How many callers could take a context now: the free ones plus those not loaded yet."""
        with self._cond:
            return len(self._free) + self.size - len(self.instances) - self._loading

    def full(self) -> bool:
        """True when a caller would wait: every context lent out and no room for another."""
        return self.room() == 0

    def lent_to(self, owner: object) -> bool:
        """True while a caller naming ``owner`` holds a context."""
        with self._cond:
            return id(owner) in self._lent.values()

    def take(
        self,
        stop: threading.Event | None = None,
        owner: object = None,
        *,
        wait: bool = True,
        poll_s: float = 0.05,
    ) -> Any | None:
        """A context for one caller (blocking); None once ``stop`` is set.

        ``wait=False`` returns a free context or None at once, and loads none.
        """
        with self._cond:
            while True:
                if stop is not None and stop.is_set():
                    return None
                if self._free:
                    chosen = self._preferred(owner)
                    self._free.remove(chosen)
                    self._lent[id(chosen)] = id(owner)
                    return chosen
                if not wait:
                    return None
                if len(self.instances) + self._loading < self.size:
                    self._loading += 1
                    break
                self._cond.wait(poll_s)
        context = self._load_reserved(lent_to=owner)
        if stop is not None and stop.is_set():
            self.give(context)
            return None
        return context

    def fill(self) -> int:
        """Load contexts until there are ``size`` (blocking); how many were loaded.

        A long-lived server calls it once at start, so the first overlap of two
        callers does not wait for a load and the memory is there from the start.
        """
        loaded = 0
        while True:
            with self._cond:
                if len(self.instances) + self._loading >= self.size:
                    return loaded
                self._loading += 1
            self.give(self._load_reserved(lent_to=None))
            loaded += 1

    def _load_reserved(self, lent_to: object) -> Any:
        """Load the context a caller reserved a place for (``_loading``), lent to ``lent_to``.

        A failed load frees its place again.
        """
        try:
            context = self._load()
        except BaseException:
            with self._cond:
                self._loading -= 1
                self._cond.notify()
            raise
        with self._cond:  # one step: never a moment with neither the place nor the context
            self._loading -= 1
            self.instances.append(context)
            self._lent[id(context)] = id(lent_to)
        return context

    def give(self, context: Any, owner: object = None) -> None:
        """Give back a context from :meth:`take`; ``owner`` used it last."""
        with self._cond:
            self._lent.pop(id(context), None)
            if owner is not None:
                self._owner[id(context)] = id(owner)
            self._free.append(context)
            self._cond.notify()

    def close(self, close_one: Callable[[Any], None]) -> None:
        """Close every context with ``close_one``."""
        with self._cond:
            contexts, self.instances, self._free = self.instances, [], []
            self._owner.clear()
            self._lent.clear()
        for context in contexts:
            close_one(context)

    def _preferred(self, owner: object) -> Any:
        """The free context ``owner`` gave back last, else the one idle the longest (locked).

        Of two contexts the same owner used, the one given back last has its latest
        prompt in its cache.
        """
        if owner is not None:
            mine = id(owner)
            for context in reversed(self._free):
                if self._owner.get(id(context)) == mine:
                    return context
        return self._free[0]
