"""The bot pauses at the user's first sound; the realtime server decides the rest.

A speech-to-speech pipeline whose server detects turns (``server_vad``,
``semantic_vad``) learns of a barge-in only from the server's
``input_audio_buffer.speech_started``: after the server's VAD has heard enough
speech to start a turn (200 ms for ``parley serve``) and the event has come back
over the connection. The bot talks over the user until then.

:class:`OnsetPauseProcessor` sits in front of the realtime stage::

    transport.in -> onset pause -> realtime -> transport.out -> assistant context

It runs a local VAD on the input audio it passes on. While the bot speaks,
``onset_ms`` of speech pauses the bot's audio (:class:`BotAudioPauseFrame`: the
output transport writes nothing more from its next chunk on and keeps the rest).
Then either

* the server starts a user turn: the realtime stage interrupts the reply as
  always, and the output drops what it kept (the words heard end where the
  pause began, and the server's item is truncated there); or
* the user goes quiet again (``resume_ms``, 600 ms, of silence) with no turn from the
  server (a cough, a click, a sound too short for the server's VAD): the bot
  resumes (:class:`BotAudioResumeFrame`) from where it paused. Nothing was lost.

A pause that neither happens to lifts itself after ``max_pause_ms``.
The decision stays the server's; only when the bot goes quiet moves to the onset.
The ``[interruption]`` table's ``pause_bot`` turns it on (docs/turn-taking.md,
"Interruptions in a speech-to-speech pipeline").
"""

from __future__ import annotations

from typing import ClassVar

from framework import Direction, Processor, handles
from framework.audio import to_mono
from framework.frames import (
    BotAudioPauseFrame,
    BotAudioResumeFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InputAudioFrame,
    StartFrame,
    UserStartedSpeakingFrame,
)
from processors.interruption import InterruptionParams
from processors.vad.base import SpeechSegmenter, VADAnalyzer, VADParams

__all__ = ["OnsetPauseProcessor"]

DOWN = Direction.DOWNSTREAM
UP = Direction.UPSTREAM


class OnsetPauseProcessor(Processor):
    """Pauses the bot at the user's speech onset until the server decides; see the module."""

    Params: ClassVar[type[InterruptionParams]] = InterruptionParams

    def __init__(
        self,
        params: InterruptionParams | None = None,
        *,
        analyzer: VADAnalyzer | None = None,
        resume_ms: float = 600.0,
        name: str = "onset_pause",
    ) -> None:
        """Create the stage; ``analyzer`` defaults to Silero at the input's rate.

        ``resume_ms`` is the silence after which a pause the server did not follow
        with a user turn is lifted: longer than the server's answer takes to come
        back (its start plus the connection), and than the breath after a short
        first word ("Sorry, ..."), which the server's VAD may not start a turn on
        until the words after it; about the gap the cascade's words rule leaves.
        """
        super().__init__(name=name)
        self.params = params or InterruptionParams(rule="speech")
        if not 0 < resume_ms <= 10000:
            raise ValueError(f"resume_ms must be in (0, 10000], got {resume_ms!r}")
        self.resume_ms = resume_ms
        self._analyzer = analyzer
        self._segmenter = SpeechSegmenter(
            VADParams(start_ms=self.params.onset_ms, stop_ms=resume_ms, pause_ms=0.0)
        )
        self._allow_interruptions = True
        self._bot_speaking = False
        self._paused = False

    @property
    def paused(self) -> bool:
        """True from a pause until the server's turn, the user's silence or the bot's stop."""
        return self._paused

    async def on_start(self, frame: StartFrame) -> None:
        """Take the input rate; load the VAD in a worker thread."""
        from processors.vad.turn import create_analyzer

        self._allow_interruptions = frame.allow_interruptions
        rate = frame.audio_in_sample_rate
        if self._analyzer is None:
            self._analyzer = create_analyzer(self._segmenter.params, "silero", rate)
        elif self._analyzer.sample_rate != rate:
            self._analyzer.set_sample_rate(rate)
        await self.run_blocking(self._analyzer.load)

    async def cleanup(self) -> None:
        """Let go of the VAD."""
        if self._analyzer is not None:
            self._analyzer.close()

    @handles(BotStartedSpeakingFrame)
    async def _bot_started(self, frame: BotStartedSpeakingFrame, direction: Direction) -> None:
        if direction is UP:
            self._bot_speaking = True
        await self.push(frame, direction)

    @handles(BotStoppedSpeakingFrame)
    async def _bot_stopped(self, frame: BotStoppedSpeakingFrame, direction: Direction) -> None:
        if direction is UP:
            self._bot_speaking = frame.mid_reply
            if self._paused:  # cut off (the server's turn), or played out after a timeout
                self._paused = False
                self.report_event(
                    "onset_pause_taken" if frame.interrupted else "onset_pause_lapsed"
                )
        await self.push(frame, direction)

    @handles(UserStartedSpeakingFrame)
    async def _user_started(self, frame: UserStartedSpeakingFrame, direction: Direction) -> None:
        if direction is UP and self._paused:
            # The server took it as a turn: the realtime stage has interrupted the reply.
            self._paused = False
            self.report_event("onset_pause_taken")
        await self.push(frame, direction)

    @handles(InputAudioFrame)
    async def _audio(self, frame: InputAudioFrame, direction: Direction) -> None:
        await self.push(frame, direction)
        analyzer = self._analyzer
        if direction is not DOWN or analyzer is None or not self.params.pause_bot:
            return
        if frame.sample_rate != analyzer.sample_rate:
            analyzer.set_sample_rate(frame.sample_rate)
            analyzer.reset()
            self._segmenter.reset()
        audio = frame.audio if frame.num_channels == 1 else to_mono(frame.audio, frame.num_channels)
        for window in analyzer.analyze(audio):
            event = self._segmenter.update(window)
            if event is None:
                continue
            if event.kind == "start" and self._bot_speaking and self._allow_interruptions:
                if not self._paused:
                    self._paused = True
                    self.report_event("onset_pause")
                    timeout_s = self.params.max_pause_ms / 1000.0
                    await self.push(BotAudioPauseFrame(timeout_s=timeout_s), DOWN)
            elif event.kind == "stop" and self._paused:
                self._paused = False
                self.report_event("onset_resume")
                await self.push(BotAudioResumeFrame(), DOWN)
