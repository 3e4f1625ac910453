"""The process's model cache: shared models, keeping, loading once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from processors.shared_models import ModelCache, limit_blas_threads


class _Model:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False


def _closer(model: _Model) -> None:
    model.closed = True


def test_one_load_per_key_and_the_last_release_closes() -> None:
    cache = ModelCache()
    loads: list[str] = []

    def load() -> _Model:
        loads.append("a")
        return _Model("a")

    first = cache.acquire("a", load, _closer)
    second = cache.acquire("a", load, _closer)
    assert first is second and loads == ["a"] and cache.users("a") == 2
    other = cache.acquire("b", lambda: _Model("b"), _closer)
    assert other.model is not first.model
    cache.release(first)
    assert not first.model.closed and cache.users("a") == 1
    cache.release(second)
    assert first.model.closed and cache.loaded() == ["b"]
    cache.release_model(other.model)
    assert other.model.closed and cache.loaded() == []


def test_a_kept_cache_holds_unused_models_until_the_keeper_leaves() -> None:
    cache = ModelCache()
    with cache.keep():
        entry = cache.acquire("a", lambda: _Model("a"), _closer)
        cache.release(entry)
        assert not entry.model.closed and cache.loaded() == ["a"]
        again = cache.acquire("a", lambda: _Model("new"), _closer)
        assert again is entry  # reused, not loaded again
        cache.release(again)
    assert entry.model.closed and cache.loaded() == []


def test_concurrent_acquires_load_once() -> None:
    cache = ModelCache()
    loads: list[int] = []

    def slow_load() -> _Model:
        loads.append(1)
        time.sleep(0.2)
        return _Model("slow")

    got: list[object] = []
    threads = [
        threading.Thread(target=lambda: got.append(cache.acquire("k", slow_load).model))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(loads) == 1 and len(got) == 4 and len({id(m) for m in got}) == 1


def test_a_failed_load_is_raised_and_not_cached() -> None:
    cache = ModelCache()

    def broken() -> _Model:
        raise FileNotFoundError("no weights")

    with pytest.raises(FileNotFoundError):
        cache.acquire("x", broken)
    assert cache.loaded() == []
    assert cache.acquire("x", lambda: _Model("x")).model.name == "x"


def test_hold_gives_up_when_stopped() -> None:
    cache = ModelCache()
    entry = cache.acquire("llm", lambda: _Model("llm"))
    stop = threading.Event()
    assert entry.hold(stop)  # free: taken
    waiter: list[bool] = []
    thread = threading.Thread(target=lambda: waiter.append(entry.hold(stop)))
    thread.start()
    time.sleep(0.2)
    assert thread.is_alive()  # waits while the lock is held
    stop.set()
    thread.join(10)
    assert waiter == [False]
    entry.lock.release()


@pytest.mark.anyio
@pytest.mark.models
async def test_two_llama_stages_share_one_model_and_answer_in_turn() -> None:
    """Two pipelines' LlamaCppLLM stages load SmolLM2 once and both answer, one at a time."""
    from framework import Pipeline, PipelineTask, TaskParams
    from framework.frames import LLMMessagesFrame, LLMResponseEndFrame, LLMTextFrame, StartFrame
    from processors.llm.llama_cpp import LlamaCppLLM, LlamaCppLLMParams
    from processors.shared_models import MODELS
    from tests.framework.helpers import Recorder, wait_until

    params = LlamaCppLLMParams(max_tokens=8, temperature=0.0)
    llms = [LlamaCppLLM(params), LlamaCppLLM(params)]
    sinks = [Recorder("a"), Recorder("b")]
    tasks = [
        PipelineTask(Pipeline([llm, sink]), TaskParams(cleanup_timeout_s=10))
        for llm, sink in zip(llms, sinks, strict=True)
    ]
    question = LLMMessagesFrame(messages=[{"role": "user", "content": "Say hello."}])
    async with anyio.create_task_group() as tg:
        for task in tasks:
            tg.start_soon(task.run)
        await wait_until(lambda: all(s.frames(kind=StartFrame) for s in sinks), 120)
        assert llms[0].model is not None and llms[0].model is llms[1].model
        assert sum(1 for key in MODELS.loaded() if key[0] == "llama_cpp") == 1
        for task in tasks:  # both at once: a second context if they overlap
            await task.queue_frames([question])
        await wait_until(lambda: all(s.frames(kind=LLMResponseEndFrame) for s in sinks), 120)
        for task in tasks:
            await task.stop_when_done()
    texts = ["".join(f.text for f in s.frames(kind=LLMTextFrame)) for s in sinks]
    assert texts[0] and texts[0] == texts[1]  # greedy decoding, same prompt: the same reply
    assert not any(key[0] == "llama_cpp" for key in MODELS.loaded())  # nobody keeps it: freed


