"""PiperTTS with the real joe voice: order of frames, rates, early start, interruption."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from framework import Pipeline, PipelineTask, Processor, TaskParams
from framework.audio import rms
from framework.frames import (
    ErrorFrame,
    Frame,
    InterruptionFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    LLMTextFrame,
    MetricsFrame,
    OutputAudioFrame,
    StartFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from processors.tts.piper import PiperTTS, PiperTTSParams, espeak_safe
from processors.tts.text import split_text
from tests.framework.helpers import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.models]


class Timeline(Processor):
    """Records each frame with its arrival time (monotonic ns)."""

    def __init__(self) -> None:
        super().__init__(name="timeline")
        self.seen: list[tuple[int, Frame]] = []

    async def process_frame(self, frame, direction) -> None:  # type: ignore[no-untyped-def]
        self.seen.append((time.monotonic_ns(), frame))
        await self.push(frame, direction)

    def frames(self, kind: type = Frame) -> list:
        return [f for _, f in self.seen if isinstance(f, kind)]

    def count(self, kind: type) -> int:
        return len(self.frames(kind))


@asynccontextmanager
async def running(
    tts: PiperTTS, out_rate: int = 24000
) -> AsyncIterator[tuple[PipelineTask, Timeline]]:
    sink = Timeline()
    task = PipelineTask(
        Pipeline([tts, sink]), TaskParams(audio_out_sample_rate=out_rate, cleanup_timeout_s=10)
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await wait_until(lambda: sink.count(StartFrame), 60)
        yield task, sink
        await task.stop_when_done()


def reply(text: str) -> list[Frame]:
    return [LLMResponseStartFrame(), LLMTextFrame(text=text), LLMResponseEndFrame()]


def flow(sink: Timeline) -> list[str]:
    """Frame kinds in order, runs of audio collapsed to one 'audio'."""
    out: list[str] = []
    for _, f in sink.seen:
        name = "audio" if isinstance(f, OutputAudioFrame) else type(f).__name__
        if isinstance(f, MetricsFrame | StartFrame) or (name == "audio" and out[-1:] == ["audio"]):
            continue
        out.append(name)
    return out


@pytest.mark.parametrize("out_rate", [24000, 16000])
async def test_a_reply_gives_text_then_audio_at_the_output_rate(out_rate: int) -> None:
    tts = PiperTTS(PiperTTSParams(chunk_ms=20, first_piece_max_words=None))
    text = "Hello there, how are you doing today? I am fine."
    async with running(tts, out_rate) as (task, sink):
        await task.queue_frames(reply(text))
        await wait_until(lambda: sink.count(LLMResponseEndFrame), 30)
    assert flow(sink) == [
        "LLMResponseStartFrame",
        "TTSStartedFrame",
        "TTSTextFrame",
        "audio",
        "TTSTextFrame",
        "audio",
        "TTSStoppedFrame",
        "LLMResponseEndFrame",
        "EndFrame",
    ]
    assert [f.text for f in sink.frames(TTSTextFrame)] == split_text(text)
    audio = sink.frames(OutputAudioFrame)
    assert {(f.sample_rate, f.num_channels, f.num_samples) for f in audio} == {
        (out_rate, 1, out_rate // 50)
    }
    seconds = sum(f.duration_s for f in audio)
    assert 1.5 < seconds < 8, seconds
    assert rms(b"".join(f.audio for f in audio)) > 0.01
    names = {s.name: s.value for f in sink.frames(MetricsFrame) for s in f.samples}
    assert names["ttfa"] > 0 and names["cpu_s"] > 0
    assert tts.voice_sample_rate == 22050


async def test_the_first_clause_is_spoken_before_the_reply_is_written() -> None:
    tts = PiperTTS(PiperTTSParams(first_piece_max_words=None))
    text = "Well, the capital of France is Paris, a city of light and art. It is lovely."
    words = text.split(" ")
    async with running(tts) as (task, sink):
        await tts.model_gate.wait()  # the voice's load time is not what this measures
        await task.queue_frame(LLMResponseStartFrame())
        for i, word in enumerate(words):
            await task.queue_frame(LLMTextFrame(text=word if i == 0 else " " + word))
            await anyio.sleep(0.08)  # a slow model: ~12 tokens per second
        last_text_ns = time.monotonic_ns()
        await task.queue_frame(LLMResponseEndFrame())
        await wait_until(lambda: sink.count(LLMResponseEndFrame), 30)
    first_audio_ns = next(t for t, f in sink.seen if isinstance(f, OutputAudioFrame))
    assert first_audio_ns < last_text_ns
    assert [f.text for f in sink.frames(TTSTextFrame)] == [
        "Well, the capital of France is Paris,",
        "a city of light and art.",
        "It is lovely.",
    ]


async def test_an_interruption_stops_the_reply_and_the_next_one_starts_fresh() -> None:
    tts = PiperTTS(PiperTTSParams(first_piece_max_words=None))
    long_reply = (
        "This is the first sentence of a long reply. Here is a second sentence that "
        "goes on for a while. A third one follows it. And a fourth. And a fifth one too."
    )
    async with running(tts) as (task, sink):
        await task.queue_frames(reply(long_reply))
        await wait_until(lambda: sink.count(OutputAudioFrame), 30)
        await task.queue_frame(InterruptionFrame())
        cut = len(sink.seen)
        # The next reply can only be processed after the interrupted work is done,
        # so once it has ended, anything late from the old reply would have shown.
        await task.queue_frames(reply("New reply, with a first clause here. Done."))
        await wait_until(lambda: sink.count(LLMResponseEndFrame), 30)
    assert isinstance(sink.seen[cut - 1][1], InterruptionFrame)
    after = [f for _, f in sink.seen[cut:]]
    texts = [f.text for f in after if isinstance(f, TTSTextFrame)]
    assert texts == ["New reply, with a first clause here.", "Done."]
    assert isinstance(after[0], LLMResponseStartFrame | MetricsFrame)
    before = [f for _, f in sink.seen[:cut]]
    assert [f.text for f in before if isinstance(f, TTSTextFrame)] == [
        "This is the first sentence of a long reply."
    ]
    assert not any(isinstance(f, TTSStoppedFrame) for f in before)
    assert sink.count(TTSStartedFrame) == 2


async def test_a_bad_voice_path_is_reported_and_the_stage_keeps_passing_frames() -> None:
    tts = PiperTTS(PiperTTSParams(model_path="/nonexistent/voice.onnx"))
    async with running(tts) as (task, sink):
        await task.queue_frames(reply("Hello there."))
        await wait_until(lambda: sink.count(LLMResponseEndFrame), 30)
    errors = task.errors
    assert len(errors) == 1 and "model_path" in errors[0].message
    assert sink.count(OutputAudioFrame) == 0 and sink.count(ErrorFrame) == 0


def test_the_memory_arena_setting_reaches_the_onnx_session() -> None:
    kept, fresh = PiperTTS(), PiperTTS(PiperTTSParams(memory_arena=False))
    kept.load()
    fresh.load()
    assert kept.voice.session.get_session_options().enable_cpu_mem_arena
    assert not fresh.voice.session.get_session_options().enable_cpu_mem_arena
    assert kept.voice is not fresh.voice  # one loaded voice per setting
    same = PiperTTS()
    same.load()
    assert same.voice is kept.voice
    assert kept.synthesize("Hello there.") and fresh.synthesize("Hello there.")


def test_the_shared_voice_runs_at_most_max_syntheses_at_once() -> None:
    import threading
    import time

    stages = [PiperTTS(PiperTTSParams(max_syntheses=2)) for _ in range(4)]
    for stage in stages:
        stage.load()
    voice = stages[0].voice
    assert all(s.voice is voice for s in stages)  # one voice, one bound for all
    running, most = 0, 0
    lock = threading.Lock()
    real = voice.synthesize

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            time.sleep(0.2)  # long enough for the four to overlap, were they let in
            yield from real(*args, **kwargs)
        finally:
            with lock:
                running -= 1

    voice.synthesize = counting
    try:
        threads = [
            threading.Thread(target=s.synthesize, args=("A sentence of a few words.",))
            for s in stages
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        del voice.synthesize
    assert most == 2  # four asked at once: two ran, two waited their turn


@pytest.mark.parametrize("ending", ["Stop..", "You said: Stop..", "Mr ..", "Number 3.."])
def test_two_full_stops_at_the_end_leave_nothing_behind_for_the_next_text(ending: str) -> None:
    tts = PiperTTS()
    tts.load()
    clean = tts.voice.phonemize("For the camping trip")
    assert tts.synthesize(ending)
    # espeak-ng is one per process: what it kept from the last text would open this one.
    assert tts.voice.phonemize("For the camping trip") == clean


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Stop..", "Stop."),
        ("Hi.. there..", "Hi. there."),
        ("Wait...", "Wait..."),
        ("Well.... no.", "Well.... no."),
        ("3.5 km.", "3.5 km."),
    ],
)
def test_only_runs_of_exactly_two_full_stops_are_collapsed(text: str, spoken: str) -> None:
    assert espeak_safe(text) == spoken


async def test_each_replys_first_piece_is_synthesised_in_the_foreground() -> None:
    from framework.foreground import FOREGROUND

    tts = PiperTTS(PiperTTSParams(first_piece_max_words=None))
    seen: list[tuple[str, bool]] = []
    async with running(tts) as (task, sink):
        await tts.model_gate.wait()
        real = tts.synthesize

        def recording(text: str) -> bytes:
            seen.append((text, FOREGROUND.active()))
            return real(text)

        tts.synthesize = recording  # type: ignore[method-assign]
        await task.queue_frames(reply("Hello there. How are you today? I am fine."))
        await wait_until(lambda: sink.count(LLMResponseEndFrame) == 1, 30)
        await task.queue_frames(reply("Good. Bye now."))
        await wait_until(lambda: sink.count(LLMResponseEndFrame) == 2, 30)
    assert seen == [
        ("Hello there.", True),
        ("How are you today?", False),
        ("I am fine.", False),
        ("Good.", True),
        ("Bye now.", False),
    ]
    assert not FOREGROUND.active()
