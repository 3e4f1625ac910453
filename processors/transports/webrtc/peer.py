"""One peer connection as the transport sees it: its tracks, its events channel, its end."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiortc import MediaStreamTrack, RTCPeerConnection

from processors.transports.webrtc.audio import OutgoingAudio
from processors.transports.webrtc.receive import OpusReceiveTrack

if TYPE_CHECKING:
    from aiortc import RTCDataChannel

    from processors.transports.webrtc.params import WebRTCTransportParams

__all__ = ["PeerLink", "receive_audio"]

log = logging.getLogger("parley")


class PeerLink:
    """What the two sides of one connection share: the peer connection, tracks and events.

    The signalling server creates it with the peer connection; the input side
    reads :meth:`remote_audio`, the output side writes :attr:`outgoing`, both
    send page events with :meth:`send_event`. :meth:`lose` reports that the peer
    has gone (the server ends the session).
    """

    def __init__(self, pc: RTCPeerConnection, params: WebRTCTransportParams) -> None:
        """Attach to ``pc``: its incoming audio track and its ``events`` data channel."""
        self.pc = pc
        self.params = params
        self.outgoing = OutgoingAudio(
            max_queued_ms=params.max_queued_ms,
            bitrate=params.opus_bitrate,
            complexity=params.opus_complexity,
            application=params.opus_application,
        )
        self.lost_reason: str | None = None
        self.frames_received = 0
        """Audio frames decoded from the peer so far."""
        self._remote: asyncio.Future[OpusReceiveTrack] = asyncio.get_running_loop().create_future()
        self._channel: RTCDataChannel | None = None
        self._backlog: deque[str] = deque(maxlen=200)
        self._on_lost: list[Callable[[str], None]] = []
        pc.on("track", self._track)
        pc.on("datachannel", self._datachannel)
        pc.on("connectionstatechange", self._state_changed)

    def _track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and not self._remote.done():
            self._remote.set_result(receive_audio(self.pc, track, self.params.jitter_ms))

    def _datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != "events":
            return
        self._channel = channel
        if channel.readyState == "open":
            self._flush()
        else:
            channel.on("open", self._flush)

    def _flush(self) -> None:
        while self._backlog and self._send(self._backlog[0]):
            self._backlog.popleft()

    def _send(self, message: str) -> bool:
        """Send on the events channel if it is open; events are best effort."""
        channel = self._channel
        if channel is None or channel.readyState != "open":
            return False
        try:
            channel.send(message)
        except Exception as exc:  # the channel closed meanwhile
            log.debug("webrtc: event not sent: %s", exc)
        return True

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state in ("failed", "closed"):
            self.lose(f"the peer connection is {state}")

    @property
    def has_audio(self) -> bool:
        """True once the peer's audio track has arrived."""
        return self._remote.done()

    async def remote_audio(self) -> OpusReceiveTrack:
        """The peer's audio track (waits for it)."""
        return await self._remote

    def on_lost(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(reason)`` once when the peer is lost (at once if it already is)."""
        if self.lost_reason is not None:
            callback(self.lost_reason)
        else:
            self._on_lost.append(callback)

    def lose(self, reason: str) -> None:
        """Report that the peer has gone; the first reason wins."""
        if self.lost_reason is not None:
            return
        self.lost_reason = reason
        log.info("webrtc: %s", reason)
        callbacks, self._on_lost = self._on_lost, []
        for callback in callbacks:
            callback(reason)

    def send_event(self, event: str, **fields: Any) -> None:
        """Send ``{"type": event, "t_ms": ..., **fields}`` to the page (queued until it opens)."""
        message = json.dumps({"type": event, "t_ms": time.monotonic_ns() // 1_000_000, **fields})
        sent = not self._backlog and self._send(message)
        if not sent and self.lost_reason is None:
            self._backlog.append(message)

    async def close(self) -> None:
        """Stop the outgoing track and close the peer connection (sockets, threads, tasks)."""
        self.outgoing.stop()
        if not self._remote.done():
            self._remote.cancel()
        elif not self._remote.cancelled():
            incoming = self._remote.result()
            incoming.stop()
            log.info(
                "webrtc: audio in: %d packets decoded, %d lost, %d late",
                incoming.packets,
                incoming.lost,
                incoming.late,
            )
        await self.pc.close()


def receive_audio(
    pc: RTCPeerConnection, track: MediaStreamTrack, jitter_ms: float
) -> OpusReceiveTrack:
    """The low-latency track for ``track``'s receiver (see :mod:`.receive`)."""
    transceiver = next(t for t in pc.getTransceivers() if t.receiver.track is track)
    incoming = OpusReceiveTrack(jitter_ms=jitter_ms)
    incoming.attach(pc, transceiver)
    return incoming
