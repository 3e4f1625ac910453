"""A scripted conversation on a controlled clock, recorded by a real EventLog.

Real frames are handed to :class:`~processors.recording.events.EventLog` with
timestamps we choose, exactly as the processors' pushes would hand them, so the
benchmark's measurement sees the same records a run produces, but every
stage's delay is known to the nanosecond.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from framework.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Direction,
    Frame,
    InterruptionFrame,
    LLMMessagesFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    LLMTextFrame,
    MetricSample,
    MetricsFrame,
    TranscriptionFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.recording.events import EventLog

MS = 1_000_000
DOWN = Direction.DOWNSTREAM


@dataclass
class Endpoint:
    name: str


class Script:
    """Emits frames and events at chosen times (milliseconds from an origin)."""

    def __init__(self, origin_ms: int = 1_000_000) -> None:
        self.origin = origin_ms * MS
        self.log = EventLog(origin_ns=self.origin, llm_text=True)
        self.replies = 0

    def ns(self, ms: float) -> int:
        return self.origin + round(ms * MS)

    def frame(self, who: str, frame: Frame, at_ms: float) -> None:
        self.log.on_push(Endpoint(who), Endpoint("next"), frame, DOWN, self.ns(at_ms))

    def event(self, who: str, name: str, at_ms: float, **fields: Any) -> None:
        self.log.on_event(Endpoint(who), name, self.ns(at_ms), fields)

    def metric(self, who: str, name: str, value: float, at_ms: float) -> None:
        sample = MetricSample(processor=who, name=name, value=value)
        self.frame(who, MetricsFrame(samples=[sample]), at_ms)

    # -------------------------------------------------------------- pieces

    def start(self, conversation: str = "c") -> None:
        self.event("scenario.input", "scenario_start", 0, conversation=conversation)

    def item(
        self,
        index: int,
        start_ms: float,
        length_ms: float,
        *,
        speech: tuple[float, float] | None = (300, 2000),
        kind: str = "normal",
        trigger: str = "after_reply",
        transcript: str = "hello there",
        reply_expected: bool | None = None,
    ) -> tuple[float, float] | None:
        """Place item ``index``; returns the absolute speech start and end (ms)."""
        fields: dict[str, Any] = {
            "index": index,
            "conversation": "c",
            "turn": index + 1,
            "kind": kind,
            "trigger": trigger,
            "end_ns": self.ns(start_ms + length_ms),
            "speech_start_ns": None,
            "speech_end_ns": None,
            "transcript": transcript if speech else "",
            "reply_expected": speech is not None if reply_expected is None else reply_expected,
        }
        absolute = None
        if speech is not None:
            absolute = (start_ms + speech[0], start_ms + speech[1])
            fields["speech_start_ns"] = self.ns(absolute[0])
            fields["speech_end_ns"] = self.ns(absolute[1])
        self.event("scenario.input", "scenario_item", start_ms, **fields)
        return absolute

    def context(self, at_ms: float, *user_messages: str) -> None:
        """The runner's record of the final context's user messages."""
        self.event("bench", "context_final", at_ms, user_messages=list(user_messages))

    def end(self, at_ms: float) -> None:
        self.event("scenario.input", "scenario_end", at_ms, reason="done")

    def user_turn(self, start_ms: float, stop_ms: float, decided_ms: float) -> None:
        self.frame("vad", InterruptionFrame(), start_ms + 200)
        self.frame(
            "vad", UserStartedSpeakingFrame(speech_start_ns=self.ns(start_ms)), start_ms + 200
        )
        self.frame("vad", UserStoppedSpeakingFrame(speech_end_ns=self.ns(stop_ms)), decided_ms)

    def bot_audio(
        self,
        first_ms: float,
        audible_ms: float | None,
        stop_ms: float,
        *,
        interrupted: bool = False,
    ) -> None:
        self.replies += 1
        self.event("scenario.output", "bot_first_audio", first_ms, reply=self.replies)
        if audible_ms is not None:
            self.event("scenario.output", "bot_first_audible", audible_ms, reply=self.replies)
        self.frame("scenario.output", BotStartedSpeakingFrame(), first_ms)
        played = (stop_ms - first_ms) / 1000
        self.event(
            "scenario.output",
            "bot_audio_stopped",
            stop_ms,
            interrupted=interrupted,
            played_s=played,
        )
        self.frame(
            "scenario.output",
            BotStoppedSpeakingFrame(interrupted=interrupted, played_s=played),
            stop_ms,
        )

    def bot_cut(self, at_ms: float) -> None:
        """The output transport's reports when an interruption cuts the bot."""
        self.event("scenario.output", "bot_audio_stopped", at_ms, interrupted=True, played_s=1.3)
        self.frame("scenario.output", BotStoppedSpeakingFrame(interrupted=True), at_ms)

    def cascade_reply(
        self,
        decided_ms: float,
        *,
        stt: float,
        handoff: float = 0.0,
        ttft: float,
        clause: float,
        synth: float,
        output: float,
        lead: float,
        length_ms: float = 1500,
        text: tuple[str, ...] = ("Sure", ",", " I", " can", " help", "."),
        piece: str = "Sure, I can help.",
        with_tts_metric: bool = True,
        audio: bool = True,
    ) -> float:
        """The cascade's events after a stop decided at ``decided_ms``; returns first audio."""
        t = decided_ms + stt
        self.frame("stt.whisper", TranscriptionFrame(text="hello there"), t)
        t += handoff
        self.frame("user_context", LLMMessagesFrame(messages=[]), t)
        self.frame("llm.llama_cpp", LLMResponseStartFrame(), t)
        t += ttft
        first_text = t
        for n, chunk in enumerate(text):
            at = first_text if n == 0 else first_text + clause * n / (len(text) - 1)
            self.frame("llm.llama_cpp", LLMTextFrame(text=chunk), at)
        t = first_text + clause + synth
        self.frame("tts.piper", TTSTextFrame(text=piece), t)
        if with_tts_metric:
            self.metric("tts.piper", "ttfa", (t - first_text) / 1000, t)
        self.frame("llm.llama_cpp", LLMResponseEndFrame(), t)
        first_audio = t + output
        if audio:
            self.bot_audio(first_audio, first_audio + lead, first_audio + length_ms)
        return first_audio
