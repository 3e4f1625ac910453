"""Loaded models shared by every stage of the process that asks for the same one.

A stage that loads a model asks :data:`MODELS` for it by a key naming the
backend and every setting that changes the loaded object (file, context size,
threads...). The first stage to ask loads it; the others get the same object.
Each :meth:`ModelCache.acquire` is paired with a :meth:`ModelCache.release`.

What happens when the last stage releases a model depends on whether someone
*keeps* the cache (:meth:`ModelCache.keep`): a long-lived process that starts and
ends pipelines all the time (``parley serve``, one pipeline per connection) keeps
it, so its models stay loaded between sessions instead of being loaded and
freed again and again (which also leaves the C heap fragmented and the process
ever larger); otherwise (``parley run``) the model is closed at once.

A model's per-stream state never lives in the shared object: a stage keeps
its own (the Silero VAD's recurrent state, a Whisper pass's decoder state),
or the model rebuilds it cheaply for each caller (llama.cpp's KV cache, below).

Sharing is safe only for what the model allows:

* models that may run from several threads at once (CTranslate2, ONNX Runtime)
  are simply shared;
* a model with state of its own (a llama.cpp context and its KV cache) is used
  one caller at a time: under its entry's :attr:`SharedModel.lock`, or lent from
  a small pool of such objects (llama.cpp's, :mod:`processors.llm._llama_pool`),
  and whatever per-conversation state it keeps is rebuilt by the next caller
  (llama.cpp re-evaluates only the part of the prompt that differs from the
  cached tokens).

Loading happens under a per-key lock, so one model is never loaded twice, and
the loads of different keys under one global lock: llama.cpp can crash the
process when two models are constructed at the same time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = [
    "MODELS",
    "ModelCache",
    "SharedModel",
    "cpu_time_with",
    "limit_blas_threads",
    "thread_ids",
    "threads_since",
]

log = logging.getLogger("parley.models")
T = TypeVar("T")


@dataclass(eq=False)
class SharedModel(Generic[T]):
    """One loaded model, its users, and the lock for models used one caller at a time."""

    key: Hashable
    model: T
    close: Callable[[T], None] | None = None
    users: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Held while using a model that is not safe to call from several threads at once."""

    def hold(self, stop: threading.Event | None = None, poll_s: float = 0.05) -> bool:
        """Take :attr:`lock` (blocking); give up and return False once ``stop`` is set."""
        while not self.lock.acquire(timeout=poll_s):
            if stop is not None and stop.is_set():
                return False
        if stop is not None and stop.is_set():
            self.lock.release()
            return False
        return True


class ModelCache:
    """Loaded models by key; see the module docstring."""

    def __init__(self) -> None:
        """An empty cache, kept by nobody."""
        self._entries: dict[Hashable, SharedModel[Any]] = {}
        self._lock = threading.Lock()
        self._loading: dict[Hashable, threading.Lock] = {}
        self._load_lock = threading.Lock()
        self._keepers = 0

    def acquire(
        self, key: Hashable, load: Callable[[], T], close: Callable[[T], None] | None = None
    ) -> SharedModel[T]:
        """The model of ``key``, loaded by ``load()`` unless it already is; blocking.

        ``close(model)`` frees it when it is dropped. Pair with :meth:`release`.
        """
        with self._lock:
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    entry.users += 1
                    return entry
            with self._load_lock:
                model = load()
            entry = SharedModel(key, model, close, users=1)
            with self._lock:
                self._entries[key] = entry
            log.debug("loaded shared model %r", key)
            return entry

    def release(self, entry: SharedModel[Any]) -> None:
        """Give back a model from :meth:`acquire`; the last user closes it unless kept."""
        with self._lock:
            entry.users -= 1
            if entry.users > 0 or self._keepers > 0:
                return
            if self._entries.get(entry.key) is entry:
                del self._entries[entry.key]
        self._close(entry)

    def release_model(self, model: object) -> None:
        """:meth:`release` the entry holding ``model`` (nothing if none does)."""
        with self._lock:
            entry = next((e for e in self._entries.values() if e.model is model), None)
        if entry is not None:
            self.release(entry)

    @contextmanager
    def keep(self) -> Iterator[None]:
        """Keep models loaded while inside, used or not; unused ones are closed at the end."""
        with self._lock:
            self._keepers += 1
        try:
            yield
        finally:
            with self._lock:
                self._keepers -= 1
                unused = []
                if self._keepers == 0:
                    unused = [e for e in self._entries.values() if e.users <= 0]
                    for entry in unused:
                        del self._entries[entry.key]
            for entry in unused:
                self._close(entry)

    def loaded(self) -> list[Hashable]:
        """The keys of the shared models loaded now."""
        with self._lock:
            return list(self._entries)

    def models(self) -> list[Any]:
        """The shared models loaded now."""
        with self._lock:
            return [entry.model for entry in self._entries.values()]

    def users(self, key: Hashable) -> int:
        """How many stages use the model of ``key`` now (0 if it is not loaded)."""
        with self._lock:
            entry = self._entries.get(key)
            return entry.users if entry is not None else 0

    @staticmethod
    def _close(entry: SharedModel[Any]) -> None:
        if entry.close is not None:
            try:
                entry.close(entry.model)
            except Exception:
                log.exception("closing the shared model %r failed", entry.key)
        log.debug("closed shared model %r", entry.key)


MODELS = ModelCache()
"""The process's model cache."""


def limit_blas_threads(limit: int) -> bool:
    """Cap numpy's BLAS thread pool (OpenBLAS, MKL...) in this process at ``limit``.

    The models' front ends multiply matrices with numpy (the log-mel spectrogram of
    Whisper and Smart Turn: an 80 x 201 filterbank times the audio's frames, well
    under a millisecond on one core). OpenBLAS splits such a product over every core
    and its idle threads then spin for about 0.1 s: measured on the 2-core machine,
    0.1 s of CPU per Whisper pass, taken from the cores the encoder computes on.
    The cap is process-wide; it never raises a lower one. Returns False when
    ``threadpoolctl`` (the ``local`` extra) is missing, so nothing changed.
    """
    if limit < 1:
        raise ValueError(f"the BLAS thread limit must be at least 1, got {limit!r}")
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return False
    with _blas_lock:
        blas = ThreadpoolController().select(user_api="blas")
        for pool in blas.lib_controllers:
            if pool.num_threads > limit:
                pool.set_num_threads(limit)
    return True


_blas_lock = threading.Lock()


def thread_ids() -> set[str]:
    """The process's thread ids (Linux ``/proc``; empty elsewhere).

    Taken before a model starts its own compute threads, then given to
    :func:`threads_since`, it finds those threads, for :func:`cpu_time_with`.
    """
    try:
        return set(os.listdir("/proc/self/task"))
    except OSError:
        return set()


def threads_since(before: set[str]) -> frozenset[str]:
    """The threads started since ``before`` (:func:`thread_ids`), the calling one aside."""
    return frozenset(thread_ids() - before - {str(threading.get_native_id())})


def cpu_time_with(threads: frozenset[str]) -> float:
    """CPU seconds of the calling thread plus ``threads`` (a model's own pool).

    Inference libraries compute on threads of their own, invisible to
    ``thread_time``; their CPU time is read from ``/proc``. Without known threads
    this is process time.
    """
    if not threads:
        return time.process_time()
    total = time.thread_time()
    for tid in threads:
        try:
            with open(f"/proc/self/task/{tid}/schedstat", encoding="ascii") as f:
                total += int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            continue
    return total
