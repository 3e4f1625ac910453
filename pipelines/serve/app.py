"""``parley serve``: the OpenAI-Realtime-compatible WebSocket server (GA protocol).

Any Realtime client, the official ``openai`` SDK included, talks to a Parley
cascade pipeline through it::

    parley serve cascade-local --port 8765
    AsyncOpenAI(api_key="local", websocket_base_url="ws://127.0.0.1:8765/v1")
    client.realtime.connect(model="gpt-realtime")     # -> ws://.../v1/realtime?model=...

The endpoint is any path ending in ``/realtime`` (the SDK appends it to the
base URL), normally ``/v1/realtime``. ``?model=`` names the session's model (it
is only reported: the pipeline file decides what runs); ``intent`` and
``call_id`` are accepted and ignored. With a token, the handshake needs
``Authorization: Bearer <token>`` (or the browser subprotocol
``openai-insecure-api-key.<token>``), else HTTP 401. A beta-shaped connection
(``OpenAI-Beta: realtime=v1``) gets the error ``beta_api_shape_disabled`` and
close code 4000, as OpenAI answers since the beta's shutdown. The server binds
127.0.0.1 by default.

Each connection runs its own pipeline, but the models are the process's
(:mod:`processors.shared_models`, loaded before the server listens and kept
loaded while it runs: :mod:`pipelines.serve.preload`): the
language model serves one generation at a time, Whisper and Piper run
concurrently, and Silero VAD instances are reused by later sessions. At most
``max_sessions`` connections are served at once: one more is refused before the
upgrade with HTTP 503 (and ``Retry-After: 5``); a handshake that raced past that
check gets an ``error`` event (``server_error``, code ``session_limit_reached``)
and close code 1013 (try again later). Every log record of the process is
redacted (:mod:`pipelines.serve.redact`).

For a load balancer (``docs/deploy.md``): ``/health`` (liveness) and ``/ready``
(readiness, 503 when full or draining) answer with the load as JSON
(:mod:`pipelines.serve.health`); SIGTERM drains (:mod:`pipelines.serve.drain`);
``/metrics`` serves Prometheus metrics (:mod:`pipelines.serve.metrics`) and,
with an OTLP endpoint configured, each conversation is a trace
(:mod:`pipelines.serve.tracing`, fed by :mod:`pipelines.serve.telemetry`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gc
import hmac
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import anyio
from websockets.typing import Subprotocol

from framework.runtime import tune_gc
from pipelines.config import PipelineConfig, load_pipeline_file
from pipelines.serve.drain import DRAIN_CLOSE_CODE, DRAIN_ERROR_CODE, Drain
from pipelines.serve.health import WorkerLoad
from pipelines.serve.memory import fix_mmap_threshold, trim_free_memory
from pipelines.serve.metrics import ServeMetrics, make_metrics
from pipelines.serve.options import ServerOptions, parse_options
from pipelines.serve.preload import preload_models
from pipelines.serve.protocol import error_event
from pipelines.serve.redact import redacting
from pipelines.serve.telemetry import FrameWatch, ObservedConnection, SessionTelemetry
from pipelines.serve.tracing import Tracing, tracing_from_env
from pipelines.shipped import resolve_pipeline
from processors.shared_models import MODELS

if TYPE_CHECKING:
    from pipelines.serve.session import Connection

__all__ = [
    "TOKEN_ENV",
    "ServeError",
    "SessionCount",
    "running_server",
    "serve",
    "serve_main",
    "serve_pipeline_file",
]

log = logging.getLogger("parley.serve")
SHUTDOWN_TIMEOUT_S = 15.0
TOKEN_ENV = "PARLEY_SERVE_TOKEN"


class ServeError(Exception):
    """The server cannot run as asked (a bad option, a token file, a port in use)."""


def _path_and_query(path: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(path)
    return parts.path, parse_qs(parts.query)


def _authorized(headers: Any, token: str) -> bool:
    offered: list[str] = []
    auth = headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        offered.append(auth[7:].strip())
    for value in headers.get_all("Sec-WebSocket-Protocol"):
        for proto in value.split(","):
            proto = proto.strip()
            if proto.startswith("openai-insecure-api-key."):
                offered.append(proto.split(".", 1)[1])
    return any(hmac.compare_digest(o.encode(), token.encode()) for o in offered)


SessionCount = WorkerLoad
"""The former name of :class:`~pipelines.serve.health.WorkerLoad`."""


def _process_request(
    token: str | None, sessions: WorkerLoad, metrics: ServeMetrics | None = None
) -> Callable[[Any, Any], Any]:
    def process_request(connection: Any, request: Any) -> Any:
        path, _ = _path_and_query(request.path)
        if path == "/health":
            return connection.respond(HTTPStatus.OK, sessions.health() + "\n")
        if path == "/ready":
            status, body = sessions.readiness()
            return connection.respond(status, body + "\n")
        if path == "/metrics":
            return _metrics_response(connection, metrics)
        if not path.rstrip("/").endswith("/realtime"):
            return connection.respond(
                HTTPStatus.NOT_FOUND,
                f"No endpoint at {path}: the Realtime WebSocket endpoint is /v1/realtime.\n",
            )
        if token is not None and not _authorized(request.headers, token):
            return connection.respond(
                HTTPStatus.UNAUTHORIZED,
                "Missing or wrong API key: send 'Authorization: Bearer <token>'.\n",
            )
        if not sessions.accepting:
            if metrics is not None:
                metrics.refused.labels(reason="draining" if sessions.draining else "full").inc()
            response = connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, sessions.refusal() + "\n")
            response.headers["Retry-After"] = "5"
            return response
        return None

    return process_request


def _metrics_response(connection: Any, metrics: ServeMetrics | None) -> Any:
    if metrics is None:
        return connection.respond(
            HTTPStatus.NOT_IMPLEMENTED,
            "Metrics are off: install prometheus-client (the 'serve' extra).\n",
        )
    body, content_type = metrics.render()
    response = connection.respond(HTTPStatus.OK, body.decode("utf-8"))
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = content_type
    return response


def _select_subprotocol(connection: Any, subprotocols: Sequence[Subprotocol]) -> Subprotocol | None:
    return Subprotocol("realtime") if "realtime" in subprotocols else None


def prepare(config: PipelineConfig, options: ServerOptions) -> tuple[PipelineConfig, ServerOptions]:
    """Settle the default instructions; the language model warms up on them.

    The default is ``options.instructions``, else the file's ``[llm] system_prompt``,
    else a short voice-assistant prompt. When the file sets no ``system_prompt`` and
    the backend has one, it gets the default, so its start-up warm-up caches the
    prompt most sessions will use and the first reply is quicker.
    """
    from pipelines import registry
    from pipelines.serve.session_config import DEFAULT_INSTRUCTIONS

    llm = config.stages.get("llm")
    instructions = options.instructions
    if instructions is None:
        instructions = str((llm.params.get("system_prompt") if llm else "") or DEFAULT_INSTRUCTIONS)
    options = options.model_copy(update={"instructions": instructions})
    if llm is not None and "system_prompt" not in llm.params:
        try:
            fields = registry.get("llm", llm.backend).params_model().model_fields
        except registry.BackendError:
            fields = {}
        if "system_prompt" in fields:
            config = config.model_copy(deep=True)
            config.stages["llm"].params["system_prompt"] = instructions
    return config, options


async def _refuse_beta(connection: Any) -> None:
    """Beta-shaped connections are refused as OpenAI does since the beta's shutdown."""
    message = error_event(
        "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.",
        code="beta_api_shape_disabled",
    )
    await connection.send(json.dumps(message))
    await connection.close(4000, "beta API shape disabled")