@pytest.fixture
def blas_pools() -> Iterator[list[Any]]:
    """numpy's BLAS pools (threadpoolctl's controllers), their sizes restored afterwards."""
    import numpy  # noqa: F401  (loads the BLAS library threadpoolctl looks for)
    from threadpoolctl import ThreadpoolController

    pools = ThreadpoolController().select(user_api="blas").lib_controllers
    if not pools:
        pytest.fail("numpy loaded no BLAS library threadpoolctl knows")
    sizes = [pool.num_threads for pool in pools]
    yield pools
    for pool, size in zip(pools, sizes, strict=True):
        pool.set_num_threads(size)


def test_limit_blas_threads_caps_numpys_pool_and_never_raises_it(blas_pools: list[Any]) -> None:
    for pool in blas_pools:
        pool.set_num_threads(2)
    assert limit_blas_threads(1)
    assert [pool.get_num_threads() for pool in blas_pools] == [1] * len(blas_pools)
    assert limit_blas_threads(3)
    assert [pool.get_num_threads() for pool in blas_pools] == [1] * len(blas_pools)
    with pytest.raises(ValueError, match="at least 1"):
        limit_blas_threads(0)


@pytest.mark.anyio
@pytest.mark.models
@pytest.mark.parametrize("contexts", [2, 1])
async def test_a_reply_while_the_only_context_is_busy_gets_a_second_one(contexts: int) -> None:
    """With the pool's first context lent out, a stage's reply loads and uses another;
    with ``contexts=1`` it waits until the first is given back."""
    from framework import Pipeline, PipelineTask, TaskParams
    from framework.frames import LLMMessagesFrame, LLMResponseEndFrame, LLMTextFrame, StartFrame
    from processors.llm.llama_cpp import LlamaCppLLM, LlamaCppLLMParams
    from tests.framework.helpers import Recorder, wait_until

    question = LLMMessagesFrame(messages=[{"role": "user", "content": "Say hello."}])
    llm = LlamaCppLLM(LlamaCppLLMParams(max_tokens=8, temperature=0.0, contexts=contexts))
    sink = Recorder("sink")
    task = PipelineTask(Pipeline([llm, sink]), TaskParams(cleanup_timeout_s=10))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await wait_until(lambda: sink.frames(kind=StartFrame), 120)
        assert llm._shared is not None
        pool = llm._shared.model
        first = pool.take(owner=object())  # another conversation's reply holds it
        assert first is llm.model
        await task.queue_frames([question])
        if contexts == 2:
            await wait_until(lambda: sink.frames(kind=LLMResponseEndFrame), 120)
            assert len(pool.instances) == 2 and llm.model is pool.instances[1]
        else:
            await anyio.sleep(0.5)
            assert not sink.frames(kind=LLMResponseEndFrame)  # waits for the context
        pool.give(first, owner=object())
        await wait_until(lambda: sink.frames(kind=LLMResponseEndFrame), 120)
        await task.stop_when_done()
    assert "".join(f.text for f in sink.frames(kind=LLMTextFrame)).strip()
