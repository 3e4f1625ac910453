"""The turn processor in a running pipeline, fed Piper speech as input audio frames."""

from __future__ import annotations

import time
from typing import Any

import anyio
import numpy as np
import pytest

from framework import Direction, Pipeline, PipelineTask, TaskParams
from framework.audio import float32_to_pcm16
from framework.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioFrame,
    InterruptionFrame,
    MetricsFrame,
    SettingsUpdateFrame,
    StartFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.vad import TurnParams, TurnProcessor
from tests.framework.helpers import Injector, Recorder, wait_until
from tests.speech import Utterance, make_noise

pytestmark = [pytest.mark.anyio, pytest.mark.models]

DOWN, UP = Direction.DOWNSTREAM, Direction.UPSTREAM
RATE = 16000
CHUNK = RATE // 50 * 2  # 20 ms of PCM16
TOLERANCE_NS = 100_000_000  # about three Silero windows


def _silence(seconds: float) -> bytes:
    return bytes(round(seconds * RATE) * 2)


class Harness:
    """head -> turn -> tail in a task; audio is fed as 20 ms frames on a synthetic clock.

    The VAD mechanics are tested with ``end_of_turn="silence"`` (``stop_ms`` ends a
    turn) unless the params say otherwise; test_vad_smart_turn.py covers the model.
    """

    def __init__(self, params: TurnParams | None = None, **task: object) -> None:
        self.head = Recorder("head")
        if params is None or "end_of_turn" not in params.model_fields_set:
            params = (params or TurnParams()).model_copy(update={"end_of_turn": "silence"})
        self.turn = TurnProcessor(params)
        self.tail = Injector(name="tail")
        self.sink = Recorder("sink")
        self.task = PipelineTask(
            Pipeline([self.head, self.turn, self.tail, self.sink]),
            TaskParams(**task),  # type: ignore[arg-type]
        )
        self.origin_ns = time.monotonic_ns()
        self.fed = 0  # samples

    def at(self, seconds: float) -> int:
        """The clock time of stream offset ``seconds``."""
        return self.origin_ns + round(seconds * 1e9)

    async def feed(self, pcm: bytes, pace: bool = False) -> None:
        for i in range(0, len(pcm), CHUNK):
            frame = InputAudioFrame(
                audio=pcm[i : i + CHUNK],
                sample_rate=RATE,
                timestamp_ns=self.at(self.fed / RATE),
            )
            self.fed += len(frame.audio) // 2
            if pace:  # a live input delivers a frame once its last sample was heard
                heard_ns = self.at(self.fed / RATE)
                await anyio.sleep(max(0.0, (heard_ns - time.monotonic_ns()) / 1e9))
            await self.task.queue_frame(frame)

    async def bot(self, speaking: bool) -> None:
        frame = BotStartedSpeakingFrame() if speaking else BotStoppedSpeakingFrame()
        await self.tail.inject(frame, UP)

    def down(self, kind: type[Frame]) -> list[Any]:
        return self.sink.frames(DOWN, kind)

    def up(self, kind: type[Frame]) -> list[Any]:
        return self.head.frames(UP, kind)


async def _run(harness: Harness, script, errors: int = 0) -> None:  # type: ignore[no-untyped-def]
    async with anyio.create_task_group() as tg:
        tg.start_soon(harness.task.run)
        with anyio.fail_after(30):
            # on_start loads the models in threads; the StartFrame goes on once it is done.
            while not harness.task.running or not harness.sink.frames(DOWN, StartFrame):
                await anyio.sleep(0.005)
            await script(harness)
            await harness.task.stop_when_done()
    assert len(harness.task.errors) == errors, harness.task.errors


