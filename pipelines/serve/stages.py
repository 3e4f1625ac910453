"""The per-connection pipeline: the pipeline file's cascade between four session processors.

::

    turn (VAD) -> InputGate -> stt -> Controller -> llm -> LLMTap -> tts -> SessionOutput

* The turn processor (the file's ``[vad]``) always runs; :class:`InputGate` lets
  its turns through under ``server_vad``/``semantic_vad`` and swallows them under
  manual turns, where the session opens and closes STT turns itself (first
  append, commit). Barge-in is the session's decision, so the turn processor
  never interrupts by itself. A pause inside a VAD turn reaches the STT (which
  transcribes the turn so far) only when the session speculates on it, and so
  does the resume that follows (the STT then continues the turn); the session
  keeps the count of the transcripts to expect (:mod:`pipelines.serve.speculation`).
* :class:`Controller` hands transcripts to the session, keeps audio and turn
  frames away from the language model, pushes the ``LLMMessagesFrame`` of a
  response and the ``InterruptionFrame`` that cancels one (downstream only:
  transcription of the user's speech is never interrupted).
* :class:`LLMTap` sees the model's text: it counts output tokens and, for a
  text-only response, sends it as ``response.output_text.delta`` instead of
  letting the TTS speak it.
* :class:`SessionOutput` turns TTS text and audio, function calls and the end
  of a reply into the response's events.

The processors call a :class:`SessionHooks` object: the session.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from framework import (
    Direction,
    Pipeline,
    PipelineTask,
    Processor,
    TaskParams,
    handles,
)
from framework.frames import (
    CancelFrame,
    EndFrame,
    ErrorFrame,
    FunctionCallFrame,
    InputAudioFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMMessagesFrame,
    LLMResponseEndFrame,
    LLMTextFrame,
    MetricsFrame,
    OutputAudioFrame,
    StartFrame,
    TranscriptionFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserPausedSpeakingFrame,
    UserResumedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipelines.config import ConfigError, PipelineConfig
from processors.stt.whisper import WhisperSTTParams
from processors.vad.turn import TurnProcessor

__all__ = [
    "Controller",
    "InputGate",
    "LLMTap",
    "SessionHooks",
    "SessionOutput",
    "SessionStageParams",
    "SessionStages",
    "build_pipeline",
]

log = logging.getLogger("parley.serve")
DOWNSTREAM = Direction.DOWNSTREAM
UPSTREAM = Direction.UPSTREAM
OUTPUT_RATE = 24000
_LIFECYCLE = (StartFrame, EndFrame, CancelFrame)


class SessionStageParams(BaseModel):
    """The session processors have no settings of their own: the session drives them."""

    model_config = ConfigDict(extra="forbid")


class SessionHooks(Protocol):
    """What the session processors call; implemented by the session."""

    async def vad_started(self, frame: UserStartedSpeakingFrame) -> bool: ...
    async def vad_stopped(self, frame: UserStoppedSpeakingFrame) -> None: ...
    async def vad_paused(self, frame: UserPausedSpeakingFrame) -> bool: ...
    async def vad_resumed(self, frame: UserResumedSpeakingFrame) -> bool: ...
    async def on_transcription(self, frame: TranscriptionFrame) -> None: ...
    async def on_stage_error(self, frame: ErrorFrame) -> None: ...
    def on_llm_text(self, text: str) -> bool: ...
    def on_transcript_piece(self, text: str) -> None: ...
    def on_audio(self, frame: OutputAudioFrame) -> None: ...
    def on_function_call(self, frame: FunctionCallFrame) -> None: ...
    def on_audio_flush(self) -> None: ...
    async def on_reply_end(self) -> None: ...
    def on_pipeline_ready(self) -> None: ...


class _SessionStage(Processor):
    """A stage of a server session's pipeline: it reports to the session's hooks."""

    Params: ClassVar[type[SessionStageParams]] = SessionStageParams
    default_name: ClassVar[str] = "serve.stage"

    def __init__(
        self,
        params: SessionStageParams | None = None,
        *,
        hooks: SessionHooks,
        name: str | None = None,
    ) -> None:
        """Report to ``hooks`` (the session)."""
        super().__init__(name=name or self.default_name)
        self.params = params or SessionStageParams()
        self._hooks = hooks


class InputGate(_SessionStage):
    """After the turn processor: VAD turns in server-VAD mode, session-made turns otherwise."""

    default_name: ClassVar[str] = "serve.gate"

    @handles(UserStartedSpeakingFrame)
    async def _started(self, frame: UserStartedSpeakingFrame, direction: Direction) -> None:
        if direction is UPSTREAM:
            return
        if await self._hooks.vad_started(frame):
            await self.push(frame, direction)

    @handles(UserStoppedSpeakingFrame)
    async def _stopped(self, frame: UserStoppedSpeakingFrame, direction: Direction) -> None:
        if direction is DOWNSTREAM:
            await self._hooks.vad_stopped(frame)

    @handles(UserPausedSpeakingFrame)
    async def _paused(self, frame: UserPausedSpeakingFrame, direction: Direction) -> None:
        if direction is UPSTREAM or await self._hooks.vad_paused(frame):
            await self.push(frame, direction)

    @handles(UserResumedSpeakingFrame)
    async def _resumed(self, frame: UserResumedSpeakingFrame, direction: Direction) -> None:
        if direction is UPSTREAM or await self._hooks.vad_resumed(frame):
            await self.push(frame, direction)

    @handles(ErrorFrame)
    async def _error(self, frame: ErrorFrame, direction: Direction) -> None:
        await self._hooks.on_stage_error(frame)
        await self.push(frame, direction)

    async def push_turn_frame(
        self, frame: UserStartedSpeakingFrame | UserStoppedSpeakingFrame
    ) -> None:
        """Send a turn boundary on to the STT (the session decides when)."""
        await self.push(frame, DOWNSTREAM)


class Controller(_SessionStage):
    """After the STT: transcripts to the session, responses to the language model."""

    default_name: ClassVar[str] = "serve.controller"

    @handles(TranscriptionFrame)
    async def _transcription(self, frame: TranscriptionFrame, direction: Direction) -> None:
        await self._hooks.on_transcription(frame)

    @handles(
        InterimTranscriptionFrame,
        InputAudioFrame,
        UserStartedSpeakingFrame,
        UserStoppedSpeakingFrame,
        UserPausedSpeakingFrame,
        UserResumedSpeakingFrame,
        MetricsFrame,
    )
    async def _absorb(self, frame: Any, direction: Direction) -> None:
        if direction is UPSTREAM:
            await self.push(frame, direction)

    @handles(ErrorFrame)
    async def _error(self, frame: ErrorFrame, direction: Direction) -> None:
        await self._hooks.on_stage_error(frame)

    async def run_llm(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> None:
        """Ask the language model for a reply."""
        await self.push(LLMMessagesFrame(messages=messages, tools=tools), DOWNSTREAM)

    async def interrupt(self) -> None:
        """Cancel the reply in flight: drop queued work and stop generation downstream."""
        await self.push(InterruptionFrame(), DOWNSTREAM)


class LLMTap(_SessionStage):
    """Between the language model and the TTS: sees the model's text."""

    default_name: ClassVar[str] = "serve.llm_tap"

    @handles(LLMTextFrame)
    async def _text(self, frame: LLMTextFrame, direction: Direction) -> None:
        if direction is UPSTREAM or self._hooks.on_llm_text(frame.text):
            await self.push(frame, direction)


