"""The WebSocket transport: one WebSocket connection is one conversation.

``parley talk`` mounts it on its HTTP server (aiohttp); each connection gets its
own pipeline. What travels on the socket is decided by a serializer
(:mod:`processors.transports.serializers`):

* ``backend = "websocket"`` (``serializer = "plain"``): binary PCM16 both ways at
  the pipeline's rates, JSON events; endpoint ``/ws``. See ``docs/websocket.md``.
* ``backend = "twilio"`` (``serializer = "twilio"``): Twilio Media Streams, 8 kHz
  mu-law; endpoint ``/twilio``. See ``docs/twilio.md``.
* ``backend = "telnyx"`` (``serializer = "telnyx"``): Telnyx Media Streaming, the
  same protocol shape, 8 kHz PCMU or PCMA; endpoint ``/telnyx``.

The transport adds only the I/O: pacing, barge-in, bot-speaking frames and
heard-text accounting are those of :mod:`processors.transports.base`. With a
serializer whose peer echoes marks (Twilio), the words the user heard are
counted from the marks the peer has played, not from what was sent.

A malformed or unknown message is logged (and, in the plain protocol, answered
with an ``error`` event); the conversation goes on. When the peer closes the
socket or ends the call, the session is cancelled and nothing is left running.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
from pydantic import Field

from framework import Direction, Frame
from framework.frames import InterruptionFrame, OutputAudioFrame, StartFrame, TTSTextFrame
from processors.transports.base import (
    LiveInputTransport,
    LiveInputTransportParams,
    OutputTransportParams,
)
from processors.transports.output import OutputTransport
from processors.transports.serializers import (
    AudioIn,
    CallEnded,
    CallStarted,
    MarkIn,
    Message,
    ProtocolError,
    Serializer,
    SerializerName,
    make_serializer,
)

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "WebSocketInputTransport",
    "WebSocketOutputTransport",
    "WebSocketTransport",
    "WebSocketTransportParams",
]

log = logging.getLogger("parley")
DOWN = Direction.DOWNSTREAM
_DEFAULT_PATHS = {"plain": "/ws", "twilio": "/twilio", "telnyx": "/telnyx"}
_PLAYED = (OutputAudioFrame, TTSTextFrame)


class WebSocketTransportParams(OutputTransportParams, LiveInputTransportParams):
    """Settings of the ``[transport]`` table for the WebSocket backends."""

    serializer: SerializerName = Field(
        default="plain",
        description="Wire format: 'plain' PCM16 + JSON, 'twilio' or 'telnyx' media streams.",
    )
    path: str = Field(
        default="",
        description="URL path of the endpoint; empty: /ws (plain), /twilio or /telnyx.",
    )
    mark_interval_ms: float = Field(
        default=100.0,
        gt=0,
        description="With marks (twilio, telnyx): send one after at least this much audio, and at "
        "the end of each stretch; the heard text is counted in these steps.",
    )
    max_heard_wait_s: float = Field(
        default=1.0,
        ge=0,
        description="With marks: when a reply (or a stretch of it) has been sent, how long "
        "its last words wait for the peer's marks before they count as heard anyway.",
    )
    start_timeout_s: float = Field(
        default=10.0, gt=0, description="How long to wait for the carrier's 'start' event."
    )
    heartbeat_s: float | None = Field(
        default=20.0,
        gt=0,
        description="Ping the peer this often and drop the connection if it stops "
        "answering (a vanished peer then ends its session); None: never.",
    )

    @property
    def endpoint(self) -> str:
        """The URL path the endpoint is mounted at."""
        return self.path or _DEFAULT_PATHS[self.serializer]


RunSession = Callable[[Any], Awaitable[None]]


class WebSocketTransport:
    """One WebSocket connection: :meth:`input` hears the peer, :meth:`output` speaks to it."""

    Params: ClassVar[type[WebSocketTransportParams]] = WebSocketTransportParams

    def __init__(
        self,
        socket: web.WebSocketResponse,
        params: WebSocketTransportParams | None = None,
        *,
        name: str = "websocket",
    ) -> None:
        """Wrap an open (prepared) aiohttp WebSocket."""
        self.params = params or self.Params()
        self.name = name
        self.socket = socket
        self.serializer: Serializer = make_serializer(
            self.params.serializer, resample_quality=self.params.resample_quality
        )
        self.protocol_errors: list[str] = []
        self._input = WebSocketInputTransport(self.params, name=f"{name}.input")
        self._output = WebSocketOutputTransport(self, name=f"{name}.output")

    def input(self) -> WebSocketInputTransport:
        """The input processor (the same one on every call)."""
        return self._input

    def output(self) -> WebSocketOutputTransport:
        """The output processor (the same one on every call)."""
        return self._output

    # ------------------------------------------------------------ the live server

    @classmethod
    def mount(
        cls, app: web.Application, params: WebSocketTransportParams, run_session: RunSession
    ) -> None:
        """Add the endpoint (``params.endpoint``) to the live server's app."""
        from aiohttp import web

        async def handler(request: web.Request) -> web.StreamResponse:
            heartbeat = params.heartbeat_s
            socket = web.WebSocketResponse(heartbeat=heartbeat, max_msg_size=4 * 1024 * 1024)
            if not socket.can_prepare(request).ok:
                return web.Response(
                    status=426,
                    text=f"{params.endpoint} is a WebSocket endpoint ({params.serializer} "
                    "protocol): connect with a WebSocket client (ws://...).\n",
                )
            await socket.prepare(request)
            transport = cls(socket, params, name=params.serializer)
            await transport.serve(run_session)
            return socket

        app.router.add_get(params.endpoint, handler)

    async def serve(self, run_session: RunSession) -> None:
        """Run the conversation until the peer leaves or the session ends; close the socket."""
        started = anyio.Event()
        if not self.serializer.waits_for_start:
            started.set()
        try:
            async with anyio.create_task_group() as tg:

                async def session() -> None:
                    with anyio.move_on_after(self.params.start_timeout_s):
                        await started.wait()
                    if not started.is_set():
                        timeout = self.params.start_timeout_s
                        log.error("%s: no 'start' event within %.0f s", self.name, timeout)
                    else:
                        await run_session(self)
                    tg.cancel_scope.cancel()

                tg.start_soon(session, name=f"{self.name}.session")
                await self._receive(started)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await self.socket.close()

    async def _receive(self, started: anyio.Event) -> None:
        """Read messages until the peer closes or ends the call."""
        from aiohttp import WSMsgType

        async for message in self.socket:
            if message.type is WSMsgType.TEXT or message.type is WSMsgType.BINARY:
                if await self._handle(message.data, started):
                    return
            elif message.type is WSMsgType.ERROR:
                log.info("%s: connection error: %s", self.name, self.socket.exception())
                return

    async def _handle(self, data: Message, started: anyio.Event) -> bool:
        """Act on one message; True when the call has ended."""
        try:
            incoming = self.serializer.decode(data)
        except ProtocolError as exc:
            await self._protocol_error(str(exc))
            return False
        if isinstance(incoming, AudioIn):
            self._input.feed(incoming.pcm, incoming.sample_rate)
        elif isinstance(incoming, MarkIn):
            self._output.acknowledge(incoming.name)
        elif isinstance(incoming, CallStarted):
            log.info("%s: stream %s started", self.name, incoming.stream_id)
            started.set()
        elif isinstance(incoming, CallEnded):
            log.info("%s: %s", self.name, incoming.reason)
            return True
        return False

    async def _protocol_error(self, message: str) -> None:
        log.error("%s: %s (message ignored; the call goes on)", self.name, message)
        self.protocol_errors.append(message)
        reply = self.serializer.error(message)
        if reply is not None:
            await self.send([reply])

    async def send(self, messages: Sequence[Message]) -> None:
        """Send messages in order; a closed or closing socket drops them."""
        socket = self.socket
        for message in messages:
            if socket.closed:
                return
            try:
                if isinstance(message, bytes):
                    await socket.send_bytes(message)
                else:
                    await socket.send_str(message)
            except ConnectionError as exc:
                log.debug("%s: send failed (%s); the peer is gone", self.name, exc)
                return


