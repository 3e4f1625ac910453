"""Where a level's turns spent their time: the server's stage histograms, read around it.

``parley serve`` exports each stage's own latency (end-of-turn decision, STT final,
LLM first token, TTS first audio) and the voice-to-voice time as Prometheus
histograms at ``/metrics`` (:mod:`pipelines.serve.metrics`). Reading their sums and
counts before and after a level gives the mean of each over that level's turns,
as the server measured them; a server without ``prometheus-client`` gives none.
"""

from __future__ import annotations

import re

from benchmarks.soak.client import http_get

__all__ = ["StageTotals", "parse_stage_totals", "read_stage_totals", "stage_means"]

StageTotals = dict[str, tuple[float, float]]
"""Histogram name (``voice_to_voice`` or the stage) -> (sum of seconds, count)."""

_SAMPLE = re.compile(
    r'^parley_serve_(?:stage_seconds_(sum|count)\{stage="([^"]+)"\}'
    r"|voice_to_voice_seconds_(sum|count))\s+(\S+)$"
)


def parse_stage_totals(text: str) -> StageTotals:
    """The stage and voice-to-voice histograms' sums and counts in a ``/metrics`` text."""
    found: dict[str, list[float]] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if match is None:
            continue
        part = match.group(1) or match.group(3)
        name = match.group(2) or "voice_to_voice"
        slot = found.setdefault(name, [0.0, 0.0])
        slot[0 if part == "sum" else 1] = float(match.group(4))
    return {name: (total, count) for name, (total, count) in found.items()}


def stage_means(before: StageTotals, after: StageTotals) -> dict[str, float]:
    """Each histogram's mean (seconds) over the samples added between two readings."""
    means: dict[str, float] = {}
    for name, (total, count) in after.items():
        total0, count0 = before.get(name, (0.0, 0.0))
        if count > count0:
            means[name] = (total - total0) / (count - count0)
    return means


async def read_stage_totals(host: str, port: int) -> StageTotals:
    """GET ``/metrics`` from the server; empty when it does not serve them (501)."""
    head, body = await http_get(host, port, "/metrics")
    if not head.startswith(b"HTTP/1.1 200"):
        return {}
    return parse_stage_totals(body.decode("utf-8", "replace"))
