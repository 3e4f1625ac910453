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
