"""Helpers of the worker tests: plain HTTP GETs, an in-process server with tracing."""

from __future__ import annotations

import http.client
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio

from pipelines.config import PipelineConfig
from pipelines.serve.app import running_server
from pipelines.serve.tracing import Tracing, tracing_for


def _get(port: int, path: str, host: str) -> tuple[int, str, str]:
    connection = http.client.HTTPConnection(host, port, timeout=20)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, str(response.headers), response.read().decode("utf-8")
    finally:
        connection.close()


async def http_get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, str, str]:
    """``GET path`` over a fresh connection: (status, headers text, body)."""
    return await anyio.to_thread.run_sync(_get, port, path, host)


async def get_json(port: int, path: str) -> tuple[int, dict[str, Any]]:
    """``GET path``: its status and JSON body."""
    status, _, body = await http_get(port, path)
    return status, json.loads(body)


def metric_value(text: str, name: str, labels: str = "") -> float:
    """One sample of a Prometheus exposition (``name{labels}``); 0 when absent."""
    key = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@asynccontextmanager
async def serving(
    config: PipelineConfig, tracing: Tracing | None = None, **knobs: Any
) -> AsyncIterator[int]:
    """A server on a free 127.0.0.1 port (yields the port), stopped when the block ends."""
    async with running_server(config, tracing=tracing, **knobs) as url:
        port = urlsplit(url).port
        assert port is not None
        yield port


def memory_tracing() -> tuple[Tracing, Any]:
    """Tracing into an in-memory exporter: (the tracing, the exporter to read spans from)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracing_for(provider), exporter
