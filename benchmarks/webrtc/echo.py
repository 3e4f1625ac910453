"""An echo pipeline: whatever the peer says comes straight back as the bot's audio.

No model runs, so what a session costs is the transport's own work: Opus
decoding and encoding, resampling both ways, the paced output and the events.
"""

from __future__ import annotations

from typing import Any

from framework import (
    Direction,
    Pipeline,
    PipelineRunner,
    PipelineTask,
    Processor,
    TaskParams,
    handles,
)
from framework.frames import InputAudioFrame, OutputAudioFrame

__all__ = ["EchoBot", "run_echo_session"]


class EchoBot(Processor):
    """Passes input audio on and sends the same audio back out as bot audio."""

    @handles(InputAudioFrame)
    async def _heard(self, frame: InputAudioFrame, direction: Direction) -> None:
        await self.push(frame, direction)
        echo = OutputAudioFrame(
            audio=frame.audio, sample_rate=frame.sample_rate, num_channels=frame.num_channels
        )
        await self.push(echo, Direction.DOWNSTREAM)


async def run_echo_session(transport: Any) -> None:
    """A ``run_session`` for the live server: the echo pipeline around ``transport``."""
    pipeline = Pipeline([transport.input(), EchoBot(name="echo"), transport.output()])
    task = PipelineTask(pipeline, TaskParams(name="echo"))
    await PipelineRunner(handle_signals=False).run(task)
