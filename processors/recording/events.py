"""The event log: one JSON record per conversation event, for reports and benchmarks.

:class:`EventLog` is an :class:`~framework.observer.Observer`. It looks at every
push, keeps only the frames of interest, and records each frame once, at its
first push (a transcription passed on by five processors is one event, stamped
when its producer pushed it). Audio frames are dismissed by a single dictionary
lookup, so the observer costs next to nothing on the 20 ms audio path.

Events that are not frames (the play time of a reply's first bot audio sample,
the end of the bot's audio, the start of a file's input) reach the log through
``Processor.report_event``, which calls ``on_event`` on the task's observers.

Every record looks like::

    {"t_ns": 123456789, "t_s": 1.234567, "event": "transcription",
     "processor": "stt", "text": "hello", "start_ns": ..., "end_ns": ...}

``t_ns`` is on the monotonic clock frames are stamped with; ``t_s`` is seconds
since the log's origin (by default its creation; see :meth:`EventLog.set_origin`).
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any

from framework.frames import (
    AudioFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    Direction,
    EndFrame,
    ErrorFrame,
    Frame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMMessagesFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    LLMTextFrame,
    MetricsFrame,
    StartFrame,
    TranscriptionFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserPausedSpeakingFrame,
    UserResumedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from framework.observer import FrameEndpoint, Observer

if TYPE_CHECKING:
    pass

__all__ = ["EventLog", "read_jsonl"]

Record = dict[str, Any]
StrPath = str | os.PathLike[str]
_DOWN = Direction.DOWNSTREAM
_SEEN_LIMIT = 65536


def read_jsonl(path: StrPath) -> list[Record]:
    """Read records written by :meth:`EventLog.write_jsonl` or a streaming log."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# A recorder appends the frame's record(s) to the log and returns True, or returns
# False to skip the frame (which may then be recorded at a later push).
_Recorder = Callable[["EventLog", str, Any, Direction, int], bool]


def _simple(event: str, fields: Callable[[Any], dict[str, Any]] | None = None) -> _Recorder:
    def record(log: EventLog, source: str, frame: Any, direction: Direction, t_ns: int) -> bool:
        log._append(t_ns, event, source, fields(frame) if fields else {})
        return True

    return record


def _downstream(event: str, fields: Callable[[Any], dict[str, Any]] | None = None) -> _Recorder:
    # Frames sent both ways (bot speaking, interruptions) are recorded once: downstream.
    inner = _simple(event, fields)

    def record(log: EventLog, source: str, frame: Any, direction: Direction, t_ns: int) -> bool:
        return direction is _DOWN and inner(log, source, frame, direction, t_ns)

    return record


def _llm_text(log: EventLog, source: str, frame: Any, direction: Direction, t_ns: int) -> bool:
    if log._awaiting_first_text:
        log._awaiting_first_text = False
        log._append(t_ns, "llm_first_text", source, {"text": frame.text})
        return True
    if log.llm_text:
        log._append(t_ns, "llm_text", source, {"text": frame.text})
        return True
    return False


def _response_start(
    log: EventLog, source: str, frame: Any, direction: Direction, t_ns: int
) -> bool:
    log._awaiting_first_text = True
    log._append(t_ns, "llm_response_start", source, {})
    return True


def _metrics(log: EventLog, source: str, frame: Any, direction: Direction, t_ns: int) -> bool:
    for s in frame.samples:
        fields: dict[str, Any] = {"name": s.name, "value": s.value, "unit": s.unit}
        if s.extra:
            fields["extra"] = s.extra
        log._append(t_ns, "metric", s.processor or source, fields)
    return True


def _error(log: EventLog, source: str, frame: Any, direction: Direction, t_ns: int) -> bool:
    fields = {"message": frame.message, "code": frame.code, "fatal": frame.fatal}
    log._append(t_ns, "error", frame.processor or source, fields)
    return True


def _lifecycle(event: str) -> _Recorder:
    def record(log: EventLog, source: str, frame: Any, direction: Direction, t_ns: int) -> bool:
        fields: dict[str, Any] = {"reason": frame.reason}
        log._append(t_ns, event, source, fields)
        log.flush()
        return True

    return record