@pytest.mark.parametrize("vad", ["silero", "webrtc"])
async def test_one_utterance_gives_one_turn_at_the_true_times(
    vad: str, speech: list[Utterance]
) -> None:
    u = speech[0]
    h = Harness(TurnParams(vad=vad))  # type: ignore[arg-type]
    lead = 0.8

    async def script(h: Harness) -> None:
        await h.feed(_silence(lead) + u.pcm + _silence(1.0))

    await _run(h, script)
    started = h.down(UserStartedSpeakingFrame)
    stopped = h.down(UserStoppedSpeakingFrame)
    assert len(started) == len(stopped) == 1
    assert h.up(UserStartedSpeakingFrame) == started
    assert h.up(UserStoppedSpeakingFrame) == stopped
    assert abs(started[0].speech_start_ns - h.at(lead + u.start_s)) < TOLERANCE_NS
    assert abs(stopped[0].speech_end_ns - h.at(lead + u.end_s)) < TOLERANCE_NS
    # Audio passes on unchanged, every frame.
    audio = h.down(InputAudioFrame)
    assert b"".join(f.audio for f in audio) == _silence(lead) + u.pcm + _silence(1.0)
    # Default: a user start interrupts (to cancel any reply in preparation).
    assert len(h.down(InterruptionFrame)) == len(h.up(InterruptionFrame)) == 1
    samples = [s for m in h.down(MetricsFrame) for s in m.samples if s.name == "end_of_turn_s"]
    assert len(samples) == 1
    wait = samples[0].extra["audio_wait_s"]
    assert 0.2 <= wait <= 0.2 + 0.04  # stop_ms plus at most one window
    assert h.turn.analyzer is not None
    assert h.turn.analyzer.name == vad


async def test_settings_update_changes_the_stop_wait(speech: list[Utterance]) -> None:
    u = speech[0]
    h = Harness()

    async def script(h: Harness) -> None:
        await h.task.queue_frame(SettingsUpdateFrame(settings={"stop_ms": 400, "other": 1}))
        await h.task.queue_frame(
            SettingsUpdateFrame(target=h.turn.name, settings={"vad": "webrtc"})
        )
        # Control frames pass the task's queue; audio (system frames) would overtake them.
        await wait_until(lambda: len(h.task.errors) == 1)
        await h.feed(u.pcm + _silence(0.6))

    await _run(h, script, errors=1)
    assert h.turn.params.stop_ms == 400
    assert h.turn.params.vad == "silero"
    samples = [s for m in h.down(MetricsFrame) for s in m.samples if s.name == "end_of_turn_s"]
    assert len(samples) == 1
    assert samples[0].extra["audio_wait_s"] >= 0.4


async def test_noisy_silence_makes_no_turn() -> None:
    noise = make_noise("white", -30.0, 2.0, RATE, seed=11) + make_noise(
        "pink-4hz", -30.0, 2.0, RATE, seed=12
    )
    h = Harness()

    async def script(h: Harness) -> None:
        await h.feed(float32_to_pcm16(noise))

    await _run(h, script)
    assert h.down(UserStartedSpeakingFrame) == []
    assert h.down(InterruptionFrame) == []


async def test_user_speech_while_bot_speaks_interrupts_both_ways(speech: list[Utterance]) -> None:
    u = speech[1]
    h = Harness(TurnParams(interrupt_on_start=False))

    async def script(h: Harness) -> None:
        await h.bot(True)
        await h.feed(_silence(0.5) + u.pcm + _silence(0.5))

    await _run(h, script)
    assert len(h.up(InterruptionFrame)) == 1
    assert len(h.down(InterruptionFrame)) == 1
    started = h.down(UserStartedSpeakingFrame)
    assert len(started) == 1
    assert abs(started[0].speech_start_ns - h.at(0.5 + u.start_s)) < TOLERANCE_NS
    # The interruption goes out before the start frame.
    order = [
        f for f, d in h.sink.seen if isinstance(f, InterruptionFrame | UserStartedSpeakingFrame)
    ]
    assert isinstance(order[0], InterruptionFrame)


