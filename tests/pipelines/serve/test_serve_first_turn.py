"""The first turn of a session is heard as promptly as the later ones.

A Realtime client streams audio from the moment its socket opens. If the
server loaded its models only then, the session would read that audio only
once they were loaded, and its first turn would be reported seconds late. The
server loads them before it listens (:mod:`pipelines.serve.preload`).
"""

from __future__ import annotations

import time

import anyio
import pytest
import websockets

from pipelines.serve.app import running_server
from processors.llm._llama_pool import LlamaPool
from processors.shared_models import MODELS
from tests.pipelines.serve.helpers import RawClient, cascade_config, speech_24k

pytestmark = [pytest.mark.anyio, pytest.mark.models]

NO_REPLIES = {"type": "server_vad", "create_response": False}
UPDATE = {"type": "realtime", "audio": {"input": {"turn_detection": NO_REPLIES}}}
FIRST = "Hello there, can you hear me clearly?"
SECOND = "What is your name?"
MARGIN_S = 2.0  # far less than a model load on this CPU, far more than turn-to-turn noise


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _speech_started_lags(url: str) -> tuple[float, float]:
    """Seconds from sending each of two turns' speech to its ``speech_started``."""
    speech = [speech_24k(FIRST), speech_24k(SECOND)]
    sent: list[float] = []
    started: list[float] = []
    async with websockets.connect(f"{url}/realtime?model=gpt-realtime") as ws:
        client = RawClient(ws)

        async def stream() -> None:
            # As a Realtime client does: configure and stream at once, in real time.
            await client.send(type="session.update", session=UPDATE)
            await client.append(bytes(48 * 500), pace=0.1)
            for piece in speech:
                sent.append(time.monotonic())
                await client.append(piece, pace=0.1)
                await client.append(bytes(48 * 1500), pace=0.1)

        async with anyio.create_task_group() as tg:
            tg.start_soon(stream)
            with anyio.fail_after(120):
                while len(started) < 2:
                    ev = await client.recv(120)
                    assert ev["type"] != "error", ev
                    if ev["type"] == "input_audio_buffer.speech_started":
                        started.append(ev["_t"])
            tg.cancel_scope.cancel()
    return started[0] - sent[0], started[1] - sent[1]


async def test_first_turn_is_detected_as_promptly_as_the_next() -> None:
    async with running_server(cascade_config("llm.max_tokens=20")) as url:
        # No connection has been made yet: whatever is loaded was loaded at start.
        loaded = {key[0] for key in MODELS.loaded() if isinstance(key, tuple)}
        assert {"whisper", "llama_cpp"} <= loaded, MODELS.loaded()
        # and the language model's whole pool of contexts, for sessions that overlap
        pools = [m for m in MODELS.models() if isinstance(m, LlamaPool)]
        assert pools and all(len(p.instances) == p.size == 2 for p in pools)
        first_lag, second_lag = await _speech_started_lags(url)
    assert first_lag < second_lag + MARGIN_S, (
        f"the first turn was detected {first_lag:.2f} s after its speech was sent, "
        f"the second {second_lag:.2f} s after"
    )