class WebSocketInputTransport(LiveInputTransport):
    """Hears the peer: the connection feeds it the audio it receives."""

    Params: ClassVar[type[WebSocketTransportParams]] = WebSocketTransportParams


class WebSocketOutputTransport(OutputTransport):
    """Speaks to the peer: audio, events and interruptions through the serializer.

    With marks, a mark goes out after every ``mark_interval_ms`` of audio and at the
    end of each stretch; :meth:`unheard_s` is the audio sent after the last mark the
    peer echoed, so an interruption keeps only the words the peer had played.
    """

    Params: ClassVar[type[WebSocketTransportParams]] = WebSocketTransportParams

    def __init__(self, connection: WebSocketTransport, *, name: str | None = None) -> None:
        """Create the output side of ``connection``."""
        super().__init__(connection.params, name=name)
        self.connection = connection
        self._serializer = connection.serializer
        self._interval = 0
        self._written = 0  # samples sent since the last interruption
        self._marked = 0  # samples sent before the last mark
        self._heard = 0  # samples before the last mark the peer echoed
        self._unechoed: dict[str, int] = {}
        self._echoed = anyio.Event()
        self._mark_count = 0

    @property
    def heard_samples(self) -> int:
        """Samples (at the output rate) the peer has confirmed playing since the last cut."""
        return self._heard

    async def on_start(self, frame: StartFrame) -> None:
        """Announce the pipeline's rates (plain protocol)."""
        await super().on_start(frame)
        params = self.connection.params
        self._interval = max(1, round(self.sample_rate * params.mark_interval_ms / 1000))
        rates = (frame.audio_in_sample_rate, frame.audio_out_sample_rate)
        await self.connection.send(self._serializer.ready(*rates))

    async def write_chunk(self, pcm: bytes, play_ns: int) -> None:
        """Send the chunk; with marks, mark it when enough audio went since the last."""
        await self.connection.send(self._serializer.audio(pcm, self.sample_rate))
        self._written += len(pcm) // 2
        if self._written - self._marked >= self._interval:
            await self._send_mark()

    async def on_speaking_changed(self, speaking: bool, t_ns: int) -> None:
        """At the end of a stretch, send what the serializer holds and mark it."""
        if not speaking:
            await self._end_of_audio()

    async def _end_of_audio(self) -> None:
        await self.connection.send(self._serializer.flush())
        if self._written > self._marked:
            await self._send_mark()

    async def _send_mark(self) -> None:
        if not self._serializer.marks:
            return
        self._mark_count += 1
        name = f"parley-{self._mark_count}"
        message = self._serializer.mark(name)
        if message is None:
            return
        self._marked = self._written
        self._unechoed[name] = self._written
        await self.connection.send([message])

    def acknowledge(self, name: str) -> None:
        """The peer has played the audio before mark ``name``."""
        samples = self._unechoed.pop(name, None)
        if samples is None:  # a mark echoed after a clear, or not ours
            log.debug("%s: mark %r is not pending", self.name, name)
            return
        self._heard = max(self._heard, samples)
        for other in [n for n, s in self._unechoed.items() if s <= samples]:
            del self._unechoed[other]
        self._echoed.set()

    async def until_heard(self) -> None:
        """With marks: wait (up to ``max_heard_wait_s``) until the peer has played all
        that was sent, unless more of the reply arrives to be played meanwhile."""
        if not self._serializer.marks or self._heard >= self._written:
            return
        await self._end_of_audio()
        with anyio.move_on_after(self.connection.params.max_heard_wait_s):
            while self._heard < self._written and not self._more_to_play():
                self._echoed = anyio.Event()
                with anyio.move_on_after(0.02):
                    await self._echoed.wait()

    def _more_to_play(self) -> bool:
        return any(isinstance(f, _PLAYED) for f, d in self._queue or () if d is DOWN)

    def unheard_s(self) -> float:
        """With marks: the audio sent after the last echoed mark; else the base's count."""
        if not self._serializer.marks:
            return super().unheard_s()
        rate = self.sample_rate or 1
        return max(super().unheard_s(), (self._written - self._heard) / rate)

    async def on_interruption(
        self, frame: InterruptionFrame, dropped: Sequence[tuple[Frame, Direction]]
    ) -> None:
        """Account for what was heard, then tell the peer to drop what it holds."""
        await super().on_interruption(frame, dropped)
        self._written = self._marked = self._heard = 0
        self._unechoed.clear()
        await self.connection.send(self._serializer.interruption())

    async def push(self, frame: Frame, direction: Direction = DOWN) -> None:
        """Pass ``frame`` on; tell the peer about the events it leaves with."""
        if direction is DOWN:
            event = self._serializer.event(frame)
            if event is not None:
                await self.connection.send([event])
        await super().push(frame, direction)
