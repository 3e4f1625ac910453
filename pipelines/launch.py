"""Resources a pipeline file asks for around its conversation, such as a local server.

A speech-to-speech pipeline with a ``[serve]`` table gets a ``parley serve`` child
process running the named cascade; :func:`prepared` starts it, points the realtime
stage at it, and stops it afterwards, whatever happens in between.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import Process

from pipelines.config import ConfigError, PipelineConfig, ServeConfig

__all__ = ["ServerStartError", "prepared", "server_command", "start_server"]

log = logging.getLogger("parley")


class ServerStartError(RuntimeError):
    """The local server a pipeline file asked for did not come up."""


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


async def _healthy(host: str, port: int) -> bool:
    try:
        stream = await anyio.connect_tcp(host, port)
    except OSError:
        return False
    async with stream:
        await stream.send(f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        with anyio.move_on_after(2):
            return (await stream.receive()).startswith(b"HTTP/1.1 200")
    return False


async def _wait_healthy(host: str, port: int, process: Process, timeout_s: float) -> None:
    with anyio.move_on_after(timeout_s):
        while process.returncode is None:
            if await _healthy(host, port):
                return
            await anyio.sleep(0.05)
        raise ServerStartError(f"parley serve exited with status {process.returncode}")
    raise ServerStartError(f"parley serve did not answer on {host}:{port} within {timeout_s} s")


def server_command(serve: ServeConfig, port: int) -> list[str]:
    """The ``parley serve`` command line for ``serve`` on ``port``.

    Verbose (``--verbose``) when this process logs debug messages (``parley -v``), so
    the server's turn-taking verdicts and timings show too.
    """
    command = [sys.executable, "-m", "pipelines.cli"]
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        command.append("--verbose")
    command += ["serve", serve.pipeline, "--host", serve.host, "--port", str(port)]
    for item in serve.set:
        command += ["--set", item]
    for item in serve.options:
        command += ["--option", item]
    return command


@asynccontextmanager
async def start_server(serve: ServeConfig) -> AsyncIterator[str]:
    """Run ``parley serve`` as a child process; yields its WebSocket base URL.

    The child serves only this pipeline's realtime stage, without a token: a
    ``PARLEY_SERVE_TOKEN`` in this process's environment is not passed on (the
    child would demand it, and the realtime stage does not send it).
    """
    from pipelines.serve.app import TOKEN_ENV

    port = serve.port or _free_port(serve.host)
    command = server_command(serve, port)
    env = {name: value for name, value in os.environ.items() if name != TOKEN_ENV}
    process = await anyio.open_process(command, stdout=subprocess.DEVNULL, stderr=None, env=env)
    try:
        await _wait_healthy(serve.host, port, process, serve.startup_timeout_s)
        log.info("parley serve %s listening on %s:%d", serve.pipeline, serve.host, port)
        yield f"ws://{serve.host}:{port}/v1"
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.terminate()
                with anyio.move_on_after(10):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            await process.aclose()


@asynccontextmanager
async def prepared(config: PipelineConfig) -> AsyncIterator[PipelineConfig]:
    """Yield ``config`` ready to run, with the resources it asks for started."""
    if config.serve is None:
        yield config
        return
    if "realtime" not in config.stages:
        raise ConfigError(f"{config.source}: [serve] needs a [realtime] stage to talk to it")
    async with start_server(config.serve) as url:
        ready = config.model_copy(deep=True)
        params = ready.stages["realtime"].params
        params.setdefault("websocket_base_url", url)
        yield ready
