"""A cut over WebRTC silences the peer; the input's media watchdog; the cut benchmark's parts."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from benchmarks.webrtc.cut import heard_spans
from benchmarks.webrtc.echo import CUT_TIMES, run_cut_session, run_echo_session
from processors.transports.webrtc import WebRTCTransportParams
from processors.transports.webrtc.client import WebRTCClient
from processors.transports.webrtc.transport import Watchdog

from .webrtc_helpers import serve, tone

pytestmark = pytest.mark.anyio

_MS = 1_000_000


def _frame(level: int) -> bytes:
    return np.full(960, level, dtype="<i2").tobytes()


def test_heard_spans_split_at_a_long_pause() -> None:
    loud, quiet = _frame(5000), _frame(0)
    frames = [(k * 20 * _MS, loud if k in (1, 2, 3, 30, 31) else quiet) for k in range(40)]
    last_sample = 959 * 1_000_000_000 // 48000  # into its frame
    assert heard_spans(frames) == [
        (20 * _MS, 60 * _MS + last_sample),
        (600 * _MS, 620 * _MS + last_sample),
    ]


async def test_a_cut_silences_the_tone_the_peer_was_hearing() -> None:
    """Each 1.5 s tone is interrupted 0.8 s in: the peer hears each stretch end well
    before the tone would have, and then silence until the next one."""
    async with serve(run_cut_session) as server, WebRTCClient(server.url) as client:
        client.say(tone(300, 12.0), 16000)
        key = f"webrtc.{(client.session or '')[:6]}"
        await client.wait_for(lambda: len(CUT_TIMES.get(key, [])) >= 3, timeout_s=60)
        await asyncio.sleep(0.5)
        cycles = CUT_TIMES.pop(key)
        spans = heard_spans(list(client.received))
    assert len(spans) >= 3
    for tone_ns, cut_ns in cycles[:3]:
        heard = [s for s in spans if tone_ns <= s[0] <= cut_ns]
        assert len(heard) == 1, (tone_ns, cut_ns, spans)
        first, last = heard[0]
        assert last >= cut_ns - 20 * _MS  # it was playing when the cut came
        assert last - first < 1.3e9  # and it stopped: the tone lasts 1.5 s


async def test_a_peer_that_stops_sending_audio_is_timed_out_by_the_input() -> None:
    """The connection stays up (ICE consent goes on) but no RTP comes: the input's
    watchdog ends the session after ``media_timeout_s``."""
    params = WebRTCTransportParams(media_timeout_s=1.0)
    async with serve(run_echo_session, params) as server, WebRTCClient(server.url) as client:
        client.say(tone(300, 1.0), 16000)
        await client.wait_for(lambda: len(client.received) > 10, timeout_s=30)
        sender = next(s for s in client.pc.getSenders() if s.track is client.microphone)
        sender.replaceTrack(None)  # the sender goes on, sending nothing (no BYE)
        await server.wait_sessions(0, timeout_s=30)
        [(_, reason)] = server.sessions.ended
    assert reason == "no audio from the peer for 1 s"


async def test_the_watchdog_waits_while_fed_and_fires_once_starved() -> None:
    fired = asyncio.Event()
    watchdog = Watchdog(3.0, fired.set)
    try:
        for _ in range(40):  # 4 s of arrivals every 0.1 s: never 3 s without one
            await asyncio.sleep(0.1)
            watchdog.last_ns = time.monotonic_ns()
        assert not fired.is_set()
        await asyncio.wait_for(fired.wait(), timeout=30)
    finally:
        watchdog.stop()


async def test_a_stopped_watchdog_never_fires() -> None:
    fired = asyncio.Event()
    watchdog = Watchdog(0.05, fired.set)
    watchdog.stop()
    await asyncio.sleep(0.3)
    assert not fired.is_set()
