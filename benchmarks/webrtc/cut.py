"""How soon a peer stops hearing the bot once the server cuts it off, over WebRTC.

The server (a child process, ``python -m benchmarks.webrtc serve --session cut``)
runs :class:`~benchmarks.webrtc.echo.CutBot` for each session: every 2 s of the
peer's audio it starts a 1.5 s tone and, 0.8 s later, interrupts the pipeline
as a barge-in does, noting both moments. Each aiortc client (this process, so
the two event loops do not share a thread) speaks continuously and notes when
each frame of the bot's audio arrives; a sample is heard at its frame's arrival
plus its offset in the frame, as the bench's listener counts it. Both processes
read the same monotonic clock, so per cycle:

* ``cut -> silence``: the last loud sample heard after the cut, minus the cut.
  What the transport had queued or in flight when the cut came, the Opus
  decoder's tail and the network path. The issue's target: within one chunk
  plus the path.
* ``start -> sound``: the first loud sample heard, minus the moment the tone was
  pushed: the server to client path with the output's pacing, for comparison.

No model runs: the VAD's part of a barge-in is not in these figures.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from benchmarks.webrtc.cpu import _loadavg, _server_stats, _start_server, _voice

__all__ = ["CutResult", "heard_spans", "measure_cuts"]

_NS = 1_000_000_000
_RATE = 48000
_LOUD = 1000  # |sample| at or above this is the tone (it plays at about 9800)
_QUIET_NS = 200_000_000  # a pause this long ends a heard stretch


@dataclass
class CutResult:
    """Per-cycle delays, in ms, over every session."""

    sessions: int
    cut_to_silence_ms: list[float]
    start_to_sound_ms: list[float]
    unmatched_cuts: int
    loadavg_before: list[float]
    loadavg_after: list[float]

    def report(self) -> str:
        """A one-line summary (p50 / p90 / max) and the JSON of the result."""

        def stats(values: list[float]) -> str:
            if not values:
                return "none"
            p50, p90 = np.percentile(values, [50, 90])
            return f"{p50:.1f} / {p90:.1f} / {max(values):.1f} ms (n = {len(values)})"

        summary = (
            f"{self.sessions} session(s): cut -> silence heard p50 / p90 / max "
            f"{stats(self.cut_to_silence_ms)}; tone pushed -> first sound "
            f"{stats(self.start_to_sound_ms)}; {self.unmatched_cuts} cut(s) unmatched; "
            f"load average {self.loadavg_before} -> {self.loadavg_after}"
        )
        return summary + "\n" + json.dumps(asdict(self))


def heard_spans(received: list[tuple[int, bytes]]) -> list[tuple[int, int]]:
    """(first, last) loud sample times of each stretch heard in ``received``.

    ``received`` holds (arrival ns, 48 kHz mono PCM16) frames; a stretch ends at a
    pause of 200 ms or more.
    """
    spans: list[tuple[int, int]] = []
    for arrived, pcm in received:
        loud = np.flatnonzero(np.abs(np.frombuffer(pcm, "<i2").astype(np.int32)) >= _LOUD)
        if not loud.size:
            continue
        first = arrived + int(loud[0]) * _NS // _RATE
        last = arrived + int(loud[-1]) * _NS // _RATE
        if spans and first - spans[-1][1] < _QUIET_NS:
            spans[-1] = (spans[-1][0], last)
        else:
            spans.append((first, last))
    return spans


async def measure_cuts(sessions: int = 1, cuts: int = 20) -> CutResult:
    """Run ``sessions`` cut sessions until each has been cut ``cuts`` times; time each."""
    from processors.transports.webrtc.client import WebRTCClient

    loadavg_before = _loadavg()
    server, url = await _start_server(sessions, ["--session", "cut"])
    clients = [WebRTCClient(url, with_events=False) for _ in range(sessions)]
    try:
        for i, client in enumerate(clients):
            await client.connect()
            client.say(_voice(2.0 * cuts + 30, seed=i), 16000)
        deadline = time.monotonic() + 2.0 * cuts + 60
        while True:
            times = (await _server_stats(url))["cuts"]
            if len(times) == sessions and all(len(t) >= cuts for t in times.values()):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server made too few cuts in time: {times}")
            await asyncio.sleep(0.5)
        await asyncio.sleep(0.5)  # the end of the last cut reaches the clients
        received = [list(client.received) for client in clients]
    finally:
        for client in clients:
            await client.close()
        server.terminate()
        await server.wait()
    cut_ms: list[float] = []
    start_ms: list[float] = []
    unmatched = 0
    for client, frames in zip(clients, received, strict=True):
        cycles: list[Any] = times.get(f"webrtc.{(client.session or '')[:6]}", [])
        spans = heard_spans(frames)
        for tone_ns, cut_ns in cycles[:cuts]:
            span = next((s for s in spans if tone_ns <= s[0] <= cut_ns), None)
            if span is None:
                unmatched += 1
                continue
            cut_ms.append(round((span[1] - cut_ns) / 1e6, 1))
            start_ms.append(round((span[0] - tone_ns) / 1e6, 1))
    return CutResult(sessions, cut_ms, start_ms, unmatched, loadavg_before, _loadavg())
