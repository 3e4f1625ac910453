"""Telnyx Media Streaming calls to the live server, over a real WebSocket on 127.0.0.1.

The peer (tests/pipelines/talk_clients.py) plays Telnyx's part with Telnyx's
names (``stream_id``, ``media_format``, PCMA): media at real-time pace, a
playout buffer that lags, marks echoed once played, ``clear`` honoured.
"""

from __future__ import annotations

import base64
import functools
import logging
from pathlib import Path

import pytest

from framework.audio import alaw_decode, alaw_encode, ulaw_encode
from pipelines.config import load_pipeline_file
from pipelines.factory import Session
from pipelines.talk import LiveServer
from processors.recording.events import EventLog
from processors.transports.serializers import AudioIn, CallStarted, ProtocolError
from processors.transports.serializers.telnyx import TelnyxSerializer
from tests.pipelines.talk_clients import TelnyxPeer
from tests.processors.transports.test_twilio_calls import one_call, records
from tests.speech import synthesize_speech

FAST = Path(__file__).resolve().parents[3] / "pipelines" / "cascade-local-fast.toml"


def _start(encoding: str = "PCMU", rate: int = 8000) -> str:
    fmt = f'{{"encoding": "{encoding}", "sample_rate": {rate}, "channels": 1}}'
    return (
        '{"event": "start", "stream_id": "S1", '
        f'"start": {{"call_control_id": "v2:c1", "media_format": {fmt}}}}}'
    )


def test_the_start_event_sets_the_stream_and_the_codec() -> None:
    serializer = TelnyxSerializer()
    assert serializer.decode('{"event": "connected", "version": "1.0.0"}') is None
    assert serializer.decode(_start("PCMA")) == CallStarted("S1", "v2:c1")
    tone = (b"\x00\x10\xff\x7f" * 80)[:320]
    payload = base64.b64encode(alaw_encode(tone)).decode()
    got = serializer.decode(f'{{"event": "media", "media": {{"payload": "{payload}"}}}}')
    assert got == AudioIn(alaw_decode(alaw_encode(tone)), 8000)
    # Output goes out in the call's codec, with no stream id (one socket, one stream).
    [media] = serializer.audio(bytes(320), 8000)
    assert '"stream_id"' not in media and '"streamSid"' not in media
    assert serializer.interruption() == ['{"event": "clear"}']
    assert serializer.mark("m1") == '{"event": "mark", "mark": {"name": "m1"}}'


def test_a_media_format_it_cannot_play_is_named() -> None:
    with pytest.raises(ProtocolError, match=r"'L16' at 16000 Hz.*use PCMU, PCMA at 8000 Hz"):
        TelnyxSerializer().decode(_start("L16", 16000))
    with pytest.raises(ProtocolError, match="without a stream id"):
        TelnyxSerializer().decode('{"event": "start", "start": {}}')


def test_the_outbound_track_is_not_heard_and_an_error_event_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    serializer = TelnyxSerializer()
    serializer.decode(_start())
    payload = base64.b64encode(ulaw_encode(bytes(320))).decode()
    outbound = f'{{"event": "media", "media": {{"track": "outbound", "payload": "{payload}"}}}}'
    assert serializer.decode(outbound) is None
    caplog.set_level(logging.WARNING, logger="parley")
    error = '{"event": "error", "payload": {"code": 100002, "title": "Unknown error"}}'
    assert serializer.decode(error) is None
    assert "100002 Unknown error" in caplog.text
    with pytest.raises(ProtocolError, match="unknown event 'bogus'"):
        serializer.decode('{"event": "bogus"}')


@pytest.mark.anyio
@pytest.mark.models
@pytest.mark.slow
async def test_a_telnyx_call_gets_pcma_back_marks_round_trip_and_a_stop_ends_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="parley")
    [question] = synthesize_speech(["What is the capital of France?"])
    sessions: list[Session] = []
    config = load_pipeline_file(FAST, ["transport.backend=telnyx"])
    server = LiveServer(config, port=0, observers=lambda: [EventLog()], on_session=sessions.append)
    broken = [
        '{"event": "error", "payload": {"code": 1, "title": "test"}}',
        '{"event": "media", "media": {"payload": "%%% not base64"}}',
    ]
    peer_class = functools.partial(TelnyxPeer, encoding="PCMA")
    peer, session = await one_call(server, sessions, question, broken, peer_class, "/telnyx")
    logged = caplog.text
    assert "telnyx: the stream reports an error: 1 test" in logged
    assert "not valid base64" in logged
    # The reply came back as media without a stream id, at least half a second of it.
    media = peer.of("media")
    assert media and all(set(m) == {"event", "media", "t"} for m in media)
    assert peer.media_s > 0.5
    transcripts = records(session, "transcription")
    assert transcripts and transcripts[0]["text"].strip()  # the fast pipeline's STT is rough
    # The user's turn start cleared the carrier's queue; marks went out and came back.
    assert peer.cleared_at
    sent = [m["mark"]["name"] for m in peer.of("mark")]
    assert sent and peer.marks_echoed == sent
    assert session.task.finished
