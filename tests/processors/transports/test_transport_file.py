"""The file transport and the output transport base, with real timing on short audio."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import numpy as np
import pytest

from framework import Direction, EndReason, Pipeline, PipelineTask, Processor
from framework.audio import read_wav, silence, sine_wave, write_wav
from framework.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndFrame,
    InputAudioFrame,
    InterruptionFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    OutputAudioFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.transports import FileTransport, OutputTransport
from processors.transports.base import heard_text

from .transport_helpers import Cue, Tap, channels, nonzero_span, push_all, run_task, tone_frames

pytestmark = pytest.mark.anyio

DOWN, UP = Direction.DOWNSTREAM, Direction.UPSTREAM
MS = 1_000_000
OUT_RATE = 24000
CHUNK = OUT_RATE // 50  # samples in a 20 ms output chunk

WORDS = "one two three four five six seven eight nine ten"


def transport(tmp_path: Path, input_pcm: bytes, rate: int = 16000, **kw: object) -> FileTransport:
    write_wav(tmp_path / "in.wav", input_pcm, rate)
    settings: dict[str, object] = {"end_after_s": 0.2, **kw}
    params = FileTransport.Params(
        input_path=tmp_path / "in.wav", output_path=tmp_path / "out.wav", **settings
    )
    return FileTransport(params)


def pos(t_ns: int, origin: int | None) -> float:
    assert origin is not None
    return (t_ns - origin) * OUT_RATE / 1e9


async def test_input_plays_48k_stereo_file_as_paced_20ms_mono_chunks(tmp_path: Path) -> None:
    stereo = sine_wave(300, 48000, 0.6, num_channels=2)
    write_wav(tmp_path / "in.wav", stereo, 48000, 2)
    ft = FileTransport(FileTransport.Params(input_path=tmp_path / "in.wav", end_after_s=0.2))
    tap = Tap(audio=True)
    task = await run_task([ft.input(), tap])
    assert task.end_reason is EndReason.ENDED

    frames = tap.frames(InputAudioFrame)
    arrivals = tap.times(InputAudioFrame)
    origin = ft.origin_ns
    assert origin is not None
    assert all(f.sample_rate == 16000 and f.num_channels == 1 for f in frames)
    assert all(f.num_samples == 320 for f in frames)
    assert [f.timestamp_ns - origin for f in frames] == [k * 20 * MS for k in range(len(frames))]
    # The file (0.6 s = 30 chunks) is exactly the converted WAV, then silence follows.
    expected = read_wav(tmp_path / "in.wav", sample_rate=16000, mono=True).pcm
    assert b"".join(f.audio for f in frames[:30]) == expected
    assert all(f.audio == silence(16000, 20) for f in frames[30:])
    # Real-time pace: a chunk leaves once its last sample has been heard, never earlier.
    lateness_ms = [(a - f.timestamp_ns) / MS - 20 for a, f in zip(arrivals, frames, strict=True)]
    assert min(lateness_ms) > -1.0
    assert 0.6 <= (arrivals[29] - origin) / 1e9 < 1.2
    # The End frame follows once the input ended and end_after_s of quiet went by.
    end_at = tap.times(EndFrame)[0]
    assert tap.seen[-1][1] == tap.frames(EndFrame)[0]
    assert (end_at - origin) / 1e9 >= 0.6 + 0.2
    assert 5 <= len(frames) - 30 <= 40
    print(f"input lateness ms: median {np.median(lateness_ms):.2f} max {max(lateness_ms):.2f}")


async def test_input_realtime_false_pushes_the_file_fast(tmp_path: Path) -> None:
    write_wav(tmp_path / "in.wav", sine_wave(300, 16000, 1.0), 16000)
    params = FileTransport.Params(input_path=tmp_path / "in.wav", end_after_s=0.1, realtime=False)
    ft = FileTransport(params)
    tap = Tap(audio=True)
    started = time.monotonic_ns()
    await run_task([ft.input(), tap])
    arrivals = tap.times(InputAudioFrame)
    assert (arrivals[49] - started) / 1e9 < 0.5
    assert len(tap.frames(EndFrame)) == 1


async def test_output_puts_bot_audio_at_its_play_time(tmp_path: Path) -> None:
    ft = transport(tmp_path, silence(16000, 1000))
    tone = sine_wave(440, 22050, 0.3)  # another rate: resampled to the output rate
    cue = Cue(
        lambda: ft.origin_ns, [(0.4, push_all([OutputAudioFrame(audio=tone, sample_rate=22050)]))]
    )
    await run_task([ft.input(), cue, ft.output()])

    rate, data = channels(tmp_path / "out.wav")
    assert rate == OUT_RATE
    assert data.shape[1] == 1
    assert data.shape[0] >= OUT_RATE  # at least the input's length
    first, last = nonzero_span(data[:, 0])
    played = ft.output().reply_first_audio_ns
    assert len(played) == 1
    assert abs(first - pos(played[0], ft.origin_ns)) <= 2
    # The queue was idle: the audio plays when it arrives (within one chunk).
    assert -2 <= first - pos(cue.fired_ns[0], ft.origin_ns) <= CHUNK
    assert abs((last - first) / OUT_RATE - 0.3) < 0.025


async def test_stereo_puts_user_left_and_bot_right(tmp_path: Path) -> None:
    user = sine_wave(300, 16000, 0.4) + silence(16000, 400)
    ft = transport(tmp_path, user, stereo=True)
    bot = tone_frames(0.2)
    cue = Cue(lambda: ft.origin_ns, [(0.5, push_all(bot))])
    await run_task([ft.input(), cue, ft.output()])

    rate, data = channels(tmp_path / "out.wav")
    assert rate == OUT_RATE
    assert data.shape[1] == 2
    left, right = data[:, 0], data[:, 1]
    assert nonzero_span(left)[1] < 0.42 * OUT_RATE
    assert nonzero_span(left)[0] < 0.01 * OUT_RATE
    first, last = nonzero_span(right)
    assert first == pytest.approx(pos(ft.output().reply_first_audio_ns[0], ft.origin_ns), abs=2)
    assert first >= 0.5 * OUT_RATE
    assert abs((last - first) / OUT_RATE - 0.2) < 0.025


async def test_interruption_stops_within_a_chunk_and_keeps_the_words_heard(tmp_path: Path) -> None:
    ft = transport(tmp_path, silence(16000, 1200))
    reply = [LLMResponseStartFrame(), TTSStartedFrame(), TTSTextFrame(text=WORDS)]
    reply += [*tone_frames(1.0), TTSStoppedFrame(), LLMResponseEndFrame()]
    interrupted_ns: list[int] = []

    async def interrupt(cue: Cue) -> None:
        interrupted_ns.append(time.monotonic_ns())
        await cue.broadcast_interruption()

    second = [TTSTextFrame(text="after that"), *tone_frames(0.1), LLMResponseEndFrame()]
    cue = Cue(
        lambda: ft.origin_ns, [(0.2, push_all(reply)), (0.7, interrupt), (0.9, push_all(second))]
    )
    tap = Tap()
    await run_task([ft.input(), cue, ft.output(), tap])

    texts = [f.text for f in tap.frames(TTSTextFrame)]
    assert len(texts) == 2
    assert texts[1] == "after that"
    heard = texts[0].split()
    assert 3 <= len(heard) <= 7, texts[0]
    assert heard == WORDS.split()[: len(heard)]
    stops = tap.frames(BotStoppedSpeakingFrame)
    assert stops[0].interrupted
    assert 0.35 <= stops[0].played_s <= 0.65
    assert not stops[-1].interrupted
    assert len(cue.frames(BotStoppedSpeakingFrame, UP)) == len(stops)
    # Nothing of the first reply after the interruption: its end frames were dropped.
    assert len(tap.frames(TTSStoppedFrame)) == 0
    assert len(tap.frames(LLMResponseEndFrame)) == 1
    assert len(ft.output().reply_first_audio_ns) == 2

    _, data = channels(tmp_path / "out.wav")
    bot = data[:, 0]
    cut = pos(interrupted_ns[0], ft.origin_ns)
    second_start = pos(ft.output().reply_first_audio_ns[1], ft.origin_ns)
    _, last_before = nonzero_span(bot[: int(second_start) - 1])
    assert last_before <= cut + CHUNK + 2  # at most one chunk after the interruption
    assert last_before >= cut - 3 * CHUNK  # it was playing until then
    print(f"audio after the interruption: {(last_before - cut) / OUT_RATE * 1000:.1f} ms")


async def test_text_passes_whole_once_its_audio_has_played(tmp_path: Path) -> None:
    ft = transport(tmp_path, silence(16000, 800))
    reply = [TTSStartedFrame(), TTSTextFrame(text="alpha beta"), *tone_frames(0.2)]
    reply += [TTSTextFrame(text=" gamma delta epsilon"), *tone_frames(0.2)]
    reply += [TTSStoppedFrame(), LLMResponseEndFrame()]
    cue = Cue(lambda: ft.origin_ns, [(0.1, push_all(reply))])
    tap = Tap()
    await run_task([ft.input(), cue, ft.output(), tap])

    assert [f.text for f in tap.frames(TTSTextFrame)] == ["alpha beta", " gamma delta epsilon"]
    first_audio = ft.output().reply_first_audio_ns[0]
    text_times = tap.times(TTSTextFrame)
    assert (text_times[0] - first_audio) / 1e9 >= 0.2 - 0.005
    assert (text_times[1] - first_audio) / 1e9 >= 0.4 - 0.005
    assert tap.times(LLMResponseEndFrame)[0] >= text_times[1]
    assert len(tap.frames(BotStartedSpeakingFrame)) == 1
    assert len(cue.frames(BotStartedSpeakingFrame, UP)) == 1
    (stop,) = tap.frames(BotStoppedSpeakingFrame)
    assert not stop.interrupted
    assert 0.4 <= stop.played_s <= 0.44


async def test_files_are_complete_after_cancel(tmp_path: Path) -> None:
    ft = transport(tmp_path, sine_wave(300, 16000, 1.0), stereo=True, end_after_s=5.0)
    cue = Cue(lambda: ft.origin_ns, [(0.1, push_all(tone_frames(2.0)))])
    tap = Tap()
    cancelled_ns: list[int] = []

    async def cancel_soon(task: object) -> None:
        while not tap.frames(BotStartedSpeakingFrame):
            await anyio.sleep(0.01)
        await anyio.sleep(0.2)
        cancelled_ns.append(time.monotonic_ns())
        await task.cancel()  # type: ignore[attr-defined]

    task = await run_task([ft.input(), cue, ft.output(), tap], during=cancel_soon)
    assert task.end_reason is EndReason.CANCELLED
    rate, data = channels(tmp_path / "out.wav")
    assert rate == OUT_RATE
    assert data.shape[1] == 2
    first, last = nonzero_span(data[:, 1])
    stop = pos(cancelled_ns[0], ft.origin_ns)
    assert last <= stop + CHUNK + 2
    assert (last - first) / OUT_RATE >= 0.15
    # The recording ends where the run stopped, not at the end of the 1 s input.
    assert stop - 2 * CHUNK <= data.shape[0] <= stop + 2 * CHUNK
    assert ft.written == tmp_path / "out.wav"
    assert 0 <= data.shape[0] / OUT_RATE - ft.heard_s <= 0.041  # bot audio ends it, or input


async def test_an_output_that_cannot_be_written_ends_the_run_with_the_error(
    tmp_path: Path,
) -> None:
    ft = transport(tmp_path, sine_wave(300, 16000, 0.3))
    (tmp_path / "out.wav").mkdir()  # appears after the transport checked the path
    task = PipelineTask(Pipeline([ft.input(), ft.output()]))
    with anyio.fail_after(15):  # it used to wait for ever for the End that never came
        reason = await task.run()
    assert reason is EndReason.ERROR
    assert ft.written is None
    messages = [e.message for e in task.errors]
    assert messages[0].startswith("file.output failed on EndFrame: OSError: ")
    assert "cannot write audio file" in messages[0]


def test_an_output_path_naming_a_folder_is_refused_at_once(tmp_path: Path) -> None:
    write_wav(tmp_path / "in.wav", sine_wave(300, 16000, 0.1), 16000)
    params = FileTransport.Params(input_path=tmp_path / "in.wav", output_path=tmp_path)
    with pytest.raises(IsADirectoryError, match="is a folder; name a file"):
        FileTransport(params)


async def test_output_base_paces_chunks_and_announces_speaking() -> None:
    class Sink(OutputTransport):
        def __init__(self) -> None:
            super().__init__(OutputTransport.Params(stop_delay_ms=20))
            self.writes: list[tuple[int, int]] = []

        async def write_chunk(self, pcm: bytes, play_ns: int) -> None:
            self.writes.append((time.monotonic_ns(), play_ns))

    sink = Sink()
    tap = Tap()

    async def drive(task: object) -> None:
        await task.queue_frames(tone_frames(0.3, rate=48000, frame_ms=50))  # type: ignore[attr-defined]
        while not tap.frames(BotStoppedSpeakingFrame):
            await anyio.sleep(0.01)
        await task.stop_when_done()  # type: ignore[attr-defined]

    await run_task([Processor(), sink, tap], during=drive)
    plays = [p for _, p in sink.writes]
    assert len(plays) == 15  # 0.3 s in 20 ms chunks
    assert [p - plays[0] for p in plays] == [k * 20 * MS for k in range(15)]
    late_ms = [(w - p) / MS for w, p in sink.writes]
    assert min(late_ms) >= 0
    (stop,) = tap.frames(BotStoppedSpeakingFrame)
    assert stop.played_s == pytest.approx(0.3)
    print(f"output lateness ms: median {np.median(late_ms):.2f} max {max(late_ms):.2f}")


async def test_a_reply_waits_while_the_user_holds_the_floor() -> None:
    """A reply prepared on a pause starts only when the user's turn is confirmed over."""

    class Sink(OutputTransport):
        def __init__(self) -> None:
            super().__init__(OutputTransport.Params(stop_delay_ms=20))
            self.plays: list[int] = []

        async def write_chunk(self, pcm: bytes, play_ns: int) -> None:
            self.plays.append(play_ns)

    sink = Sink()
    tap = Tap()
    released: list[int] = []

    async def drive(task: object) -> None:
        await task.queue_frame(UserStartedSpeakingFrame())  # type: ignore[attr-defined]
        await task.queue_frames(tone_frames(0.1, rate=24000))  # type: ignore[attr-defined]
        await anyio.sleep(0.2)
        assert sink.plays == []  # held: the user still has the floor
        released.append(time.monotonic_ns())
        await task.queue_frame(UserStoppedSpeakingFrame())  # type: ignore[attr-defined]
        while not tap.frames(BotStoppedSpeakingFrame):
            await anyio.sleep(0.01)
        await task.stop_when_done()  # type: ignore[attr-defined]

    await run_task([Processor(), sink, tap], during=drive)
    assert len(sink.plays) == 5
    assert sink.plays[0] >= released[0]