async def test_click_while_bot_speaks_does_not_interrupt(speech: list[Utterance]) -> None:
    rng = np.random.default_rng(3)
    click = float32_to_pcm16(rng.uniform(-0.5, 0.5, round(0.06 * RATE)))
    # A speech fragment shorter than min_interruption_ms (but longer than start_ms).
    u = speech[0]
    a = round((u.start_s) * RATE) * 2
    fragment = u.pcm[a : a + round(0.25 * RATE) * 2]
    h = Harness()

    async def script(h: Harness) -> None:
        await h.bot(True)
        await h.feed(_silence(0.5) + click + _silence(0.5) + fragment + _silence(0.6))

    await _run(h, script)
    assert h.down(InterruptionFrame) == []
    assert h.up(InterruptionFrame) == []
    assert h.down(UserStartedSpeakingFrame) == []


async def test_with_barge_in_decided_later_a_short_word_over_the_bot_starts_a_turn(
    speech: list[Utterance],
) -> None:
    """barge_in_start_ms: the same 0.25 s fragment starts a turn, and interrupts nothing."""
    u = speech[0]
    a = round((u.start_s) * RATE) * 2
    fragment = u.pcm[a : a + round(0.25 * RATE) * 2]
    h = Harness()
    h.turn.barge_in_start_ms = 96.0

    async def script(h: Harness) -> None:
        await h.bot(True)
        await h.feed(_silence(0.5) + fragment + _silence(0.6))

    await _run(h, script)
    assert h.down(InterruptionFrame) == []
    assert h.up(InterruptionFrame) == []
    (started,) = h.down(UserStartedSpeakingFrame)
    assert abs(started.speech_start_ns - h.at(0.5)) < TOLERANCE_NS
    assert len(h.down(UserStoppedSpeakingFrame)) == 1


def test_barge_in_start_ms_is_checked() -> None:
    with pytest.raises(ValueError, match="barge_in_start_ms"):
        TurnProcessor(barge_in_start_ms=0)


async def test_no_interruption_when_the_task_disallows_it(speech: list[Utterance]) -> None:
    u = speech[0]
    h = Harness(allow_interruptions=False)

    async def script(h: Harness) -> None:
        await h.bot(True)
        await h.feed(_silence(0.3) + u.pcm + _silence(0.5))

    await _run(h, script)
    assert h.down(InterruptionFrame) == []
    assert len(h.down(UserStartedSpeakingFrame)) == 1
    assert len(h.down(UserStoppedSpeakingFrame)) == 1


async def test_bot_starting_during_a_user_turn_is_interrupted_if_the_user_goes_on(
    speech: list[Utterance],
) -> None:
    u = speech[1]
    cut = round((u.start_s + 0.5) * RATE) * 2
    h = Harness(TurnParams(interrupt_on_start=False))

    async def script(h: Harness) -> None:
        await h.feed(_silence(0.3) + u.pcm[:cut])
        assert h.turn.user_speaking
        assert h.down(InterruptionFrame) == []
        await h.bot(True)
        await h.feed(u.pcm[cut:] + _silence(0.5))

    await _run(h, script)
    assert len(h.down(InterruptionFrame)) == 1
    assert len(h.down(UserStartedSpeakingFrame)) == 1


async def test_real_time_feed_reports_end_of_turn(speech: list[Utterance]) -> None:
    """Paced like a live microphone: end_of_turn_s is the real wait after the speech."""
    u = speech[0]
    h = Harness()
    spent: list[float] = []

    async def script(h: Harness) -> None:
        h.origin_ns = time.monotonic_ns()
        t0 = time.thread_time()
        await h.feed(_silence(0.2) + u.pcm + _silence(0.4), pace=True)
        spent.append(time.thread_time() - t0)

    await _run(h, script)
    samples = [s for m in h.down(MetricsFrame) for s in m.samples if s.name == "end_of_turn_s"]
    assert len(samples) == 1
    # Reported, not asserted tightly: about stop_ms plus a window.
    print(f"end_of_turn_s={samples[0].value:.3f} event-loop CPU for the feed={spent[0]:.3f} s")
    assert 0.2 <= samples[0].value < 1.0
