"""OpenAIRealtime against a scripted GA peer over a real WebSocket, through the official SDK.

The peer sends exactly what each test scripts, so positions (truncation
milliseconds), orders (never a create while a response is active) and failure
modes (malformed events, drops, expiry) are asserted exactly.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from framework.frames import (
    BotStoppedSpeakingFrame,
    ErrorFrame,
    FunctionCallFrame,
    FunctionCallResultFrame,
    InterruptionFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    MetricsFrame,
    OutputAudioFrame,
    TranscriptionFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.pricing import REALTIME_PRICES, RealtimeUsage
from processors.realtime.frames import RealtimeConnectionFrame
from processors.realtime.openai import OpenAIRealtime, OpenAIRealtimeParams
from processors.toolset import ToolSet
from tests.processors.realtime.harness import KEY_ENV, UP, running
from tests.processors.realtime.peer import Peer, PeerSession, default_usage

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, "sk-test-key")
    return "sk-test-key"


def make(peer: Peer, turns: str = "local", **params: Any) -> OpenAIRealtime:
    turn_detection: dict[str, Any] = {"type": turns}
    return OpenAIRealtime(
        OpenAIRealtimeParams.model_validate(
            {
                "websocket_base_url": peer.url,
                "api_key_env": KEY_ENV,
                "turn_detection": turn_detection,
                "reconnect_initial_delay_s": 0.02,
                "reconnect_jitter": 0.0,
                **params,
            }
        ),
        name="realtime",
    )


async def answer_creates(session: PeerSession, event: dict[str, Any]) -> None:
    """A peer that answers every response.create with a short spoken reply."""
    if event["type"] == "input_audio_buffer.commit":
        await session.send(
            {
                "type": "input_audio_buffer.committed",
                "item_id": "item_user_1",
                "previous_item_id": None,
            }
        )
    if event["type"] == "response.create":
        session.tg.start_soon(session.response)


async def test_local_turn_is_committed_and_answered_in_contract_order() -> None:
    async with Peer(answer_creates) as peer:
        # A local peer is free unless prices are given: give OpenAI's to test the pricing.
        proc = make(peer, prices={"gpt-realtime": REALTIME_PRICES["gpt-realtime"]})
        async with running(proc) as h:
            session = await peer.session()
            await session.wait_for("session.update")
            await h.audio(400)  # before the turn: only the prefix padding is sent
            await h.task.queue_frame(UserStartedSpeakingFrame(speech_start_ns=h.clock_ns))
            await h.audio(600)
            await h.task.queue_frame(UserStoppedSpeakingFrame(speech_end_ns=h.clock_ns))
            await h.wait_frame(LLMResponseEndFrame)
            await h.wait(lambda: h.context.messages)

    update = session.of("session.update")[0]["session"]
    assert update["type"] == "realtime"
    assert update["audio"]["input"]["turn_detection"] is None
    assert update["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    kinds = [e["type"] for e in session.events]
    assert kinds.index("input_audio_buffer.commit") < kinds.index("response.create")
    appended = sum(len(e["audio"]) * 3 // 4 for e in session.of("input_audio_buffer.append"))
    appended_ms = appended / 48
    assert 600 <= appended_ms <= 600 + 300 + 40, appended_ms  # the turn plus its 300 ms prefix

    downstream = [
        f
        for f in h.tap_mid.frames()
        if isinstance(
            f,
            (
                LLMResponseStartFrame,
                TTSStartedFrame,
                TTSTextFrame,
                OutputAudioFrame,
                TTSStoppedFrame,
                LLMResponseEndFrame,
            ),
        )
    ]
    assert isinstance(downstream[0], LLMResponseStartFrame)
    assert isinstance(downstream[1], TTSStartedFrame)
    assert isinstance(downstream[2], TTSTextFrame)  # text before the audio it belongs to
    assert isinstance(downstream[-2], TTSStoppedFrame)
    assert isinstance(downstream[-1], LLMResponseEndFrame)
    played = sum(f.duration_s for f in downstream if isinstance(f, OutputAudioFrame))
    assert played == pytest.approx(0.4, abs=0.001)
    assert h.context.messages == [{"role": "assistant", "content": "Hello there my friend"}]
    assert h.task.errors == []

    cost = [s for m in h.tap_out.frames(MetricsFrame) for s in m.samples if s.name == "cost_usd"]
    expected = RealtimeUsage.from_usage(default_usage(400), REALTIME_PRICES["gpt-realtime"])
    assert cost[0].value == pytest.approx(expected.cost_usd)
    assert proc.usage.audio_out == 8 and proc.usage.responses == 1
    assert proc.cost_usd == pytest.approx(expected.cost_usd)
    assert make(peer).params.price() is None  # without prices, a local server costs nothing
    ttfa = [s for m in h.tap_out.frames(MetricsFrame) for s in m.samples if s.name == "ttfa"]
    assert len(ttfa) == 1 and ttfa[0].value >= 0


async def test_server_vad_barge_in_truncates_at_the_played_position() -> None:
    hold = anyio.Event()

    async def script(session: PeerSession, event: dict[str, Any]) -> None:
        if event["type"] == "session.update":
            session.tg.start_soon(
                lambda: session.response(
                    "one two three four five six seven eight nine ten", 3000, done=False
                )
            )
        if event["type"] == "conversation.item.truncate":
            hold.set()

    async with Peer(script) as peer:
        proc = make(peer, "server_vad")
        async with running(proc) as h:
            session = await peer.session()
            await h.wait(lambda: h.tap_mid.frames(OutputAudioFrame))
            await anyio.sleep(0.8)
            await session.send(
                {
                    "type": "input_audio_buffer.speech_started",
                    "audio_start_ms": 0,
                    "item_id": "item_user_9",
                }
            )
            truncate = await session.wait_for("conversation.item.truncate")
            rid = session.of("session.update") and proc.state.responses.by_id
            await session.send(
                {
                    "type": "response.done",
                    "response": {
                        "id": next(iter(rid)),
                        "status": "cancelled",
                        "status_details": {"type": "cancelled", "reason": "turn_detected"},
                    },
                }
            )
            await h.wait(lambda: h.context.messages)
            stopped = [f for f in h.tap_out.frames(BotStoppedSpeakingFrame) if f.interrupted]

    assert len(stopped) == 1
    assert truncate["audio_end_ms"] == int(stopped[0].played_s * 1000)
    assert 0 < truncate["audio_end_ms"] < 3000  # exact value: the line above
    assert truncate["content_index"] == 0 and truncate["item_id"].startswith("item_")
    assert session.of("response.cancel") == []  # interrupt_response: the server cancels
    assert h.tap_in.frames(UserStartedSpeakingFrame, UP)  # announced both ways
    assert h.tap_out.frames(InterruptionFrame)
    heard = h.context.messages[0]["content"]  # what the output transport says was heard
    assert heard == "one two three four"[: len(heard)] and 1 <= len(heard.split()) <= 4
    # The processor's own record (replayed after a reconnect) estimates the same words.
    assert proc.conversation_items()[-1]["content"][0]["text"] == heard


async def test_local_barge_in_cancels_the_response_and_truncates() -> None:
    async def script(session: PeerSession, event: dict[str, Any]) -> None:
        if event["type"] == "response.create":
            session.tg.start_soon(lambda: session.response("a b c d e f", 2000, done=False))
        if event["type"] == "response.cancel":
            await session.send(
                {
                    "type": "response.done",
                    "response": {"id": event["response_id"], "status": "cancelled"},
                }
            )

    async with Peer(script) as peer:
        proc = make(peer)
        async with running(proc) as h:
            session = await peer.session()
            await session.wait_for("session.update")
            await h.task.queue_frame(UserStartedSpeakingFrame())
            await h.audio(300)
            await h.task.queue_frame(UserStoppedSpeakingFrame())
            await h.wait(lambda: h.tap_mid.frames(OutputAudioFrame))
            await anyio.sleep(0.4)
            await h.task.queue_frame(InterruptionFrame())  # the pipeline's VAD barges in
            await h.task.queue_frame(UserStartedSpeakingFrame())
            cancel = await session.wait_for("response.cancel")
            truncate = await session.wait_for("conversation.item.truncate")
            await anyio.sleep(0.05)

    assert cancel["response_id"] == next(iter(proc.state.responses.by_id))
    assert 0 < truncate["audio_end_ms"] < 2000
    assert h.task.errors == []  # the peer's late cancel answer raised nothing


async def test_function_call_round_trip_runs_in_the_background() -> None:
    tools = ToolSet()
    calls: list[str] = []

    @tools.tool()
    async def get_weather(city: str) -> dict[str, Any]:
        """Weather in a city."""
        calls.append(city)
        await anyio.sleep(0.3)
        return {"city": city, "sky": "sunny"}

    async def script(session: PeerSession, event: dict[str, Any]) -> None:
        if event["type"] == "response.create":
            if len(session.of("response.create")) == 1:
                await session.function_call("get_weather", '{"city": "Paris"}')
            else:
                session.tg.start_soon(lambda: session.response("It is sunny in Paris", 300))

    async with Peer(script) as peer:
        proc = OpenAIRealtime(make(peer).params, tools=tools, name="realtime")
        async with running(proc) as h:
            session = await peer.session()
            await session.wait_for("session.update")
            await h.task.queue_frame(UserStartedSpeakingFrame())
            await h.audio(200)
            await h.task.queue_frame(UserStoppedSpeakingFrame())
            await session.wait_for("conversation.item.create")
            await h.wait_frame(LLMResponseEndFrame)

    update = session.of("session.update")[0]["session"]
    assert update["tools"][0]["name"] == "get_weather"
    assert update["tools"][0]["parameters"]["required"] == ["city"]
    output = session.of("conversation.item.create")[0]["item"]
    assert output["type"] == "function_call_output" and output["call_id"] == "call_1"
    assert json.loads(output["output"]) == {"city": "Paris", "sky": "sunny"}
    kinds = [e["type"] for e in session.events]
    assert (
        kinds.index("conversation.item.create")
        < len(kinds) - kinds[::-1].index("response.create") - 1
    )
    assert calls == ["Paris"]
    assert h.tap_out.frames(FunctionCallFrame)[0].arguments == {"city": "Paris"}
    assert h.tap_out.frames(FunctionCallResultFrame)[0].result == {"city": "Paris", "sky": "sunny"}
    assert h.context.messages[-1]["content"] == "It is sunny in Paris"


async def test_a_create_waits_for_the_active_response() -> None:
    release = anyio.Event()
    done_sent: list[int] = []

    async def held_response(session: PeerSession) -> None:
        await session.response("busy talking now", 200, hold=release)
        done_sent.append(len(session.events))

    async def script(session: PeerSession, event: dict[str, Any]) -> None:
        if event["type"] == "response.create" and len(session.of("response.create")) == 1:
            await session.function_call("slow", "{}")
            session.tg.start_soon(held_response, session)  # like a server-VAD response

    tools = ToolSet()

    @tools.tool()
    async def slow() -> str:
        """Slow."""
        await anyio.sleep(0.2)
        return "done"

    async with Peer(script) as peer:
        proc = OpenAIRealtime(make(peer).params, tools=tools, name="realtime")
        async with running(proc) as h:
            session = await peer.session()
            await session.wait_for("session.update")
            await h.task.queue_frame(UserStartedSpeakingFrame())
            await h.audio(200)
            await h.task.queue_frame(UserStoppedSpeakingFrame())
            await session.wait_for("conversation.item.create")
            await anyio.sleep(0.2)
            assert len(session.of("response.create")) == 1  # the tool's create is queued
            release.set()
            await session.wait_for("response.create", 2)

    second = session.events.index(session.of("response.create")[1])
    assert second >= done_sent[0]


async def test_malformed_and_error_events_are_reported_and_the_session_goes_on() -> None:
    async def script(session: PeerSession, event: dict[str, Any]) -> None:
        if event["type"] == "session.update":
            await session.ws.send("this is not json{")
            await session.send({"type": "response.output_audio.delta"})  # fields missing
            await session.error("invalid_value", "Invalid value for 'voice'.", "evt_42")
        await answer_creates(session, event)

    async with Peer(script) as peer:
        proc = make(peer)
        async with running(proc) as h:
            await (await peer.session()).wait_for("session.update")
            await h.wait(lambda: len(h.task.errors) >= 3)
            await h.task.queue_frame(UserStartedSpeakingFrame())
            await h.audio(200)
            await h.task.queue_frame(UserStoppedSpeakingFrame())
            await h.wait_frame(LLMResponseEndFrame)

    codes = [e.code for e in h.task.errors]
    assert codes == ["malformed_event", "malformed_event", "invalid_value"]
    assert not any(e.fatal for e in h.task.errors)
    assert "Invalid value for 'voice'" in h.task.errors[2].message
    assert "not a JSON event" in h.task.errors[0].message


async def test_a_dropped_connection_reconnects_and_replays_the_conversation() -> None:
    async def script(session: PeerSession, event: dict[str, Any]) -> None:
        if event["type"] == "input_audio_buffer.commit":
            n = len(session.of("input_audio_buffer.commit"))
            await session.send({"type": "input_audio_buffer.committed", "item_id": f"u{n}"})
            text = ["What is the weather", "And tomorrow"][n - 1]
            await session.send(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": f"u{n}",
                    "content_index": 0,
                    "transcript": text,
                    "usage": {"type": "duration", "seconds": 1.0},
                }
            )
        if event["type"] == "response.create":
            if session is session.peer.sessions[0] and len(session.of("response.create")) == 2:

                async def drop() -> None:
                    await session.response("Tomorrow it will rain a lot", 1000, done=False)
                    await session.ws.close(1011, "boom")

                session.tg.start_soon(drop)
            else:
                session.tg.start_soon(lambda: session.response("It is sunny today", 300))

    async with Peer(script) as peer:
        proc = make(peer, reconnect_initial_delay_s=0.05)
        async with running(proc) as h:
            await (await peer.session()).wait_for("session.update")
            for _ in range(2):
                await h.task.queue_frame(UserStartedSpeakingFrame())
                await h.audio(200)
                await h.task.queue_frame(UserStoppedSpeakingFrame())
                await h.wait(lambda: len(h.context.messages) >= 1)
                await h.wait(
                    lambda: (
                        (not proc.state.responses.active and proc.state.responses.state == "idle")
                        or len(peer.sessions) > 1
                    )
                )
            second = await peer.session(1)
            await second.wait_for("response.create")
            await h.wait_frame(LLMResponseEndFrame, 3)

    states = [f.state for f in h.tap_out.frames(RealtimeConnectionFrame)]
    assert states[:3] == ["connected", "reconnecting", "reconnected"]
    lost = h.tap_out.frames(RealtimeConnectionFrame)[1]
    assert lost.close_code == 1011 and lost.attempt == 1
    kinds = [e["type"] for e in second.events]
    assert kinds[0] == "session.update"
    replay = [e["item"] for e in second.of("conversation.item.create")]
    texts = [(i["role"], i["content"][0]["text"]) for i in replay]
    assert texts == [
        ("user", "What is the weather"),
        ("assistant", "It is sunny today"),
        ("user", "And tomorrow"),
        ("assistant", "Tomorrow it will rain a lot"),
    ]
    assert kinds.index("response.create") > max(
        i for i, k in enumerate(kinds) if k == "conversation.item.create"
    )
    assert [e.code for e in h.task.errors] == []
    assert h.tap_out.frames(TranscriptionFrame)[0].text == "What is the weather"
    assert proc.sessions == 2


async def test_an_expired_session_reconnects_without_an_error() -> None:
    async def script(session: PeerSession, event: dict[str, Any]) -> None:
        if event["type"] == "session.update" and session is session.peer.sessions[0]:
            await session.error(
                "session_expired", "Your session hit the maximum duration of 60 minutes."
            )
            await session.ws.close(1001, "expired")

    async with Peer(script) as peer:
        proc = make(peer)
        async with running(proc) as h:
            second = await peer.session(1)
            await second.wait_for("session.update")
            await h.wait(lambda: len(h.tap_out.frames(RealtimeConnectionFrame)) >= 3)

    lost = h.tap_out.frames(RealtimeConnectionFrame)[1]
    assert lost.state == "reconnecting" and lost.expired and lost.close_code == 1001
    assert h.task.errors == []


async def test_an_unreachable_server_is_a_clear_fatal_error() -> None:
    async with Peer() as peer:
        url = peer.url
    proc = OpenAIRealtime(
        OpenAIRealtimeParams(
            websocket_base_url=url,
            api_key_env=KEY_ENV,
            reconnect_attempts=1,
            reconnect_initial_delay_s=0.01,
            connect_timeout_s=2,
        )
    )
    async with running(proc) as h:
        error = await h.wait(lambda: h.task.errors)
    assert error[0].fatal and error[0].code == "connection_failed"
    assert "1 reconnect attempts failed" in error[0].message


async def test_a_refused_key_is_reported_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-SENTINEL-do-not-leak-42")
    async with Peer(reject_status=401) as peer:
        proc = make(peer)
        async with running(proc) as h:
            error = await h.wait(lambda: h.task.errors)
    assert "refused the API key" in error[0].message and error[0].fatal
    assert "SENTINEL" not in error[0].message


async def test_a_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    proc = OpenAIRealtime(OpenAIRealtimeParams(api_key_env=KEY_ENV, connect_timeout_s=5))
    async with running(proc) as h:  # OpenAI itself: the key is required
        error = await h.wait(lambda: h.task.errors)
    assert KEY_ENV in error[0].message and error[0].fatal
    assert isinstance(error[0], ErrorFrame)


async def test_a_server_of_our_own_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    async with Peer() as peer:
        proc = make(peer)
        async with running(proc) as h:
            await h.wait(lambda: proc.connected)
            assert h.task.errors == []