async def test_an_interruption_never_leaves_a_stray_chunk_or_reply() -> None:
    """However the interruption falls against the 20 ms schedule, nothing plays after it."""

    class Sink(OutputTransport):
        def __init__(self) -> None:
            super().__init__(OutputTransport.Params(stop_delay_ms=20))
            self.writes: list[int] = []

        async def write_chunk(self, pcm: bytes, play_ns: int) -> None:
            self.writes.append(time.monotonic_ns())

    sink = Sink()
    tap = Tap()
    cuts: list[int] = []
    queued: list[int] = []

    async def drive(task: object) -> None:
        for k in range(6):
            queued.append(time.monotonic_ns())
            await task.queue_frames(tone_frames(0.5, rate=24000))  # type: ignore[attr-defined]
            await anyio.sleep(0.113 + 0.007 * k)  # lands anywhere within a chunk
            cuts.append(time.monotonic_ns())
            await task.queue_frame(InterruptionFrame())  # type: ignore[attr-defined]
            await anyio.sleep(0.06)
        await task.stop_when_done()  # type: ignore[attr-defined]

    await run_task([Processor(), sink, tap], during=drive)
    assert len(sink.reply_first_audio_ns) == 6
    assert len(tap.frames(BotStartedSpeakingFrame)) == 6
    for cut, following in zip(cuts, [*queued[1:], None], strict=True):
        late = [w for w in sink.writes if w > cut + 2 * MS and (following is None or w < following)]
        assert late == [], f"{len(late)} chunk(s) written after an interruption"


