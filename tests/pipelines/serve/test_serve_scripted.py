"""Function calls, text replies, G.711 and the test knobs, with a scripted language model.

The cascade's real Silero, Whisper and Piper run; only the language model is
the scripted stand-in of :mod:`tests.pipelines.serve.scripted_llm` (SmolLM2
cannot call tools), which also keeps these tests quick.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from framework.audio import resample as resample_pcm
from framework.audio import ulaw_decode, ulaw_encode
from pipelines.serve.app import running_server
from tests.pipelines.serve import scripted_llm
from tests.pipelines.serve.faults import faults
from tests.pipelines.serve.helpers import RawClient, b64, cascade_config, speech_24k

pytestmark = [pytest.mark.anyio, pytest.mark.models]

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def _config() -> Any:
    scripted_llm.register()
    return cascade_config("llm.backend=scripted")


@pytest.fixture(scope="module")
async def url() -> AsyncIterator[str]:
    async with running_server(_config()) as base:
        yield base


async def _connect(ws: Any, **session: Any) -> RawClient:
    client = RawClient(ws)
    await client.until("session.created")
    await client.send(type="session.update", session={"type": "realtime", **session})
    await client.until("session.updated")
    return client


async def test_function_call_round_trip(url: str) -> None:
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await _connect(ws, tools=[WEATHER_TOOL], audio={"input": {"turn_detection": None}})
        await client.send(
            type="conversation.item.create",
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "What is the weather in Paris?"}],
            },
        )
        await client.send(type="response.create")
        events = await client.until("response.done")
        kinds = [e["type"] for e in events]
        assert "response.function_call_arguments.done" in kinds
        assert "response.output_audio.delta" not in kinds
        done = events[-1]["response"]
        assert done["status"] == "completed"
        [call] = done["output"]
        assert call["type"] == "function_call" and call["name"] == "get_weather"
        assert json.loads(call["arguments"]) == {"city": "Paris"}
        args_done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        assert args_done["call_id"] == call["call_id"] and args_done["item_id"] == call["id"]

        # the client runs the tool; the server waits for response.create
        await client.send(
            type="conversation.item.create",
            item={
                "type": "function_call_output",
                "call_id": call["call_id"],
                "output": '{"temperature_c": 21}',
            },
        )
        added = await client.until("conversation.item.done")
        assert added[-1]["item"]["type"] == "function_call_output"
        await client.send(type="response.create")
        reply = await client.until("response.done")
        transcript = reply[-1]["response"]["output"][0]["content"][0]["transcript"]
        assert transcript == 'The answer is {"temperature_c": 21}.'
        assert any(e["type"] == "response.output_audio.delta" for e in reply)


async def test_text_only_response_and_out_of_band_input(url: str) -> None:
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await _connect(ws, output_modalities=["text"])
        await client.send(
            type="response.create",
            response={
                "conversation": "none",
                "metadata": {"topic": "test"},
                "input": [
                    {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "ping"}],
                    }
                ],
            },
        )
        events = await client.until("response.done")
        text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
        assert text == "You said: ping."
        assert not any(e["type"].startswith("conversation.item") for e in events)
        done = events[-1]["response"]
        assert done["conversation_id"] is None and done["metadata"] == {"topic": "test"}
        assert done["output"][0]["content"] == [{"type": "output_text", "text": text}]


async def test_g711_mulaw_in_and_out_with_transcription(url: str) -> None:
    speech = speech_24k("Good morning to you.")
    mulaw = ulaw_encode(resample_pcm(speech, 24000, 8000))
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await _connect(
            ws,
            audio={
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "turn_detection": None,
                    "transcription": {"model": "whisper-1"},
                },
                "output": {"format": {"type": "audio/pcmu"}},
            },
        )
        await client.send(type="input_audio_buffer.append", audio=b64(mulaw[:400]))  # 50 ms
        await client.send(type="input_audio_buffer.commit")
        assert (await client.until("error"))[-1]["error"]["code"] == (
            "input_audio_buffer_commit_empty"
        )
        await client.send(type="input_audio_buffer.clear")
        await client.until("input_audio_buffer.cleared")
        for offset in range(0, len(mulaw), 800):
            await client.send(
                type="input_audio_buffer.append", audio=b64(mulaw[offset : offset + 800])
            )
        await client.send(type="input_audio_buffer.commit")
        await client.send(type="response.create")
        events = await client.until("response.done")
        heard = next(e for e in events if e["type"].endswith("transcription.completed"))
        assert "morning" in heard["transcript"].lower()
        audio = b"".join(
            base64.b64decode(e["delta"])
            for e in events
            if e["type"] == "response.output_audio.delta"
        )
        assert len(audio) > 8 * 300  # > 300 ms of mu-law at 8 kHz
        assert (
            max(
                abs(int.from_bytes(ulaw_decode(audio)[i : i + 2], "little", signed=True))
                for i in range(0, 2 * len(audio), 2)
            )
            > 1000
        )
        await client.send(type="conversation.item.retrieve", item_id=heard["item_id"])
        retrieved = await client.until("conversation.item.retrieved")
        assert base64.b64decode(retrieved[-1]["item"]["content"][0]["audio"]) == mulaw


@pytest.fixture(scope="module")
async def flaky_url() -> AsyncIterator[str]:
    flaky = faults(close_after_deltas=3, close_code=1011, delta_delay_s=0.01)
    async with running_server(_config(), wrap_connection=flaky) as base:
        yield base


STORY = {
    "type": "message",
    "role": "user",
    "content": [{"type": "input_text", "text": "Tell me a long story please."}],
}


async def test_close_after_deltas_knob_drops_the_connection_mid_response(flaky_url: str) -> None:
    async with websockets.connect(f"{flaky_url}/realtime") as ws:
        client = await _connect(ws)
        await client.send(type="conversation.item.create", item=STORY)
        await client.send(type="response.create")
        with pytest.raises(ConnectionClosed):
            await client.until("response.done")
        assert sum(e["type"] == "response.output_audio.delta" for e in client.events) == 3
        assert ws.close_code == 1011


async def test_sdk_reconnects_to_a_new_session_after_a_dropped_connection(flaky_url: str) -> None:
    from openai import AsyncOpenAI

    reconnects: list[Any] = []
    client = AsyncOpenAI(api_key="local", websocket_base_url=flaky_url)
    async with client.realtime.connect(
        model="gpt-realtime", on_reconnecting=reconnects.append, initial_delay=0.05
    ) as conn:
        first = await conn.recv()
        await conn.conversation.item.create(item=STORY)  # type: ignore[arg-type]
        await conn.response.create()
        sessions = [first.session.id]
        async for ev in conn:
            if ev.type == "session.created":
                sessions.append(ev.session.id)
                break
        assert len(reconnects) == 1 and reconnects[0].close_code == 1011
        assert len(set(sessions)) == 2  # a new connection is a new session


async def test_idle_timeout_triggers_a_response(url: str) -> None:
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await _connect(
            ws,
            output_modalities=["text"],
            # Long enough for the silence appended below to be in the buffer by then on
            # a loaded machine (300 ms was not, once in a full CI run).
            audio={"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 1000}}},
        )
        await client.send(
            type="conversation.item.create",
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hi"}],
            },
        )
        await client.send(type="response.create")
        await client.until("response.done")
        await client.append(bytes(48 * 200))  # the client streams silence meanwhile
        events = await client.until("response.done", limit_s=10)
        kinds = [e["type"] for e in events]
        trigger = events[kinds.index("input_audio_buffer.timeout_triggered")]
        assert kinds.index("input_audio_buffer.committed") > kinds.index(
            "input_audio_buffer.timeout_triggered"
        )
        assert trigger["audio_end_ms"] - trigger["audio_start_ms"] == 200
        assert events[-1]["response"]["status"] == "completed"


async def test_a_failing_model_fails_the_response_and_the_session_goes_on(url: str) -> None:
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await _connect(ws, output_modalities=["text"])
        for text in ("fail!", "hello"):
            await client.send(
                type="conversation.item.create",
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                },
            )
            await client.send(type="response.create")
            events = await client.until("response.done")
            done = events[-1]["response"]
            if text == "fail!":
                assert done["status"] == "failed"
                assert "scripted failure" in done["status_details"]["error"]["message"]
                assert any(e["type"] == "error" for e in events)
            else:
                assert done["status"] == "completed"


async def test_switching_from_manual_turns_to_server_vad_mid_speech(url: str) -> None:
    speech = speech_24k("What is the capital of France?")
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await _connect(
            ws, output_modalities=["text"], audio={"input": {"turn_detection": None}}
        )
        await client.append(speech)  # ends in speech: the VAD still hears the user
        await client.send(type="input_audio_buffer.commit")
        await client.send(type="response.create")
        manual = await client.until("response.done")
        assert "capital" in manual[-1]["response"]["output"][0]["content"][0]["text"].lower()
        await client.send(
            type="session.update",
            session={
                "type": "realtime",
                "audio": {
                    "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}
                },
            },
        )
        await client.append(speech + bytes(48 * 800))
        vad = await client.until("response.done")
        kinds = [e["type"] for e in vad]
        assert (
            kinds.index("input_audio_buffer.speech_started")
            < kinds.index("input_audio_buffer.speech_stopped")
            < kinds.index("response.created")
        )
        assert "capital" in vad[-1]["response"]["output"][0]["content"][0]["text"].lower()
