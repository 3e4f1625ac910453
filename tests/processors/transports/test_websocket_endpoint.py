"""The WebSocket endpoints' edges: plain HTTP, a Twilio stream that never starts, bad messages."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import aiohttp
import anyio
import pytest

from pipelines.config import load_pipeline_file
from pipelines.talk import LiveServer
from tests.pipelines.talk_clients import PlainClient, connect, ws_url

pytestmark = pytest.mark.anyio
FAST = Path(__file__).resolve().parents[3] / "pipelines" / "cascade-local-fast.toml"


def server(*overrides: str) -> LiveServer:
    return LiveServer(load_pipeline_file(FAST, list(overrides)), port=0)


async def test_plain_http_to_an_endpoint_is_told_to_use_a_websocket() -> None:
    live = server("transport.backend=twilio")
    async with live.running() as [url], aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            assert response.status == 426
            assert "WebSocket endpoint (twilio protocol)" in await response.text()
        async with http.get(url.replace("/twilio", "/nowhere")) as response:
            assert response.status == 404
    assert live.session_count == 0


async def test_a_twilio_stream_that_never_starts_is_closed_without_a_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    live = server("transport.backend=twilio", "transport.start_timeout_s=0.5")
    async with live.running() as [url], connect(ws_url(url)) as socket:
        await socket.send_str(json.dumps({"event": "connected", "protocol": "Call"}))
        with anyio.fail_after(10):
            message = await socket.receive()
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert live.session_count == 0
    assert any("no 'start' event" in r.getMessage() for r in caplog.records)


@pytest.mark.models
async def test_bad_plain_messages_get_error_events_and_the_session_goes_on() -> None:
    live = server("transport.backend=websocket")
    async with live.running() as [url], connect(ws_url(url)) as socket:
        await socket.send_bytes(bytes(640))  # before 'ready': the rate is not known yet
        client = PlainClient(socket)
        ready = await client.wait_ready()
        assert ready["input_sample_rate"] == 16000
        await socket.send_bytes(bytes(641))
        await socket.send_str("not json")
        await socket.send_str('{"type": "hello"}')
        errors: list[str] = [e["message"] for e in client.events if e["type"] == "error"]
        with anyio.fail_after(10):
            while len(errors) < 4:
                message = await socket.receive()
                if message.type is aiohttp.WSMsgType.TEXT:
                    event = json.loads(message.data)
                    if event["type"] == "error":
                        errors.append(event["message"])
        assert "before the 'ready' message" in errors[0]
        assert "641 bytes" in errors[1]
        assert "not JSON" in errors[2]
        assert "unknown message type 'hello'" in errors[3]
        await client.speak(bytes(3200))  # audio still flows into the running session
        assert live.session_count == 1
        [session] = live.sessions
        assert session.task.running


async def test_logged_errors_name_the_problem(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="parley")
    live = server("transport.backend=twilio", "transport.start_timeout_s=5")
    async with live.running() as [url], connect(ws_url(url)) as socket:
        await socket.send_bytes(b"\x00\x01")
        await socket.send_str(
            json.dumps(
                {
                    "event": "start",
                    "start": {
                        "streamSid": "MZ1",
                        "mediaFormat": {
                            "encoding": "audio/x-l16",
                            "sampleRate": 16000,
                            "channels": 1,
                        },
                    },
                }
            )
        )
        with anyio.fail_after(10):
            while len([r for r in caplog.records if r.levelno >= logging.ERROR]) < 2:
                await anyio.sleep(0.05)
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("binary message" in m for m in messages)
    assert any("audio/x-l16" in m and "not supported" in m for m in messages)
