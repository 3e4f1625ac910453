"""Backends failing mid-turn: a killed PocketSphinx process, a Whisper pass that raises.

Each test runs a conversation in its own event loop (see
``tests/processors/fault_helpers.py``), breaks the real backend in the middle
of a turn, and checks what the policy promises: an error frame naming the
stage, the turn transcribed after a restart (or the task ended with a fatal
error), no hang, and no thread or child process left behind.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import anyio
import pytest

from framework import EndReason, Frame, Pipeline, PipelineTask, TaskParams
from framework.frames import (
    LLMResponseEndFrame,
    OutputAudioFrame,
    StartFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.stt import PocketSphinxSTT, STTProcessor, WhisperSTT
from processors.stt.pocketsphinx import PocketSphinxSTTParams
from tests.processors.fault_helpers import alive, errors_of, run_clean, run_task, wait_for

from .stt_helpers import Recorder, Utterance, corpus_wer, spoken_turns

pytestmark = pytest.mark.models


def split_turns(frames: list[Frame]) -> list[list[Frame]]:
    """Frames of consecutive turns, cut after each stop."""
    turns: list[list[Frame]] = [[]]
    for frame in frames:
        turns[-1].append(frame)
        if isinstance(frame, UserStoppedSpeakingFrame):
            turns.append([])
    return [t for t in turns if t]


def halves(turn: list[Frame]) -> tuple[list[Frame], list[Frame]]:
    """A turn's frames cut halfway between the start and the stop of speaking."""
    kinds = [type(f) for f in turn]
    mid = (kinds.index(UserStartedSpeakingFrame) + kinds.index(UserStoppedSpeakingFrame)) // 2
    return turn[:mid], turn[mid:]


def transcribed(recorder: Recorder, speech: list[Utterance], bound: float = 0.5) -> bool:
    """One final per turn, each with a word error rate of at most ``bound`` (none lost).

    PocketSphinx is weak on these sentences even without faults (WER ~0.2-0.4 per
    sentence, varying with how the audio is fed); a lost turn has a WER of 1.
    """
    finals = [f.text for f in recorder.finals]
    return len(finals) == len(speech) and all(
        corpus_wer([u.text], [text]) <= bound for u, text in zip(speech, finals, strict=True)
    )


class Conversation:
    """An STT stage and a recorder in a task; turns fed as fast as they can go."""

    def __init__(self, stt: STTProcessor, params: TaskParams | None = None) -> None:
        self.stt = stt
        self.recorder = Recorder()
        self.task = PipelineTask(Pipeline([stt, self.recorder]), params)

    async def started(self) -> None:
        await wait_for(lambda: self.recorder.of(StartFrame), 60)

    async def turn(self, frames: list[Frame], finals: int) -> None:
        """Feed a turn and wait for the ``finals``-th final transcript."""
        await self.task.queue_frames(frames)
        await wait_for(lambda: len(self.recorder.finals) >= finals, 60)


def test_a_killed_pocketsphinx_process_is_restarted_and_the_turn_kept(
    speech: list[Utterance],
) -> None:
    turns = split_turns(spoken_turns(speech[:2]))
    seen: dict[str, Any] = {}

    async def scenario() -> tuple[Conversation, EndReason]:
        c = Conversation(PocketSphinxSTT(name="stt"))

        async def drive() -> None:
            await c.started()
            pid = seen["pid"] = c.stt.worker_pid  # type: ignore[attr-defined]
            head, tail = halves(turns[0])
            await c.task.queue_frames(head)
            await wait_for(lambda: c.recorder.interims)  # the process is decoding the turn
            os.kill(pid, signal.SIGKILL)
            await c.turn(tail, 1)
            seen["new_pid"] = c.stt.worker_pid  # type: ignore[attr-defined]
            await c.turn(turns[1], 2)
            await c.task.stop_when_done()

        return c, await run_task(c.task, drive)

    c, reason = run_clean(scenario)
    assert reason is EndReason.ENDED
    [error] = c.task.errors
    assert errors_of(c.task, "stt") == [error] and not error.fatal
    assert "failed to transcribe turn 1" in error.message and "exited with code -9" in error.message
    assert c.stt.restarts == 1 and seen["new_pid"] != seen["pid"]
    assert not alive(seen["pid"]) and not alive(seen["new_pid"])
    finals = [f.text for f in c.recorder.finals]
    print(f"\nafter the kill: {finals}")
    assert transcribed(c.recorder, speech[:2])  # the killed turn kept


