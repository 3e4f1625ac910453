"""A live input transport resamples the user's audio with the low-delay filter by default."""

from __future__ import annotations

import anyio
import pytest

from framework.audio import sine_wave
from framework.frames import InputAudioFrame
from processors.transports.base import LiveInputTransport, LiveInputTransportParams
from tests.framework.helpers import wait_until
from tests.processors.transports.transport_helpers import Tap, run_task

pytestmark = pytest.mark.anyio

PIECE_MS = 10
FED_MS = 300


async def _held_back_ms(params: LiveInputTransportParams) -> float:
    """Feed 300 ms of 48 kHz audio in 10 ms pieces; how much of it was not pushed at 16 kHz."""
    transport = LiveInputTransport(params)
    tap = Tap(audio=True)
    pcm = sine_wave(440, 48000, FED_MS / 1000, amplitude=0.3)
    piece = 2 * 48 * PIECE_MS

    def pushed_ms() -> float:
        return sum(len(f.audio) for f in tap.frames(InputAudioFrame)) / 2 / 16

    async def during(task) -> None:  # type: ignore[no-untyped-def]
        await wait_until(lambda: transport.sample_rate == 16000)
        for at in range(0, len(pcm), piece):
            transport.feed(pcm[at : at + piece], 48000)
            await anyio.sleep(0.005)
        await anyio.sleep(0.2)  # the producer has pushed everything it could
        task_result.append(pushed_ms())
        await task.cancel("done")

    task_result: list[float] = []
    await run_task([transport, tap], during=during)
    assert all(f.sample_rate == 16000 for f in tap.frames(InputAudioFrame))
    return FED_MS - task_result[0]


async def test_the_users_audio_is_held_back_about_a_millisecond_by_default() -> None:
    params = LiveInputTransportParams(chunk_ms=1)
    assert params.listening_quality == "LD"
    held = await _held_back_ms(params)
    assert 0.0 <= held <= 1.0 + 2.5  # the filter's ~1.2 ms, and a chunk's worth


async def test_the_listening_quality_setting_is_the_resampler_used() -> None:
    held = await _held_back_ms(LiveInputTransportParams(chunk_ms=1, listening_quality="HQ"))
    # soxr's HQ filter passes its output on in blocks: at least its own delay is held.
    assert held > 3.5
    with pytest.raises(ValueError, match="listening_quality"):
        LiveInputTransportParams(listening_quality="best")  # type: ignore[arg-type]