class SessionOutput(_SessionStage):
    """The end of the pipeline: the reply's frames become the response's events."""

    default_name: ClassVar[str] = "serve.output"

    async def on_start(self, frame: StartFrame) -> None:
        """Every stage before this one has started (models loaded)."""
        self._hooks.on_pipeline_ready()

    @handles(TTSTextFrame)
    async def _tts_text(self, frame: TTSTextFrame, direction: Direction) -> None:
        self._hooks.on_transcript_piece(frame.text)

    @handles(OutputAudioFrame)
    async def _audio(self, frame: OutputAudioFrame, direction: Direction) -> None:
        self._hooks.on_audio(frame)

    @handles(TTSStoppedFrame)
    async def _tts_stopped(self, frame: TTSStoppedFrame, direction: Direction) -> None:
        self._hooks.on_audio_flush()

    @handles(FunctionCallFrame)
    async def _function_call(self, frame: FunctionCallFrame, direction: Direction) -> None:
        self._hooks.on_function_call(frame)

    @handles(LLMResponseEndFrame)
    async def _reply_end(self, frame: LLMResponseEndFrame, direction: Direction) -> None:
        await self._hooks.on_reply_end()

    async def process_frame(self, frame: Any, direction: Direction) -> None:
        """Handled frames become events; the rest stop here (upstream ones go on)."""
        if direction is UPSTREAM:
            await self.push(frame, direction)
            return
        await super().process_frame(frame, direction)

    async def push(self, frame: Any, direction: Direction = DOWNSTREAM) -> None:
        """Only lifecycle frames leave downstream: the session's pipeline ends here."""
        if direction is UPSTREAM or isinstance(frame, _LIFECYCLE):
            await super().push(frame, direction)