async def _refuse_full(connection: Any, sessions: WorkerLoad) -> None:
    """A connection upgraded while the last slot was taken: an error event, then close 1013;
    or, once the server drains, the drain's error and close code 1012."""
    if sessions.draining:
        code, close_code, reason = DRAIN_ERROR_CODE, DRAIN_CLOSE_CODE, "server shutting down"
    else:
        code, close_code, reason = "session_limit_reached", 1013, "session limit reached"
    message = error_event(sessions.refusal(), type_="server_error", code=code)
    await connection.send(json.dumps(message))
    await connection.close(close_code, reason)


async def serve(
    config: PipelineConfig,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    options: ServerOptions | None = None,
    *,
    on_ready: Callable[[str, int], None] | None = None,
    drain_signals: Sequence[signal.Signals] = (),
    tracing: Tracing | None = None,
    wrap_connection: Callable[[Connection], Connection] | None = None,
) -> None:
    """Serve ``config``'s cascade until cancelled, or until drained after one of
    ``drain_signals`` (the CLI's SIGTERM). ``on_ready(host, port)`` gets the bound port.

    ``tracing`` exports each conversation's trace; by default the environment's
    OTLP endpoint, if any, receives them (:func:`~pipelines.serve.tracing.tracing_from_env`).
    ``wrap_connection`` is the one testing hook: each session talks to the client
    through what it returns (the tests inject faults with it; the CLI never sets it).
    """
    from websockets.asyncio.server import serve as ws_serve

    from pipelines.serve.session import RealtimeSession

    config, opts = prepare(config, options or ServerOptions())
    fix_mmap_threshold()
    start_gate = anyio.Semaphore(1)
    sessions = WorkerLoad(opts.max_sessions)
    drain = Drain(sessions, opts.drain_timeout_s)
    metrics = make_metrics(sessions)
    owned_tracing = tracing is None
    if tracing is None:
        tracing = tracing_from_env()

    async def handler(connection: Any) -> None:
        _, query = _path_and_query(connection.request.path)
        if "realtime=v1" in connection.request.headers.get("OpenAI-Beta", ""):
            await _refuse_beta(connection)
            return
        if not sessions.accepting:  # handshakes under way when the last slot was taken
            await _refuse_full(connection, sessions)
            return
        model = (query.get("model") or ["gpt-realtime"])[0]
        sessions.active += 1
        try:
            await run_session(connection, model)
        finally:
            sessions.active -= 1
            drain.notify()
            with anyio.CancelScope(shield=True):  # what the session freed goes back
                if sessions.active == 0:
                    gc.collect()  # cancelled tasks' tracebacks keep frames in cycles
                await anyio.to_thread.run_sync(trim_free_memory)

    async def run_session(connection: Any, model: str) -> None:
        # A function of its own, so that the session is unreferenced once it returns.
        telemetry = None
        if metrics is not None or tracing is not None:
            telemetry = SessionTelemetry(metrics, None)
            connection = ObservedConnection(connection, telemetry)
            if metrics is not None:
                metrics.sessions.inc()
        if wrap_connection is not None:
            connection = wrap_connection(connection)
        try:
            session = RealtimeSession(connection, config, opts, model=model, start_gate=start_gate)
        except Exception as exc:
            log.exception("cannot build the session pipeline")
            await connection.close(1011, f"cannot start the pipeline: {exc}"[:120])
            return
        if telemetry is not None:
            if tracing is not None:
                telemetry.trace = tracing.session(session.state.config.id, model)
            session.task.add_observer(FrameWatch(telemetry))
        drain.sessions.add(session)
        try:
            await session.run()
        finally:
            drain.sessions.discard(session)
            if telemetry is not None:
                telemetry.finish(getattr(connection, "close_code", None))

    check_port(host, port)  # before the models load: a port in use fails at once
    with redacting([token]), MODELS.keep():
        async with contextlib.AsyncExitStack() as stack:
            if owned_tracing and tracing is not None:
                stack.callback(tracing.shutdown)
            if opts.eager_start:  # else the first session to need them loads them
                await preload_models(config, opts, start_gate)
            try:
                server = await stack.enter_async_context(
                    ws_serve(
                        handler,
                        host,
                        port,
                        process_request=_process_request(token, sessions, metrics),
                        select_subprotocol=_select_subprotocol,
                        max_size=opts.hard_max_message_bytes,
                        compression=None,
                        ping_interval=20,
                        ping_timeout=60,
                        close_timeout=5,
                    )
                )
            except OSError as exc:
                raise ServeError(_listen_error(host, port, exc)) from None
            bound = next(iter(server.sockets)).getsockname()
            log.info(
                "parley serve: ws://%s:%d/v1/realtime (%s)",
                bound[0],
                bound[1],
                config.pipeline.name,
            )
            try:
                if on_ready is not None:
                    on_ready(bound[0], bound[1])
                async with anyio.create_task_group() as tg:
                    if drain_signals:
                        tg.start_soon(drain.watch_signals, drain_signals)
                    await drain.run()
                    tg.cancel_scope.cancel()
            finally:
                # Cancellation lands here: close every connection (1001) and wait, shielded,
                # for the sessions to wind down, so no task outlives the server.
                with anyio.move_on_after(SHUTDOWN_TIMEOUT_S, shield=True):
                    server.close()
                    await server.wait_closed()


