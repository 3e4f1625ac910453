"""The event log observer: what it records, once per frame, and its JSONL files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import pytest

from framework import Direction, EndReason
from framework.audio import silence, write_wav
from framework.frames import (
    BotStartedSpeakingFrame,
    ErrorFrame,
    InputAudioFrame,
    InterruptionFrame,
    LLMMessagesFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    LLMTextFrame,
    MetricSample,
    MetricsFrame,
    OutputAudioFrame,
    TranscriptionFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.recording import EventLog, read_jsonl
from processors.transports import FileTransport

from ..transports.transport_helpers import Cue, push_all, run_task, tone_frames

pytestmark = pytest.mark.anyio

DOWN, UP = Direction.DOWNSTREAM, Direction.UPSTREAM


class Source:
    def __init__(self, name: str) -> None:
        self.name = name


def test_records_frames_of_interest_once_and_skips_audio() -> None:
    log = EventLog(origin_ns=0)
    a, b = Source("a"), Source("b")
    text = TranscriptionFrame(text="hi there", start_ns=5, end_ns=9)
    log.on_push(a, b, InputAudioFrame(audio=silence(16000, 20), sample_rate=16000), DOWN, 1)
    log.on_push(a, b, OutputAudioFrame(audio=silence(24000, 20), sample_rate=24000), DOWN, 1)
    log.on_push(a, b, text, DOWN, 2_000_000_000)
    log.on_push(b, None, text, DOWN, 3_000_000_000)  # passed on: not a new event
    up, down = InterruptionFrame(), InterruptionFrame()
    log.on_push(b, a, up, UP, 4)  # a broadcast is recorded once, downstream
    log.on_push(b, None, down, DOWN, 5)
    assert log.records == [
        {
            "t_ns": 2_000_000_000,
            "t_s": 2.0,
            "event": "transcription",
            "processor": "a",
            "text": "hi there",
            "start_ns": 5,
            "end_ns": 9,
        },
        {"t_ns": 5, "t_s": 0.0, "event": "interruption", "processor": "b"},
    ]


def test_llm_first_text_per_response_metrics_and_errors() -> None:
    log = EventLog(origin_ns=0)
    llm = Source("llm")
    for round_ in range(2):
        log.on_push(llm, None, LLMResponseStartFrame(), DOWN, 10 * round_)
        for word in ("a", "b"):
            log.on_push(llm, None, LLMTextFrame(text=word), DOWN, 10 * round_ + 1)
        log.on_push(llm, None, LLMResponseEndFrame(), DOWN, 10 * round_ + 2)
    samples = [MetricSample("llm", "ttft", 0.05), MetricSample("llm", "tokens", 2, unit="")]
    log.on_push(llm, None, MetricsFrame(samples=samples), DOWN, 30)
    log.on_push(llm, None, ErrorFrame(message="boom", processor="llm", code="x"), UP, 31)
    names = [r["event"] for r in log.records]
    assert names == ["llm_response_start", "llm_first_text", "llm_response_end"] * 2 + [
        "metric",
        "metric",
        "error",
    ]
    assert [r["text"] for r in log.events("llm_first_text")] == ["a", "a"]
    assert log.events("metric")[0] == {
        "t_ns": 30,
        "t_s": 0.0,
        "event": "metric",
        "processor": "llm",
        "name": "ttft",
        "value": 0.05,
        "unit": "s",
    }
    error = log.events("error")[0]
    assert (error["message"], error["processor"], error["code"]) == ("boom", "llm", "x")

    every = EventLog(llm_text=True)
    every.on_push(llm, None, LLMTextFrame(text="a"), DOWN, 1)
    every.on_push(llm, None, LLMTextFrame(text="b"), DOWN, 2)
    assert [r["event"] for r in every.records] == ["llm_first_text", "llm_text"]


async def test_conversation_events_and_jsonl_round_trip(tmp_path: Path) -> None:
    write_wav(tmp_path / "in.wav", silence(16000, 800), 16000)
    ft = FileTransport(
        FileTransport.Params(input_path=tmp_path / "in.wav", end_after_s=0.2, stop_delay_ms=20)
    )
    now = time.monotonic_ns()
    turn = [
        UserStartedSpeakingFrame(speech_start_ns=now),
        UserStoppedSpeakingFrame(speech_end_ns=now + 1),
        TranscriptionFrame(text="hello", start_ns=now, end_ns=now + 1),
        LLMMessagesFrame(messages=[{"role": "user", "content": "hello"}]),
        LLMResponseStartFrame(),
        LLMTextFrame(text="Hi"),
        LLMTextFrame(text=" there"),
        MetricsFrame(samples=[MetricSample("llm", "ttft", 0.04)]),
        TTSStartedFrame(),
        TTSTextFrame(text="Hi there"),
        *tone_frames(0.2),
        TTSStoppedFrame(),
        LLMResponseEndFrame(),
    ]

    async def fail(cue: Cue) -> None:
        await cue.push_error("something broke", code="E1")

    cue = Cue(lambda: ft.origin_ns, [(0.1, push_all(turn)), (0.2, fail)])
    stream = tmp_path / "stream.jsonl"
    log = EventLog(path=stream)
    await run_task([ft.input(), cue, ft.output()], observers=[log])
    assert read_jsonl(stream) == log.records  # complete when the task ends, before close()
    log.close()

    names = [r["event"] for r in log.records if r["event"] != "error"]
    expected = [
        "start",
        "input_started",
        "user_started_speaking",
        "user_stopped_speaking",
        "transcription",
        "llm_messages",
        "llm_response_start",
        "llm_first_text",
        "metric",
        "tts_started",
        "tts_text",
        "tts_stopped",
        "llm_response_end",
        "bot_first_audio",
        "bot_started_speaking",
        "bot_audio_stopped",
        "bot_stopped_speaking",
        "input_ended",
        "end",
    ]
    assert names == expected
    by_name = {r["event"]: r for r in log.records}
    assert by_name["bot_first_audio"]["t_ns"] == ft.output().reply_first_audio_ns[0]
    assert by_name["bot_first_audio"]["processor"] == ft.output().name
    assert by_name["bot_stopped_speaking"]["interrupted"] is False
    assert by_name["bot_audio_stopped"]["t_ns"] - by_name["bot_first_audio"]["t_ns"] == 200_000_000
    assert by_name["user_started_speaking"]["speech_start_ns"] == now
    assert [r["event"] for r in log.records].count("error") == 1
    assert by_name["error"]["code"] == "E1"
    assert by_name["error"]["processor"] == "cue"
    assert by_name["end"]["processor"] == ft.input().name

    # The streamed file and a written file both hold exactly the records.
    assert read_jsonl(stream) == log.records
    log.write_jsonl(tmp_path / "all.jsonl")
    assert read_jsonl(tmp_path / "all.jsonl") == log.records
    assert ft.origin_ns is not None
    log.set_origin(ft.origin_ns)
    assert by_name["input_started"]["t_s"] == 0.0
    assert by_name["bot_first_audio"]["t_s"] == pytest.approx(0.1, abs=0.06)


async def test_streamed_log_is_flushed_on_cancel(tmp_path: Path) -> None:
    stream = tmp_path / "stream.jsonl"
    ft = FileTransport(FileTransport.Params(end_after_s=5.0))
    cue = Cue(lambda: ft.origin_ns, [(0.05, push_all(tone_frames(1.0)))])

    async def cancel_soon(task: object) -> None:
        while not any(isinstance(f, BotStartedSpeakingFrame) for _, f, _ in cue.seen):
            await anyio.sleep(0.01)
        await task.cancel()  # type: ignore[attr-defined]

    with EventLog(path=stream) as log:
        task = await run_task([ft.input(), cue, ft.output()], observers=[log], during=cancel_soon)
        assert task.end_reason is EndReason.CANCELLED
        lines = stream.read_text().splitlines()  # readable before close: flushed at Cancel
    records = [json.loads(line) for line in lines]
    assert records[-1]["event"] == "cancel"
    assert "bot_first_audio" in [r["event"] for r in records]
