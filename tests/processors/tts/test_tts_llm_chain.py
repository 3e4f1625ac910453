"""The cascade's text half on the real models: context -> SmolLM2 -> Piper -> context."""

from __future__ import annotations

import anyio
import pytest

from framework import Pipeline, PipelineTask, TaskParams
from framework.frames import (
    LLMResponseEndFrame,
    LLMTextFrame,
    MetricsFrame,
    OutputAudioFrame,
    StartFrame,
    TranscriptionFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.llm import LlamaCppLLM, LlamaCppLLMParams, context_pair
from processors.tts import PiperTTS
from tests.framework.helpers import Recorder, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.models]

SYSTEM = "You are a friendly voice assistant. Answer in one short sentence."


async def test_a_question_is_answered_in_speech_and_remembered() -> None:
    user, assistant = context_pair(SYSTEM)
    llm = LlamaCppLLM(LlamaCppLLMParams(system_prompt=SYSTEM, temperature=0.0, max_tokens=40))
    tts = PiperTTS()
    sink = Recorder()
    task = PipelineTask(
        Pipeline([user, llm, tts, assistant, sink]), TaskParams(cleanup_timeout_s=10)
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await wait_until(lambda: sink.frames(kind=StartFrame), 60)
        await task.queue_frames(
            [
                UserStartedSpeakingFrame(),
                UserStoppedSpeakingFrame(),
                TranscriptionFrame(text="What is the capital of France?"),
            ]
        )
        await wait_until(lambda: sink.frames(kind=LLMResponseEndFrame), 60)
        await task.stop_when_done()
    kinds = [
        type(f).__name__
        for f in sink.frames()
        if not isinstance(f, MetricsFrame | OutputAudioFrame | TTSTextFrame)
    ]
    reply = kinds[kinds.index("LLMResponseStartFrame") :]
    assert reply == [
        "LLMResponseStartFrame",
        "TTSStartedFrame",
        "TTSStoppedFrame",
        "LLMResponseEndFrame",
        "EndFrame",
    ]
    assert sink.frames(kind=LLMTextFrame) == []  # consumed by the TTS
    spoken = [f.text for f in sink.frames(kind=TTSTextFrame)]
    generated = llm.last_generation.text if llm.last_generation else ""
    assert spoken and " ".join(spoken).split() == generated.split()
    audio = sink.frames(kind=OutputAudioFrame)
    assert audio and all(f.sample_rate == 24000 for f in audio)
    # Every piece's text comes before its audio: the first audio follows the first text.
    frames = sink.frames()
    first_text = frames.index(sink.frames(kind=TTSTextFrame)[0])
    assert frames.index(audio[0]) > first_text > frames.index(sink.frames(kind=TTSStartedFrame)[0])
    assert sink.frames(kind=TTSStoppedFrame)
    metrics = {s.name for f in sink.frames(kind=MetricsFrame) for s in f.samples}
    assert metrics >= {"ttft", "tokens", "tokens_per_s", "cpu_s", "ttfa"}
    assert user.llm_context.messages == [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": " ".join(spoken)},
    ]
