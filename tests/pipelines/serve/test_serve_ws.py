"""The server over real WebSocket connections, protocol only (no model is loaded).

The servers start their pipelines lazily (``eager_start=False``) and these
tests never send audio or ask for a response, so no model loads.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pipelines.serve.app import running_server
from tests.pipelines.serve.helpers import RawClient, cascade_config

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def url() -> AsyncIterator[str]:
    async with running_server(
        cascade_config(), eager_start=False, max_message_bytes=1024 * 1024
    ) as base:
        yield base


@pytest.fixture(scope="module")
async def secured_url() -> AsyncIterator[str]:
    async with running_server(
        cascade_config(), eager_start=False, token="s3cret", max_duration_s=0.5
    ) as base:
        yield base


async def _client(ws: websockets.ClientConnection) -> RawClient:
    client = RawClient(ws)
    created = await client.recv()
    assert created["type"] == "session.created"
    return client


async def test_session_created_then_update_and_updated(url: str) -> None:
    async with websockets.connect(f"{url}/realtime?model=gpt-realtime-mini") as ws:
        client = RawClient(ws)
        created = await client.recv()
        assert created["type"] == "session.created"
        session = created["session"]
        assert session["model"] == "gpt-realtime-mini" and session["id"].startswith("sess_")
        await client.send(
            type="session.update",
            event_id="u1",
            session={
                "type": "realtime",
                "instructions": "Be brief.",
                "output_modalities": ["text"],
                "audio": {
                    "input": {
                        "turn_detection": None,
                        "transcription": {"model": "gpt-4o-transcribe"},
                    },
                    "output": {"voice": "cedar"},
                },
                "tools": [{"type": "function", "name": "get_weather", "parameters": {}}],
            },
        )
        updated = (await client.recv())["session"]
        assert updated["instructions"] == "Be brief."
        assert updated["output_modalities"] == ["text"]
        assert updated["audio"]["input"]["turn_detection"] is None
        assert updated["audio"]["output"] == {
            "format": {"type": "audio/pcm", "rate": 24000},
            "voice": "cedar",
            "speed": 1.0,
        }
        assert updated["tools"][0]["name"] == "get_weather"
        assert updated["id"] == session["id"]


async def test_errors_leave_the_connection_usable(url: str) -> None:
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await _client(ws)
        await ws.send("{this is not json")
        assert (await client.recv())["error"]["code"] == "invalid_json"
        await client.send(type="response.explode", event_id="evt_x")
        err = (await client.recv())["error"]
        assert (err["type"], err["param"], err["event_id"]) == (
            "invalid_request_error",
            "type",
            "evt_x",
        )
        await client.send(type="session.update", event_id="evt_y", session={"instructions": "x"})
        err = (await client.recv())["error"]
        assert (err["code"], err["param"], err["event_id"]) == (
            "missing_required_parameter",
            "session.type",
            "evt_y",
        )
        await client.send(type="conversation.item.delete", event_id="evt_z")
        assert (await client.recv())["error"]["param"] == "item_id"
        await ws.send(
            json.dumps(
                {
                    "type": "input_audio_buffer.append",
                    "event_id": "big",
                    "audio": "A" * (1024 * 1024 + 10),
                }
            )
        )
        err = (await client.recv())["error"]
        assert (err["code"], err["event_id"]) == ("message_too_large", "big")
        await client.send(type="input_audio_buffer.commit", event_id="c0")
        err = (await client.recv())["error"]
        assert (err["code"], err["event_id"]) == ("input_audio_buffer_commit_empty", "c0")
        await client.send(type="response.cancel", event_id="k0")
        assert (await client.recv())["error"]["code"] == "response_cancel_not_active"
        await client.send(type="output_audio_buffer.clear")
        assert (await client.recv())["type"] == "error"
        await client.send(type="session.update", session={"type": "realtime"})
        assert (await client.recv())["type"] == "session.updated"


async def test_item_create_retrieve_truncate_delete(url: str) -> None:
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await _client(ws)
        await client.send(
            type="conversation.item.create",
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hi"}],
            },
        )
        added, done = await client.recv(), await client.recv()
        assert (added["type"], done["type"]) == (
            "conversation.item.added",
            "conversation.item.done",
        )
        item_id = added["item"]["id"]
        await client.send(
            type="conversation.item.create",
            previous_item_id="root",
            item={
                "type": "message",
                "role": "system",
                "id": "item_sys",
                "content": [{"type": "input_text", "text": "Rule."}],
            },
        )
        assert (await client.recv())["previous_item_id"] is None
        await client.recv()
        await client.send(type="conversation.item.retrieve", item_id=item_id)
        retrieved = await client.recv()
        assert retrieved["item"]["content"] == [{"type": "input_text", "text": "Hi"}]
        await client.send(
            type="conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=10
        )
        assert (await client.recv())["error"]["code"] == "unsupported_content_type"
        await client.send(
            type="conversation.item.truncate", item_id="item_nope", content_index=0, audio_end_ms=10
        )
        assert (await client.recv())["error"]["code"] == "item_not_found"
        await client.send(type="conversation.item.delete", item_id=item_id)
        assert (await client.recv()) | {"_t": 0} == {
            "type": "conversation.item.deleted",
            "item_id": item_id,
            "event_id": client.events[-1]["event_id"],
            "_t": 0,
        }
        await client.send(type="conversation.item.retrieve", item_id=item_id)
        assert (await client.recv())["error"]["code"] == "item_not_found"


async def test_unknown_path_is_404(url: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(url.replace("/v1", "/nope")):
            pass
    assert info.value.response.status_code == 404


async def test_bearer_token_is_enforced(secured_url: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(f"{secured_url}/realtime", additional_headers=headers):
                pass
        assert info.value.response.status_code == 401
    async with websockets.connect(
        f"{secured_url}/realtime", additional_headers={"Authorization": "Bearer s3cret"}
    ) as ws:
        assert (await RawClient(ws).recv())["type"] == "session.created"


async def test_session_expiry_sends_session_expired_then_closes_1001(secured_url: str) -> None:
    async with websockets.connect(
        f"{secured_url}/realtime", additional_headers={"Authorization": "Bearer s3cret"}
    ) as ws:
        client = await _client(ws)
        err = (await client.recv(limit_s=10))["error"]
        assert err["code"] == "session_expired"
        with pytest.raises(ConnectionClosed):
            await client.recv(limit_s=10)
        assert ws.close_code == 1001


async def test_official_sdk_session_update(url: str) -> None:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="local", websocket_base_url=url)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        created = await conn.recv()
        assert created.type == "session.created"
        assert created.session.audio.input.turn_detection.type == "server_vad"
        await conn.session.update(session={"type": "realtime", "instructions": "Hi."})
        updated = await conn.recv()
        assert updated.type == "session.updated" and updated.session.instructions == "Hi."
        await conn.session.update(session={"instructions": "no type"})  # type: ignore[typeddict-item]
        error = await conn.recv()
        assert error.type == "error" and error.error.code == "missing_required_parameter"


async def test_beta_shaped_connection_is_refused_like_openai(url: str) -> None:
    async with websockets.connect(
        f"{url}/realtime", additional_headers={"OpenAI-Beta": "realtime=v1"}
    ) as ws:
        client = RawClient(ws)
        assert (await client.recv())["error"]["code"] == "beta_api_shape_disabled"
        with pytest.raises(ConnectionClosed):
            await client.recv()
        assert ws.close_code == 4000


async def test_stopping_the_server_closes_sessions_and_leaves_no_task() -> None:
    import asyncio

    before = set(asyncio.all_tasks())
    async with running_server(cascade_config(), eager_start=False) as base:
        async with websockets.connect(f"{base}/realtime") as ws:
            client = await _client(ws)
            async with running_server(cascade_config(), eager_start=False):
                pass  # a second server starts and stops inside: independent
            port = int(base.rsplit(":", 1)[1].split("/")[0])
        ws2 = await websockets.connect(f"{base}/realtime")
        await RawClient(ws2).recv()
    with pytest.raises(ConnectionClosed):
        await RawClient(ws2).recv()
    assert ws2.close_code == 1001
    assert set(asyncio.all_tasks()) - before <= {asyncio.current_task()}
    with pytest.raises(ConnectionRefusedError):
        await websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime", open_timeout=2)
    assert client.events[0]["type"] == "session.created"