_RECORDERS: dict[type[Frame], _Recorder] = {
    StartFrame: _simple(
        "start",
        lambda f: {
            "audio_in_sample_rate": f.audio_in_sample_rate,
            "audio_out_sample_rate": f.audio_out_sample_rate,
        },
    ),
    EndFrame: _lifecycle("end"),
    CancelFrame: _lifecycle("cancel"),
    UserStartedSpeakingFrame: _simple(
        "user_started_speaking", lambda f: {"speech_start_ns": f.speech_start_ns}
    ),
    UserStoppedSpeakingFrame: _simple(
        "user_stopped_speaking", lambda f: {"speech_end_ns": f.speech_end_ns}
    ),
    UserPausedSpeakingFrame: _simple(
        "user_paused_speaking", lambda f: {"speech_end_ns": f.speech_end_ns}
    ),
    UserResumedSpeakingFrame: _simple(
        "user_resumed_speaking", lambda f: {"speech_start_ns": f.speech_start_ns}
    ),
    BotStartedSpeakingFrame: _downstream("bot_started_speaking"),
    BotStoppedSpeakingFrame: _downstream(
        "bot_stopped_speaking", lambda f: {"interrupted": f.interrupted, "played_s": f.played_s}
    ),
    InterruptionFrame: _downstream("interruption"),
    InterimTranscriptionFrame: _simple("interim_transcription", lambda f: {"text": f.text}),
    TranscriptionFrame: _simple(
        "transcription",
        lambda f: {"text": f.text, "start_ns": f.start_ns, "end_ns": f.end_ns},
    ),
    LLMMessagesFrame: _simple("llm_messages", lambda f: {"count": len(f.messages)}),
    LLMResponseStartFrame: _response_start,
    LLMResponseEndFrame: _simple("llm_response_end"),
    LLMTextFrame: _llm_text,
    TTSStartedFrame: _simple("tts_started"),
    TTSStoppedFrame: _simple("tts_stopped"),
    TTSTextFrame: _simple("tts_text", lambda f: {"text": f.text}),
    MetricsFrame: _metrics,
    ErrorFrame: _error,
}


class EventLog(Observer):
    """Records conversation events as dicts in :attr:`records`, optionally streaming JSONL.

    ``origin_ns`` is the zero of ``t_s`` (default: when the log is created).
    ``path`` streams each record to that file as it happens (buffered; flushed
    whenever an End or Cancel frame is pushed, so the file is complete when the
    task ends, and on :meth:`close`). ``llm_text``
    records every LLM text chunk, not only the first of each response.
    """

    def __init__(
        self,
        origin_ns: int | None = None,
        *,
        path: StrPath | None = None,
        llm_text: bool = False,
    ) -> None:
        self.origin_ns: int = time.monotonic_ns() if origin_ns is None else origin_ns
        self.records: list[Record] = []
        self.llm_text = llm_text
        self._awaiting_first_text = True
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()
        self._table: dict[type[Frame], _Recorder | None] = {}
        self._stream: IO[str] | None = (
            open(path, "w", encoding="utf-8") if path is not None else None  # noqa: SIM115
        )

    # ----------------------------------------------------------------- frames

    def on_push(
        self,
        source: FrameEndpoint,
        destination: FrameEndpoint | None,
        frame: Frame,
        direction: Direction,
        timestamp_ns: int,
    ) -> None:
        """Record ``frame`` if it is of interest and has not been recorded yet."""
        frame_type = type(frame)
        table = self._table
        recorder = table[frame_type] if frame_type in table else self._resolve(frame_type)
        if recorder is None:
            return
        frame_id = frame.id
        if frame_id in self._seen:
            if frame_type is EndFrame or frame_type is CancelFrame:
                self.flush()  # flushed again at each hop: the last one sees every record
            return
        if recorder(self, source.name, frame, direction, timestamp_ns):
            self._remember(frame_id)

    def _resolve(self, frame_type: type[Frame]) -> _Recorder | None:
        recorder: _Recorder | None = None
        if not issubclass(frame_type, AudioFrame):
            for klass in frame_type.__mro__:
                if klass in _RECORDERS:
                    recorder = _RECORDERS[klass]
                    break
        self._table[frame_type] = recorder
        return recorder

    def _remember(self, frame_id: int) -> None:
        self._seen.add(frame_id)
        order = self._seen_order
        order.append(frame_id)
        if len(order) > _SEEN_LIMIT:
            self._seen.discard(order.popleft())

    # ----------------------------------------------------------------- events

    def on_event(
        self, source: FrameEndpoint, event: str, timestamp_ns: int, fields: Mapping[str, Any]
    ) -> None:
        """Record a non-frame event reported with ``Processor.report_event``."""
        self._append(timestamp_ns, event, source.name, dict(fields))

    def _append(self, t_ns: int, event: str, processor: str, fields: dict[str, Any]) -> None:
        record: Record = {
            "t_ns": t_ns,
            "t_s": round((t_ns - self.origin_ns) / 1e9, 6),
            "event": event,
            "processor": processor,
        }
        record.update(fields)
        self.records.append(record)
        if self._stream is not None:
            self._stream.write(json.dumps(record, default=str) + "\n")

    # ----------------------------------------------------------------- output

    def set_origin(self, origin_ns: int) -> None:
        """Move the zero of ``t_s`` (for example to a file transport's timeline origin).

        Records kept in memory are updated; lines already streamed are not.
        """
        self.origin_ns = origin_ns
        for record in self.records:
            record["t_s"] = round((record["t_ns"] - origin_ns) / 1e9, 6)

    def events(self, name: str) -> list[Record]:
        """The records of one event type, in order."""
        return [r for r in self.records if r["event"] == name]

    def write_jsonl(self, path: StrPath) -> None:
        """Write every record to ``path``, one JSON object per line."""
        with open(path, "w", encoding="utf-8") as f:
            for record in self.records:
                f.write(json.dumps(record, default=str) + "\n")

    def flush(self) -> None:
        """Push streamed lines to the file."""
        if self._stream is not None:
            self._stream.flush()

    def close(self) -> None:
        """Flush and close the streaming file, if any. Records stay in memory."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
