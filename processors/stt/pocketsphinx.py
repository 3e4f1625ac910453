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
child process instead (:mod:`processors.stt._sphinx_worker`), one per stage,
stopped when the task ends. Its CPU time is counted in ``cpu_s``. A child that
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

import time
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from processors.stt.base import SAMPLE_RATE, STTParams, STTProcessor, TurnAudio

if TYPE_CHECKING:
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

    def __init__(
        self, params: PocketSphinxSTTParams | None = None, *, name: str | None = None
    ) -> None:
        """Create the stage; the decoder loads when the pipeline starts."""
        super().__init__(params or PocketSphinxSTTParams(), name=name)
        self._decoder: SphinxProcess | None = None
        self._cmn: str | None = None  # the latest decoder's cepstral mean

    def load(self) -> None:
        """Start the decoder process with the bundled model (blocking, ~0.5-1 s)."""
        if self._decoder is not None:
            return
        from processors.stt._sphinx_worker import SphinxProcess

        options: dict[str, Any] = {"loglevel": "FATAL", "samprate": SAMPLE_RATE}
        if self.params.fast_final:
            options.update(fwdflat=False, bestpath=False)
        options.update(self.params.decoder_options)
        if self._cmn is not None:  # a restart: go on from the voice adapted to so far
            options["cmninit"] = self._cmn
        self._decoder = SphinxProcess(options, call_timeout_s=self.params.call_timeout_s)

    @property
    def worker_pid(self) -> int | None:
        """Process id of the decoder's child process (None when none runs)."""
        decoder = self._decoder
        return decoder.pid if decoder is not None else None

    def release(self) -> None:
        """Stop the decoder process."""
        decoder, self._decoder = self._decoder, None
        if decoder is not None:
            self._cmn = decoder.cmn or self._cmn
            decoder.close()

    def cpu_time(self) -> float:
        """CPU time of the calling thread plus the decoder process's."""
        decoder = self._decoder
        return time.thread_time() + (decoder.cpu_s if decoder is not None else 0.0)

    async def decode_turn(self, turn: TurnAudio) -> str:
        """Feed audio as it arrives; read partial hypotheses; end the utterance at the end."""
        decoder = self._live()
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

    def _live(self) -> SphinxProcess:
        if self._decoder is None:
            raise RuntimeError("the PocketSphinx decoder is not loaded")
        return self._decoder
