"""``parley talk``: serve a pipeline file live, one conversation per connection.

::

    parley talk cascade-local --transport websocket        # ws://127.0.0.1:8080/ws
    parley talk cascade-local --transport twilio           # Twilio Media Streams at /twilio
    parley run cascade-local --set transport.backend=websocket   # the same

The transport backend (``[transport] backend``, or ``--transport``) decides what
the server offers: every live transport class registered under the stage
``transport`` provides

* ``Params``: the pydantic model of the ``[transport]`` table's settings, and
* ``mount(app, params, run_session)``: a classmethod that adds its routes to the
  server's aiohttp application.

A route's handler calls ``run_session(transport)`` for each connection, where
``transport`` has ``.input()`` and ``.output()`` processors (like the file
transport's). :meth:`LiveServer.run_session` builds the pipeline file's
conversation around it, runs it until it ends and returns; cancelling it ends
the session cleanly (a Cancel frame goes through the pipeline, then its
processors clean up). This module knows no transport by name.

Sessions run side by side, each with its own pipeline (and its own model
instances). A ``[serve]`` table (``realtime-local``) starts its ``parley serve``
once, for all sessions. SIGINT or SIGTERM stops the server: every session is
cancelled and cleaned up before the process exits.
"""

from __future__ import annotations

import itertools
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import BaseModel

from framework import EndReason, PipelineTask
from framework.runtime import tune_gc
from pipelines import registry
from pipelines.config import ConfigError, PipelineConfig, load_pipeline_file
from pipelines.factory import Session, Transport, build_session
from pipelines.launch import ServerStartError, prepared

if TYPE_CHECKING:
    from aiohttp import web

    from framework.observer import Observer

__all__ = ["LiveServer", "RunSession", "is_live", "live_backend", "talk_main"]

log = logging.getLogger("parley")

RunSession = Callable[[Any], Awaitable[None]]
"""``run_session(transport)``: build the configured pipeline around ``transport``, run it
until it ends, return then; cancelling it ends the session cleanly."""

CANCEL_GRACE_S = 10.0
"""How long a cancelled session may take to end by its Cancel frame before it is stopped."""


def live_backend(config: PipelineConfig) -> tuple[type[Any], BaseModel]:
    """The transport class of ``config`` and its validated parameters.

    Raises :class:`ConfigError` if the backend cannot serve live connections (``file``).
    """
    stage = config.stage("transport")
    backend = registry.get("transport", stage.backend)
    cls = backend.load()
    if not callable(getattr(cls, "mount", None)):
        live = ", ".join(b.name for b in registry.backends("transport") if _mounts(b))
        raise ConfigError(
            f"{config.source}: transport backend {stage.backend!r} cannot serve live "
            f"connections; choose a live one with --transport ({live or 'none installed'})"
        )
    params = backend.params_model().model_validate({**stage.params, **backend.preset})
    return cls, params


def _mounts(backend: registry.Backend) -> bool:
    try:
        return callable(getattr(backend.load(), "mount", None))
    except registry.BackendError:
        return False


def is_live(config: PipelineConfig) -> bool:
    """True if ``config``'s transport backend is served live (not a file)."""
    backend = registry.get("transport", config.stage("transport").backend)
    return _mounts(backend)


@dataclass
class _Running:
    """A session in progress: its conversation and the scope that cancels it."""

    session: Session[Transport]
    scope: anyio.CancelScope
    ended: anyio.Event = field(default_factory=anyio.Event)


