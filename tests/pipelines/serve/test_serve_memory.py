"""Sessions share the server's models and leave nothing behind (the soak benchmark's mechanism).

Two rounds of three spoken sessions against one in-process server: the models
load once (the Silero VAD's ONNX session included: one for every session), and
no session object outlives its connection. The memory figures themselves come from
``python -m benchmarks.soak`` (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import gc

import anyio
import pytest

from benchmarks.soak.client import Speaker, health, question_audio
from pipelines.serve.app import running_server
from pipelines.serve.session import RealtimeSession
from processors.shared_models import MODELS
from tests.pipelines.serve.helpers import cascade_config

pytestmark = [pytest.mark.anyio, pytest.mark.models, pytest.mark.slow]

SESSIONS = 3


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


async def _idle(url: str) -> None:
    """Wait until the server reports no session (each has wound down)."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with anyio.fail_after(30):
        while (await health("127.0.0.1", port))["sessions"]:
            await anyio.sleep(0.1)


async def _round(url: str, audio: bytes) -> list[str]:
    speakers = [Speaker(f"{url}/realtime", audio, 300) for _ in range(SESSIONS)]
    release = anyio.Event()
    async with anyio.create_task_group() as tg:
        for speaker in speakers:
            tg.start_soon(speaker.run, anyio.Semaphore(2), release)
        for speaker in speakers:
            await speaker.answered.wait()
        release.set()
    await _idle(url)
    return [s.outcome.status for s in speakers]


def _live_sessions() -> set[int]:
    gc.collect()
    return {id(o) for o in gc.get_objects() if isinstance(o, RealtimeSession)}


async def test_models_load_once_and_are_shared_by_every_session() -> None:
    audio = question_audio("What is the capital of France?")
    earlier = _live_sessions()  # other tests' sessions, if any are still referenced
    async with running_server(cascade_config(), max_sessions=SESSIONS) as url:
        assert await _round(url, audio) == ["completed"] * SESSIONS
        shared = sorted(str(key[0]) for key in MODELS.loaded())
        assert {"llama_cpp", "whisper", "silero"} <= set(shared)
        assert shared.count("silero") == 1
        assert _live_sessions() <= earlier

        assert await _round(url, audio) == ["completed"] * SESSIONS
        assert sorted(str(key[0]) for key in MODELS.loaded()) == shared
        assert _live_sessions() <= earlier
    # the server's end frees what no one else uses
    assert all(MODELS.users(key) > 0 for key in MODELS.loaded())
