"""The OpenAI cascade backends when the server fails: 500s and connections cut mid-answer.

The servers are real and local: the audio endpoints of ``audio_server.py`` (which
can answer 500 or drop a connection) and llama.cpp's OpenAI-compatible server
behind :class:`~tests.processors.openai.fault_proxy.FaultProxy` (which answers 500
in its place or cuts its streamed answer). The SDK retries a failed request
``max_retries`` times (1 here) before the stage sees the failure, so each fault
is planned one time more than that when it should reach the stage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from framework import EndReason, Frame
from framework.frames import InputAudioFrame, UserStartedSpeakingFrame, UserStoppedSpeakingFrame
from processors.llm.openai import OpenAILLM
from processors.stt.openai import OpenAISTT, OpenAISTTParams
from processors.tts.openai import OpenAITTS, OpenAITTSParams
from tests.processors.fault_helpers import converse, errors_of, run_clean, run_task, wait_for
from tests.processors.llm.test_llm_faults import Chat
from tests.processors.openai.audio_server import AudioServer
from tests.processors.openai.fault_proxy import FaultProxy
from tests.processors.openai.test_llm_openai import params as llm_params
from tests.processors.stt.test_stt_faults import STTHarness
from tests.processors.tts.test_tts_faults import FIRST, SECOND, Speaker, check_skipped_piece

QUESTIONS = ("Could you book a table for two at seven tonight?", "What is the weather in Paris?")


@pytest.fixture(scope="module")
def questions() -> list[bytes]:
    from tests.speech import synthesize_speech

    return list(synthesize_speech(list(QUESTIONS)))


def turn(pcm: bytes, t0_ns: int) -> list[Frame]:
    frames: list[Frame] = [UserStartedSpeakingFrame()]
    for n, start in enumerate(range(0, len(pcm), 640)):
        ts = t0_ns + n * 20_000_000
        frames.append(
            InputAudioFrame(audio=pcm[start : start + 640], sample_rate=16000, timestamp_ns=ts)
        )
    return [*frames, UserStoppedSpeakingFrame()]


def test_stt_requests_dropped_or_failing_are_made_again_and_the_turns_kept(
    audio_server: AudioServer, questions: list[bytes]
) -> None:
    async def drive(c: STTHarness) -> None:
        audio_server.fail_next("transcriptions", "drop", times=2)
        await c.turn(turn(questions[0], 0), 1)
        audio_server.fail_next("transcriptions", "500", times=2)
        await c.turn(turn(questions[1], 10**10), 2)
        await c.task.stop_when_done()

    settings = OpenAISTTParams(model="whisper-1", base_url=audio_server.url)
    c, reason = converse(lambda: STTHarness(OpenAISTT(settings, name="stt")), drive)
    assert reason is EndReason.ENDED
    errors = errors_of(c.task, "stt")
    assert errors == c.task.errors and [e.fatal for e in errors] == [False, False]
    assert "failed to transcribe turn 1" in errors[0].message
    assert "APIConnectionError" in errors[0].message
    assert "failed to transcribe turn 2" in errors[1].message and "HTTP 500" in errors[1].message
    first, second = (text.lower() for text in c.finals)
    print(f"\nafter the faults: {first!r}, {second!r}")
    assert "table" in first and "seven" in first and "paris" in second
    assert c.stt.restarts == 2 and c.stt.failures.in_a_row == 0


def through_proxy(
    llama_server: str, drive: Callable[[Chat, FaultProxy], Awaitable[None]], **settings: Any
) -> tuple[Chat, EndReason, FaultProxy]:
    """Run ``drive`` on an OpenAILLM talking to llama.cpp's server through a fault proxy."""

    async def scenario() -> tuple[Chat, EndReason, FaultProxy]:
        proxy = FaultProxy(llama_server)
        async with anyio.create_task_group() as tg:
            await tg.start(proxy.serve)
            chat = Chat(OpenAILLM(llm_params(proxy.url, **settings), name="llm"))
            reason = await run_task(chat, lambda c: drive(c, proxy))
            tg.cancel_scope.cancel()
        return chat, reason, proxy

    return run_clean(scenario)


def test_llm_streams_cut_or_failing_end_their_reply_and_the_next_is_answered(
    llama_server: str,
) -> None:
    async def drive(chat: Chat, proxy: FaultProxy) -> None:
        proxy.fail_next("cut")
        await chat.reply_to("Tell me a long story about a dragon.", 1)
        proxy.fail_next("500", times=2)
        await chat.reply_to("Say hello.", 2)
        await chat.reply_to("What colour is the sky?", 3)
        await chat.task.stop_when_done()

    chat, reason, proxy = through_proxy(llama_server, drive, max_tokens=48)
    assert reason is EndReason.ENDED
    errors = errors_of(chat.task, "llm")
    assert errors == chat.task.errors and [e.fatal for e in errors] == [False, False]
    assert "failed after" in errors[0].message
    assert "HTTP 500" in errors[1].message and "(injected)" in errors[1].message
    cut, failed, answered = chat.replies()
    print(f"\ncut: {cut!r}; then {failed!r}; then {answered!r}")
    assert failed == "" and len(answered.split()) >= 3
    assert proxy.requests == 4  # cut, 500, its retry (500), the last reply


def test_llm_server_that_keeps_failing_ends_the_conversation(llama_server: str) -> None:
    async def drive(chat: Chat, proxy: FaultProxy) -> None:
        proxy.fail_next("500", times=100)
        await chat.reply_to("Hello?", 1)
        await wait_for(lambda: chat.task.finished, 60)

    chat, reason, _ = through_proxy(llama_server, drive, max_retries=0, max_failures_in_a_row=0)
    assert reason is EndReason.ERROR
    [error] = errors_of(chat.task, "llm")
    assert error.fatal and "HTTP 500" in error.message and "giving up" in error.message


def openai_tts(audio_server: AudioServer, **settings: Any) -> Speaker:
    params = OpenAITTSParams(model="tts-1", voice="alloy", base_url=audio_server.url, **settings)
    return Speaker(OpenAITTS(params, name="tts"))


def test_tts_stream_cut_mid_piece_skips_that_piece_only(audio_server: AudioServer) -> None:
    async def drive(speaker: Speaker) -> None:
        audio_server.fail_next("speech", "drop")
        await speaker.say(FIRST, 1)
        await speaker.say(SECOND, 2)
        await speaker.task.stop_when_done()

    speaker, reason = converse(lambda: openai_tts(audio_server), drive)
    assert reason is EndReason.ENDED
    check_skipped_piece(speaker)  # no partial audio of the cut piece was played
    assert "RemoteProtocolError" in speaker.task.errors[0].message


def test_tts_server_errors_end_the_conversation_when_no_failure_is_allowed(
    audio_server: AudioServer,
) -> None:
    async def drive(speaker: Speaker) -> None:
        audio_server.fail_next("speech", "500", times=2)
        await speaker.say(FIRST, 1)
        await wait_for(lambda: speaker.task.finished, 60)

    speaker, reason = converse(lambda: openai_tts(audio_server, max_failures_in_a_row=0), drive)
    assert reason is EndReason.ERROR
    [error] = errors_of(speaker.task, "tts")
    assert error.fatal and "HTTP 500" in error.message
