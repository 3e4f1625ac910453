"""Sessions of one server share its models and keep their own state (real models, real sockets).

Two sessions connected at once use one instance of each model; two sessions
speaking different turns at the same time each hear their own words, through
the shared Silero session, Whisper and SmolLM2.
"""

from __future__ import annotations

import re

import anyio
import pytest

from benchmarks.latency.corpus import load_corpus
from benchmarks.latency.generate import builtin_corpus
from benchmarks.load.runner import spoken_turns, wait_no_sessions
from benchmarks.load.talker import Talker, TalkTurn, configure
from pipelines.serve.app import running_server
from processors.shared_models import MODELS
from tests.pipelines.serve.helpers import cascade_config

pytestmark = [pytest.mark.anyio, pytest.mark.models, pytest.mark.slow]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def pool() -> list[TalkTurn]:
    return spoken_turns(load_corpus(builtin_corpus()))


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def _overlap(heard: str, said: str) -> float:
    return len(_words(heard) & _words(said)) / len(_words(said))


async def _hold(url: str, ready: list[int], release: anyio.Event) -> None:
    import websockets

    async with websockets.connect(url, max_size=None) as ws:
        await configure(ws, 120)
        ready.append(1)
        await release.wait()


async def test_two_sessions_use_one_instance_of_each_model() -> None:
    from processors.tts import piper

    before = {key: MODELS.users(key) for key in MODELS.loaded()}  # other tests' users
    voices = set(piper._VOICES)  # other tests' voices (other settings: other instances)
    async with running_server(cascade_config(), max_sessions=4) as base:
        url = f"{base}/realtime"
        ready: list[int] = []
        release = anyio.Event()
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(_hold, url, ready, release)
            with anyio.fail_after(120):
                while len(ready) < 2:
                    await anyio.sleep(0.05)
            kinds = [str(key[0]) for key in MODELS.loaded()]
            for kind in ("silero", "whisper", "llama_cpp"):
                assert kinds.count(kind) == 1, kinds
                [key] = [k for k in MODELS.loaded() if k[0] == kind]
                assert MODELS.users(key) - before.get(key, 0) == 2, kind
            assert len(set(piper._VOICES) - voices) <= 1  # one voice for both sessions
            release.set()
        await wait_no_sessions(url, 60)


async def test_concurrent_sessions_each_hear_their_own_words(pool: list[TalkTurn]) -> None:
    by_text = {t.transcript: t for t in pool}
    first = [
        by_text["What is the capital city of France?"],
        by_text["Hi, how are you doing today?"],
    ]
    second = [
        by_text["I would like to book a table for two people."],
        by_text["Tell me something nice about the ocean."],
    ]
    async with running_server(cascade_config(), max_sessions=4) as base:
        url = f"{base}/realtime"
        talkers = [Talker(url, first, 120), Talker(url, second, 120)]
        async with anyio.create_task_group() as tg:
            for talker in talkers:
                tg.start_soon(talker.run)
    for talker, own, other in ((talkers[0], first, second), (talkers[1], second, first)):
        assert talker.error is None
        assert [r.status for r in talker.records] == ["completed", "completed"]
        for record, said, not_said in zip(talker.records, own, other, strict=True):
            assert record.voice_to_voice_s is not None
            assert record.reply
            assert _overlap(record.heard, said.transcript) >= 0.6, (record.heard, said)
            assert _overlap(record.heard, said.transcript) > _overlap(
                record.heard, not_said.transcript
            )
