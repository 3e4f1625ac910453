"""Twilio Media Streams calls to the live server, over real WebSockets on 127.0.0.1.

The peer (tests/pipelines/talk_clients.py) plays Twilio's part: mu-law media at
real-time pace, a playout buffer that lags, marks echoed once played, ``clear``
honoured. The pipelines are the offline ``cascade-local-fast`` and ``cascade-local``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from pipelines.config import load_pipeline_file
from pipelines.factory import Session
from pipelines.talk import LiveServer
from processors.recording.events import EventLog
from tests.pipelines.talk_clients import TwilioPeer, connect, silence, ws_url
from tests.speech import synthesize_speech

pytestmark = [pytest.mark.anyio, pytest.mark.models, pytest.mark.slow]
PIPELINES = Path(__file__).resolve().parents[3] / "pipelines"
FAST, CASCADE = PIPELINES / "cascade-local-fast.toml", PIPELINES / "cascade-local.toml"


def twilio_server(sessions: list[Session], *overrides: str, path: Path = FAST) -> LiveServer:
    config = load_pipeline_file(path, ["transport.backend=twilio", *overrides])
    return LiveServer(config, port=0, observers=lambda: [EventLog()], on_session=sessions.append)


def records(session: Session, event: str) -> list[dict]:
    [log] = session.task._observers  # the EventLog given to this session
    return [r for r in log.records if r["event"] == event]  # type: ignore[attr-defined]


async def wait_for(predicate, timeout_s: float = 60, poll_s: float = 0.05) -> None:
    with anyio.fail_after(timeout_s):
        while not predicate():
            await anyio.sleep(poll_s)


async def one_call(
    server: LiveServer,
    sessions: list[Session],
    question: bytes,
    broken: list[str],
    peer_class: Callable[..., TwilioPeer],
    path: str,
) -> tuple[TwilioPeer, Session]:
    """A caller on ``path`` sends ``broken`` messages, asks ``question``, hears the whole
    reply (its marks echoed) and hangs up; returns the peer and the call's session."""
    async with server.running() as urls:
        [url] = urls
        assert url.endswith(path)
        async with connect(ws_url(url)) as socket, anyio.create_task_group() as tg:
            peer = peer_class(socket, playout_delay_s=0.2)
            tg.start_soon(peer.run)
            await peer.start()
            await wait_for(lambda: bool(sessions and records(sessions[0], "input_started")))
            # Broken messages first: each is logged, and the call goes on.
            for message in broken:
                await peer.send_raw(message)
            await peer.speak(silence(0.5, 16000) + question + silence(1.0, 16000))
            [session] = sessions
            while not records(session, "bot_audio_stopped"):
                await peer.speak(silence(0.2, 16000))
                assert len(peer.received) < 100_000
            await wait_for(lambda: peer.played_s >= peer.media_s - 0.05, timeout_s=10)
            await wait_for(lambda: len(peer.of("mark")) == len(peer.marks_echoed), timeout_s=10)
            await peer.stop()  # the caller hangs up: the carrier sends stop
            await wait_for(lambda: server.session_count == 0, timeout_s=30)
            tg.cancel_scope.cancel()
    return peer, session


async def test_a_call_gets_media_back_marks_round_trip_and_bad_messages_do_not_end_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="parley")
    [question] = synthesize_speech(["What is the capital of France?"])
    sessions: list[Session] = []
    server = twilio_server(sessions)
    broken = [
        '{"event": "bogus", "streamSid": "MZ1"}',
        '{"event": "media", "media": {"payload": "%%% not base64"}}',
        "this is not JSON",
    ]
    peer, session = await one_call(server, sessions, question, broken, TwilioPeer, "/twilio")
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("unknown event 'bogus'" in e for e in errors), errors
    assert any("not valid base64" in e for e in errors), errors
    assert any("not JSON" in e for e in errors), errors
    # The reply came back as mu-law media with the stream's sid, at least half a second.
    media = peer.of("media")
    assert media and {m["streamSid"] for m in media} == {peer.stream_sid}
    assert peer.media_s > 0.5
    transcripts = records(session, "transcription")
    assert transcripts and transcripts[0]["text"].strip()
    # Marks went out and came back: every mark sent was echoed after its audio played.
    sent = [m["mark"]["name"] for m in peer.of("mark")]
    assert sent and peer.marks_echoed == sent
    assert session.task.finished


async def test_barge_in_clears_twilio_and_the_context_keeps_only_what_the_caller_heard() -> None:
    [story, stop] = synthesize_speech(
        ["Please tell me a long story about a dragon and a knight.", "Stop, that is enough."]
    )
    sessions: list[Session] = []
    server = twilio_server(
        sessions,
        'pipeline.system_prompt="You tell long stories of at least five sentences."',
        "llm.max_tokens=120",
        # The bot talks on until the words decide (no pause at the onset), so audio
        # flows to the caller up to the cut and what it heard lags what was sent.
        "interruption.pause_bot=false",
        path=CASCADE,  # Whisper hears the request exactly, so the reply is a long story
    )
    delay = 0.6  # the caller's playout lags what was sent by this much
    async with (
        server.running() as urls,
        connect(ws_url(urls[0])) as socket,
        anyio.create_task_group() as tg,
    ):
        peer = TwilioPeer(socket, playout_delay_s=delay)
        tg.start_soon(peer.run)
        await peer.start()
        await wait_for(lambda: bool(sessions and records(sessions[0], "input_started")))
        await peer.speak(silence(0.5, 16000) + story + silence(0.5, 16000))
        # Let the caller hear three seconds of the story (past its first short pieces, so
        # the synthesis runs well ahead of the playback) and barge in while audio flows.
        with anyio.fail_after(60):
            while peer.played_s < 3.0 or time.monotonic() - peer.of("media")[-1]["t"] > 0.05:
                await peer.speak(silence(0.02, 16000))
        await peer.speak(stop + silence(1.0, 16000))
        await wait_for(lambda: bool(peer.cleared_at), timeout_s=20)
        await peer.speak(silence(1.0, 16000))
        [session] = sessions
        await socket.close()
        await wait_for(lambda: server.session_count == 0, timeout_s=30)
        tg.cancel_scope.cancel()
    stretches = records(session, "bot_audio_stopped")  # a reply may play in several stretches
    cut = [k for k, r in enumerate(stretches) if r["interrupted"]]
    assert cut, ("the reply was not cut off", stretches, peer.played_at_clear, peer.cleared_at)
    played = sum(r["played_s"] for r in stretches[: cut[0] + 1])
    # Every user turn start sends a clear; the barge-in's is the first after bot audio.
    barge = [k for k, p in enumerate(peer.played_at_clear) if p > 0]
    assert barge, "no clear while the bot spoke"
    heard_by_peer, sent = peer.played_at_clear[barge[0]], peer.received_at_clear[barge[0]]
    # The server counts as played what the caller's marks confirmed, not what it sent:
    # at most one mark step (100 ms) plus a chunk above what the caller played...
    assert played <= heard_by_peer + 0.15, (played, heard_by_peer, sent)
    # ...and well below what had been sent (the caller lagged by `delay`).
    assert played < sent - delay / 2, (played, heard_by_peer, sent)
    # The context keeps the heard beginning of the reply, not all that was synthesised.
    synthesised = " ".join(r["text"].strip() for r in records(session, "tts_text"))
    assistant = [m["content"] for m in session.context.messages if m["role"] == "assistant"]
    assert assistant, "nothing of the reply was kept"
    kept = assistant[0].split()
    assert kept == synthesised.split()[: len(kept)]
    assert len(kept) < len(synthesised.split())
