"""The output transport's pause: a possible barge-in holds the bot's audio, keeping the rest."""

from __future__ import annotations

import sys
import time

import anyio
import pytest

from framework import Direction
from framework.frames import (
    BotAudioPauseFrame,
    BotAudioResumeFrame,
    BotStoppedSpeakingFrame,
    InterruptionFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    TTSTextFrame,
)
from framework.processor import Processor
from processors.transports import OutputTransport

from .transport_helpers import Tap, run_task, tone_frames

pytestmark = pytest.mark.anyio

MS = 1_000_000
DOWN = Direction.DOWNSTREAM


class Sink(OutputTransport):
    def __init__(self) -> None:
        super().__init__(OutputTransport.Params(stop_delay_ms=20))
        self.writes: list[tuple[int, int]] = []  # (written at, play time)

    async def write_chunk(self, pcm: bytes, play_ns: int) -> None:
        self.writes.append((time.monotonic_ns(), play_ns))


class DirectSink(Sink):
    """Writes with ``write_chunk_now``, from the pacer's tick."""

    write_chunk = OutputTransport.write_chunk  # type: ignore[assignment]

    def write_chunk_now(self, pcm: bytes, play_ns: int) -> None:
        self.writes.append((time.monotonic_ns(), play_ns))


@pytest.fixture(autouse=True, params=["awaited write", "write from the tick"])
def sink_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with both kinds of output (``Sink`` is looked up late)."""
    if request.param == "write from the tick":
        monkeypatch.setattr(sys.modules[__name__], "Sink", DirectSink)
    return str(request.param)


async def _until_written(sink: Sink, count: int) -> None:
    with anyio.fail_after(10):
        while len(sink.writes) < count:
            await anyio.sleep(0.002)


async def test_a_pause_holds_the_audio_and_a_resume_plays_the_rest() -> None:
    sink, tap = Sink(), Tap()
    marks: dict[str, int] = {}

    async def drive(task: object) -> None:
        await task.queue_frames(tone_frames(0.4, rate=24000))  # type: ignore[attr-defined]
        await _until_written(sink, 5)
        marks["pause"] = time.monotonic_ns()
        await task.queue_frame(BotAudioPauseFrame())  # type: ignore[attr-defined]
        await anyio.sleep(0.3)
        marks["held"] = len(sink.writes)
        marks["resume"] = time.monotonic_ns()
        await task.queue_frame(BotAudioResumeFrame())  # type: ignore[attr-defined]
        while not tap.frames(BotStoppedSpeakingFrame):
            await anyio.sleep(0.01)
        await task.stop_when_done()  # type: ignore[attr-defined]

    await run_task([Processor(), sink, tap], during=drive)
    # At most the chunk already due when the pause came is written after it.
    written_in_pause = [w for w, _ in sink.writes if marks["pause"] < w < marks["resume"]]
    assert len(written_in_pause) <= 1
    assert marks["held"] < 20
    # Nothing is lost: all 0.4 s (20 chunks) play, the rest after the resume.
    assert len(sink.writes) == 20
    assert all(p >= marks["resume"] for _, p in sink.writes[marks["held"] :])
    (stop,) = tap.frames(BotStoppedSpeakingFrame)
    assert not stop.interrupted
    assert stop.played_s == pytest.approx(0.4)


async def test_an_interruption_during_a_pause_keeps_only_the_words_played() -> None:
    sink, tap = Sink(), Tap()
    words = "one two three four five six seven eight nine ten"

    async def drive(task: object) -> None:
        await task.queue_frame(TTSTextFrame(text=words))  # type: ignore[attr-defined]
        await task.queue_frames(tone_frames(1.0, rate=24000))  # type: ignore[attr-defined]
        await _until_written(sink, 15)  # 0.3 s
        await task.queue_frame(BotAudioPauseFrame())  # type: ignore[attr-defined]
        await anyio.sleep(0.25)
        await task.queue_frame(InterruptionFrame())  # type: ignore[attr-defined]
        await anyio.sleep(0.2)
        await task.stop_when_done()  # type: ignore[attr-defined]

    await run_task([Processor(), sink, tap], during=drive)
    played = len(sink.writes)
    assert 15 <= played <= 17  # the pause stops it within a chunk; the interruption adds none
    (stop,) = tap.frames(BotStoppedSpeakingFrame)
    assert stop.interrupted
    heard = [f.text for f in tap.frames(TTSTextFrame)]
    assert heard == [" ".join(words.split()[: played * 10 // 50])]


async def test_a_stop_inside_a_reply_says_more_is_coming() -> None:
    sink, tap = Sink(), Tap()

    async def drive(task: object) -> None:
        await task.queue_frame(LLMResponseStartFrame())  # type: ignore[attr-defined]
        await task.queue_frames(tone_frames(0.1, rate=24000))  # type: ignore[attr-defined]
        with anyio.fail_after(10):
            while not tap.frames(BotStoppedSpeakingFrame):
                await anyio.sleep(0.01)
        await task.queue_frames(tone_frames(0.1, rate=24000))  # type: ignore[attr-defined]
        await task.queue_frame(LLMResponseEndFrame())  # type: ignore[attr-defined]
        with anyio.fail_after(10):
            while len(tap.frames(BotStoppedSpeakingFrame)) < 2:
                await anyio.sleep(0.01)
        await task.stop_when_done()  # type: ignore[attr-defined]

    await run_task([Processor(), sink, tap], during=drive)
    assert [f.mid_reply for f in tap.frames(BotStoppedSpeakingFrame)] == [True, False]


async def test_a_pause_nobody_lifts_ends_after_its_timeout() -> None:
    sink, tap = Sink(), Tap()

    async def drive(task: object) -> None:
        await task.queue_frames(tone_frames(0.2, rate=24000))  # type: ignore[attr-defined]
        await _until_written(sink, 2)
        await task.queue_frame(BotAudioPauseFrame(timeout_s=0.2))  # type: ignore[attr-defined]
        with anyio.fail_after(10):
            while not tap.frames(BotStoppedSpeakingFrame):
                await anyio.sleep(0.01)
        await task.stop_when_done()  # type: ignore[attr-defined]

    await run_task([Processor(), sink, tap], during=drive)
    assert len(sink.writes) == 10
    gaps = [b - a for (_, a), (_, b) in zip(sink.writes, sink.writes[1:], strict=False)]
    assert max(gaps) >= 150 * MS  # the hold