class LiveServer:
    """Serves one pipeline file over its live transport; one session per connection.

    ``observers`` makes the observers of each new session (an event log, say);
    ``on_session`` is told about each session once it is built.
    """

    def __init__(
        self,
        config: PipelineConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        observers: Callable[[], list[Observer]] | None = None,
        on_session: Callable[[Session[Transport]], None] | None = None,
    ) -> None:
        """Check the transport (a :class:`ConfigError` if it is not live); bind nothing yet."""
        self.config = config
        self.host = host
        self.port = port
        self.transport_class, self.transport_params = live_backend(config)
        self._observers = observers
        self._on_session = on_session
        self._running: dict[int, _Running] = {}
        self._ids = itertools.count(1)
        self._ready: PipelineConfig | None = None
        self.urls: list[str] = []

    @property
    def session_count(self) -> int:
        """Sessions in progress."""
        return len(self._running)

    @property
    def sessions(self) -> list[Session[Transport]]:
        """The conversations in progress."""
        return [r.session for r in self._running.values()]

    async def run_session(self, transport: Transport) -> None:
        """Build the conversation around ``transport`` and run it until it ends.

        Cancelling this coroutine cancels the pipeline task (its processors get a
        Cancel frame and clean up), waits for it to finish, then re-raises.
        """
        config = self._ready or self.config
        observers = self._observers() if self._observers else []
        try:
            session = build_session(config, transport, observers=observers)
        except Exception:
            log.exception("%s: the session's pipeline could not be built", config.pipeline.name)
            return
        key = next(self._ids)
        running = _Running(session, anyio.CancelScope())
        self._running[key] = running
        name = config.pipeline.name
        log.info("%s: session %d started (%d running)", name, key, len(self._running))
        if self._on_session is not None:
            self._on_session(session)
        try:
            with running.scope:
                reason = await _run_task(session.task)
                log.info("%s: session %d %s", name, key, reason.value)
        finally:
            del self._running[key]
            running.ended.set()
            log.info("%s: session %d closed (%d running)", name, key, len(self._running))

    def application(self) -> web.Application:
        """The aiohttp application with the transport's routes."""
        from aiohttp import web

        app = web.Application()
        self.transport_class.mount(app, self.transport_params, self.run_session)
        return app

    @asynccontextmanager
    async def running(self) -> AsyncIterator[list[str]]:
        """Start listening (with the pipeline's ``[serve]`` resources); yields the URLs.

        On exit every session is cancelled and has ended before the socket closes.
        """
        from aiohttp import web

        async with prepared(self.config) as ready:
            self._ready = ready
            runner = web.AppRunner(self.application(), handle_signals=False, shutdown_timeout=5)
            await runner.setup()
            try:
                site = web.TCPSite(runner, self.host, self.port)
                await site.start()
                self.urls = _urls(runner, self.host)
                yield self.urls
            finally:
                with anyio.CancelScope(shield=True):
                    await self.stop_sessions()
                    await runner.cleanup()
                self._ready = None

    async def stop_sessions(self, timeout_s: float = CANCEL_GRACE_S + 5) -> None:
        """Cancel every session and wait until they have ended."""
        running = list(self._running.values())
        for item in running:
            item.scope.cancel()
        with anyio.move_on_after(timeout_s):
            for item in running:
                await item.ended.wait()

    async def serve_until_signalled(self, ready: Callable[[list[str]], None] | None = None) -> None:
        """Serve until SIGINT or SIGTERM; ``ready`` gets the URLs once listening."""
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with self.running() as urls:
                if ready is not None:
                    ready(urls)
                async for signum in signals:
                    log.info("%s received: stopping", signal.Signals(signum).name)
                    break


async def _run_task(task: PipelineTask) -> EndReason:
    """Run ``task``; on cancellation, cancel it by a Cancel frame and let it finish."""
    done = anyio.Event()
    outcome: list[EndReason] = []
    inner = anyio.CancelScope(shield=True)

    async def run() -> None:
        with inner:
            try:
                if not task.finished:
                    outcome.append(await task.run())
            finally:
                done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        try:
            await done.wait()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await task.cancel("the connection closed")
                with anyio.move_on_after(CANCEL_GRACE_S):
                    await done.wait()
                if not done.is_set():
                    log.warning("%s: did not end on its Cancel frame; stopping it", task.name)
                    inner.cancel()
            raise
    return outcome[0] if outcome else EndReason.CANCELLED


def _urls(runner: Any, host: str) -> list[str]:
    """``http://host:port/path`` for each GET route of the app that is not a file
    (a page's script or style sheet), on the bound port."""
    ports = [address[1] for address in runner.addresses if isinstance(address, tuple)]
    port = ports[0] if ports else 0
    display = f"[{host}]" if ":" in host else host
    paths: list[str] = []
    for route in runner.app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        is_file = "." in path.rsplit("/", 1)[-1]
        if route.method == "GET" and path and not is_file and path not in paths:
            paths.append(path)
    return [f"http://{display}:{port}{path}" for path in paths or ["/"]]


def talk_main(
    pipeline_path: Path,
    *,
    transport: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    overrides: Iterable[str] = (),
) -> int:
    """Load the file, serve it until a signal; returns a process exit code."""
    sets = list(overrides)
    if transport:
        sets.append(f"transport.backend={transport}")
    config = load_pipeline_file(pipeline_path, sets)
    server = LiveServer(config, host=host, port=port)
    tune_gc()

    def announce(urls: list[str]) -> None:
        backend = config.stage("transport").backend
        print(f"parley talk: {config.pipeline.name} over {backend}, listening on:", flush=True)
        for url in urls:
            print(f"  {url}", flush=True)
        print("Ctrl-C stops the server.", flush=True)

    try:
        anyio.run(server.serve_until_signalled, announce)
    except ServerStartError as exc:
        print(f"parley talk: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"parley talk: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    return 0