def function_arguments(frame: FunctionCallFrame) -> str:
    """A function call's arguments as the JSON string the protocol carries."""
    args: Any = frame.arguments  # a dict by the frame's contract; a backend may pass JSON text
    return args if isinstance(args, str) else json.dumps(args, separators=(",", ":"))


def build_turn(config: PipelineConfig) -> TurnProcessor:
    """The file's ``[vad]`` turn processor, with barge-in left to the session.

    The session drives it (turn detection settings, pauses for speculation), so the
    ``[vad]`` stage must be a :class:`~processors.vad.turn.TurnProcessor`.
    """
    from pipelines.factory import build_stage

    turn = build_stage(config, "vad")
    if not isinstance(turn, TurnProcessor):
        raise ConfigError(
            f"{config.source}: parley serve needs a turn processor as [vad] "
            f"(backend silero or webrtc); {type(turn).__name__} is not one"
        )
    turn.params.interrupt_on_start = False
    return turn


@dataclass(frozen=True, slots=True)
class SessionStages:
    """The stages of a session's pipeline, in order, each with its type."""

    turn: TurnProcessor
    gate: InputGate
    stt: Processor
    controller: Controller
    llm: Processor
    tap: LLMTap
    tts: Processor
    output: SessionOutput

    def in_order(self) -> list[Processor]:
        """The stages as the pipeline runs them."""
        return [
            self.turn,
            self.gate,
            self.stt,
            self.controller,
            self.llm,
            self.tap,
            self.tts,
            self.output,
        ]


def build_pipeline(
    config: PipelineConfig, hooks: SessionHooks
) -> tuple[PipelineTask, SessionStages]:
    """The session's pipeline and task, and its stages."""
    from pipelines.factory import build_stage

    if config.pipeline.architecture != "cascade":
        raise ConfigError(
            f"{config.source}: parley serve needs a cascade pipeline (vad, stt, llm, tts); "
            f"this one is {config.pipeline.architecture!r}"
        )
    stt = build_stage(config, "stt")
    if isinstance(getattr(stt, "params", None), WhisperSTTParams):
        # The session reads no interim transcript: Whisper's passes while the user speaks
        # would only cost CPU (a third of the server's per turn, benchmarks/RESULTS.md).
        stt.params.interim_passes = False  # type: ignore[attr-defined]
    stages = SessionStages(
        turn=build_turn(config),
        gate=InputGate(hooks=hooks),
        stt=stt,
        controller=Controller(hooks=hooks),
        llm=build_stage(config, "llm"),
        tap=LLMTap(hooks=hooks),
        tts=build_stage(config, "tts"),
        output=SessionOutput(hooks=hooks),
    )
    pipeline = Pipeline(stages.in_order(), name=f"serve.{config.pipeline.name}")
    params = TaskParams(
        audio_in_sample_rate=config.audio.input_sample_rate,
        audio_out_sample_rate=OUTPUT_RATE,
        allow_interruptions=True,
        error_policy="continue",
        name=f"serve.{config.pipeline.name}",
    )
    return PipelineTask(pipeline, params), stages
