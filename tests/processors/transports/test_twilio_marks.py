"""Heard text from Twilio marks, exactly: a scripted reply over a real WebSocket, no models.

The server side is the WebSocket transport mounted on an aiohttp app on
127.0.0.1, around a pipeline whose bot speaks one 2-second piece of ten words
and is interrupted by the caller's voice. The caller (a Twilio peer) plays the
bot's audio 0.5 s late, as a phone network does, and barges in after hearing a
given amount. The context must keep the words the caller heard, counted from
the marks it echoed, not the words sent.
"""

from __future__ import annotations

import anyio
import pytest
from aiohttp import web

from framework import Direction, Pipeline, PipelineTask, Processor, handles
from framework.audio import rms, sine_wave
from framework.frames import (
    InputAudioFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    StartFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipelines.talk import _run_task
from processors.llm.context import AssistantContextAggregator, LLMContext
from processors.transports.websocket import WebSocketTransport
from tests.pipelines.talk_clients import TwilioPeer, connect
from tests.processors.transports.transport_helpers import tone_frames

pytestmark = pytest.mark.anyio
WORDS = "one two three four five six seven eight nine ten"
DELAY_S = 0.5


class ScriptedBot(Processor):
    """Says WORDS over 2 s of tone once started; the caller's voice interrupts it."""

    def __init__(self) -> None:
        super().__init__(name="bot")
        self.interrupted = False

    @handles(StartFrame)
    async def _start(self, frame: StartFrame, direction: Direction) -> None:
        await self.push(frame, direction)
        self.context.task_group.start_soon(self._speak)

    async def _speak(self) -> None:
        await anyio.sleep(0.3)
        await self.push(LLMResponseStartFrame())
        await self.push(TTSStartedFrame())
        await self.push(TTSTextFrame(text=WORDS))
        for frame in tone_frames(2.0, rate=24000, frame_ms=100):
            await self.push(frame)
        await self.push(TTSStoppedFrame())
        await self.push(LLMResponseEndFrame())

    @handles(InputAudioFrame)
    async def _heard(self, frame: InputAudioFrame, direction: Direction) -> None:
        if not self.interrupted and rms(frame.audio) > 0.05:
            self.interrupted = True
            await self.broadcast_interruption()


async def call(barge_after_s: float) -> tuple[str, TwilioPeer]:
    """One call; the caller speaks once it has heard ``barge_after_s`` of the reply."""
    contexts: list[LLMContext] = []

    async def run_session(transport: WebSocketTransport) -> None:
        context = LLMContext()
        contexts.append(context)
        stages = [transport.input(), ScriptedBot(), transport.output()]
        task = PipelineTask(Pipeline([*stages, AssistantContextAggregator(context)]))
        await _run_task(task)

    app = web.Application()
    params = WebSocketTransport.Params(serializer="twilio")
    WebSocketTransport.mount(app, params, run_session)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with connect(f"ws://127.0.0.1:{port}/twilio") as socket:
            peer = TwilioPeer(socket, playout_delay_s=DELAY_S)
            async with anyio.create_task_group() as tg:
                tg.start_soon(peer.run)
                await peer.start()
                with anyio.fail_after(20):
                    while peer.played_s < barge_after_s:
                        await peer.speak(bytes(640))  # 20 ms of silence
                    while not peer.cleared_at:
                        await peer.speak(sine_wave(300, 16000, 0.02, amplitude=0.3))
                    while contexts[0].messages == []:
                        await anyio.sleep(0.02)
                await peer.stop()
                tg.cancel_scope.cancel()
    finally:
        await runner.cleanup()
    [message] = contexts[0].messages
    assert message["role"] == "assistant"
    return message["content"], peer


async def test_a_barge_in_mid_piece_keeps_the_words_the_caller_heard_not_those_sent() -> None:
    kept, peer = await call(barge_after_s=1.0)
    heard_s, sent_s = peer.played_at_clear[0], peer.received_at_clear[0]
    assert sent_s - heard_s > DELAY_S / 2  # the caller lagged what was sent
    # Ten words over 2 s: five a second. Counted from what was sent, about
    # int(5 * sent_s) words would be kept; the marks bring it down to what was heard
    # (one 100 ms mark step and a 20 ms chunk of slack).
    words = kept.split()
    assert words == WORDS.split()[: len(words)]
    assert int(5 * (heard_s - 0.15)) <= len(words) <= int(5 * heard_s + 1e-6), (kept, heard_s)
    assert len(words) < int(5 * sent_s)


async def test_the_last_words_of_a_reply_wait_for_their_marks() -> None:
    # All 2 s are sent before the caller, half a second behind, barges in at 1.7 s.
    kept, peer = await call(barge_after_s=1.7)
    heard_s, sent_s = peer.played_at_clear[0], peer.received_at_clear[0]
    assert sent_s >= 1.95  # the whole piece had been sent
    words = kept.split()
    assert words == WORDS.split()[: len(words)]
    assert int(5 * (heard_s - 0.15)) <= len(words) < 10, (kept, heard_s)