def test_a_pocketsphinx_process_killed_between_turns_is_found_by_the_next_turn(
    speech: list[Utterance],
) -> None:
    turns = split_turns(spoken_turns(speech[:2]))

    async def scenario() -> tuple[Conversation, EndReason]:
        c = Conversation(PocketSphinxSTT(name="stt"))

        async def drive() -> None:
            await c.started()
            await c.turn(turns[0], 1)
            os.kill(c.stt.worker_pid, signal.SIGKILL)  # type: ignore[attr-defined,arg-type]
            await c.turn(turns[1], 2)
            await c.task.stop_when_done()

        return c, await run_task(c.task, drive)

    c, reason = run_clean(scenario)
    assert reason is EndReason.ENDED
    [error] = errors_of(c.task, "stt")
    assert "failed to transcribe turn 2" in error.message and not error.fatal
    print(f"\nafter the kill: {[f.text for f in c.recorder.finals]}")
    assert c.stt.restarts == 1 and transcribed(c.recorder, speech[:2])


def test_a_pocketsphinx_process_that_keeps_dying_ends_the_conversation(
    speech: list[Utterance],
) -> None:
    """Every decoder process is killed once it is up: the stage gives up after two restarts."""
    turns = split_turns(spoken_turns(speech))
    killed: list[int] = []

    async def scenario() -> tuple[Conversation, EndReason]:
        stt = PocketSphinxSTT(PocketSphinxSTTParams(max_failures_in_a_row=2), name="stt")
        c = Conversation(stt)

        async def killer() -> None:
            while not c.task.finished:
                pid = stt.worker_pid
                if pid is not None and pid not in killed:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                await anyio.sleep(0.005)

        async def drive() -> None:
            await c.started()
            async with anyio.create_task_group() as tg:
                tg.start_soon(killer)
                for turn in turns:  # the task ends before the turns run out
                    if c.task.finished:
                        break
                    await c.task.queue_frames(turn)
                    await wait_for(lambda: c.task.finished or c.recorder.finals, 60)
                await wait_for(lambda: c.task.finished, 60)

        return c, await run_task(c.task, drive)

    c, reason = run_clean(scenario)
    assert reason is EndReason.ERROR
    errors = errors_of(c.task, "stt")
    assert errors == c.task.errors and len(errors) >= 3
    assert [e.fatal for e in errors[-3:]] == [False, False, True]
    assert "3 failures in a row" in errors[-1].message and "giving up" in errors[-1].message
    assert len(killed) >= 3 and not any(alive(pid) for pid in killed)


def test_pocketsphinx_killed_under_the_end_policy_ends_the_task_cleanly(
    speech: list[Utterance],
) -> None:
    """With ``error_policy="end"`` the first error ends the conversation, turn transcribed."""
    turns = split_turns(spoken_turns(speech[:1]))

    async def scenario() -> tuple[Conversation, EndReason]:
        c = Conversation(PocketSphinxSTT(name="stt"), TaskParams(error_policy="end"))

        async def drive() -> None:
            await c.started()
            head, tail = halves(turns[0])
            await c.task.queue_frames(head)
            await wait_for(lambda: c.recorder.interims)
            os.kill(c.stt.worker_pid, signal.SIGKILL)  # type: ignore[attr-defined,arg-type]
            await c.task.queue_frames(tail)
            await wait_for(lambda: c.task.finished, 60)

        return c, await run_task(c.task, drive)

    c, reason = run_clean(scenario)
    assert reason is EndReason.ENDED
    [error] = errors_of(c.task, "stt")
    assert not error.fatal and "exited with code -9" in error.message
    assert transcribed(c.recorder, speech[:1])  # the End frame waited for the retried turn


