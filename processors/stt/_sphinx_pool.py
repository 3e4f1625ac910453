"""PocketSphinx decoder processes shared by the stages of a process, one turn at a time.

A decoder holds the state of one utterance, so it cannot serve two turns at
once; between turns it holds nothing of a conversation but the cepstral mean
it has adapted to (the channel's, not the words'). A :class:`DecoderPool`
therefore lends a decoder to a stage for one turn (:meth:`DecoderPool.take`)
and gets it back at the end (:meth:`DecoderPool.put`): a server holds as many
decoder processes as turns were ever decoded at once, not one per session,
and an idle session holds none. The pool is the shared model of the stages
with the same decoder options (:mod:`processors.shared_models`), closed with
its last user unless the cache is kept.
"""

from __future__ import annotations

import threading
from typing import Any

from processors.stt._sphinx_worker import SphinxProcess

__all__ = ["DecoderPool"]


class DecoderPool:
    """Idle decoder processes with the same options; thread-safe."""

    def __init__(self, options: dict[str, Any], call_timeout_s: float) -> None:
        """Decoders get ``options``; one that takes ``call_timeout_s`` to answer is killed."""
        self.options = dict(options)
        self.call_timeout_s = call_timeout_s
        self.cmn: str | None = options.get("cmninit")
        """The latest cepstral mean a decoder adapted to: where a new decoder starts."""
        self._idle: list[SphinxProcess] = []
        self._lent = 0
        self._lock = threading.Lock()
        self._warm_lock = threading.Lock()
        self._closed = False

    def warm(self, cmn: str | None = None) -> None:
        """Start a decoder unless the pool has one (idle or lent): the first turn finds it up."""
        with self._warm_lock:
            with self._lock:
                if self._idle or self._lent:
                    return
            self.put(self.take(cmn))

    def take(self, cmn: str | None = None) -> SphinxProcess:
        """An idle decoder, or a new one (starting from ``cmn`` or the pool's); blocking."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the PocketSphinx decoder pool is closed")
            while self._idle:
                decoder = self._idle.pop()
                if decoder.alive:
                    self._lent += 1
                    return decoder
                decoder.close()
            start = cmn or self.cmn
        options = dict(self.options)
        if start is not None:
            options["cmninit"] = start
        decoder = SphinxProcess(options, call_timeout_s=self.call_timeout_s)
        with self._lock:
            self._lent += 1
        return decoder

    def put(self, decoder: SphinxProcess) -> None:
        """Give back a decoder after a turn it finished; a dead one is closed instead."""
        with self._lock:
            self._lent -= 1
            self.cmn = decoder.cmn or self.cmn
            if decoder.alive and not self._closed:
                self._idle.append(decoder)
                return
        decoder.close()

    def discard(self, decoder: SphinxProcess) -> None:
        """Stop a lent decoder whose turn failed or was cut short, instead of giving it back."""
        with self._lock:
            self._lent -= 1
        decoder.close()

    @property
    def idle(self) -> int:
        """Decoder processes waiting for a turn."""
        with self._lock:
            return len(self._idle)

    @property
    def next_pid(self) -> int | None:
        """Process id of the idle decoder :meth:`take` would lend next (None if none)."""
        with self._lock:
            return self._idle[-1].pid if self._idle else None

    @property
    def lent(self) -> int:
        """Decoder processes decoding a turn now."""
        with self._lock:
            return self._lent

    def close(self) -> None:
        """Stop every idle decoder; later :meth:`take` calls fail."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for decoder in idle:
            decoder.close()