@asynccontextmanager
async def running_server(
    pipeline: str | Path | PipelineConfig = "cascade-local",
    *,
    overrides: Sequence[str] = (),
    token: str | None = None,
    tracing: Tracing | None = None,
    wrap_connection: Callable[[Connection], Connection] | None = None,
    **options: Any,
) -> AsyncIterator[str]:
    """Run a server in-process on a free port of 127.0.0.1, for tests and benchmarks.

    Yields its base URL (``ws://127.0.0.1:PORT/v1``); ``options`` are
    :class:`~pipelines.serve.options.ServerOptions` fields (``max_sessions``...).
    When the block ends the server stops: its connections are closed (1001) and
    every session's pipeline is cancelled, so no task, thread or socket is left.
    """
    if isinstance(pipeline, PipelineConfig):
        config = pipeline
    else:
        config = serve_pipeline_file(resolve_pipeline(pipeline), overrides)
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
        token,
        ServerOptions(**options),
        on_ready=on_ready,
        tracing=tracing,
        wrap_connection=wrap_connection,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with anyio.fail_after(180):  # the server loads its models before it listens
            await ready.wait()
        try:
            yield f"ws://127.0.0.1:{bound[0]}/v1"
        finally:
            tg.cancel_scope.cancel()


def check_port(host: str, port: int) -> None:
    """Raise :class:`ServeError` when ``host:port`` cannot be listened on.

    It binds (and closes) a socket for each address ``host`` names, with the options
    the server's own sockets get; port 0 (any free port) always works.
    """
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise ServeError(_listen_error(host, port, exc)) from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise ServeError(_listen_error(host, port, exc)) from None


