"""The low-latency receive path: Opus packets decoded as they arrive, gaps waited for or filled."""

from __future__ import annotations

import asyncio
import fractions

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket
from av import AudioFrame, CodecContext

from processors.transports.webrtc.receive import OpusReceiveTrack

pytestmark = pytest.mark.anyio

_FRAME = 960


def _opus_packets(
    count: int, first_seq: int = 65530, first_ts: int = 2**32 - 1920
) -> list[RtpPacket]:
    """``count`` 20 ms Opus packets of a tone, with sequence numbers and timestamps that wrap."""
    encoder = CodecContext.create("libopus", "w")
    encoder.format = "s16"
    encoder.layout = "mono"
    encoder.sample_rate = 48000
    encoder.bit_rate = 32000
    encoder.time_base = fractions.Fraction(1, 48000)
    t = np.arange(count * _FRAME) / 48000
    pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()
    payloads: list[bytes] = []
    for k in range(count + 3):  # the encoder holds a little back at first
        frame = AudioFrame(format="s16", layout="mono", samples=_FRAME)
        chunk = pcm[k * 2 * _FRAME : (k + 1) * 2 * _FRAME]
        frame.planes[0].update(chunk + bytes(2 * _FRAME - len(chunk)))
        frame.sample_rate, frame.pts, frame.time_base = 48000, k * _FRAME, encoder.time_base
        payloads += [bytes(p) for p in encoder.encode(frame)]
    return [
        RtpPacket(
            payload_type=111,
            sequence_number=(first_seq + k) % 65536,
            timestamp=(first_ts + k * _FRAME) % 2**32,
            payload=payloads[k],
        )
        for k in range(count)
    ]


def _drain(track: OpusReceiveTrack) -> list[AudioFrame]:
    frames = []
    while not track._queue.empty():
        frame = track._queue.get_nowait()
        assert frame is not None
        frames.append(frame)
    return frames


def _loud(frame: AudioFrame) -> bool:
    return bool(np.abs(np.frombuffer(bytes(frame.planes[0]), dtype="<i2")).max() > 1000)


async def test_packets_in_order_come_out_at_once_with_rtp_times_across_the_wrap() -> None:
    track = OpusReceiveTrack(jitter_ms=20)
    packets = _opus_packets(6)
    for k, packet in enumerate(packets):
        track.feed(packet)
        frames = _drain(track)  # each one at once: nothing waits for the next packet
        assert [f.pts for f in frames] == [k * _FRAME]
        assert frames[0].sample_rate == 48000 and frames[0].layout.name == "mono"
    assert (track.packets, track.lost, track.late) == (6, 0, 0)
    track.stop()


async def test_a_reordered_packet_is_waited_for_and_put_back_in_place() -> None:
    track = OpusReceiveTrack(jitter_ms=40)
    p = _opus_packets(5)
    for packet in (p[0], p[2], p[1], p[3], p[4]):
        track.feed(packet)
    frames = _drain(track)
    assert [f.pts for f in frames] == [k * _FRAME for k in range(5)]
    assert all(f.samples == _FRAME for f in frames)
    assert (track.packets, track.lost, track.late) == (5, 0, 0)
    track.stop()


async def test_a_lost_packet_becomes_silence_of_its_length_after_the_wait() -> None:
    track = OpusReceiveTrack(jitter_ms=30)
    p = _opus_packets(8)
    for packet in p[:3]:
        track.feed(packet)
    assert len(_drain(track)) == 3
    track.feed(p[4])  # p[3] is missing: p[4] waits
    assert _drain(track) == []
    await asyncio.sleep(0.2)  # past jitter_ms: p[3] counts as lost
    frames = _drain(track)
    assert [(f.pts, f.samples) for f in frames] == [(3 * _FRAME, _FRAME), (4 * _FRAME, _FRAME)]
    assert not _loud(frames[0]) and _loud(frames[1])
    track.feed(p[3])  # too late now: dropped
    track.feed(p[5])
    assert [f.pts for f in _drain(track)] == [5 * _FRAME]
    assert (track.packets, track.lost, track.late) == (5, 1, 1)
    track.stop()


async def test_with_no_wait_a_gap_is_filled_at_once() -> None:
    track = OpusReceiveTrack(jitter_ms=0)
    p = _opus_packets(4)
    track.feed(p[0])
    track.feed(p[3])
    assert [f.pts for f in _drain(track)] == [0, _FRAME, 3 * _FRAME]  # silence for p[1], p[2]
    assert track.lost == 2
    track.stop()


async def test_a_gap_longer_than_the_wait_in_packets_is_filled_without_the_timer() -> None:
    track = OpusReceiveTrack(jitter_ms=20)
    p = _opus_packets(5)
    track.feed(p[0])
    track.feed(p[2])  # waits for p[1]
    track.feed(p[3])  # now more than 20 ms is held: p[1] is lost
    assert [f.pts for f in _drain(track)] == [0, _FRAME, 2 * _FRAME, 3 * _FRAME]
    assert track.lost == 1
    track.stop()


async def test_other_payload_types_are_ignored_once_opus_is_known() -> None:
    track = OpusReceiveTrack()
    track._payload_types = lambda: frozenset({111})
    p = _opus_packets(2)
    dtmf = RtpPacket(payload_type=126, sequence_number=p[0].sequence_number, payload=b"\x01\x0a")
    track.feed(dtmf)
    for packet in p:
        track.feed(packet)
    assert len(_drain(track)) == 2 and track.packets == 2
    track.stop()


async def test_stop_ends_a_waiting_reader_and_later_packets_are_ignored() -> None:
    track = OpusReceiveTrack()
    reader = asyncio.create_task(track.recv())
    await asyncio.sleep(0)
    track.stop()
    with pytest.raises(MediaStreamError):
        await reader
    track.feed(_opus_packets(1)[0])
    assert track.packets == 0
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_a_negative_wait_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter_ms must be 0 or more"):
        OpusReceiveTrack(jitter_ms=-1)
