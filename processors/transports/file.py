"""A transport that hears a WAV file and records the conversation to a WAV file.

Both sides share one timeline: sample ``i`` of the input file is heard at
``origin_ns + i / rate``, and the output file puts each bot audio chunk at the
sample matching its play time (``play_ns - origin_ns``). With ``stereo`` the
user is on the left channel and the bot on the right, so the recording shows
exactly how the two overlapped::

    transport = FileTransport(FileTransport.Params(input_path="user.wav",
                                                   output_path="out.wav", stereo=True))
    pipeline = Pipeline([transport.input(), vad, stt, ..., tts, transport.output()])
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import anyio
import anyio.lowlevel
from pydantic import Field

from framework import Direction, Frame, handles
from framework.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndFrame,
    StartFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.transports.base import InputTransport, OutputTransportParams, sleep_until_ns
from processors.transports.output import OutputTransport

if TYPE_CHECKING:
    from framework.audio import WavAudio

__all__ = ["FileInputTransport", "FileOutputTransport", "FileTransport", "FileTransportParams"]

log = logging.getLogger("parley")
_SPEAKING_FRAMES = (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)


class FileTransportParams(OutputTransportParams):
    """Settings of a :class:`FileTransport`."""

    input_path: Path | None = Field(
        default=None, description="WAV (or any soundfile format) the user says; None: silence only."
    )
    output_path: Path | None = Field(default=None, description="Where to write the recording WAV.")
    stereo: bool = Field(default=False, description="Record the user left and the bot right.")
    end_after_s: float = Field(
        default=2.0,
        gt=0,
        description="After the input has ended, queue an End frame once the bot has been "
        "silent and no user turn has been in progress for this long.",
    )
    max_duration_s: float | None = Field(
        default=None,
        gt=0,
        description="Safety cap on the whole conversation from the first input sample; "
        "None means the input's length plus 60 s.",
    )
    realtime: bool = Field(
        default=True,
        description="Play the input file at real-time pace. False pushes the file's chunks "
        "as fast as possible (tests); their timestamps then run ahead of the clock, and "
        "the silence after the file is paced in real time from when the file ended.",
    )


@dataclass(slots=True)
class _Timeline:
    """What the input and output sides of one file transport share."""

    origin_ns: int | None = None
    audio: WavAudio | None = None
    in_rate: int = 0
    input_pcm: bytes = b""  # the file, mono at in_rate
    fed_samples: int = 0  # samples pushed so far, silence included
    input_end_ns: int | None = None
    bot_speaking: bool = False
    user_speaking: bool = False
    quiet_since_ns: int = 0

    def observe(self, frame: Frame) -> None:
        """Follow who speaks from a speaking frame."""
        if isinstance(frame, BotStartedSpeakingFrame | BotStoppedSpeakingFrame):
            self.set_bot(isinstance(frame, BotStartedSpeakingFrame))
        elif isinstance(frame, UserStartedSpeakingFrame):
            self.user_speaking = True
        elif isinstance(frame, UserStoppedSpeakingFrame):
            self.user_speaking = False
            self.quiet_since_ns = max(self.quiet_since_ns, time.monotonic_ns())

    def set_bot(self, speaking: bool) -> None:
        """Note that the bot started or stopped speaking."""
        self.bot_speaking = speaking
        if not speaking:
            self.quiet_since_ns = max(self.quiet_since_ns, time.monotonic_ns())


def _new_timeline(
    params: FileTransportParams, name: str, audio: WavAudio | None = None
) -> _Timeline:
    """Check the paths and read the input file (unless ``audio`` holds it already)."""
    timeline = _Timeline(audio=audio)
    if params.input_path is not None and audio is None:
        from framework.audio import read_wav

        path = params.input_path
        if not path.is_file():
            raise FileNotFoundError(
                f"{name}: input file {str(path)!r} not found; "
                "give an existing WAV as input_path, or None for silence"
            )
        timeline.audio = read_wav(path)
    out = params.output_path
    if out is not None and out.is_dir():
        raise IsADirectoryError(f"{name}: output_path {str(out)!r} is a folder; name a file")
    if out is not None and not out.resolve().parent.is_dir():
        raise FileNotFoundError(
            f"{name}: the folder of output_path {str(out)!r} does not exist; create it"
        )
    return timeline


class FileTransport:
    """A file-backed transport: :meth:`input` plays a WAV, :meth:`output` records one.

    The input file is read (and checked) here, so a missing or unreadable file
    fails at construction; ``audio`` gives the input already read from
    ``input_path`` instead. :attr:`origin_ns` is the shared timeline origin (None
    until the input has started).
    """

    Params: ClassVar[type[FileTransportParams]] = FileTransportParams

    def __init__(
        self,
        params: FileTransportParams | None = None,
        *,
        name: str | None = None,
        audio: WavAudio | None = None,
    ):
        """Create the transport; reads the input file if one is given."""
        self.params = params or self.Params()
        self.name = name or "file"
        self._timeline = _new_timeline(self.params, self.name, audio)
        self._input: FileInputTransport | None = None
        self._output: FileOutputTransport | None = None

    @property
    def origin_ns(self) -> int | None:
        """Monotonic time at which sample 0 of the input was heard."""
        return self._timeline.origin_ns

    @property
    def input_s(self) -> float:
        """Length of the input file in seconds (0 without one)."""
        audio = self._timeline.audio
        return audio.duration_s if audio is not None else 0.0

    @property
    def heard_s(self) -> float:
        """Seconds of input played so far, the silence after the file included."""
        tl = self._timeline
        return tl.fed_samples / tl.in_rate if tl.in_rate else 0.0

    @property
    def written(self) -> Path | None:
        """The output file if it has been written and is up to date, else None."""
        return self._output.written if self._output is not None else None

    def input(self) -> FileInputTransport:
        """The input processor (the same one on every call)."""
        if self._input is None:
            self._input = FileInputTransport(
                self.params, name=f"{self.name}.input", timeline=self._timeline
            )
        return self._input

    def output(self) -> FileOutputTransport:
        """The output processor (the same one on every call)."""
        if self._output is None:
            self._output = FileOutputTransport(
                self.params, name=f"{self.name}.output", timeline=self._timeline
            )
        return self._output


class FileInputTransport(InputTransport):
    """Plays the input file as 20 ms chunks at real-time pace, then silence until the end.

    A chunk is pushed once its last sample has been "heard" (as a microphone
    would), stamped with the time of its first sample. When the file is over it
    feeds silence until the conversation is over (see ``end_after_s`` and
    ``max_duration_s``) and then pushes an End frame downstream.
    """

    Params: ClassVar[type[FileTransportParams]] = FileTransportParams

    def __init__(
        self,
        params: FileTransportParams | None = None,
        *,
        name: str | None = None,
        timeline: _Timeline | None = None,
    ) -> None:
        """Create the input side; use :meth:`FileTransport.input` rather than this."""
        params = params or self.Params()
        super().__init__(params, name=name)
        self.file_params: FileTransportParams = params
        self._timeline = timeline or _new_timeline(params, self.name)

    @property
    def origin_ns(self) -> int | None:
        """Monotonic time at which sample 0 of the input was heard."""
        return self._timeline.origin_ns

    async def on_start(self, frame: StartFrame) -> None:
        """Convert the file to mono at the task's input rate."""
        await super().on_start(frame)
        tl = self._timeline
        tl.in_rate = self.sample_rate
        if tl.audio is not None:
            tl.input_pcm = await self.run_blocking(_to_mono_rate, tl.audio, self.sample_rate)

    @handles(*_SPEAKING_FRAMES)
    async def _speaking(self, frame: Frame, direction: Direction) -> None:
        self._timeline.observe(frame)
        await self.push(frame, direction)

    async def produce(self) -> None:
        """Push the file, then silence, on an absolute schedule; then an End frame."""
        tl, p = self._timeline, self.file_params
        rate, n = self.sample_rate, self.chunk_samples
        pcm, total = tl.input_pcm, len(tl.input_pcm) // 2
        origin = tl.origin_ns = time.monotonic_ns()
        self.report_event("input_started", origin, sample_rate=rate, duration_s=total / rate)
        cap_s = p.max_duration_s if p.max_duration_s is not None else total / rate + 60
        cap_ns, end_after_ns = origin + int(cap_s * 1e9), int(p.end_after_s * 1e9)
        silence = bytes(2 * n)
        anchor_ns, anchor_k, k = origin, 0, 0
        while True:
            now = time.monotonic_ns()
            if now >= cap_ns:
                log.warning("%s: max_duration_s (%.1f s) reached, ending", self.name, cap_s)
                break
            in_file = k < total
            if in_file:
                chunk = pcm[2 * k : 2 * (k + n)]
                chunk += bytes(2 * n - len(chunk))
            else:
                if tl.input_end_ns is None:
                    if p.realtime:
                        tl.input_end_ns = origin + total * 10**9 // rate
                    else:  # the file went by fast: pace the silence from now on
                        tl.input_end_ns = anchor_ns = now
                        anchor_k = k
                    self.report_event("input_ended", tl.input_end_ns)
                quiet = max(tl.input_end_ns, tl.quiet_since_ns)
                if not (tl.bot_speaking or tl.user_speaking) and now - quiet >= end_after_ns:
                    break
                chunk = silence
            if in_file and not p.realtime:
                await anyio.lowlevel.checkpoint()
            else:
                await sleep_until_ns(anchor_ns + (k + n - anchor_k) * 10**9 // rate)
            await self.push_audio(chunk, anchor_ns + (k - anchor_k) * 10**9 // rate)
            k += n
            tl.fed_samples = k
        await self.push(EndFrame(reason="input finished"))


class FileOutputTransport(OutputTransport):
    """Records bot audio on the input's timeline and writes the WAV when the task ends.

    The file is written when the End frame has drained the audio and again at
    cleanup if anything changed (so a cancelled task also leaves a file). It holds
    the conversation up to where it stopped: the input heard so far, and the bot
    audio played by then. :attr:`written` tells whether the last write succeeded.
    """

    Params: ClassVar[type[FileTransportParams]] = FileTransportParams

    def __init__(
        self,
        params: FileTransportParams | None = None,
        *,
        name: str | None = None,
        timeline: _Timeline | None = None,
    ) -> None:
        """Create the output side; use :meth:`FileTransport.output` rather than this."""
        params = params or self.Params()
        super().__init__(params, name=name)
        self.file_params: FileTransportParams = params
        self._timeline = timeline or _new_timeline(params, self.name)
        self._chunks: list[tuple[int, bytes]] = []
        self._start_ns = 0
        self._dirty = True
        self.written: Path | None = None
        """``output_path`` once written with everything recorded; None before or on failure."""

    async def on_start(self, frame: StartFrame) -> None:
        """Take the output rate and note the start (the origin if there is no input)."""
        await super().on_start(frame)
        self._start_ns = time.monotonic_ns()

    async def write_chunk(self, pcm: bytes, play_ns: int) -> None:
        """Keep the chunk with its play time."""
        if self.file_params.output_path is not None:
            self._chunks.append((play_ns, pcm))
            self._dirty = True

    async def on_speaking_changed(self, speaking: bool, t_ns: int) -> None:
        """Tell the input side whether the bot speaks (it decides when to end)."""
        self._timeline.set_bot(speaking)

    @handles(UserStartedSpeakingFrame)
    async def _user_started(self, frame: UserStartedSpeakingFrame, direction: Direction) -> None:
        self._timeline.observe(frame)
        await super()._user_started(frame, direction)  # the base holds replies meanwhile

    @handles(UserStoppedSpeakingFrame)
    async def _user_stopped(self, frame: UserStoppedSpeakingFrame, direction: Direction) -> None:
        self._timeline.observe(frame)
        await super()._user_stopped(frame, direction)

    async def on_output_end(self) -> None:
        """Write the file once all audio has played."""
        await self.save()

    async def cleanup(self) -> None:
        """Write the file if it is not up to date (after a Cancel, for example)."""
        await super().cleanup()
        await self.save()

    async def save(self) -> None:
        """Write the recording to ``output_path`` now (in a worker thread).

        A failure raises (the task records it) and leaves :attr:`written` None.
        """
        if self.file_params.output_path is None or not self._dirty or not self.sample_rate:
            return
        self._dirty = False
        self.written = None
        pcm, channels = self.render()
        path = self.file_params.output_path
        await self.run_blocking(_write, path, pcm, self.sample_rate, channels)
        self.written = path

    def render(self) -> tuple[bytes, int]:
        """The recording so far as interleaved PCM16 at the output rate, and its channels."""
        from framework.audio import interleave, resample

        rate, tl = self.sample_rate, self._timeline
        origin = tl.origin_ns if tl.origin_ns is not None else self._start_ns
        placed: list[tuple[int, bytes]] = []
        end = 0
        for play_ns, pcm in list(self._chunks):
            pos = round((play_ns - origin) * rate / 1e9)
            if pos < 0:
                pcm, pos = pcm[-2 * pos :], 0
            placed.append((pos, pcm))
            end = max(end, pos + len(pcm) // 2)
        heard = tl.fed_samples  # the input up to where it stopped, silence after it included
        if tl.in_rate and heard:
            end = max(end, -(-heard * rate // tl.in_rate))
        bot = bytearray(2 * end)
        for pos, pcm in placed:
            bot[2 * pos : 2 * pos + len(pcm)] = pcm
        if not self.file_params.stereo:
            return bytes(bot), 1
        user = tl.input_pcm
        if user and tl.in_rate:
            user = resample(user, tl.in_rate, rate)
        user = user[: 2 * end] + bytes(max(0, 2 * end - len(user)))
        return interleave(user, bytes(bot)), 2


def _to_mono_rate(audio: WavAudio, rate: int) -> bytes:
    from framework.audio import resample, to_mono

    pcm = to_mono(audio.pcm, audio.num_channels) if audio.num_channels > 1 else audio.pcm
    return resample(pcm, audio.sample_rate, rate)


def _write(path: Path, pcm: bytes, rate: int, channels: int) -> None:
    from framework.audio import write_wav

    write_wav(path, pcm, rate, channels)
