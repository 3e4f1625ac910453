"""Protocol edges and the session limit, over real WebSocket connections.

The servers start their pipelines lazily (``eager_start=False``) and these
tests never send audio or ask for a response, so no model loads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import anyio
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from pipelines.serve.app import SessionCount, _refuse_full, running_server
from tests.pipelines.serve.helpers import RawClient, cascade_config

pytestmark = pytest.mark.anyio

VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def url() -> AsyncIterator[str]:
    async with running_server(cascade_config(), eager_start=False) as base:
        yield base


async def _client(ws: websockets.ClientConnection) -> RawClient:
    client = RawClient(ws)
    assert (await client.recv())["type"] == "session.created"
    return client


async def _error(client: RawClient) -> dict[str, object]:
    event = await client.recv()
    assert event["type"] == "error", event
    error: dict[str, object] = event["error"]
    return error


async def test_json_nested_100000_deep_is_invalid_json_and_logs_no_error(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with websockets.connect(f"{url}/realtime", max_size=None) as ws:
        client = await _client(ws)
        for raw in (
            "[" * 100_000 + "]" * 100_000,
            '{"type": "session.update", "session": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001,
            '{"type": "session.update", "session": {"type": "realtime", "prompt": '
            + "[" * 200
            + "]" * 200
            + "}}",
        ):
            await ws.send(raw)
            error = await _error(client)
            assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_json")
            assert "deep" in str(error["message"])
        # the session goes on
        await client.send(type="session.update", session={"type": "realtime"})
        assert (await client.recv())["type"] == "session.updated"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Traceback" not in caplog.text


async def test_unknown_voice_is_invalid_value_listing_the_voices(url: str) -> None:
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await _client(ws)
        await client.send(
            type="session.update",
            event_id="v1",
            session={"type": "realtime", "audio": {"output": {"voice": "bob"}}},
        )
        error = await _error(client)
        assert (error["code"], error["param"], error["event_id"]) == (
            "invalid_value",
            "session.audio.output.voice",
            "v1",
        )
        message = str(error["message"])
        assert "'bob'" in message
        assert all(f"'{voice}'" in message for voice in VOICES)
        await client.send(
            type="response.create",
            event_id="v2",
            response={"audio": {"output": {"voice": "nobody"}}},
        )
        error = await _error(client)
        assert (error["code"], error["param"]) == ("invalid_value", "response.audio.output.voice")
        # built-in names and custom voices are accepted
        for voice in ("cedar", {"id": "voice_123"}):
            await client.send(
                type="session.update",
                session={"type": "realtime", "audio": {"output": {"voice": voice}}},
            )
            updated = await client.recv()
            assert updated["session"]["audio"]["output"]["voice"] == voice


@pytest.mark.parametrize(
    ("value", "code"),
    [("many", "invalid_type"), (2.5, "invalid_type"), (0, "invalid_value"), ([1], "invalid_type")],
)
async def test_max_output_tokens_error_names_the_field(url: str, value: object, code: str) -> None:
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await _client(ws)
        await client.send(
            type="session.update", session={"type": "realtime", "max_output_tokens": value}
        )
        error = await _error(client)
        assert (error["code"], error["param"]) == (code, "session.max_output_tokens")
        assert "constrained" not in str(error["message"])
        await client.send(type="response.create", response={"max_output_tokens": value})
        error = await _error(client)
        assert (error["code"], error["param"]) == (code, "response.max_output_tokens")


async def test_sessions_past_the_limit_get_503_before_the_upgrade() -> None:
    async with running_server(cascade_config(), eager_start=False, max_sessions=2) as base:
        url = f"{base}/realtime"
        async with websockets.connect(url) as first, websockets.connect(url) as second:
            await _client(first)
            await _client(second)
            with pytest.raises(InvalidStatus) as info:
                async with websockets.connect(url):
                    pass
            response = info.value.response
            assert response.status_code == 503
            assert b"limit of 2 sessions" in response.body
            assert response.headers["Retry-After"] == "5"
        # a slot is free again once a session has ended
        with anyio.fail_after(30):
            while True:
                try:
                    async with websockets.connect(url) as third:
                        await _client(third)
                        break
                except InvalidStatus:
                    await anyio.sleep(0.1)


async def test_health_reports_the_load() -> None:
    async with running_server(cascade_config(), eager_start=False, max_sessions=3) as base:
        port = int(base.rsplit(":", 1)[1].split("/")[0])
        from benchmarks.soak.client import health

        assert await health("127.0.0.1", port) == {
            "status": "ok",
            "sessions": 0,
            "max_sessions": 3,
        }
        async with websockets.connect(f"{base}/realtime") as ws:
            await _client(ws)
            assert (await health("127.0.0.1", port))["sessions"] == 1


class _FakeConnection:
    """Records what the server sends on a connection it refuses after the upgrade."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None

    async def send(self, message: str) -> None:
        self.sent.append(message)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def test_a_connection_upgraded_past_the_limit_gets_an_error_event_and_1013() -> None:
    # Handshakes that pass the check together can upgrade after the last slot is
    # taken; the handler refuses those with an error event and close code 1013.
    sessions = SessionCount(1)
    sessions.active = 1
    connection = _FakeConnection()
    await _refuse_full(connection, sessions)
    event = json.loads(connection.sent[0])
    assert event["type"] == "error"
    assert (event["error"]["type"], event["error"]["code"]) == (
        "server_error",
        "session_limit_reached",
    )
    assert connection.closed == (1013, "session limit reached")
