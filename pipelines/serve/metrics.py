"""Prometheus metrics of a ``parley serve`` worker, served at ``GET /metrics``.

Needs ``prometheus-client`` (the ``serve`` extra; ``scripts/setup.sh`` installs
it). Without it the server runs as before and ``/metrics`` answers 501 naming
the missing package.

Every figure comes from what the sessions already report, nothing is timed twice:

========================================  =============================================
``parley_serve_sessions``                 sessions being served now (gauge)
``parley_serve_max_sessions``             the worker's ``--max-sessions`` (gauge)
``parley_serve_draining``                 1 while the worker drains (gauge)
``parley_serve_sessions_started_total``   sessions served since start
``parley_serve_refused_total{reason}``    connections refused: ``full``, ``draining``
``parley_serve_turns_total``              user turns committed (``input_audio_buffer.committed``)
``parley_serve_responses_total{status}``  ``response.done`` by status (completed, cancelled...)
``parley_serve_errors_total{code}``       ``error`` events sent to clients, by code
``parley_serve_voice_to_voice_seconds``   from the arrival of the audio that holds the end of
                                          the user's speech to the first audio delta sent
``parley_serve_stage_seconds{stage}``     the stages' own latency metrics: ``turn``
                                          (end-of-turn decision: speech end to turn end, see
                                          :func:`stage_seconds`), ``stt`` (final transcript),
                                          ``llm`` (time to first token), ``tts`` (time to
                                          first audio)
========================================  =============================================
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["LATENCY_BUCKETS_S", "STAGE_METRICS", "ServeMetrics", "make_metrics", "stage_seconds"]

log = logging.getLogger("parley.serve")

LATENCY_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0)
STAGE_METRICS = {
    "end_of_turn_s": "turn",
    "stt_final_s": "stt",
    "ttft": "llm",
    "ttfa": "tts",
}
"""The stages' latency samples (``MetricSample.name``) and the stage each measures."""


def stage_seconds(name: str, value: float, extra: dict[str, Any]) -> tuple[str, float] | None:
    """(stage, seconds) of a stage's latency sample; None for other samples.

    The end-of-turn decision is read from ``audio_wait_s`` (the audio heard after
    the speech's end before the turn ended), which counts on the session's audio
    clock alone: a server session's audio clock starts when the session does,
    not when the client starts streaming, so ``end_of_turn_s`` (the frame's
    wall-clock time minus the speech end on the audio clock) is off by that gap.
    """
    stage = STAGE_METRICS.get(name)
    if stage is None:
        return None
    if name == "end_of_turn_s" and "audio_wait_s" in extra:
        value = float(extra["audio_wait_s"])
    return (stage, value) if value >= 0 else None


class ServeMetrics:
    """The worker's metrics, in a registry of their own (several servers may share a process)."""

    def __init__(
        self,
        active: Callable[[], float],
        limit: Callable[[], float],
        draining: Callable[[], float],
    ) -> None:
        """Gauges read ``active()``, ``limit()`` and ``draining()`` when scraped."""
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        reg = self.registry
        Gauge("parley_serve_sessions", "Sessions being served", registry=reg).set_function(active)
        Gauge(
            "parley_serve_max_sessions", "Sessions served at once at most", registry=reg
        ).set_function(limit)
        Gauge("parley_serve_draining", "1 while draining", registry=reg).set_function(draining)
        self.sessions = Counter("parley_serve_sessions_started", "Sessions served", registry=reg)
        self.refused = Counter(
            "parley_serve_refused", "Connections refused", ["reason"], registry=reg
        )
        self.turns = Counter("parley_serve_turns", "User turns committed", registry=reg)
        self.responses = Counter(
            "parley_serve_responses", "Responses done, by status", ["status"], registry=reg
        )
        self.errors = Counter(
            "parley_serve_errors", "Error events sent to clients, by code", ["code"], registry=reg
        )
        self.voice_to_voice = Histogram(
            "parley_serve_voice_to_voice_seconds",
            "End of the user's speech (its audio's arrival) to the first reply audio sent",
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self.stage = Histogram(
            "parley_serve_stage_seconds",
            "Latency each stage reports: turn decision, STT final, LLM first token, "
            "TTS first audio",
            ["stage"],
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def observe_stage(self, stage: str, seconds: float) -> None:
        """A stage's latency (see :func:`stage_seconds`)."""
        self.stage.labels(stage=stage).observe(seconds)


def make_metrics(load: Any) -> ServeMetrics | None:
    """Metrics over ``load`` (a :class:`~pipelines.serve.health.WorkerLoad`), or None
    when ``prometheus-client`` is not installed."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        log.info("prometheus-client is not installed: /metrics is off")
        return None
    return ServeMetrics(
        active=lambda: float(load.active),
        limit=lambda: float(load.limit),
        draining=lambda: float(load.draining),
    )
