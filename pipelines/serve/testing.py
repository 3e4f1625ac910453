"""Start a local Realtime server in-process, for tests and examples.

::

    async with running_server("cascade-local", close_after_deltas=5) as url:
        client = AsyncOpenAI(api_key="local", websocket_base_url=url)
        async with client.realtime.connect(model="gpt-realtime") as conn:
            ...

The server binds a free port on 127.0.0.1 and stops when the block ends: its
connections are closed (1001) and every session's pipeline is cancelled, so
no task, thread or socket is left behind.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from pipelines.config import PipelineConfig
from pipelines.serve.app import serve, serve_pipeline_file
from pipelines.serve.options import ServerOptions
from pipelines.shipped import resolve_pipeline

__all__ = ["resolve_pipeline", "running_server"]


@asynccontextmanager
async def running_server(
    pipeline: str | Path | PipelineConfig = "cascade-local",
    *,
    overrides: Sequence[str] = (),
    token: str | None = None,
    **knobs: Any,
) -> AsyncIterator[str]:
    """Run a server on a free local port; yields its base URL (``ws://127.0.0.1:PORT/v1``).

    ``knobs`` are :class:`~pipelines.serve.options.ServerOptions` fields
    (``max_duration_s``, ``close_after_deltas``, ``delta_delay_s``...).
    """
    if isinstance(pipeline, PipelineConfig):
        config = pipeline
    else:
        config = serve_pipeline_file(resolve_pipeline(pipeline), overrides)
    options = ServerOptions(**knobs)
    bound: list[int] = []
    ready = anyio.Event()

    def on_ready(host: str, port: int) -> None:
        bound.append(port)
        ready.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(
            functools.partial(serve, config, "127.0.0.1", 0, token, options, on_ready=on_ready)
        )
        with anyio.fail_after(180):  # the server loads its models before it listens
            await ready.wait()
        try:
            yield f"ws://127.0.0.1:{bound[0]}/v1"
        finally:
            tg.cancel_scope.cancel()
