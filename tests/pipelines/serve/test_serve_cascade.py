"""The server over real WebSockets with the real offline cascade (Silero, Whisper, SmolLM2, Piper).

User speech is synthesised by Piper (joe voice) at 24 kHz. One server serves
the module; each test is one connection (each loads its own pipeline).
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets

from pipelines.serve.app import running_server
from tests.pipelines.serve.helpers import RawClient, cascade_config, check_event, speech_24k

pytestmark = [pytest.mark.anyio, pytest.mark.models]

QUESTION = "What is the capital of France?"
STORY = "Tell me a long story about a dragon."
LONG_REPLIES = "You are a storyteller. Always answer with five or more long sentences."


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def url() -> AsyncIterator[str]:
    async with running_server(cascade_config("llm.max_tokens=120")) as base:
        yield base


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


async def test_sdk_manual_turn_gives_audio_transcript_and_usage(url: str) -> None:
    from openai import AsyncOpenAI

    speech = speech_24k(QUESTION)
    client = AsyncOpenAI(api_key="local", websocket_base_url=url)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        assert (await conn.recv()).type == "session.created"
        await conn.session.update(
            session={
                "type": "realtime",
                "audio": {
                    "input": {"turn_detection": None, "transcription": {"model": "whisper-1"}}
                },
            }
        )
        assert (await conn.recv()).type == "session.updated"
        for offset in range(0, len(speech), 4800):
            await conn.input_audio_buffer.append(
                audio=base64.b64encode(speech[offset : offset + 4800]).decode()
            )
        committed_at = time.monotonic()
        await conn.input_audio_buffer.commit()
        await conn.response.create()
        events: list[Any] = []
        first_audio_at = None
        audio = bytearray()
        async for ev in conn:
            events.append(ev)
            check_event(ev.model_dump())
            if ev.type == "response.output_audio.delta":
                first_audio_at = first_audio_at or time.monotonic()
                audio += base64.b64decode(ev.delta)
            if ev.type == "response.done":
                break
        kinds = [e.type for e in events]
        assert kinds[:3] == [
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
        ]
        transcription = next(e for e in events if e.type.endswith("transcription.completed"))
        assert "capital" in transcription.transcript.lower()
        assert kinds.index("response.created") < kinds.index("response.output_item.added")
        done = events[-1].response
        assert done.status == "completed"
        item = done.output[0]
        assert item.role == "assistant" and item.content[0].type == "output_audio"
        assert item.content[0].transcript.strip()
        assert len(audio) > 48 * 300  # at least 300 ms of speech
        usage = done.usage
        assert usage.input_token_details.audio_tokens == pytest.approx(len(speech) / 4800, abs=1)
        assert usage.output_token_details.audio_tokens == pytest.approx(len(audio) / 2400, abs=1)
        assert usage.total_tokens == usage.input_tokens + usage.output_tokens
        assert first_audio_at is not None
        print(f"commit -> first audio delta: {first_audio_at - committed_at:.3f} s")

        # truncate what was "played": valid, then past the end
        audio_ms = len(audio) // 48
        await conn.conversation.item.truncate(
            item_id=item.id, content_index=0, audio_end_ms=audio_ms // 2
        )
        truncated = await conn.recv()
        assert truncated.type == "conversation.item.truncated"
        assert truncated.audio_end_ms == audio_ms // 2
        await conn.conversation.item.retrieve(item_id=item.id)
        retrieved = await conn.recv()
        cut = base64.b64decode(retrieved.item.content[0].audio)
        assert abs(len(cut) // 48 - audio_ms // 2) <= 1
        await conn.conversation.item.truncate(
            item_id=item.id, content_index=0, audio_end_ms=audio_ms
        )
        error = await conn.recv()
        assert error.type == "error" and error.error.param == "audio_end_ms"


async def test_server_vad_turn_barge_in_and_cancel(url: str) -> None:
    speech = speech_24k(STORY)
    async with websockets.connect(f"{url}/realtime") as ws:
        client = RawClient(ws)
        await client.until("session.created")
        await client.send(
            type="session.update",
            session={
                "type": "realtime",
                "instructions": LONG_REPLIES,
                "audio": {
                    "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 400}}
                },
            },
        )
        await client.until("session.updated")
        await client.append(bytes(48 * 300) + speech + bytes(48 * 800))
        turn = await client.until("response.created", limit_s=120)
        assert _types(turn) == [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
            "response.created",
        ]
        started, stopped = turn[0], turn[1]
        assert started["item_id"] == stopped["item_id"] == turn[2]["item_id"]
        assert 0 <= started["audio_start_ms"] <= 300
        speech_end = 300 + len(speech) // 48
        assert speech_end - 400 <= stopped["audio_end_ms"] <= speech_end + 200
        first = await client.until("response.output_audio.delta", limit_s=120)
        assert "response.done" not in _types(first), "the reply ended before the barge-in"
        response_id = turn[-1]["response"]["id"]

        # barge-in: the user speaks while the reply streams
        await client.append(speech + bytes(48 * 800))
        barge = await client.until("response.done", limit_s=60)
        kinds = _types(barge)
        assert "input_audio_buffer.speech_started" in kinds
        assert kinds.index("input_audio_buffer.speech_started") < kinds.index(
            "response.output_item.done"
        )
        done = barge[-1]["response"]
        assert done["id"] == response_id and done["status"] == "cancelled"
        assert done["status_details"]["reason"] == "turn_detected"
        assert done["output"][0]["status"] == "incomplete"

        # the barge-in turn gets its own response; the client cancels it
        await client.until("response.created", limit_s=60)
        await client.send(type="response.create", event_id="again")
        busy = await client.until("error")
        assert busy[-1]["error"]["code"] == "conversation_already_has_active_response"
        await client.send(type="response.cancel")
        cancelled = await client.until("response.done", limit_s=60)
        assert cancelled[-1]["response"]["status_details"]["reason"] == "client_cancelled"


async def test_concurrent_sessions_start_and_answer_independently(url: str) -> None:
    import anyio

    replies: dict[int, str] = {}

    async def session(index: int) -> None:
        async with websockets.connect(f"{url}/realtime") as ws:
            client = RawClient(ws)
            await client.until("session.created", limit_s=120)
            await client.send(
                type="conversation.item.create",
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Say hello."}],
                },
            )
            await client.send(
                type="response.create",
                response={"output_modalities": ["text"], "max_output_tokens": 12},
            )
            done = (await client.until("response.done", limit_s=120))[-1]["response"]
            assert done["status"] in ("completed", "incomplete")
            replies[index] = done["output"][0]["content"][0]["text"]

    async with anyio.create_task_group() as tg:  # llama.cpp must never load twice at once
        tg.start_soon(session, 0)
        tg.start_soon(session, 1)
    assert all(replies[i].strip() for i in (0, 1))