class _RaisingOnce:
    """Stands for the CTranslate2 model: its ``nth`` encode raises, everything else is real."""

    def __init__(self, model: Any, nth: int) -> None:
        self._model = model
        self._calls = 0
        self._nth = nth

    def encode(self, *args: Any, **kwargs: Any) -> Any:
        self._calls += 1
        if self._calls == self._nth:
            raise RuntimeError("CTranslate2 encode failed (injected)")
        return self._model.encode(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def test_a_whisper_pass_that_raises_is_recovered_and_the_next_turn_answered(
    speech: list[Utterance],
) -> None:
    turns = split_turns(spoken_turns(speech[:2]))

    async def scenario() -> tuple[Conversation, EndReason]:
        stt = WhisperSTT(name="stt")
        c = Conversation(stt)

        async def drive() -> None:
            await c.started()
            model = stt.model
            assert model is not None
            real = model.model
            model.model = _RaisingOnce(real, nth=1)  # the first pass of turn 1
            try:
                await c.turn(turns[0], 1)
            finally:
                model.model = real  # the model may be shared with other stages
            await c.turn(turns[1], 2)
            await c.task.stop_when_done()

        return c, await run_task(c.task, drive)

    c, reason = run_clean(scenario)
    assert reason is EndReason.ENDED
    [error] = errors_of(c.task, "stt")
    assert c.task.errors == [error] and not error.fatal
    assert "failed to transcribe turn 1" in error.message and "(injected)" in error.message
    assert c.stt.restarts == 1
    finals = [f.text for f in c.recorder.finals]
    print(f"\nafter the failed pass: {finals}")
    assert transcribed(c.recorder, speech[:2], bound=0.34)


def test_a_cascade_answers_through_a_killed_stt_process_and_a_failed_llm_reply(
    speech: list[Utterance],
) -> None:
    """Turn 1: the STT process is killed mid-turn; turn 2: llama.cpp fails mid-reply.

    Both are reported, and every turn gets a spoken answer (turn 2's ends where it failed).
    """
    from processors.llm.context import context_pair
    from processors.llm.llama_cpp import LlamaCppLLM
    from processors.tts.piper import PiperTTS
    from tests.processors.fault_helpers import failing_calls

    turns = split_turns(spoken_turns(speech[:3]))

    async def scenario() -> tuple[PipelineTask, Recorder, list[dict[str, Any]], EndReason]:
        user, assistant = context_pair("You are a helpful voice assistant. Answer in a sentence.")
        stt, llm, recorder = PocketSphinxSTT(name="stt"), LlamaCppLLM(name="llm"), Recorder()
        stages = [stt, user, llm, PiperTTS(name="tts"), recorder, assistant]
        task = PipelineTask(Pipeline(stages))

        async def answered(n: int) -> None:
            await wait_for(lambda: len(recorder.of(LLMResponseEndFrame)) >= n, 90)

        async def drive() -> None:
            await wait_for(lambda: recorder.of(StartFrame), 60)
            head, tail = halves(turns[0])
            await task.queue_frames(head)
            await wait_for(lambda: recorder.interims)
            os.kill(stt.worker_pid, signal.SIGKILL)  # type: ignore[arg-type]
            await task.queue_frames(tail)
            await answered(1)
            with failing_calls(llm.model._ctx, "decode", after=3, error="decode failed (injected)"):
                await task.queue_frames(turns[1])
                await answered(2)
            await task.queue_frames(turns[2])
            await answered(3)
            await task.stop_when_done()

        reason = await run_task(task, drive)
        return task, recorder, user.llm_context.snapshot(), reason

    task, recorder, context, reason = run_clean(scenario)
    assert reason is EndReason.ENDED
    assert [e.processor for e in task.errors] == ["stt", "llm"]
    assert not any(e.fatal for e in task.errors)
    assert "exited with code -9" in task.errors[0].message
    assert "(injected)" in task.errors[1].message
    said = [m["content"] for m in context if m["role"] == "user"]
    replies = [m["content"] for m in context if m["role"] == "assistant"]
    print(f"\nuser: {said}\nassistant: {replies}")
    assert len(said) == 3  # no turn lost
    assert all(corpus_wer([u.text], [t]) <= 0.5 for u, t in zip(speech[:3], said, strict=True))
    assert len(replies) == 3 and all(replies)  # each heard; the second cut short
    assert sum(f.duration_s for f in recorder.of(OutputAudioFrame)) > 3.0
