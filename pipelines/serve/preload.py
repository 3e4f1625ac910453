"""Load a server's models before it accepts connections.

The models of ``parley serve`` belong to the process and stay loaded between
sessions (:mod:`processors.shared_models`), but without this the first
connection would load them: a Realtime client streams audio from the moment
its socket opens, so that session would hear its first seconds of speech only
once the loading is over, all at once. :func:`preload_models` starts one
session's pipeline with no client behind it and ends it once every stage has
started, leaving the models in the process's cache for the sessions to come,
then loads the rest of the language model's pool of contexts.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio

from pipelines.config import PipelineConfig
from pipelines.serve.options import ServerOptions

__all__ = ["preload_models"]

log = logging.getLogger("parley.serve")


class _NoClient:
    """A connection with nobody on it: sends go nowhere, and it has nothing to read."""

    async def send(self, message: str) -> None:
        """Drop a server event."""

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Nothing to close."""

    def __aiter__(self) -> _NoClient:
        return self

    async def __anext__(self) -> Any:
        raise StopAsyncIteration


async def preload_models(
    config: PipelineConfig, options: ServerOptions, start_gate: anyio.Semaphore
) -> bool:
    """Start and end one pipeline of ``config`` so that its models are loaded.

    Call it while the process keeps its model cache (``MODELS.keep()``). Returns
    False (and logs why) when the pipeline did not start: the sessions then report
    the failure to their clients, as they would without a preload.
    """
    from pipelines.serve.session import RealtimeSession

    began = time.perf_counter()
    session = RealtimeSession(
        _NoClient(),
        config,
        options.model_copy(update={"eager_start": True}),
        start_gate=start_gate,
    )
    await session.run()
    if not session.state.ready.is_set():
        failures = session.state.start_errors + [e.message for e in session.task.errors]
        log.warning(
            "parley serve: the models did not load before serving (%s); each session "
            "will try again",
            "; ".join(failures) or "no error reported",
        )
        return False
    # A server's sessions overlap: the language model's other contexts are loaded now
    # rather than in the first reply that finds the first one busy.
    from processors.llm.llama_cpp import fill_llama_pools

    contexts = await anyio.to_thread.run_sync(fill_llama_pools)
    log.info(
        "parley serve: models loaded in %.1f s (%d more llama.cpp contexts)",
        time.perf_counter() - began,
        contexts,
    )
    return True
