"""The turn logic every transcriber shares, driven through a tiny deterministic backend.

The backend below only counts the samples it is given, so the tests can check
exactly which audio a turn holds (pre-roll, resampling, turn boundaries) and how
finals, interims, metrics and errors come out, without a model's variability.
"""

from __future__ import annotations

import time

import anyio
import pytest
from pydantic import ValidationError

from framework import EndReason, Pipeline, PipelineTask
from framework.frames import (
    EndFrame,
    InputAudioFrame,
    InterruptionFrame,
    TranscriptionFrame,
    UserPausedSpeakingFrame,
    UserResumedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.stt import STTParams, STTProcessor, TurnAudio

from .stt_helpers import CHUNK, MS, RATE, Recorder, run_unpaced

pytestmark = pytest.mark.anyio


class CountingSTT(STTProcessor):
    """Transcribes a turn as ``"<samples> samples"``; interims as the count grows."""

    def __init__(
        self,
        params: STTParams | None = None,
        *,
        final_delay_s: float = 0.0,
        fail: int = 0,
        load_error: bool = False,
        restart_error: bool = False,
    ) -> None:
        super().__init__(params)
        self.final_delay_s = final_delay_s
        self.fail = fail  # turns that fail before the decoder works
        self.load_error = load_error
        self.restart_error = restart_error
        self.loads = 0

    def load(self) -> None:
        if self.load_error or (self.restart_error and self.loads):
            raise FileNotFoundError("no model in /nowhere")
        self.loads += 1

    async def decode_turn(self, turn: TurnAudio) -> str:
        heard = 0
        while True:
            pcm = turn.take()
            if pcm:
                heard += await self.run_decoder(turn, lambda n: n // 2, len(pcm))
                await self.push_interim(turn, f"{heard} samples")
            elif turn.ended:
                break
            else:
                await turn.wait_until(lambda: turn.unread > 0)
        if self.fail:
            self.fail -= 1
            raise ValueError("the decoder broke")
        await self.run_decoder(turn, time.sleep, self.final_delay_s)
        return f"{heard} samples"


def audio(ms: int, t0_ms: int, rate: int = RATE, channels: int = 1) -> list[InputAudioFrame]:
    """Loud-ish 20 ms frames covering ``ms`` from ``t0_ms`` on the task clock."""
    chunk = b"\x00\x10" * (rate // 50 * channels)
    return [
        InputAudioFrame(
            audio=chunk, sample_rate=rate, num_channels=channels, timestamp_ns=(t0_ms + i) * MS
        )
        for i in range(0, ms, 20)
    ]


def samples_of(final: TranscriptionFrame) -> int:
    return int(final.text.split()[0])


async def test_pre_roll_starts_the_turn_before_the_speech() -> None:
    frames = [
        *audio(1000, 0),
        UserStartedSpeakingFrame(speech_start_ns=600 * MS),
        *audio(500, 1000),
        UserStoppedSpeakingFrame(speech_end_ns=1300 * MS),
    ]
    recorder = await run_unpaced(CountingSTT(), frames)
    [final] = recorder.finals
    assert samples_of(final) == (1500 - 300) * RATE // 1000  # from 600 - 300 ms to the stop
    assert (final.start_ns, final.end_ns) == (300 * MS, 1500 * MS)


async def test_interims_come_while_the_turn_runs_and_stop_with_it() -> None:
    recorder = Recorder()
    task = PipelineTask(Pipeline([CountingSTT(), recorder]))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await task.queue_frames([UserStartedSpeakingFrame(), *audio(100, 0)])
        with anyio.fail_after(5):
            while not recorder.interims or recorder.interims[-1].text != "1600 samples":
                await anyio.sleep(0.001)
        await task.queue_frame(UserStoppedSpeakingFrame())
        await task.stop_when_done()
    assert [f.text for f in recorder.finals] == ["1600 samples"]
    assert all(not f.text.startswith("0") for f in recorder.interims)


async def test_without_a_start_time_the_history_is_the_pre_roll() -> None:
    params = STTParams(pre_roll_ms=200)
    frames = [*audio(3000, 0), UserStartedSpeakingFrame(), UserStoppedSpeakingFrame()]
    recorder = await run_unpaced(CountingSTT(params), frames)
    [final] = recorder.finals
    assert samples_of(final) == (200 + 1000) * RATE // 1000  # pre-roll + 1 s of VAD delay


async def test_other_rates_and_stereo_are_converted_to_16k_mono() -> None:
    frames = [UserStartedSpeakingFrame(), *audio(1000, 0, rate=48000, channels=2)]
    frames.append(UserStoppedSpeakingFrame())
    recorder = await run_unpaced(CountingSTT(), frames)
    [final] = recorder.finals
    assert abs(samples_of(final) - RATE) < 0.03 * RATE  # the resampler holds back ~20 ms


async def test_one_final_per_turn_even_when_the_decoder_is_busy() -> None:
    """The second turn starts and ends while the first one's final is still decoding."""
    frames = [
        UserStartedSpeakingFrame(),
        *audio(200, 0),
        UserStoppedSpeakingFrame(),
        UserStartedSpeakingFrame(),
        *audio(400, 200),
        UserStoppedSpeakingFrame(),
        UserStoppedSpeakingFrame(),  # a stop without a start: passed on, no final
    ]
    recorder = await run_unpaced(CountingSTT(final_delay_s=0.2), frames)
    assert [f.text for f in recorder.finals] == ["3200 samples", "6400 samples"]
    assert len(recorder.of(UserStoppedSpeakingFrame)) == 3
    assert len(recorder.metrics("stt_final_s")) == 2
    assert all(0 < cpu < 0.2 for cpu in recorder.metrics("cpu_s"))  # sleeping is not CPU


async def test_a_resumed_pause_gives_one_final_for_the_whole_turn() -> None:
    """A pause closes the turn tentatively; a resume continues it in a new turn that
    holds everything, and the paused turn's final is never pushed."""
    frames = [
        UserStartedSpeakingFrame(),
        *audio(400, 0),
        UserPausedSpeakingFrame(),
        *audio(100, 400),
        UserResumedSpeakingFrame(),
        *audio(300, 500),
        UserPausedSpeakingFrame(),
        *audio(200, 800),
        UserStoppedSpeakingFrame(),  # confirms the last pause: nothing more to transcribe
    ]
    recorder = await run_unpaced(CountingSTT(final_delay_s=0.05), frames)
    # 400 + 100 + 300 ms: the whole turn up to the last pause; the tail is not in it.
    assert [samples_of(f) for f in recorder.finals] == [800 * 16]
    assert len(recorder.metrics("stt_final_s")) == 1


async def test_a_resume_after_the_pause_final_was_pushed_still_continues_the_turn() -> None:
    recorder = Recorder()
    task = PipelineTask(Pipeline([CountingSTT(), recorder]))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await task.queue_frames([UserStartedSpeakingFrame(), *audio(400, 0)])
        await task.queue_frame(UserPausedSpeakingFrame())
        with anyio.fail_after(10):
            while not recorder.finals:  # the tentative final is out before the resume
                await anyio.sleep(0.005)
        await task.queue_frames(
            [
                *audio(100, 400),
                UserResumedSpeakingFrame(),
                *audio(300, 500),
                UserPausedSpeakingFrame(),
                UserStoppedSpeakingFrame(),
            ]
        )
        await task.stop_when_done()
    assert [samples_of(f) for f in recorder.finals] == [400 * 16, 800 * 16]


async def test_a_pause_without_resume_is_the_end_of_the_turn() -> None:
    frames = [
        UserStartedSpeakingFrame(),
        *audio(400, 0),
        UserPausedSpeakingFrame(),
        *audio(200, 400),
        UserStoppedSpeakingFrame(),
    ]
    recorder = await run_unpaced(CountingSTT(), frames)
    assert [samples_of(f) for f in recorder.finals] == [400 * 16]


async def test_the_end_frame_closes_an_open_turn_and_waits_for_its_final() -> None:
    recorder = await run_unpaced(CountingSTT(), [UserStartedSpeakingFrame(), *audio(100, 0)])
    kinds = [type(f) for _, f in recorder.seen]
    assert kinds.index(TranscriptionFrame) < kinds.index(EndFrame)
    assert recorder.finals[0].text == "1600 samples"


async def test_an_interruption_does_not_cancel_the_transcription() -> None:
    recorder = Recorder()
    task = PipelineTask(Pipeline([CountingSTT(final_delay_s=0.1), recorder]))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await task.queue_frames([UserStartedSpeakingFrame(), *audio(100, 0)])
        await task.queue_frame(InterruptionFrame())
        await task.queue_frames([*audio(100, 100), UserStoppedSpeakingFrame()])
        await task.stop_when_done()
    assert [f.text for f in recorder.finals] == ["3200 samples"]


async def run_failing(stt: CountingSTT) -> tuple[PipelineTask, Recorder, EndReason]:
    recorder = Recorder()
    task = PipelineTask(Pipeline([stt, recorder]))
    await task.queue_frames([UserStartedSpeakingFrame(), *audio(100, 0)])
    await task.queue_frame(UserStoppedSpeakingFrame())
    await task.stop_when_done()
    with anyio.fail_after(10):
        reason = await task.run()
    return task, recorder, reason


async def test_a_failed_turn_is_reported_and_decoded_again_after_a_restart() -> None:
    stt = CountingSTT(fail=1)
    task, recorder, reason = await run_failing(stt)
    assert reason is EndReason.ENDED
    assert [f.text for f in recorder.finals] == ["1600 samples"]  # all the audio, read anew
    [error] = task.errors
    assert error.processor == stt.name and not error.fatal
    assert "failed to transcribe turn 1" in error.message and "the decoder broke" in error.message
    assert stt.restarts == 1 and stt.loads == 2


async def test_a_decoder_that_keeps_failing_ends_the_task_with_a_fatal_error() -> None:
    stt = CountingSTT(STTParams(max_failures_in_a_row=2), fail=100)
    task, recorder, reason = await run_failing(stt)
    assert reason is EndReason.ERROR
    assert [e.fatal for e in task.errors] == [False, False, True]
    assert "3 failures in a row" in task.errors[-1].message
    assert stt.restarts == 2
    assert [f.text for f in recorder.finals] in ([], [""])  # the cancel may come first


async def test_a_restart_that_fails_ends_the_task() -> None:
    stt = CountingSTT(fail=1, restart_error=True)
    task, _, reason = await run_failing(stt)
    assert reason is EndReason.ERROR
    assert [e.fatal for e in task.errors] == [False, True]
    assert "could not restart its backend" in task.errors[1].message
    assert "/nowhere" in task.errors[1].message


async def test_with_no_failures_allowed_the_first_one_is_fatal() -> None:
    stt = CountingSTT(STTParams(max_failures_in_a_row=0), fail=1)
    task, _, reason = await run_failing(stt)
    assert reason is EndReason.ERROR
    [error] = task.errors
    assert error.fatal and stt.restarts == 0


async def test_a_model_that_cannot_load_stops_the_task_with_a_clear_error() -> None:
    task = PipelineTask(Pipeline([CountingSTT(load_error=True), Recorder()]))
    with anyio.fail_after(10):
        assert await task.run() is EndReason.ERROR
    assert "could not load its model" in task.errors[0].message
    assert "/nowhere" in task.errors[0].message


def test_audio_chunks_are_20_ms() -> None:
    assert audio(20, 0)[0].num_samples * 2 == CHUNK


def test_params_forbid_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        STTParams(preroll_ms=100)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        STTParams(pre_roll_ms=-1)
