"""The WebRTC output side on its own: what waits for the wire, and what an interruption leaves.

No network: the output transport writes into a real outgoing track whose
packets are pulled here as aiortc's sender would pull them.
"""

from __future__ import annotations

import anyio
import pytest
from aiortc import RTCPeerConnection

from framework.frames import InterruptionFrame
from processors.transports.webrtc import WebRTCTransportParams
from processors.transports.webrtc.peer import PeerLink
from processors.transports.webrtc.transport import WebRTCOutputTransport

from .transport_helpers import run_task, tone_frames

pytestmark = pytest.mark.anyio


def _decoded_levels(packets: list[bytes]) -> list[int]:
    """Peak level of each packet, decoded as a peer would (Opus, 48 kHz)."""
    import av
    import numpy as np

    decoder = av.CodecContext.create("libopus", "r")
    peaks = []
    for data in packets:
        frames = decoder.decode(av.Packet(data))
        peaks.append(max(int(np.abs(f.to_ndarray()).max()) for f in frames))
    return peaks


@pytest.mark.parametrize("rate", [24000, 22050])
async def test_an_interruption_empties_what_waits_for_the_wire(rate: int) -> None:
    pc = RTCPeerConnection()
    peer = PeerLink(pc, WebRTCTransportParams())
    output = WebRTCOutputTransport(WebRTCTransportParams(), peer)
    track = peer.outgoing
    queued_ms: list[float] = []
    packets: list[bytes] = []

    async def sender() -> None:  # what aiortc's RTP sender does: pull packets forever
        while True:
            packet = await track.recv()
            packets.append(bytes(packet))
            queued_ms.append(track.queued_ms)

    async def drive(task: object) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sender)
            await task.queue_frames(tone_frames(2.0, rate=rate))  # type: ignore[attr-defined]
            await anyio.sleep(0.6)
            playing = track.frames_sent
            await task.queue_frame(InterruptionFrame())  # type: ignore[attr-defined]
            left_ms = track.queued_ms
            await anyio.sleep(0.6)
            tg.cancel_scope.cancel()
        await task.stop_when_done()  # type: ignore[attr-defined]
        # The pacing keeps at most about one 20 ms frame waiting for the wire.
        assert max(queued_ms[: playing - 1]) <= 40, queued_ms
        assert left_ms == 0
        # What the peer hears: the tone until the cut (give or take the frame being sent),
        # then silence; once settled, one silence packet again and again.
        heard = _decoded_levels(packets)
        assert min(heard[5 : playing - 1]) > 3000, heard
        assert max(heard[playing + 2 :]) < 100, heard[playing:]
        assert len(set(packets[-5:])) == 1

    await run_task([output], during=drive)
    await pc.close()


class _Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def monotonic_ns(self) -> int:
        return self.ns


async def test_silence_keeps_the_20_ms_grid_however_late_the_track_is_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each silence packet is due 20 ms after the previous one's due time, not after
    the moment it was sent: a track asked late (a busy loop) sends 50 a second on
    average, as its timestamps say, instead of falling behind by each delay."""
    from processors.transports.webrtc import audio

    clock = _Clock()
    monkeypatch.setattr(audio, "time", clock)
    track = audio.OutgoingAudio()
    start = clock.ns
    await track.recv()  # the first packet anchors the schedule
    for k in range(1, 6):
        clock.ns = start + k * 20_000_000 + 7_000_000  # every packet asked 7 ms late
        await track.recv()
    assert track._next_ns == start + 6 * 20_000_000
    assert track.frames_sent == 6
    track.stop()


async def test_written_audio_sets_the_schedule_from_when_it_was_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from processors.transports.webrtc import audio

    clock = _Clock()
    monkeypatch.setattr(audio, "time", clock)
    track = audio.OutgoingAudio()
    track.set_rate(24000)
    track.write(bytes(2 * 480))
    await track.recv()
    clock.ns += 27_000_000  # the writer's next chunk comes 7 ms late
    track.write(bytes(2 * 480))
    await track.recv()
    assert track._next_ns == clock.ns + 20_000_000
    track.stop()


@pytest.mark.parametrize(
    ("application", "modes"),
    [("audio", range(16, 32)), ("lowdelay", range(16, 32)), ("voip", range(12, 16))],
)
async def test_the_opus_mode_is_the_one_chosen(application: str, modes: range) -> None:
    """The bot's speech is coded in the mode ``opus_application`` names: 'audio' and
    'lowdelay' send MDCT-only packets (TOC configurations 16-31), 'voip' at 32 kbps the
    hybrid of both coders (12-15); every packet decodes to sound."""
    from processors.transports.webrtc.audio import OutgoingAudio

    track = OutgoingAudio(application=application, max_queued_ms=None)
    track.set_rate(24000)
    for frame in tone_frames(0.3, rate=24000):
        track.write(frame.audio)
    packets = [bytes(await track.recv()) for _ in range(10)]
    track.stop()
    assert [p[0] >> 3 in modes for p in packets] == [True] * 10, [p[0] >> 3 for p in packets]
    assert min(_decoded_levels(packets)[2:]) > 1000  # past the codec's first frames: the tone


def test_an_unknown_opus_mode_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="opus_application"):
        WebRTCTransportParams(opus_application="music")  # type: ignore[arg-type]
