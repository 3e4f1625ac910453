"""One bench conversation over WebRTC: the scenario spoken by an aiortc client to a live server.

The pipeline runs in this process behind the talk server's ``POST /offer`` on
127.0.0.1 (a free port). A :class:`~processors.transports.webrtc.client.WebRTCClient`
connects, and a small client-side task runs the scenario's input
(:class:`ClientScenarioInput`): instead of pushing its chunks into a pipeline it
feeds them, 20 ms at a time, to the client's microphone track
(:class:`ScenarioMicrophone`), which sends each one as an Opus packet as soon as
it is due. What the client receives is watched for audible bot audio
(:class:`ReplyListener`): that gives the scenario its view of the bot (when a
reply starts and stops) and the ``bot_*`` events the measurement reads, all on
this process's monotonic clock.

The server's own output events are renamed ``server_*`` and two records tie the
two sides together, so :mod:`benchmarks.latency.measure` can split out the
network path as a ``transport`` stage:

* ``speech_end_heard``: when the server's input heard each turn's last speech
  sample. The microphone notes which RTP timestamp carried which scenario chunk;
  the server's incoming track notes when each timestamp arrived (decoded, after
  the jitter buffer). aiortc counts the receiver's timestamps from the first
  packet, and the microphone's from its first packet too, so they match.
* ``server_bot_first_audible``: the server's first audible sample of each reply,
  as the output transport wrote it to the outgoing track.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import anyio
import numpy as np
from aiohttp import web

from benchmarks.latency.scenario import (
    ScenarioInput,
    ScenarioParams,
    ScenarioTransport,
    audible_threshold,
)
from benchmarks.latency.turntaking import record_context
from framework.frames import EndFrame
from processors.transports.webrtc.audio import WIRE_RATE, OutgoingAudio
from processors.transports.webrtc.client import WebRTCClient
from processors.transports.webrtc.transport import (
    WebRTCOutputTransport,
    WebRTCTransport,
    WebRTCTransportParams,
)

if TYPE_CHECKING:
    from processors.transports.webrtc.peer import PeerLink

__all__ = [
    "ClientScenarioInput",
    "ReplyListener",
    "ScenarioMicrophone",
    "heard_records",
    "merge_records",
    "run_over_webrtc",
]

_NS = 1_000_000_000
_FRAME = WIRE_RATE // 50  # samples in one 20 ms Opus frame
SERVER_EVENTS = (
    "bot_first_audio",
    "bot_audio_stopped",
    "bot_started_speaking",
    "bot_stopped_speaking",
)


def loud_span(pcm: bytes, threshold: int) -> tuple[int, int] | None:
    """Indexes of the first and last samples of mono PCM16 at or above ``threshold``."""
    samples = np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32))
    loud = np.flatnonzero(samples >= threshold)
    return (int(loud[0]), int(loud[-1])) if loud.size else None


class ScenarioMicrophone(OutgoingAudio):
    """The client's microphone: the scenario's 20 ms chunks, each sent once it is due.

    Before the scenario starts and after it ends it sends silence every 20 ms (a
    browser's microphone never stops). :attr:`sent` maps each packet's RTP time
    (48 kHz samples from the first packet) to the scenario time of its first sample.
    """

    def __init__(self) -> None:
        """A paced 48 kHz mono microphone."""
        super().__init__(max_queued_ms=None, paced=True)
        self.sent: dict[int, int] = {}
        self._chunks: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue()
        self._feeding = False

    def feed(self, pcm: bytes, t_ns: int) -> None:
        """Send one 20 ms chunk at 48 kHz whose first sample is at ``t_ns``."""
        if len(pcm) != 2 * _FRAME:
            raise ValueError(f"the microphone takes 20 ms chunks at 48 kHz, got {len(pcm)} bytes")
        self._feeding = True
        self._chunks.put_nowait((pcm, t_ns))

    def finish(self) -> None:
        """The scenario is over: back to silence."""
        self._chunks.put_nowait(None)

    async def _next_frame(self) -> bytes:
        while self._feeding and self.readyState == "live":
            try:
                async with asyncio.timeout(0.2):
                    item = await self._chunks.get()
            except TimeoutError:
                continue  # the scenario is slow to give the next chunk: wait for it
            if item is None:
                self._feeding = False
                break
            pcm, t_ns = item
            self.sent[self._pts] = t_ns
            self._next_ns = None  # silence resumes on its own cadence afterwards
            return pcm
        return await super()._next_frame()


class ClientScenarioInput(ScenarioInput):
    """The scenario's input on the client side: chunks go to the microphone, not downstream."""

    def __init__(
        self, transport: ScenarioTransport, microphone: ScenarioMicrophone, *, name: str
    ) -> None:
        """Play ``transport``'s conversation into ``microphone``."""
        super().__init__(transport, name=name)
        self.microphone = microphone

    async def push_audio(self, pcm: bytes, timestamp_ns: int) -> None:
        """Hand the chunk to the microphone (the task's input rate is 48 kHz)."""
        self.microphone.feed(pcm, timestamp_ns)


class ReplyListener:
    """Finds bot replies in what the client receives; tells the scenario and the event log.

    A reply starts at its first sample louder than ``audible_dbfs`` (played at the
    arrival of its frame, one sample after another) and ends at its last loud
    sample once ``hangover_s`` of quiet has followed.
    """

    def __init__(
        self,
        client: WebRTCClient,
        transport: ScenarioTransport,
        report: Callable[..., None],
        *,
        hangover_s: float = 0.3,
    ) -> None:
        """``report(event, t_ns, **fields)`` records an event of the client side."""
        self.client = client
        self.transport = transport
        self.report = report
        self.hangover_ns = int(hangover_s * _NS)
        self.threshold = audible_threshold(transport.params.audible_dbfs)
        self.replies = 0
        self._seen = 0
        self._start = 0
        self._last_loud: int | None = None

    async def run(self) -> None:
        """Watch the received audio until cancelled."""
        while True:
            await self.client.wait_for(lambda: len(self.client.received) > self._seen, 3600)
            while self._seen < len(self.client.received):
                arrived, pcm = self.client.received[self._seen]
                self._seen += 1
                self._frame(arrived, pcm)

    def _frame(self, arrived: int, pcm: bytes) -> None:
        stretches = self.transport._shared.stretches
        span = loud_span(pcm, self.threshold)
        if span is not None:
            at = arrived + span[0] * _NS // WIRE_RATE
            if self._last_loud is None:
                self.replies += 1
                self._start = at
                stretches.append([at, -1, 1])
                self.report("bot_started_speaking", at)
                self.report("bot_first_audio", at, reply=self.replies)
                self.report("bot_first_audible", at, reply=self.replies)
            self._last_loud = arrived + span[1] * _NS // WIRE_RATE
        elif self._last_loud is not None and arrived - self._last_loud > self.hangover_ns:
            end, self._last_loud = self._last_loud, None
            stretches[-1][1] = end
            played = round((end - self._start) / _NS, 6)
            self.report("bot_audio_stopped", end, played_s=played)


class _AudibleOutput(WebRTCOutputTransport):
    """The server's output, also reporting each reply's first audible sample."""

    threshold = 1
    _audible = 0

    async def write_chunk(self, pcm: bytes, play_ns: int) -> None:
        """Report ``server_bot_first_audible``, then queue the chunk for the wire."""
        replies = len(self.reply_first_audio_ns)
        if replies > self._audible:
            span = loud_span(pcm, self.threshold)
            if span is not None:
                self._audible = replies
                at = play_ns + span[0] * _NS // self.sample_rate
                self.report_event("server_bot_first_audible", at, reply=replies)
        await super().write_chunk(pcm, play_ns)


class _TimedTrack:
    """The peer's incoming track, noting when each frame (by RTP time) was decoded."""

    def __init__(self, track: Any, arrivals: dict[int, int]) -> None:
        self._track = track
        self.arrivals = arrivals

    def __getattr__(self, name: str) -> Any:
        return getattr(self._track, name)

    async def recv(self) -> Any:
        frame = await self._track.recv()
        if frame.pts is not None:
            self.arrivals[int(frame.pts)] = time.monotonic_ns()
        return frame


class _TimedPeer:
    """A server-side :class:`PeerLink` whose incoming track notes arrivals."""

    def __init__(self, link: Any, arrivals: dict[int, int]) -> None:
        self._link = link
        self._arrivals = arrivals

    def __getattr__(self, name: str) -> Any:
        return getattr(self._link, name)

    async def remote_audio(self) -> Any:
        return _TimedTrack(await self._link.remote_audio(), self._arrivals)


class _BenchTransport(WebRTCTransport):
    """The server's transport for a bench session (timed input, audible output)."""

    def __init__(self, served: WebRTCTransport, arrivals: dict[int, int], threshold: int) -> None:
        peer = cast("PeerLink", _TimedPeer(served.peer, arrivals))
        super().__init__(served.params, peer, name=served.name)
        self._threshold = threshold

    def output(self) -> WebRTCOutputTransport:
        if self._output is None:
            out = _AudibleOutput(self.params, self.peer, name=f"{self.name}.output")
            out.threshold = self._threshold
            self._output = out
        return self._output


@dataclass
class _Server:
    """The session the server is running for the client, once it has started."""

    session: Any = None
    started: anyio.Event = field(default_factory=anyio.Event)
    ended: anyio.Event = field(default_factory=anyio.Event)
    arrivals: dict[int, int] = field(default_factory=dict)


def heard_records(
    items: list[dict[str, Any]], sent: dict[int, int], arrivals: dict[int, int]
) -> list[dict[str, Any]]:
    """``speech_end_heard`` records: when the server heard each turn's last speech sample.

    The chunk holding the speech end was due at ``t + 20 ms`` on the client; it
    reached the server's input at ``arrivals[pts]``, so the sample was heard that
    much later than it was said.
    """
    by_time = sorted((t, pts) for pts, t in sent.items())
    frame_ns = 20_000_000
    out = []
    for item in items:
        se = item.get("speech_end_ns")
        if se is None:
            continue
        chunk = next(((t, pts) for t, pts in by_time if t <= se < t + frame_ns), None)
        if chunk is None or chunk[1] not in arrivals:
            continue
        delay = arrivals[chunk[1]] - (chunk[0] + frame_ns)
        out.append(
            {
                "t_ns": se + delay,
                "event": "speech_end_heard",
                "processor": "bench.webrtc",
                "index": item.get("index"),
                "sent_ns": se,
            }
        )
    return out


def merge_records(records: list[dict[str, Any]], client_prefix: str) -> list[dict[str, Any]]:
    """The server's output events renamed ``server_*`` (the client's keep their names)."""
    out = []
    for r in records:
        if r["event"] in SERVER_EVENTS and not str(r.get("processor", "")).startswith(
            client_prefix
        ):
            r = {**r, "event": f"server_{r['event']}"}
        out.append(r)
    return out


async def run_over_webrtc(
    config: Any,
    conversation: Any,
    scenario: ScenarioParams,
    log_: Any,
    *,
    on_item: Callable[[int, Any], None] | None = None,
    on_task: Callable[[Any], None] | None = None,
    ready_timeout_s: float = 300.0,
) -> tuple[list[dict[str, Any]], Any, Any]:
    """Play ``conversation`` over WebRTC into ``config``'s pipeline.

    Returns the records, the client's scenario task and the server's session.

    ``log_`` (an :class:`~processors.recording.events.EventLog`) observes both
    sides; the records returned are merged (see :func:`merge_records`) and hold the
    ``speech_end_heard`` links. ``on_task`` gets the client's scenario task (to
    cancel it on Ctrl-C: the server's pipeline then ends too).
    """
    from pipelines.factory import build_session

    params = WebRTCTransportParams.model_validate(config.stage("transport").params)
    threshold = audible_threshold(scenario.audible_dbfs)
    server = _Server()

    async def run_session(served: WebRTCTransport) -> None:
        transport = _BenchTransport(served, server.arrivals, threshold)
        server.session = build_session(config, transport, observers=[log_])
        server.started.set()
        try:
            await server.session.task.run()
            record_context(log_, server.session)
        finally:
            server.ended.set()

    app = web.Application()
    WebRTCTransport.mount(app, params, run_session)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        client = WebRTCClient(url)
        microphone = client.microphone = ScenarioMicrophone()
        try:
            await client.connect()
            await client.wait_for_event("ready", timeout_s=ready_timeout_s)
            records, client_task = await _play(
                client, microphone, conversation, scenario, log_, (on_item, on_task), server
            )
        finally:
            with contextlib.suppress(Exception):
                await client.close()
    finally:
        await runner.cleanup()
    if server.session is None:
        raise RuntimeError("the WebRTC server never started a session for the client")
    return records, client_task, server.session


async def _play(
    client: WebRTCClient,
    microphone: ScenarioMicrophone,
    conversation: Any,
    scenario: ScenarioParams,
    log_: Any,
    hooks: tuple[Callable[[int, Any], None] | None, Callable[[Any], None] | None],
    server: _Server,
) -> tuple[list[dict[str, Any]], Any]:
    from framework import Pipeline, PipelineTask
    from framework.task import TaskParams

    on_item, on_task = hooks
    transport = ScenarioTransport(conversation, scenario, name="client", on_item=on_item)
    player = ClientScenarioInput(transport, microphone, name="client.input")
    task = PipelineTask(
        Pipeline([player]),
        TaskParams(audio_in_sample_rate=WIRE_RATE, name="bench-client"),
        observers=[log_],
    )
    listener = ReplyListener(
        client, transport, lambda event, t, **f: player.report_event(event, t, **f)
    )
    if on_task is not None:
        on_task(task)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.run)
        await task.run()
        microphone.finish()
        await anyio.sleep(0.2)  # the last packets reach the server
        tg.cancel_scope.cancel()
    if server.session is not None and not server.ended.is_set():
        with contextlib.suppress(Exception):
            await server.session.task.queue_frame(EndFrame(reason="scenario done"))
        with anyio.move_on_after(30):
            await server.ended.wait()
    records = merge_records(list(log_.records), "client")
    items = [r for r in records if r["event"] == "scenario_item"]
    records += heard_records(items, microphone.sent, server.arrivals)
    return sorted(records, key=lambda r: r["t_ns"]), task
