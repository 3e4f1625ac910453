"""OpenAIRealtime end to end against ``parley serve`` over a real WebSocket (official SDK).

The server runs a real cascade (Silero VAD, Whisper tiny.en, Piper) with a
deterministic language model (:mod:`tests.processors.realtime.serve_llm`), and
its test knobs make it drop the connection or expire the session.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from framework.audio import silence
from framework.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    FunctionCallResultFrame,
    InputAudioFrame,
    LLMResponseEndFrame,
    TranscriptionFrame,
    TTSTextFrame,
)
from pipelines.config import PipelineConfig, PipelineInfo, StageConfig
from pipelines.serve.app import running_server
from processors.realtime.frames import RealtimeConnectionFrame
from processors.realtime.openai import OpenAIRealtime, OpenAIRealtimeParams
from processors.toolset import ToolSet
from tests.pipelines.serve.faults import faults
from tests.processors.realtime import serve_llm
from tests.processors.realtime.harness import KEY_ENV, Harness, running

pytestmark = pytest.mark.anyio

QUESTION = "Could you book a table for two at seven tonight?"
LONG = "Please remind me to call my sister after lunch, and then book a table for two."


@pytest.fixture(scope="module")
def speech() -> dict[str, bytes]:
    from tests.speech import synthesize_speech

    clips = synthesize_speech([QUESTION, LONG])
    return {"question": clips[0], "long": clips[1]}


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "local-test-key")


def config() -> PipelineConfig:
    serve_llm.register()
    stages = {
        "transport": "file",
        "vad": "silero",
        "stt": "whisper",
        "llm": "realtime_echo",
        "tts": "piper",
    }
    return PipelineConfig(
        source="realtime-serve-test",
        pipeline=PipelineInfo(name="realtime-serve-test", architecture="cascade"),
        stages={k: StageConfig(backend=v) for k, v in stages.items()},
    )


@asynccontextmanager
async def session(
    tools: ToolSet | None = None, **knobs: Any
) -> AsyncIterator[tuple[Harness, OpenAIRealtime, list[dict[str, Any]]]]:
    """A processor connected to a fresh server; yields the harness, it and the events seen."""
    async with running_server(config(), **knobs) as url:
        proc = OpenAIRealtime(
            OpenAIRealtimeParams(
                websocket_base_url=url,
                api_key_env=KEY_ENV,
                transcription_model="whisper-1",
                reconnect_attempts=2,
                reconnect_initial_delay_s=0.05,
                reconnect_jitter=0.0,
            ),
            tools=tools,
            name="realtime",
        )
        events: list[dict[str, Any]] = []
        handle = proc.events.on_event

        async def spy(event: dict[str, Any]) -> None:
            events.append({k: v for k, v in event.items() if k != "delta"})
            await handle(event)

        proc.events.on_event = spy  # type: ignore[method-assign]
        async with running(proc) as h:
            await h.wait(lambda: proc.connected, within=60)
            yield h, proc, events


async def speak(h: Harness, pcm: bytes, *, tail_ms: int = 1200) -> None:
    """Play ``pcm`` (16 kHz) into the pipeline at real-time pace, then silence."""
    audio = silence(16000, 200) + pcm + silence(16000, tail_ms)
    start = time.monotonic()
    for n, offset in enumerate(range(0, len(audio), 640)):
        await h.task.queue_frame(
            InputAudioFrame(
                audio=audio[offset : offset + 640], sample_rate=16000, timestamp_ns=h.clock_ns
            )
        )
        h.clock_ns += 20_000_000
        await anyio.sleep(max(0.0, start + (n + 1) * 0.02 - time.monotonic()))


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


async def test_a_spoken_turn_and_a_bad_event(speech: dict[str, bytes]) -> None:
    async with session() as (h, proc, events):
        proc.state.link.send({"type": "conversation.item.create", "item": {"type": "bogus"}})  # type: ignore[union-attr]
        await h.wait(lambda: h.task.errors, within=20)
        await speak(h, speech["question"])
        await h.wait_frame(LLMResponseEndFrame, within=60)

    assert len(h.task.errors) == 1 and not h.task.errors[0].fatal  # the session went on
    heard = h.tap_out.frames(TranscriptionFrame)[0].text.lower()
    assert "table" in heard and "seven" in heard
    reply = " ".join(f.text for f in h.tap_out.frames(TTSTextFrame))
    assert reply.startswith("You said:") and "table" in reply.lower()
    assert h.context.messages[-1] == {"role": "assistant", "content": reply}
    assert kinds(events).index("input_audio_buffer.speech_started") < kinds(events).index(
        "response.created"
    )
    assert proc.usage.responses == 1 and proc.usage.audio_out > 0
    assert proc.conversation_items()[0]["content"][0]["text"].lower().startswith("could you")


async def test_a_barge_in_truncates_at_the_played_position(speech: dict[str, bytes]) -> None:
    async with session() as (h, _proc, events):
        await speak(h, speech["question"], tail_ms=800)
        await h.wait_frame(BotStartedSpeakingFrame, within=60)
        await anyio.sleep(1.0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(speak, h, speech["long"])  # the user talks over the bot
            await h.wait(lambda: "conversation.item.truncated" in kinds(events), within=30)
            tg.cancel_scope.cancel()
        stops = h.tap_out.frames(BotStoppedSpeakingFrame)

    # The reply can play in several stretches: on a busy machine the server's audio
    # comes slower than real time, the output runs dry (a stop that is not an
    # interruption) and starts again. The item was heard for all of them.
    cut = next(n for n, f in enumerate(stops) if f.interrupted)
    played_s = sum(f.played_s for f in stops[: cut + 1])
    truncated = next(e for e in events if e["type"] == "conversation.item.truncated")
    assert truncated["audio_end_ms"] == int(played_s * 1000)
    assert 0 < truncated["audio_end_ms"] < 8000
    assert h.task.errors == []
    heard = h.context.messages[0]["content"]
    assert heard.startswith("You said:") and len(heard) < len("You said: " + QUESTION)


async def test_a_function_call_round_trip(speech: dict[str, bytes]) -> None:
    tools = ToolSet()

    @tools.tool()
    async def get_weather(city: str) -> dict[str, Any]:
        """Current weather in a city."""
        return {"city": city, "sky": "sunny"}

    async with session(tools=tools) as (h, _proc, events):
        await speak(h, speech["question"])
        await h.wait_frame(LLMResponseEndFrame, within=60)

    result = h.tap_out.frames(FunctionCallResultFrame)[0]
    assert result.result == {"city": "Paris", "sky": "sunny"}
    said = " ".join(f.text for f in h.tap_out.frames(TTSTextFrame))
    assert "sunny" in said and "Paris" in said
    assert [e["type"] for e in events].count("response.created") == 2
    assert h.task.errors == []


async def test_a_dropped_connection_resumes_in_a_new_session(speech: dict[str, bytes]) -> None:
    flaky = faults(close_after_deltas=4, close_code=1011)
    async with session(wrap_connection=flaky) as (h, proc, events):
        await speak(h, speech["question"], tail_ms=600)
        await h.wait(lambda: len(h.tap_out.frames(RealtimeConnectionFrame)) >= 3, within=60)
        await h.wait(lambda: kinds(events).count("response.created") >= 2, within=60)
        items = proc.conversation_items()

    states = [f.state for f in h.tap_out.frames(RealtimeConnectionFrame)]
    assert states[:3] == ["connected", "reconnecting", "reconnected"]
    assert h.tap_out.frames(RealtimeConnectionFrame)[1].close_code == 1011
    assert h.tap_out.frames(RealtimeConnectionFrame)[2].replayed >= 2
    assert items[0]["role"] == "user" and "table" in items[0]["content"][0]["text"].lower()
    assert items[1]["role"] == "assistant"
    assert items[1]["content"][0]["text"].startswith("You said")
    assert proc.sessions == 2 and h.task.errors == []


async def test_an_expired_session_is_renewed_quietly() -> None:
    async with session(max_duration_s=1.5) as (h, proc, events):
        await h.wait(lambda: proc.sessions >= 2, within=30)
        await h.wait(lambda: len(h.tap_out.frames(RealtimeConnectionFrame)) >= 3, within=30)

    lost = h.tap_out.frames(RealtimeConnectionFrame)[1]
    assert lost.state == "reconnecting" and lost.expired and lost.close_code == 1001
    assert any(e["type"] == "error" and e["error"]["code"] == "session_expired" for e in events)
    assert h.task.errors == []
    assert os.environ[KEY_ENV] == "local-test-key"
