"""A Python peer for the talk server: speaks PCM as its microphone, records the bot, reads events.

It does what the talk page does, with aiortc instead of a browser, so programs
(tests, benchmarks) can hold a conversation over the real WebRTC path::

    async with WebRTCClient("http://127.0.0.1:8080") as client:
        client.say(pcm, 16000)                  # queued after what is being said
        await client.wait_for_event("bot_stopped", timeout_s=30)
        reply = client.received_pcm()           # 48 kHz mono PCM16, from the connection's start

From the command line, ``python -m processors.transports.webrtc.client URL --say question.wav
--record reply.wav`` says a WAV and records the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from processors.transports.webrtc.audio import WIRE_RATE, OutgoingAudio, decoded_mono
from processors.transports.webrtc.peer import receive_audio
from processors.transports.webrtc.receive import OpusReceiveTrack

__all__ = ["WebRTCClient"]


class WebRTCClient:
    """One WebRTC session with a talk server at ``base_url`` (``http://host:port``)."""

    def __init__(self, base_url: str, *, with_events: bool = True, jitter_ms: float = 20.0) -> None:
        """Prepare a session; :meth:`connect` (or ``async with``) opens it.

        The bot's audio is decoded as each packet arrives, as the server does with
        the microphone's (``jitter_ms``: see :class:`.receive.OpusReceiveTrack`).
        """
        self.base_url = base_url.rstrip("/")
        self.with_events = with_events
        self.jitter_ms = jitter_ms
        self.incoming: OpusReceiveTrack | None = None
        self.pc = RTCPeerConnection()
        self.session: str | None = None
        self.events: list[dict[str, Any]] = []
        self.microphone = OutgoingAudio(max_queued_ms=None, paced=True)
        self.received: list[tuple[int, bytes]] = []  # (arrival ns, 48 kHz mono PCM16)
        self.connected_ns = 0
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> WebRTCClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Offer a connection with a microphone track (and the events channel)."""
        self.pc.addTrack(self.microphone)
        if self.with_events:
            channel = self.pc.createDataChannel("events")
            channel.on("message", self._event)
        self.pc.on("track", self._track)
        await self.negotiate()
        self.connected_ns = time.monotonic_ns()

    async def negotiate(self) -> None:
        """Send a (new) offer and apply the answer; after the first, a renegotiation."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        body: dict[str, Any] = {"sdp": self.pc.localDescription.sdp, "type": "offer"}
        if self.session is not None:
            body["session"] = self.session
        answer = await post_offer(self.base_url, body)
        self.session = answer["session"]
        await self.pc.setRemoteDescription(
            RTCSessionDescription(sdp=answer["sdp"], type=answer["type"])
        )

    def say(self, pcm: bytes, rate: int) -> None:
        """Queue mono PCM16 at ``rate`` on the microphone, after what it is saying."""
        from framework.audio import resample

        self.microphone.write(resample(pcm, rate, WIRE_RATE))

    @property
    def speaking(self) -> bool:
        """True while the microphone still has queued speech."""
        return self.microphone.queued_ms > 0

    def received_pcm(self) -> bytes:
        """Everything the bot's track delivered so far, concatenated (48 kHz mono PCM16)."""
        return b"".join(pcm for _, pcm in self.received)

    def event_times(self, kind: str) -> list[dict[str, Any]]:
        """The events of type ``kind`` received so far."""
        return [e for e in self.events if e["type"] == kind]

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> None:
        """Wait until ``predicate()`` holds (checked on every event and audio frame, and
        every 0.1 s for anything else)."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.1):
                        await self._changed.wait()

    async def wait_for_event(self, kind: str, timeout_s: float, count: int = 1) -> dict[str, Any]:
        """Wait for the ``count``-th event of type ``kind`` and return it."""
        await self.wait_for(lambda: len(self.event_times(kind)) >= count, timeout_s)
        return self.event_times(kind)[count - 1]

    def _event(self, message: str | bytes) -> None:
        self.events.append(json.loads(message))
        self._changed.set()

    def _track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._reader is None:
            self.incoming = receive_audio(self.pc, track, self.jitter_ms)
            self._reader = asyncio.create_task(self._read(self.incoming))

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                pcm, _ = decoded_mono(await track.recv())
                self.received.append((time.monotonic_ns(), pcm))
                self._changed.set()

    async def close(self) -> None:
        """Hang up: close the connection (the server ends the session)."""
        self.microphone.stop()
        if self.incoming is not None:
            self.incoming.stop()
        await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


async def post_offer(base_url: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST ``body`` to ``base_url/offer``; an HTTP error raises with the server's text."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base_url}/offer", json=body) as response,
    ):
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {await response.text()}")
        answer: dict[str, Any] = await response.json()
        return answer


async def _main(args: argparse.Namespace) -> None:
    from framework.audio import read_wav, to_mono, write_wav

    client = WebRTCClient(args.url)
    await client.connect()
    if args.say:
        audio = read_wav(Path(args.say))
        client.say(to_mono(audio.pcm, audio.num_channels), audio.sample_rate)
    if args.vanish_on_reply:
        # Disappear without hanging up, as a crashed or unplugged peer would.
        await client.wait_for_event("bot_started", timeout_s=args.seconds)
        await asyncio.sleep(0.3)
        sys.stdout.flush()
        os._exit(0)
    await asyncio.sleep(args.seconds)
    await client.close()
    if args.record:
        write_wav(Path(args.record), client.received_pcm(), WIRE_RATE)
    for event in client.events:
        print(json.dumps(event))


def main(argv: list[str] | None = None) -> None:
    """Say a WAV to a talk server, record the answer, print the events."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("url", help="the talk server, for example http://127.0.0.1:8080")
    parser.add_argument("--say", help="WAV file to say once connected")
    parser.add_argument("--record", help="write what the bot said to this WAV (48 kHz)")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long to stay")
    parser.add_argument(
        "--vanish-on-reply",
        action="store_true",
        help="exit abruptly, without hanging up, once the bot starts answering",
    )
    asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
