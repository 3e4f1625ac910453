"""What one session reports to the worker's metrics and traces.

A :class:`SessionTelemetry` hears the session twice, and times nothing itself:

* :class:`ObservedConnection` wraps the WebSocket and sees each server event as
  it is sent (``speech_started``, ``committed``, ``response.created``, the first
  ``response.output_audio.delta``, ``response.done``, ``error``);
* :class:`FrameWatch`, an observer of the session's pipeline task, sees the
  stages' ``MetricsFrame`` samples (end-of-turn decision, STT final, LLM time to
  first token, TTS time to first audio), the input audio as it arrives and the
  ``UserStoppedSpeakingFrame`` that ends a turn.

Voice-to-voice, as a worker sees it, runs from the arrival of the input audio
that holds the end of the user's speech to the sending of the first audio delta
of the reply: the client's network and playback are outside it.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from framework.frames import InputAudioFrame, MetricsFrame, UserStoppedSpeakingFrame
from framework.observer import FrameEndpoint, Observer
from pipelines.serve.metrics import ServeMetrics, stage_seconds
from pipelines.serve.tracing import SessionTrace

__all__ = ["FrameWatch", "ObservedConnection", "SessionTelemetry", "event_type"]

_TYPE_PREFIX = '{"type": "'
_ARRIVALS_KEPT = 512  # input audio frames remembered (several seconds at any chunk size)
_IDS_KEPT = 64


def event_type(payload: str) -> str:
    """The ``type`` of a server event as the session serialises it (``type`` comes first)."""
    if payload.startswith(_TYPE_PREFIX):
        end = payload.find('"', len(_TYPE_PREFIX))
        if end > 0:
            return payload[len(_TYPE_PREFIX) : end]
    try:
        return str(json.loads(payload).get("type", ""))
    except (ValueError, AttributeError):
        return ""


class SessionTelemetry:
    """One session's contribution to the metrics (if on) and its trace (if tracing)."""

    def __init__(self, metrics: ServeMetrics | None, trace: SessionTrace | None) -> None:
        """Report to ``metrics`` and ``trace``; either may be None."""
        self.metrics = metrics
        self.trace = trace
        self.close_code: int | None = None
        self._epoch_offset_ns = time.time_ns() - time.monotonic_ns()
        self._arrivals: deque[tuple[int, int]] = deque(maxlen=_ARRIVALS_KEPT)
        self._last_audio_ns = -1
        self._seen: deque[int] = deque(maxlen=_IDS_KEPT)
        self._speech_end_arrival_ns: int | None = None
        self._on_event: dict[str, Callable[[str, int], None]] = {
            "input_audio_buffer.speech_started": self._speech_started,
            "input_audio_buffer.committed": self._committed,
            "response.created": self._response_created,
            "response.output_audio.delta": self._audio_delta,
            "response.done": self._response_done,
            "error": self._error,
        }

    def _epoch(self, monotonic_ns: int) -> int:
        return monotonic_ns + self._epoch_offset_ns

    # ------------------------------------------------------------ server events

    def on_sent(self, payload: str) -> None:
        """A server event was sent to the client."""
        handler = self._on_event.get(event_type(payload))
        if handler is not None:
            handler(payload, time.monotonic_ns())

    def _speech_started(self, payload: str, now_ns: int) -> None:
        self._speech_end_arrival_ns = None
        if self.trace is not None:
            self.trace.start_turn(self._epoch(now_ns), "speech")

    def _committed(self, payload: str, now_ns: int) -> None:
        if self.metrics is not None:
            self.metrics.turns.inc()
        if self.trace is not None and self.trace.turn is None:
            self.trace.start_turn(self._epoch(now_ns), "commit")

    def _response_created(self, payload: str, now_ns: int) -> None:
        if self.trace is not None:
            if self.trace.turn is None:
                self.trace.start_turn(self._epoch(now_ns), "response")
            self.trace.response_started()

    def _audio_delta(self, payload: str, now_ns: int) -> None:
        if self._speech_end_arrival_ns is None:
            return
        seconds = (now_ns - self._speech_end_arrival_ns) / 1e9
        self._speech_end_arrival_ns = None
        if self.metrics is not None:
            self.metrics.voice_to_voice.observe(seconds)
        if self.trace is not None:
            self.trace.set_turn_attribute("parley.voice_to_voice_s", round(seconds, 4))

    def _response_done(self, payload: str, now_ns: int) -> None:
        response = json.loads(payload).get("response") or {}
        status = str(response.get("status") or "unknown")
        if self.metrics is not None:
            self.metrics.responses.labels(status=status).inc()
        if self.trace is not None:
            self.trace.response_done(self._epoch(now_ns), status)

    def _error(self, payload: str, now_ns: int) -> None:
        error = json.loads(payload).get("error") or {}
        code = str(error.get("code") or error.get("type") or "unknown")
        if self.metrics is not None:
            self.metrics.errors.labels(code=code).inc()
        if self.trace is not None:
            self.trace.error(self._epoch(now_ns), code, str(error.get("message") or ""))

    # ------------------------------------------------------------ pipeline frames

    def first_sight(self, frame_id: int) -> bool:
        """True the first time a frame is seen (frames are observed at every hop)."""
        if frame_id in self._seen:
            return False
        self._seen.append(frame_id)
        return True

    def on_input_audio(self, frame: InputAudioFrame, now_ns: int) -> None:
        """Input audio entered the pipeline: remember when its end arrived."""
        if frame.timestamp_ns <= self._last_audio_ns:
            return
        self._last_audio_ns = frame.timestamp_ns
        samples = len(frame.audio) // (2 * max(1, frame.num_channels))
        end_ns = frame.timestamp_ns + round(samples * 1e9 / frame.sample_rate)
        self._arrivals.append((end_ns, now_ns))

    def on_speech_end(self, frame: UserStoppedSpeakingFrame) -> None:
        """A turn ended: find when the audio holding the speech's end arrived."""
        if frame.speech_end_ns is None or not self.first_sight(frame.id):
            return
        arrival: int | None = None
        for end_ns, arrived_ns in reversed(self._arrivals):
            if end_ns < frame.speech_end_ns:
                break
            arrival = arrived_ns
        if arrival is not None:
            self._speech_end_arrival_ns = arrival

    def on_metrics(self, frame: MetricsFrame, now_ns: int) -> None:
        """A stage's measurements: its latencies become histograms and stage spans."""
        if not self.first_sight(frame.id):
            return
        for sample in frame.samples:
            found = stage_seconds(sample.name, sample.value, sample.extra)
            if found is None:
                continue
            stage, seconds = found
            if self.metrics is not None:
                self.metrics.observe_stage(stage, seconds)
            if self.trace is not None:
                end = self._epoch(now_ns)
                self.trace.stage(
                    stage,
                    end - round(seconds * 1e9),
                    end,
                    {
                        "parley.processor": sample.processor,
                        "parley.metric": sample.name,
                        "parley.seconds": seconds,
                    },
                )

    def finish(self, close_code: int | None = None) -> None:
        """The session ended: close its trace."""
        if self.trace is not None:
            code = self.close_code if close_code is None else close_code
            self.trace.end(self._epoch(time.monotonic_ns()), code)


