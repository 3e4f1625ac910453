"""The API key reaches the server's handshake and nothing else: logs, frames, errors, reprs."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from framework.frames import LLMResponseEndFrame, UserStartedSpeakingFrame, UserStoppedSpeakingFrame
from processors.realtime.openai import OpenAIRealtime, OpenAIRealtimeParams
from tests.processors.realtime.harness import KEY_ENV, running
from tests.processors.realtime.peer import Peer, PeerSession

pytestmark = pytest.mark.anyio

SENTINEL = "sk-proj-SENTINEL-7f3a9c-never-print-me"


async def answer(session: PeerSession, event: dict[str, Any]) -> None:
    if event["type"] == "response.create":
        session.tg.start_soon(session.response)
    if event["type"] == "session.update":
        await session.error("invalid_value", "something the server disliked")


def leaks(h: Any, proc: OpenAIRealtime, caplog: pytest.LogCaptureFixture) -> list[str]:
    # The test peer's own server log (websockets.server) shows the headers it received:
    # that is the server side of the handshake, not this client.
    records = [r for r in caplog.records if not r.name.startswith("websockets.server")]
    texts = [repr(proc), repr(proc.params), proc.params.model_dump_json()]
    formatter = logging.Formatter()
    texts += [
        r.getMessage() + (formatter.formatException(r.exc_info) if r.exc_info else "")
        for r in records
    ]
    texts += [repr(f) for tap in (h.tap_in, h.tap_mid, h.tap_out) for f, _, _ in tap.seen]
    texts += [e.message + repr(e.exception) for e in h.task.errors]
    return [t for t in texts if SENTINEL in t]


async def test_the_key_is_sent_but_never_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(KEY_ENV, SENTINEL)
    caplog.set_level(logging.DEBUG)  # websockets logs handshake headers at DEBUG
    async with Peer(answer) as peer:
        proc = OpenAIRealtime(
            OpenAIRealtimeParams(
                websocket_base_url=peer.url, api_key_env=KEY_ENV, turn_detection={"type": "local"}
            )
        )
        async with running(proc) as h:
            session = await peer.session()
            await session.wait_for("session.update")
            await h.task.queue_frame(UserStartedSpeakingFrame())
            await h.audio(200)
            await h.task.queue_frame(UserStoppedSpeakingFrame())
            await h.wait_frame(LLMResponseEndFrame)

    assert session.headers.get("authorization") == f"Bearer {SENTINEL}"  # it was used
    assert any("Bearer ***" in r.getMessage() for r in caplog.records)  # and redacted
    assert h.task.errors and h.task.errors[0].code == "invalid_value"
    assert leaks(h, proc, caplog) == []


async def test_a_refused_key_leaves_no_trace(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(KEY_ENV, SENTINEL)
    caplog.set_level(logging.DEBUG)
    async with Peer(reject_status=403) as peer:
        proc = OpenAIRealtime(
            OpenAIRealtimeParams(websocket_base_url=peer.url, api_key_env=KEY_ENV)
        )
        async with running(proc) as h:
            await h.wait(lambda: h.task.errors)
    assert "HTTP 403" in h.task.errors[0].message
    assert leaks(h, proc, caplog) == []
