"""The WebRTC transport's protocol edges, with an aiortc client over 127.0.0.1.

The server runs an echo pipeline (what the peer says comes back as bot audio),
so these tests need no model: a tone goes in, the same tone must come out,
through Opus both ways and the pipeline's rates.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import pytest
from aiortc import RTCPeerConnection

from benchmarks.webrtc.echo import run_echo_session
from framework.audio import write_wav
from processors.transports.webrtc import WebRTCTransportParams
from processors.transports.webrtc.audio import WIRE_RATE
from processors.transports.webrtc.client import WebRTCClient

from .webrtc_helpers import ROOT, Census, dominant_hz, serve, settled_census, tone

pytestmark = pytest.mark.anyio


async def _echo_of(client: WebRTCClient, freq: float) -> float:
    """Say a tone and return the dominant frequency of what comes back meanwhile."""
    start = len(client.received)
    client.say(tone(freq, 1.2), 16000)
    await client.wait_for(lambda: len(client.received) - start >= 60, timeout_s=20)
    back = b"".join(pcm for _, pcm in client.received[start + 20 : start + 60])
    return dominant_hz(back, WIRE_RATE)


async def test_audio_echoes_back_and_a_renegotiation_keeps_the_session() -> None:
    baseline = Census.take()
    async with serve(run_echo_session) as server:
        client = WebRTCClient(server.url)
        await client.connect()
        session = client.session
        await server.wait_sessions(1)
        assert abs(await _echo_of(client, 440) - 440) < 15
        # A new offer on the same connection: same session, audio still flows.
        await client.negotiate()
        assert client.session == session
        assert len(server.sessions) == 1
        assert abs(await _echo_of(client, 660) - 660) < 15
        assert client.event_times("bot_started"), "no events arrived on the data channel"
        # Hanging up ends the session.
        await client.close()
        await server.wait_sessions(0)
    del client  # the census counts peer connections still referenced
    census = await settled_census(baseline)
    assert census == baseline, f"left behind: {census} (before: {baseline})"


async def test_several_sessions_run_at_once_each_with_its_own_pipeline() -> None:
    async with serve(run_echo_session) as server:
        clients = [WebRTCClient(server.url) for _ in range(3)]
        for client in clients:
            await client.connect()
        await server.wait_sessions(3)
        assert len({c.session for c in clients}) == 3
        heard = await asyncio.gather(
            *(_echo_of(c, f) for c, f in zip(clients, (300, 500, 700), strict=True))
        )
        for got, sent in zip(heard, (300, 500, 700), strict=True):
            assert abs(got - sent) < 15, heard
        for client in clients:
            await client.close()
        await server.wait_sessions(0)


async def test_a_peer_that_vanishes_mid_reply_ends_its_session(tmp_path) -> None:
    """The client process dies while the bot speaks, without hanging up."""
    wav = tmp_path / "hum.wav"
    write_wav(wav, tone(440, 3.0), 16000)
    params = WebRTCTransportParams(media_timeout_s=2.0)
    async with serve(run_echo_session, params) as server:
        baseline = Census.take()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "processors.transports.webrtc.client",
            server.url,
            "--say",
            str(wav),
            "--vanish-on-reply",
            "--seconds",
            "30",
            cwd=ROOT,
        )
        await server.wait_sessions(1, timeout_s=30)
        assert await asyncio.wait_for(process.wait(), 60) == 0
        # Its session ends by itself: the server notices the peer is gone.
        await server.wait_sessions(0, timeout_s=30)
        [(_, reason)] = server.sessions.ended
        assert "no audio from the peer" in reason or "peer connection is" in reason
        census = await settled_census(baseline)
        assert census == baseline, f"left behind: {census} (before: {baseline})"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "the body must be JSON"),
        ({"sdp": "hello", "type": "offer"}, "malformed SDP offer"),
        ({"sdp": "v=0\r\nm=audio 9 UDP\r\n", "type": "offer"}, "malformed SDP offer"),
        ({"sdp": "", "type": "offer"}, '"sdp" must be a non-empty string'),
        ({"sdp": "v=0", "type": "answer"}, '"type" must be "offer"'),
    ],
)
async def test_a_malformed_offer_is_a_clear_http_400(body: object, message: str) -> None:
    async with serve(run_echo_session) as server, aiohttp.ClientSession() as http:
        kwargs = {"data": body} if isinstance(body, str) else {"json": body}
        async with http.post(f"{server.url}/offer", **kwargs) as response:
            assert response.status == 400
            assert message in await response.text()
        assert len(server.sessions) == 0


async def test_an_offer_without_audio_is_refused_and_leaves_nothing() -> None:
    offerer = RTCPeerConnection()
    offerer.createDataChannel("events")
    await offerer.setLocalDescription(await offerer.createOffer())
    async with serve(run_echo_session) as server, aiohttp.ClientSession() as http:
        body = {"sdp": offerer.localDescription.sdp, "type": "offer"}
        async with http.post(f"{server.url}/offer", json=body) as response:
            assert response.status == 400
            assert "no audio" in await response.text()
        assert len(server.sessions) == 0
        # Renegotiating a session that does not exist is a 404, not a new session.
        offerer.addTransceiver("audio")
        await offerer.setLocalDescription(await offerer.createOffer())
        body = {"sdp": offerer.localDescription.sdp, "type": "offer", "session": "nope"}
        async with http.post(f"{server.url}/offer", json=body) as response:
            assert response.status == 404
            assert "no live session 'nope'" in await response.text()
        assert len(server.sessions) == 0
    await offerer.close()


async def test_the_page_and_its_script_are_served() -> None:
    async with serve(run_echo_session) as server, aiohttp.ClientSession() as http:
        for path, needle in (("/", "talk.js"), ("/talk.js", "createDataChannel")):
            async with http.get(server.url + path) as response:
                assert response.status == 200
                assert needle in await response.text()


async def test_a_session_that_ends_by_itself_closes_its_connection() -> None:
    async def short_session(transport: object) -> None:
        await asyncio.sleep(1.0)  # the pipeline ends (or fails) on its own

    async with serve(short_session) as server:
        baseline = Census.take()
        client = WebRTCClient(server.url)
        await client.connect()
        await server.wait_sessions(0)
        [(_, reason)] = server.sessions.ended
        assert reason == "the pipeline ended"
        await _closed_by_server(client)
        del client
        census = await settled_census(baseline)
        assert census == baseline, f"left behind: {census} (before: {baseline})"


async def _closed_by_server(client: WebRTCClient) -> None:
    await client.wait_for(lambda: client.pc.connectionState == "closed", timeout_s=30)
    await client.close()


async def test_sessions_beyond_the_limit_are_refused_with_503() -> None:
    async with serve(run_echo_session, WebRTCTransportParams(max_sessions=1)) as server:
        first = WebRTCClient(server.url)
        await first.connect()
        second = WebRTCClient(server.url)
        with pytest.raises(RuntimeError, match="HTTP 503: 1 sessions are running"):
            await second.connect()
        await second.close()
        await first.close()
        await server.wait_sessions(0)