class FrameWatch(Observer):
    """Observer of a session's pipeline task: hands the frames telemetry needs to it."""

    def __init__(self, telemetry: SessionTelemetry) -> None:
        """Report to ``telemetry``."""
        self._telemetry = telemetry
        self._handlers: Mapping[type, Callable[[Any, int], None]] = {
            InputAudioFrame: telemetry.on_input_audio,
            MetricsFrame: telemetry.on_metrics,
            UserStoppedSpeakingFrame: lambda frame, now: telemetry.on_speech_end(frame),
        }

    def on_push(
        self,
        source: FrameEndpoint,
        destination: FrameEndpoint | None,
        frame: Any,
        direction: Any,
        timestamp_ns: int,
    ) -> None:
        """Pass on the frames of interest; the rest cost one dictionary look-up."""
        handler = self._handlers.get(type(frame))
        if handler is not None:
            handler(frame, timestamp_ns)


class ObservedConnection:
    """A server WebSocket connection whose sent events and close code telemetry sees."""

    def __init__(self, connection: Any, telemetry: SessionTelemetry) -> None:
        """Wrap ``connection`` (a ``websockets`` server connection)."""
        self._connection = connection
        self._telemetry = telemetry

    async def send(self, message: str) -> None:
        """Send a server event, then report it."""
        await self._connection.send(message)
        self._telemetry.on_sent(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code``."""
        self._telemetry.close_code = code
        await self._connection.close(code, reason)

    def __aiter__(self) -> Any:
        """The client's messages."""
        return self._connection.__aiter__()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)
