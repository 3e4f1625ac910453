"""Helpers of the worker tests: plain HTTP GETs, an in-process server with tracing."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from pipelines.config import PipelineConfig
from pipelines.serve.app import serve
from pipelines.serve.options import ServerOptions
from pipelines.serve.tracing import Tracing


async def http_get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, str, str]:
    """``GET path`` over a fresh connection: (status, headers text, body)."""
    stream = await anyio.connect_tcp(host, port)
    async with stream:
        await stream.send(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        with anyio.fail_after(20):
            try:
                while True:
                    data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode("latin-1"), body.decode("utf-8")


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
    bound: list[int] = []
    ready = anyio.Event()

    def on_ready(host: str, port: int) -> None:
        bound.append(port)
        ready.set()

    run = functools.partial(
        serve,
        config,
        "127.0.0.1",
        0,
        None,
        ServerOptions(**knobs),
        on_ready=on_ready,
        tracing=tracing,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with anyio.fail_after(60):
            await ready.wait()
        try:
            yield bound[0]
        finally:
            tg.cancel_scope.cancel()
