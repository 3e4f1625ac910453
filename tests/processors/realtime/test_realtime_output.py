"""ReplyWriter: transcript pieces before the audio that speaks them, never split inside a word."""

from __future__ import annotations

import pytest

from framework.audio import sine_wave
from framework.frames import (
    Frame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    OutputAudioFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from processors.realtime._output import ReplyWriter

pytestmark = pytest.mark.anyio

AUDIO = sine_wave(220, 24000, 0.1)


def shape(frames: list[Frame]) -> list[str]:
    return [f"text:{f.text}" if isinstance(f, TTSTextFrame) else type(f).__name__ for f in frames]


async def writer(out_rate: int = 24000) -> tuple[ReplyWriter, list[Frame]]:
    frames: list[Frame] = []

    async def push(frame: Frame) -> None:
        frames.append(frame)

    return ReplyWriter(push, "resp_1", out_rate), frames


async def test_sentence_deltas_come_out_as_one_piece_before_their_audio() -> None:
    w, frames = await writer()
    await w.text("Hello there, friend.")
    await w.audio(AUDIO)
    await w.text(" How are you?")
    await w.audio(AUDIO)
    await w.finish()
    assert shape(frames) == [
        "LLMResponseStartFrame",
        "TTSStartedFrame",
        "text:Hello there, friend.",
        "OutputAudioFrame",
        "text:How are you?",
        "OutputAudioFrame",
        "TTSStoppedFrame",
        "LLMResponseEndFrame",
    ]


async def test_token_deltas_never_split_a_word() -> None:
    w, frames = await writer()
    for delta in ["Hel", "lo", " wor"]:
        await w.text(delta)
    await w.audio(AUDIO)  # "wor" may go on: held back
    await w.text("ld")
    await w.audio(AUDIO)
    await w.flush_text("Hello world")
    await w.finish()
    texts = [f.text for f in frames if isinstance(f, TTSTextFrame)]
    assert texts == ["Hello", "world"]
    assert w.text_pushed.split() == ["Hello", "world"]


async def test_the_final_transcript_fills_in_what_never_came_as_deltas() -> None:
    w, frames = await writer()
    await w.audio(AUDIO)
    await w.flush_text("Only a final transcript.")
    await w.finish()
    assert [f.text for f in frames if isinstance(f, TTSTextFrame)] == ["Only a final transcript."]
    w2, frames2 = await writer()
    await w2.text("Start of it ")
    await w2.audio(AUDIO)
    await w2.flush_text("Start of it and the end.")
    texts = [f.text for f in frames2 if isinstance(f, TTSTextFrame)]
    assert texts == ["Start of it", "and the end."]


async def test_audio_is_resampled_to_the_output_rate_and_an_abort_pushes_nothing_more() -> None:
    w, frames = await writer(out_rate=16000)
    await w.audio(AUDIO)
    await w.flush_audio()
    total = sum(f.duration_s for f in frames if isinstance(f, OutputAudioFrame))
    assert all(f.sample_rate == 16000 for f in frames if isinstance(f, OutputAudioFrame))
    assert total == pytest.approx(0.1, abs=0.002)
    w.abort()
    await w.audio(AUDIO)
    await w.text("more ")
    await w.finish()
    assert not any(isinstance(f, (TTSStoppedFrame, LLMResponseEndFrame)) for f in frames)
    assert isinstance(frames[0], LLMResponseStartFrame) and isinstance(frames[1], TTSStartedFrame)
