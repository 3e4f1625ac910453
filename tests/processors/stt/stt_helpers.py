"""Helpers for the STT tests: spoken turns as frames, a recorder, a ticker and WER."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import numpy as np

from framework import Direction, Frame, Pipeline, PipelineTask, Processor
from framework.frames import (
    InputAudioFrame,
    InterimTranscriptionFrame,
    MetricsFrame,
    StartFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)

RATE = 16000
CHUNK = 640  # 20 ms of PCM16 at 16 kHz
MS = 1_000_000

F = TypeVar("F", bound=Frame)


@dataclass(frozen=True)
class Utterance:
    """Spoken text as 16 kHz PCM16, with the sample bounds of its speech."""

    text: str
    pcm: bytes
    speech: tuple[int, int] = field(init=False)

    def __post_init__(self) -> None:
        x = np.frombuffer(self.pcm, dtype="<i2").astype(np.float32)
        levels = np.sqrt((x[: len(x) // 320 * 320].reshape(-1, 320) ** 2).mean(axis=1))
        loud = np.nonzero(levels > 300)[0]
        object.__setattr__(self, "speech", (int(loud[0]) * 320, (int(loud[-1]) + 1) * 320))


class Recorder(Processor):
    """Records every downstream frame with its arrival time, then passes it on."""

    def __init__(self) -> None:
        super().__init__(name="recorder")
        self.seen: list[tuple[int, Frame]] = []

    async def process_frame(self, frame: Frame, direction: Direction) -> None:
        if direction is Direction.DOWNSTREAM:
            self.seen.append((time.monotonic_ns(), frame))
        await self.push(frame, direction)

    def of(self, kind: type[F]) -> list[F]:
        return [f for _, f in self.seen if isinstance(f, kind)]

    @property
    def finals(self) -> list[TranscriptionFrame]:
        return self.of(TranscriptionFrame)

    @property
    def interims(self) -> list[InterimTranscriptionFrame]:
        return self.of(InterimTranscriptionFrame)

    def metrics(self, name: str) -> list[float]:
        return [s.value for m in self.of(MetricsFrame) for s in m.samples if s.name == name]


def turn_frames(
    pcm: bytes,
    t0_ns: int,
    *,
    speech: tuple[int, int] | None = None,
    lead_ms: int = 400,
    start_ms: int = 200,
    stop_ms: int = 200,
    tail_ms: int = 0,
) -> tuple[list[Frame], int]:
    """Frames of one turn as a VAD would frame it, stamped from ``t0_ns``.

    ``lead_ms`` of silence, then ``pcm``; ``UserStartedSpeakingFrame`` goes after
    ``start_ms`` of speech, ``UserStoppedSpeakingFrame`` after ``stop_ms`` of
    silence past the end of speech, then ``tail_ms`` more silence. Returns the
    frames and the time just after the last one.
    """
    lead = lead_ms * RATE // 1000
    s0, s1 = speech if speech is not None else (0, len(pcm) // 2)
    s0, s1 = s0 + lead, s1 + lead
    audio = bytes(2 * lead) + pcm
    stop_at = s1 + stop_ms * RATE // 1000
    audio += bytes(max(0, 2 * stop_at - len(audio)) + tail_ms * 32)
    frames: list[Frame] = []
    started = stopped = False
    for k in range(0, len(audio), CHUNK):
        ts = t0_ns + k // 32 * MS
        frames.append(
            InputAudioFrame(audio=audio[k : k + CHUNK], sample_rate=RATE, timestamp_ns=ts)
        )
        heard = (k + CHUNK) // 2
        if not started and heard >= s0 + start_ms * RATE // 1000:
            started = True
            frames.append(UserStartedSpeakingFrame(speech_start_ns=t0_ns + s0 * 62_500))
        if started and not stopped and heard >= stop_at:
            stopped = True
            frames.append(UserStoppedSpeakingFrame(speech_end_ns=t0_ns + s1 * 62_500))
    return frames, t0_ns + len(audio) // 32 * MS


def spoken_turns(utterances: Sequence[Utterance], **kwargs: int) -> list[Frame]:
    """Frames of several turns one after the other on one timeline."""
    frames: list[Frame] = []
    t = time.monotonic_ns()
    for u in utterances:
        more, t = turn_frames(u.pcm, t, speech=u.speech, **kwargs)
        frames += more
    return frames


async def run_unpaced(stt: Processor, frames: Sequence[Frame]) -> Recorder:
    """Push ``frames`` as fast as possible, end the task and return what came out."""
    recorder = Recorder()
    task = PipelineTask(Pipeline([stt, recorder]))
    await task.queue_frames(frames)
    await task.stop_when_done()
    with anyio.fail_after(60):
        await task.run()
    assert not task.errors, [e.message for e in task.errors]
    return recorder


@dataclass
class Paced:
    """What a real-time run saw: the recorder, when the stop frame went in, loop gaps."""

    recorder: Recorder
    stopped_at_ns: list[int]
    max_gap_s: float


async def run_paced(stt: Processor, frames: Sequence[Frame]) -> Paced:
    """Push frames at the pace of their timestamps while a 5 ms ticker watches the loop."""
    recorder = Recorder()
    task = PipelineTask(Pipeline([stt, recorder]))
    stopped_at: list[int] = []
    gaps: list[float] = []
    done = anyio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await anyio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        with anyio.fail_after(30):  # the start frame passes once the model has loaded
            while not recorder.of(StartFrame):
                await anyio.sleep(0.01)
        tg.start_soon(ticker)
        base = frames[0].timestamp_ns
        origin = time.monotonic_ns()
        for frame in frames:
            if isinstance(frame, InputAudioFrame):
                delay = (origin + frame.timestamp_ns - base - time.monotonic_ns()) / 1e9
                if delay > 0:
                    await anyio.sleep(delay)
            if isinstance(frame, UserStoppedSpeakingFrame):
                stopped_at.append(time.monotonic_ns())
            await task.queue_frame(frame)
        await task.stop_when_done()
        done.set()
    assert not task.errors, [e.message for e in task.errors]
    return Paced(recorder, stopped_at, max(gaps, default=0.0))


def words(text: str) -> list[str]:
    """Lowercase words without punctuation."""
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def wer(reference: str, hypothesis: str) -> tuple[int, int]:
    """Word edit distance and reference length."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[:], i
        for j, h in enumerate(hyp, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (r != h))
    return row[-1], len(ref)


def corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    """Word error rate over a set of utterances."""
    errors = total = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        e, n = wer(ref, hyp)
        errors, total = errors + e, total + n
    return errors / max(total, 1)
