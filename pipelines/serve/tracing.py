"""OpenTelemetry traces of a ``parley serve`` worker: one trace per conversation.

A session is a root span ``parley.session``; each turn is a child span
``parley.turn`` (from the user's speech start, or the commit or response that
opened it, to its ``response.done``); each stage latency the pipeline reports
is a child of its turn, ``parley.stage.<stage>`` (``turn``, ``stt``, ``llm``,
``tts``), spanning the time the stage measured and ending when it reported it.

Traces are exported only when an OTLP endpoint is configured with the standard
variables (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``;
``OTEL_SERVICE_NAME`` names the service, default ``parley-serve``) and the
packages are installed (``opentelemetry-sdk`` and
``opentelemetry-exporter-otlp-proto-http``, the ``serve`` extra). Without
either, or with ``OTEL_SDK_DISABLED=true``, there is no tracing and no error.
The exporter speaks OTLP over HTTP (protobuf, port 4318 by convention).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["SessionTrace", "Tracing", "tracing_for", "tracing_from_env"]

log = logging.getLogger("parley.serve")
TRACER_NAME = "parley.serve"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


class Tracing:
    """A tracer, and the provider to flush and shut down when the server ends (if owned)."""

    def __init__(self, tracer: Any, provider: Any = None) -> None:
        """``provider`` is shut down by :meth:`shutdown`; None when the caller owns it."""
        self.tracer = tracer
        self._provider = provider

    def session(self, session_id: str, model: str) -> SessionTrace:
        """Start the trace of one conversation."""
        return SessionTrace(self.tracer, session_id, model)

    def shutdown(self) -> None:
        """Export what is pending and stop (only a provider this object made)."""
        if self._provider is not None:
            self._provider.shutdown()


def tracing_for(provider: Any) -> Tracing:
    """Tracing through a caller's ``TracerProvider`` (an in-memory exporter, in tests)."""
    return Tracing(provider.get_tracer(TRACER_NAME))


def tracing_from_env(environ: Mapping[str, str] | None = None) -> Tracing | None:
    """Tracing to the OTLP endpoint the environment names; None when none is set, the
    SDK is disabled, or the packages are missing (logged once, never an error)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if not any(env.get(name, "").strip() for name in ENDPOINT_VARIABLES):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        log.warning(
            "an OTLP endpoint is set but OpenTelemetry is not installed (%s): no tracing; "
            "install the 'serve' extra",
            exc.name,
        )
        return None
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol.strip() != "http/protobuf":
        log.warning(
            "OTLP protocol %r is not supported here: traces go over http/protobuf", protocol
        )
    service = env.get("OTEL_SERVICE_NAME") or "parley-serve"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return Tracing(provider.get_tracer(TRACER_NAME), provider)


class SessionTrace:
    """The spans of one conversation: the session, its turns, their stages."""

    def __init__(self, tracer: Any, session_id: str, model: str) -> None:
        """Open the session's root span (a new trace)."""
        from opentelemetry import trace

        self._trace = trace
        self._tracer = tracer
        self.root = tracer.start_span(
            "parley.session",
            context=trace.set_span_in_context(trace.INVALID_SPAN),
            attributes={"parley.session.id": session_id, "parley.model": model},
        )
        self._root_context = trace.set_span_in_context(self.root)
        self.turn: Any = None
        self._turn_context: Any = None
        self._response_turn: Any = None
        self.turns = 0

    def start_turn(self, now_ns: int, opened_by: str) -> None:
        """Open a turn span (ending the open one, if any)."""
        self.end_turn(now_ns, "superseded")
        self.turns += 1
        self.turn = self._tracer.start_span(
            "parley.turn",
            context=self._root_context,
            start_time=now_ns,
            attributes={"parley.turn.index": self.turns, "parley.turn.opened_by": opened_by},
        )
        self._turn_context = self._trace.set_span_in_context(self.turn)

    def end_turn(self, now_ns: int, outcome: str) -> None:
        """End the open turn span, if any, recording how it ended."""
        if self.turn is not None:
            self.turn.set_attribute("parley.turn.outcome", outcome)
            self.turn.end(end_time=now_ns)
            self.turn = None

    def response_started(self) -> None:
        """A response began: it belongs to the open turn."""
        self._response_turn = self.turn

    def response_done(self, now_ns: int, status: str) -> None:
        """A response ended: so does its turn, unless a newer turn has replaced it."""
        if self.turn is not None and self.turn is self._response_turn:
            self.end_turn(now_ns, status)
        self._response_turn = None

    def error(self, now_ns: int, code: str, message: str) -> None:
        """An error event sent to the client: an event on the turn (or the session)."""
        span = self.turn if self.turn is not None else self.root
        span.add_event(
            "parley.error",
            {"parley.error.code": code, "parley.error.message": message},
            timestamp=now_ns,
        )

    def set_turn_attribute(self, key: str, value: Any) -> None:
        """Add an attribute to the open turn span."""
        if self.turn is not None:
            self.turn.set_attribute(key, value)

    def stage(self, stage: str, start_ns: int, end_ns: int, attributes: dict[str, Any]) -> None:
        """A finished stage span under the latest turn (the session, before any turn)."""
        span = self._tracer.start_span(
            f"parley.stage.{stage}",
            context=self._turn_context or self._root_context,
            start_time=start_ns,
            attributes=attributes,
        )
        span.end(end_time=end_ns)

    def end(self, now_ns: int, close_code: int | None) -> None:
        """End the conversation's trace."""
        self.end_turn(now_ns, "session closed")
        if close_code is not None:
            self.root.set_attribute("parley.close_code", close_code)
        self.root.set_attribute("parley.turns", self.turns)
        self.root.end(end_time=now_ns)
