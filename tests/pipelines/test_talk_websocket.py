"""The live server over the plain WebSocket protocol, with the offline cascade.

The server runs in the test's event loop on a free port of 127.0.0.1; the
client is a real WebSocket client that speaks a question synthesised by Piper
at real-time pace and records the PCM and the events that come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path

import anyio
import pytest

from pipelines.config import load_pipeline_file
from pipelines.factory import Session
from pipelines.talk import LiveServer
from processors.recording.events import EventLog
from tests.pipelines.talk_clients import PlainClient, TwilioPeer, connect, level, silence, ws_url
from tests.speech import synthesize_speech

pytestmark = [pytest.mark.anyio, pytest.mark.models, pytest.mark.slow]
PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
FAST = PIPELINES / "cascade-local-fast.toml"


def live_server(*overrides: str, sessions: list[Session] | None = None) -> LiveServer:
    config = load_pipeline_file(FAST, ["transport.backend=websocket", *overrides])
    return LiveServer(
        config,
        port=0,
        observers=lambda: [EventLog()],
        on_session=sessions.append if sessions is not None else None,
    )


@pytest.fixture(scope="module")
def question() -> bytes:
    [clip] = synthesize_speech(["What is the capital of France?"])
    return clip


def sockets() -> int:
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd).startswith("socket:")
    return count


async def test_a_spoken_question_gets_pcm_and_events_back(question: bytes) -> None:
    sessions: list[Session] = []
    server = live_server(sessions=sessions)
    async with server.running() as urls:
        [url] = urls
        assert url.endswith("/ws") and "127.0.0.1" in url
        async with connect(ws_url(url)) as socket:
            client = PlainClient(socket)
            ready = await client.wait_ready()
            assert ready["input_sample_rate"] == 16000 and ready["output_sample_rate"] == 24000
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.receive_all)
                rate = ready["input_sample_rate"]
                await client.speak(silence(0.5, rate) + question + silence(1.0, rate))
                with anyio.fail_after(60):
                    while not client.of("bot_stopped_speaking"):
                        await client.speak(silence(0.2, rate))  # a live microphone: silence
                tg.cancel_scope.cancel()
        assert server.session_count == 1 or server.session_count == 0
        with anyio.fail_after(30):
            while server.session_count:
                await anyio.sleep(0.05)
    kinds = [e["type"] for e in client.events]
    assert "user_started_speaking" in kinds and "user_stopped_speaking" in kinds
    finals = [e["text"] for e in client.of("transcript") if e["final"]]
    assert finals and finals[0].strip(), kinds
    assert kinds.index("user_stopped_speaking") < kinds.index("bot_started_speaking")
    # The reply came back as PCM16 at the announced output rate: half a second or more of speech.
    seconds = len(client.audio) / 2 / ready["output_sample_rate"]
    assert seconds > 0.5
    assert level(bytes(client.audio)) > 300
    heard = " ".join(e["text"] for e in client.of("bot_text"))
    assert heard.strip()
    [session] = sessions
    assistant = [m["content"] for m in session.context.messages if m["role"] == "assistant"]
    assert assistant and assistant[0].split()[0] in heard


def live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


async def test_sessions_run_side_by_side_and_dropped_calls_leave_nothing_behind(
    question: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three conversations at once; mid-reply, one plain client vanishes and the Twilio
    caller hangs up, while the other plain client's conversation goes on to its end."""
    from anyio._backends._asyncio import WorkerThread

    monkeypatch.setattr(WorkerThread, "MAX_IDLE_TIME", 0.5)  # idle pool threads exit soon
    config = load_pipeline_file(FAST, ["transport.backend=websocket"])
    twilio_config = load_pipeline_file(FAST, ["transport.backend=twilio"])
    sessions: list[Session] = []
    plain = LiveServer(config, port=0, on_session=sessions.append)
    phone = LiveServer(twilio_config, port=0, on_session=sessions.append)
    async with plain.running() as plain_urls, phone.running() as phone_urls:
        tasks_before = asyncio.all_tasks()
        threads_before = live_threads()
        sockets_before = sockets()
        async with (
            connect(ws_url(plain_urls[0])) as dropping_socket,
            connect(ws_url(plain_urls[0])) as staying_socket,
            connect(ws_url(phone_urls[0])) as phone_socket,
            anyio.create_task_group() as tg,
        ):
            dropping, staying = PlainClient(dropping_socket), PlainClient(staying_socket)
            peer = TwilioPeer(phone_socket)
            tg.start_soon(peer.run)
            await peer.start()
            ready = await dropping.wait_ready()
            await staying.wait_ready()
            tg.start_soon(dropping.receive_all)
            tg.start_soon(staying.receive_all)
            assert plain.session_count == 2 and phone.session_count == 1
            rate = ready["input_sample_rate"]
            utterance = silence(0.3, rate) + question + silence(0.8, rate)
            tg.start_soon(peer.speak, utterance)
            tg.start_soon(staying.speak, utterance)
            await dropping.speak(utterance)
            with anyio.fail_after(90):
                while dropping.first_audio_t is None or peer.media_s == 0:
                    tg.start_soon(peer.speak, silence(0.1, rate))
                    tg.start_soon(staying.speak, silence(0.1, rate))
                    await dropping.speak(silence(0.1, rate))
            # Mid-reply: one plain client vanishes, the caller hangs up.
            assert plain.session_count == 2 and phone.session_count == 1
            await dropping_socket.close()
            await peer.stop()
            with anyio.fail_after(30):
                while plain.session_count > 1 or phone.session_count:
                    await anyio.sleep(0.05)
            # The other conversation is untouched: its reply plays to the end.
            with anyio.fail_after(90):
                while not staying.of("bot_stopped_speaking"):
                    await staying.speak(silence(0.1, rate))
            assert plain.session_count == 1
            assert staying.audio and not staying.of("error")
            await staying_socket.close()
            with anyio.fail_after(30):
                while plain.session_count:
                    await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
        assert len(sessions) == 3
        assert all(s.task.finished for s in sessions)
        # Nothing of those sessions runs: no asyncio task...
        with anyio.fail_after(20):
            while leftover := {
                t for t in asyncio.all_tasks() - tasks_before if t is not asyncio.current_task()
            }:
                await anyio.sleep(0.1)
        assert not leftover

        # ...no thread (the worker pool's idle threads expire; a call prunes them)...
        def stray_threads() -> set[threading.Thread]:
            extra = live_threads() - threads_before
            pooled = {t for t in extra if isinstance(t, WorkerThread)}
            return extra if len(pooled) > 1 or extra - pooled else set()

        with anyio.fail_after(20):
            while stray_threads():
                await anyio.sleep(0.6)
                await anyio.to_thread.run_sync(lambda: None)
        # ...and no socket beyond the two listening ones.
        with anyio.fail_after(20):
            while sockets() > sockets_before:
                await anyio.sleep(0.1)


async def test_realtime_local_runs_unchanged_over_the_websocket_transport(question: bytes) -> None:
    """Speech-to-speech: the Realtime processor talks to a `parley serve` child process."""
    config = load_pipeline_file(PIPELINES / "realtime-local.toml", ["transport.backend=websocket"])
    server = LiveServer(config, port=0)
    async with server.running() as urls, connect(ws_url(urls[0])) as socket:
        client = PlainClient(socket)
        ready = await client.wait_ready(timeout_s=180)
        rate = ready["input_sample_rate"]
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.receive_all)
            await client.speak(silence(0.5, rate) + question + silence(1.0, rate))
            with anyio.fail_after(90):
                while not client.of("bot_stopped_speaking"):
                    await client.speak(silence(0.2, rate))
            tg.cancel_scope.cancel()
    assert server.session_count == 0
    assert len(client.audio) / 2 / ready["output_sample_rate"] > 0.5
    assert level(bytes(client.audio)) > 300
    assert " ".join(e["text"] for e in client.of("bot_text")).strip()
