"""OpenAISTT and OpenAITTS against local audio endpoints backed by Whisper and Piper."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from framework import Direction, EndReason, Frame, Pipeline, PipelineTask, Processor, TaskParams
from framework.frames import (
    CancelFrame,
    ErrorFrame,
    InputAudioFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    LLMTextFrame,
    MetricsFrame,
    OutputAudioFrame,
    StartFrame,
    TranscriptionFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.stt.openai import OpenAISTT, OpenAISTTParams
from processors.tts.openai import OpenAITTS, OpenAITTSParams
from tests.processors.openai.audio_server import AudioServer
from tests.processors.openai.conftest import KEY_ENV

pytestmark = pytest.mark.anyio

SENTINEL = "sk-proj-SENTINEL-audio-4d2e-never-print"


class Sink(Processor):
    def __init__(self) -> None:
        super().__init__(name="sink")
        self.seen: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: Direction) -> None:
        if direction is Direction.DOWNSTREAM and not isinstance(frame, InputAudioFrame):
            self.seen.append(frame)
        await self.push(frame, direction)

    def of(self, kind: type) -> list[Any]:
        return [f for f in self.seen if isinstance(f, kind)]


@pytest.fixture(scope="module")
def question() -> bytes:
    from tests.speech import synthesize_speech

    return synthesize_speech(["Could you book a table for two at seven tonight?"])[0]


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, SENTINEL)
    return SENTINEL


async def transcribe(stt: OpenAISTT, pcm: bytes) -> tuple[Sink, PipelineTask]:
    sink = Sink()
    task = PipelineTask(Pipeline([stt, sink]), TaskParams(name="stt-test"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await task.queue_frame(UserStartedSpeakingFrame())
        ts = 0
        for start in range(0, len(pcm), 640):
            await task.queue_frame(
                InputAudioFrame(audio=pcm[start : start + 640], sample_rate=16000, timestamp_ns=ts)
            )
            ts += 20_000_000
        await task.queue_frame(UserStoppedSpeakingFrame())
        with anyio.fail_after(60):
            while not sink.of(TranscriptionFrame):
                await anyio.sleep(0.01)
        await anyio.sleep(0.05)
        await task.cancel()
    return sink, task


async def test_a_turn_is_transcribed_by_the_server(
    audio_server: AudioServer, question: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stt = OpenAISTT(
        OpenAISTTParams(model="whisper-1", base_url=audio_server.url, api_key_env=KEY_ENV),
        name="stt",
    )
    before = len(audio_server.requests)
    sink, task = await transcribe(stt, question)
    text = sink.of(TranscriptionFrame)[0].text.lower()
    assert "table" in text and "seven" in text
    request = audio_server.requests[before]
    assert request["fields"] == {"model": "whisper-1", "response_format": "json", "language": "en"}
    assert request["file_bytes"] > 32000  # a WAV of the whole turn
    assert request["headers"]["authorization"] == f"Bearer {SENTINEL}"
    cost = next(s for m in sink.of(MetricsFrame) for s in m.samples if s.name == "cost_usd")
    assert cost.value == pytest.approx(stt.cost_usd) and 0 < cost.value < 0.001
    names = {s.name for m in sink.of(MetricsFrame) for s in m.samples}
    assert {"stt_final_s", "cpu_s", "cost_usd"} <= names
    assert task.errors == []
    assert SENTINEL not in caplog.text


async def test_a_request_refused_every_time_ends_the_task_with_an_empty_transcript(
    audio_server: AudioServer, question: bytes
) -> None:
    stt = OpenAISTT(
        OpenAISTTParams(
            model="fail", base_url=audio_server.url, api_key_env=KEY_ENV, max_retries=0
        ),
        name="stt",
    )
    sink, task = await transcribe(stt, question)
    assert sink.of(TranscriptionFrame)[0].text == ""
    errors: list[ErrorFrame] = task.errors
    assert [e.fatal for e in errors] == [False, False, True]  # two restarts, then give up
    for error in errors:
        assert "HTTP 400" in error.message and "does not exist" in error.message
        assert SENTINEL not in error.message
    assert task.end_reason is EndReason.ERROR


async def test_a_reply_is_synthesised_piece_by_piece(
    audio_server: AudioServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tts = OpenAITTS(
        OpenAITTSParams(
            model="tts-1", voice="alloy", base_url=audio_server.url, api_key_env=KEY_ENV
        ),
        name="tts",
    )
    sink = Sink()
    task = PipelineTask(Pipeline([tts, sink]), TaskParams(name="tts-test"))
    before = len(audio_server.requests)
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await task.queue_frame(LLMResponseStartFrame())
        for word in ["Hello", "there.", "How", "are", "you", "today?"]:
            await task.queue_frame(LLMTextFrame(text=word + " "))
        await task.queue_frame(LLMResponseEndFrame())
        with anyio.fail_after(60):
            while not sink.of(LLMResponseEndFrame):
                await anyio.sleep(0.01)
        await task.cancel()

    kinds = [
        type(f) for f in sink.seen if not isinstance(f, (MetricsFrame, StartFrame, CancelFrame))
    ]
    assert kinds[:3] == [LLMResponseStartFrame, TTSStartedFrame, TTSTextFrame]
    assert kinds[3] is OutputAudioFrame  # a piece's text, then its audio
    assert [f.text for f in sink.of(TTSTextFrame)] == ["Hello there.", "How are you today?"]
    assert kinds[-2:] == [TTSStoppedFrame, LLMResponseEndFrame]
    audio_s = sum(f.duration_s for f in sink.of(OutputAudioFrame))
    assert 1.0 < audio_s < 5.0
    assert all(f.sample_rate == 24000 for f in sink.of(OutputAudioFrame))
    requests = audio_server.requests[before:]
    assert [r["fields"]["input"] for r in requests] == ["Hello there.", "How are you today?"]
    assert requests[0]["fields"]["response_format"] == "pcm"
    cost = next(s for m in sink.of(MetricsFrame) for s in m.samples if s.name == "cost_usd")
    assert cost.value == pytest.approx(len("Hello there.How are you today?") * 15 / 1e6)
    assert task.errors == []
    assert SENTINEL not in caplog.text


async def test_a_missing_key_for_openai_itself_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(KEY_ENV)
    tts = OpenAITTS(OpenAITTSParams(api_key_env=KEY_ENV), name="tts")
    task = PipelineTask(Pipeline([tts, Sink()]), TaskParams(name="tts-test"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        with anyio.fail_after(10):
            while not task.errors:
                await anyio.sleep(0.01)
        await task.cancel()
    assert KEY_ENV in task.errors[0].message
