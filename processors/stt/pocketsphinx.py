"""PocketSphinx: true streaming speech recognition with the bundled en-US model.

:class:`PocketSphinxSTT` feeds the turn's audio to the decoder as it arrives
(20 ms chunks, or several at once when the decoder lags), so when the turn ends
only the end of the utterance is left to compute. Interim transcripts come from
the decoder's partial hypothesis, read every ``interim_interval_ms`` of audio
and pushed when the text changes.

``fast_final`` skips the two passes PocketSphinx runs at the end of an
utterance (the flat-lexicon re-search and the lattice best path). Measured on
Piper speech on this project's shared 2-core machine, played in real time
behind the Silero VAD: the final comes a median ~50 ms after the VAD's stop
instead of ~125 ms, and WER rises from ~7% to ~12% (20 sentences). Good for a
barge-in or partial-results stage; keep it off when the transcript feeds the
language model.

PocketSphinx keeps Python's GIL while it decodes, which from a thread would
stall the event loop for the whole end of an utterance; the decoder runs in a
child process instead (:mod:`processors.stt._sphinx_worker`, ~100 MiB each).
Stages with the same options share a pool of them
(:mod:`processors.stt._sphinx_pool`): a stage takes a decoder for one turn and
gives it back at the turn's end, so a server runs as many decoder processes as
turns it decoded at once, and an idle session none. Its CPU time is counted in
``cpu_s``. A child that
dies (killed, crashed) fails the turn it was decoding; the stage then starts a
new one and decodes the turn again (see :class:`~processors.stt.base.STTProcessor`).
A process that stops answering (stopped, deadlocked) is killed after
``call_timeout_s``, and handled the same way. The new process starts from the
cepstral mean its predecessor had adapted to
(``cmninit``): a decoder starting from the default mean misrecognises more of
its first utterance.

PocketSphinx is weak on natural speech (33-100% WER on human read speech in
the project's measurements): a light streaming transcriber, not the most
accurate one.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import anyio.to_thread
from pydantic import Field

from framework.capabilities import Capabilities
from processors.shared_models import MODELS, SharedModel
from processors.stt.base import SAMPLE_RATE, STTParams, STTProcessor, TurnAudio

if TYPE_CHECKING:
    from processors.stt._sphinx_pool import DecoderPool
    from processors.stt._sphinx_worker import SphinxProcess

__all__ = ["PocketSphinxSTT", "PocketSphinxSTTParams"]

_MAX_FEED = SAMPLE_RATE * 2  # bytes: one second of audio per call to the decoder process


class PocketSphinxSTTParams(STTParams):
    """Settings of :class:`PocketSphinxSTT`."""

    fast_final: bool = Field(
        default=False,
        description="Skip the end-of-utterance passes (fwdflat, bestpath): the final comes "
        "~2-3x sooner but WER rises by about half (7% -> 12% on clean speech).",
    )
    interim_interval_ms: int = Field(
        default=200,
        ge=20,
        le=10_000,
        description="Audio between two reads of the partial hypothesis (interim transcripts).",
    )
    call_timeout_s: float = Field(
        default=30.0,
        gt=0.0,
        le=600.0,
        description="A decoder process that takes longer than this to answer a call "
        "(stopped, deadlocked) is killed; the turn then fails and the stage restarts it.",
    )
    decoder_options: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Extra PocketSphinx configuration (for example hmm, lm, dict, kws); "
        "the bundled en-US model is used for what is not set.",
    )


class PocketSphinxSTT(STTProcessor[PocketSphinxSTTParams]):
    """Streaming speech-to-text with PocketSphinx; see the module docstring."""

    Params: ClassVar[type[STTParams]] = PocketSphinxSTTParams
    capabilities = Capabilities(interim_results=True)

    def __init__(
        self, params: PocketSphinxSTTParams | None = None, *, name: str | None = None
    ) -> None:
        """Create the stage; the decoder loads when the pipeline starts."""
        super().__init__(params or PocketSphinxSTTParams(), name=name)
        self._pool: SharedModel[DecoderPool] | None = None
        self._decoder: SphinxProcess | None = None  # the decoder of the turn in progress
        self._cmn: str | None = None  # the latest decoder's cepstral mean

    def load(self) -> None:
        """Get the process's decoder pool and one decoder ready in it (blocking, ~0.5-1 s)."""
        if self._pool is not None:
            return
        from processors.stt._sphinx_pool import DecoderPool

        options: dict[str, Any] = {"loglevel": "FATAL", "samprate": SAMPLE_RATE}
        if self.params.fast_final:
            options.update(fwdflat=False, bestpath=False)
        options.update(self.params.decoder_options)
        timeout = self.params.call_timeout_s
        key = ("pocketsphinx", json.dumps(options, sort_keys=True), timeout)
        entry = MODELS.acquire(key, lambda: DecoderPool(options, timeout), DecoderPool.close)
        try:
            entry.model.warm(self._cmn)
        except BaseException:
            MODELS.release(entry)
            raise
        self._pool = entry

    @property
    def worker_pid(self) -> int | None:
        """Process id of the decoder of the turn in progress, else of the next turn's."""
        decoder, entry = self._decoder, self._pool
        if decoder is not None:
            return decoder.pid
        return entry.model.next_pid if entry is not None else None

    def release(self) -> None:
        """Stop a decoder left mid-turn and give the pool back."""
        decoder, self._decoder = self._decoder, None
        entry, self._pool = self._pool, None
        if decoder is not None and entry is not None:  # a turn cut short: not worth keeping
            self._cmn = decoder.cmn or self._cmn
            entry.model.discard(decoder)
        if entry is not None:
            MODELS.release(entry)

    def cpu_time(self) -> float:
        """CPU time of the calling thread plus the decoder process's."""
        decoder = self._decoder
        return time.thread_time() + (decoder.cpu_s if decoder is not None else 0.0)

    async def decode_turn(self, turn: TurnAudio) -> str:
        """Take a decoder for the turn, feed it as audio arrives, give it back at the end."""
        pool = self._live()
        decoder = await anyio.to_thread.run_sync(pool.take, self._cmn)
        self._decoder = decoder
        try:
            text = await self._decode(turn, decoder)
        except BaseException:
            if self._decoder is decoder:  # else release() has discarded it already
                self._decoder = None
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(pool.discard, decoder)  # failed or cut
            raise
        self._decoder = None
        self._cmn = decoder.cmn or self._cmn
        pool.put(decoder)
        return text

    async def _decode(self, turn: TurnAudio, decoder: SphinxProcess) -> str:
        step = self.params.interim_interval_ms * SAMPLE_RATE // 1000 * 2
        await self.run_decoder(turn, decoder.start)
        fed = 0
        next_hyp = step
        while True:
            pcm = turn.take(_MAX_FEED)  # a turn decoded again is fed in bounded calls
            if pcm:
                fed += len(pcm)
                want_hyp = fed >= next_hyp and not turn.ended
                if want_hyp:
                    next_hyp = fed + step
                text = await self.run_decoder(turn, decoder.feed, pcm, want_hyp)
                if text is not None:
                    await self.push_interim(turn, text)
            elif turn.ended:
                break
            else:
                await turn.wait_until(lambda: turn.unread > 0)
        return await self.run_decoder(turn, decoder.finish)

    def _live(self) -> DecoderPool:
        if self._pool is None:
            raise RuntimeError("the PocketSphinx decoder is not loaded")
        pool: DecoderPool = self._pool.model
        return pool
