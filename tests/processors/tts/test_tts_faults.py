"""PiperTTS when synthesis fails: the piece is skipped, the reply and the conversation go on.

The fault is at the model boundary: the voice's ONNX Runtime session ``run``
raises. The voice is shared by the whole process, so the patch is undone at
the end of each test.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from framework import EndReason, Frame, Processor, TaskParams
from framework.frames import (
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    LLMTextFrame,
    OutputAudioFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from processors.tts.piper import PiperTTS, PiperTTSParams
from tests.processors.fault_helpers import Harness, converse, errors_of, failing_calls, wait_for

pytestmark = pytest.mark.models

FIRST = "The moon is far away from us. It goes around the earth once a month. Nobody lives there."
SECOND = "The sky is blue because air scatters blue light more than red light."


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z ]", " ", text.lower()).split()


class Speaker(Harness):
    """A TTS stage and a recorder in a task; replies fed as LLM frames."""

    def __init__(self, tts: Processor, params: TaskParams | None = None) -> None:
        super().__init__([tts], params)
        self.tts = tts

    def replies(self) -> list[tuple[list[str], float]]:
        """Per ended reply: the pieces spoken and the seconds of audio."""
        out: list[tuple[list[str], float]] = []
        pieces: list[str] = []
        seconds = 0.0
        for frame in self.sink.frames():
            if isinstance(frame, TTSTextFrame):
                pieces.append(frame.text)
            elif isinstance(frame, OutputAudioFrame):
                seconds += frame.duration_s
            elif isinstance(frame, LLMResponseEndFrame):
                out.append((pieces, seconds))
                pieces, seconds = [], 0.0
        return out

    async def say(self, text: str, n: int) -> None:
        """Feed a reply and wait until ``n`` replies have ended (or the task has)."""
        frames: list[Frame] = [LLMResponseStartFrame()]
        frames += [LLMTextFrame(text=w + " ") for w in text.split()]  # streamed word by word
        await self.task.queue_frames([*frames, LLMResponseEndFrame()])
        await wait_for(self.ended(n), 60)

    def session(self) -> Any:
        """The Piper voice's ONNX Runtime session."""
        return self.tts.voice.session  # type: ignore[attr-defined]


def check_skipped_piece(speaker: Speaker) -> None:
    """The first reply lost exactly its first piece, named in the error; the second is whole."""
    [error] = speaker.task.errors
    assert errors_of(speaker.task, "tts") == [error] and not error.fatal
    failed = re.search(r"failed to synthesise '([^']*)'", error.message)
    assert failed is not None, error.message
    (first, first_s), (second, second_s) = speaker.replies()
    print(f"\nskipped {failed[1]!r}; spoken {first}; then {second}")
    assert words(failed[1] + " " + " ".join(first)) == words(FIRST)
    assert words(" ".join(second)) == words(SECOND)
    assert first_s > 1.0 and second_s > 2.0
    assert len(speaker.of(TTSStoppedFrame)) == 2


def piper(params: TaskParams | None = None, **settings: object) -> Speaker:
    return Speaker(PiperTTS(PiperTTSParams.model_validate(settings), name="tts"), params)


def test_a_piece_that_fails_to_synthesise_is_skipped_and_the_conversation_goes_on() -> None:
    async def drive(speaker: Speaker) -> None:
        with failing_calls(speaker.session(), "run", error="ONNX Runtime run failed (injected)"):
            await speaker.say(FIRST, 1)
        await speaker.say(SECOND, 2)
        await speaker.task.stop_when_done()

    speaker, reason = converse(piper, drive)
    assert reason is EndReason.ENDED
    check_skipped_piece(speaker)
    assert "(injected)" in speaker.task.errors[0].message


def test_under_the_cancel_policy_a_synthesis_failure_ends_the_task_at_once() -> None:
    async def drive(speaker: Speaker) -> None:
        with failing_calls(speaker.session(), "run"):
            await speaker.say(FIRST, 1)
            await wait_for(lambda: speaker.task.finished, 30)

    speaker, reason = converse(lambda: piper(TaskParams(error_policy="cancel")), drive)
    assert reason is EndReason.ERROR
    [error] = errors_of(speaker.task, "tts")
    assert not error.fatal and "injected failure" in error.message


def test_a_voice_that_keeps_failing_ends_the_conversation() -> None:
    async def drive(speaker: Speaker) -> None:
        with failing_calls(speaker.session(), "run", times=1000):
            await speaker.say(FIRST, 1)
            await wait_for(lambda: speaker.task.finished, 30)

    speaker, reason = converse(lambda: piper(max_failures_in_a_row=2), drive)
    assert reason is EndReason.ERROR
    errors = errors_of(speaker.task, "tts")
    assert [e.fatal for e in errors] == [False, False, True]
    assert "3 failures in a row" in errors[-1].message
    assert speaker.of(OutputAudioFrame) == []