def _listen_error(host: str, port: int, exc: OSError) -> str:
    reason = {
        errno.EADDRINUSE: "the port is in use (another server runs there?); choose another --port",
        errno.EACCES: "permission denied (ports below 1024 need privileges)",
        errno.EADDRNOTAVAIL: "this machine has no such address; check --host",
    }.get(exc.errno or 0, str(exc.strerror or exc))
    return f"cannot listen on {host}:{port}: {reason}"


def serve_pipeline_file(path: str | Path, overrides: Sequence[str] = ()) -> PipelineConfig:
    """Load and check a pipeline file for serving (a cascade: vad, stt, llm, tts)."""
    from pipelines.config import ConfigError

    config = load_pipeline_file(path, overrides)
    if config.pipeline.architecture != "cascade":
        raise ConfigError(
            f"{config.source}: parley serve needs a cascade pipeline (vad, stt, llm, tts); "
            f"this one is {config.pipeline.architecture!r}"
        )
    return config


def read_token(token: str | None, token_file: str | Path | None) -> str | None:
    """The bearer token: ``--token``, else ``--token-file`` (its first line), else
    ``$PARLEY_SERVE_TOKEN``; None when none is given (no token required)."""
    if token is not None and token_file is not None:
        raise ServeError("give the token with --token or --token-file, not both")
    if token_file is not None:
        try:
            lines = Path(token_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ServeError(f"cannot read the token file {str(token_file)!r}: {exc}") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise ServeError(f"the token file {str(token_file)!r} is empty")
        return token
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    if token is not None and not token.strip():
        raise ServeError("the token is empty")
    return token.strip() if token is not None else None


def serve_main(
    pipeline: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    token_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    option_items: Sequence[str] = (),
    max_sessions: int | None = None,
    drain_timeout_s: float | None = None,
) -> int:
    """Blocking entry point for the CLI: ``parley serve PIPELINE [--host] [--port] ...``.

    A mistake (an unknown or invalid ``--option``, an unreadable token file, a port
    in use) prints one line naming it and returns 2; Ctrl-C returns 130; SIGTERM
    drains (:mod:`pipelines.serve.drain`) and returns 0.
    """
    try:
        extra = [] if max_sessions is None else [f"max_sessions={max_sessions}"]
        if drain_timeout_s is not None:
            extra.append(f"drain_timeout_s={drain_timeout_s}")
        options = parse_options([*option_items, *extra])
        secret = read_token(token, token_file)
    except (ValueError, ServeError) as exc:
        print(f"parley serve: {exc}", file=sys.stderr)
        return 2
    config = serve_pipeline_file(pipeline, overrides)
    tune_gc(options.gc_threshold)

    def ready(bound_host: str, bound_port: int) -> None:
        print(
            f"parley serve: {config.pipeline.name} on ws://{bound_host}:{bound_port}/v1/realtime"
            " (Ctrl-C stops)",
            flush=True,
        )

    try:
        anyio.run(
            lambda: serve(
                config, host, port, secret, options, on_ready=ready, drain_signals=[signal.SIGTERM]
            )
        )
    except ServeError as exc:
        print(f"parley serve: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