def test_heard_text_floors_by_word_count() -> None:
    assert heard_text("one two three four", 0.5) == "one two"
    assert heard_text("one two three four", 0.74) == "one two"
    assert heard_text(" one two", 0.5) == " one"
    assert heard_text("one two", 0.4) == ""
    assert heard_text("one two", 1.0) == "one two"


def test_missing_input_file_is_reported_at_construction(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="input_path"):
        FileTransport(FileTransport.Params(input_path=tmp_path / "nope.wav"))
    with pytest.raises(FileNotFoundError, match="output_path"):
        FileTransport(FileTransport.Params(output_path=tmp_path / "no" / "out.wav"))


async def test_text_waits_for_late_audio_and_unplayed_text_is_not_heard(tmp_path: Path) -> None:
    ft = transport(tmp_path, silence(16000, 900))

    def later(delay_s: float, frames: list) -> Callable[[Cue], Awaitable[None]]:
        async def action(cue: Cue) -> None:
            async def send() -> None:
                await anyio.sleep(delay_s)
                for frame in frames:
                    await cue.push(frame)

            cue.context.task_group.start_soon(send)

        return action

    async def interrupt(cue: Cue) -> None:
        await cue.broadcast_interruption()

    cues = [
        # A piece whose audio comes 80 ms after its text (synthesis time).
        (0.1, push_all([TTSStartedFrame(), TTSTextFrame(text="first words here")])),
        (0.1, later(0.08, [*tone_frames(0.2), TTSStoppedFrame()])),
        # A piece interrupted before any of its audio played.
        (0.6, push_all([TTSStartedFrame(), TTSTextFrame(text="never heard")])),
        (0.64, interrupt),
    ]
    cue = Cue(lambda: ft.origin_ns, cues)
    tap = Tap()
    await run_task([ft.input(), cue, ft.output(), tap])

    assert [f.text for f in tap.frames(TTSTextFrame)] == ["first words here"]
    first_audio = ft.output().reply_first_audio_ns[0]
    assert (first_audio - cue.fired_ns[0]) / 1e9 >= 0.07
    assert (tap.times(TTSTextFrame)[0] - first_audio) / 1e9 >= 0.2 - 0.005
    (stop,) = tap.frames(BotStoppedSpeakingFrame)
    assert not stop.interrupted
