"""The user's audio on its way to a Realtime server: 24 kHz, batched appends, turns, clock.

:class:`AudioUplink` resamples input frames to the server's 24 kHz PCM16 and
sends them in appends of about ``append_ms``. With local turns it sends only a
turn's audio (with some audio from before the VAD's start), keeping the turn
so it can be sent again to a new session; with server turns it sends all of
it. It also maps the server's session audio clock (``audio_start_ms``,
``audio_end_ms``) back onto the task clock, from the timestamps of the frames
each appended millisecond came from.
"""

from __future__ import annotations

import base64
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from framework.frames import InputAudioFrame

__all__ = ["BYTES_PER_MS", "RATE", "AudioUplink"]

RATE = 24000
BYTES_PER_MS = RATE * 2 / 1000  # 48
_MAX_TURN_MS = 120_000
_PREROLL_NS = 2_000_000_000


class AudioUplink:
    """Input audio state of one conversation; ``send`` queues an append (False if it could not)."""

    def __init__(self, send: Callable[[str], bool], *, append_ms: int, server_turns: bool) -> None:
        self._send = send
        self._append_bytes = int(append_ms * BYTES_PER_MS) & ~1
        self.server_turns = server_turns
        self._resampler: Any = None
        self._append = bytearray()
        self._appended_ms = 0.0
        self._clock: deque[tuple[float, int]] = deque(maxlen=3000)
        self.in_turn = False
        self._preroll: deque[tuple[int, bytes]] = deque()
        self._turn = bytearray()

    def configure(self, sample_rate: int) -> None:
        """Expect input at ``sample_rate`` (the task's input rate)."""
        from framework.audio import LISTENING_QUALITY, StreamResampler

        self._resampler = StreamResampler(sample_rate, RATE, quality=LISTENING_QUALITY)

    def feed(self, frame: InputAudioFrame) -> None:
        """Take one input frame: send it, keep it for the turn, or keep it as pre-roll."""
        from framework.audio import LISTENING_QUALITY, StreamResampler, to_mono

        if self._resampler is None or frame.sample_rate != self._resampler.from_rate:
            self._resampler = StreamResampler(frame.sample_rate, RATE, quality=LISTENING_QUALITY)
        audio = frame.audio if frame.num_channels == 1 else to_mono(frame.audio, frame.num_channels)
        pcm = self._resampler.process(audio)
        if not pcm:
            return
        if self.server_turns:
            self._queue(pcm, frame.timestamp_ns)
        elif self.in_turn:
            self._queue(pcm, frame.timestamp_ns)
            if len(self._turn) < _MAX_TURN_MS * BYTES_PER_MS:
                self._turn += pcm
        else:
            self._preroll.append((frame.timestamp_ns, pcm))
            while len(self._preroll) > 1 and self._preroll[0][0] < frame.timestamp_ns - _PREROLL_NS:
                self._preroll.popleft()

    def start_turn(self, speech_start_ns: int, padding_ms: int) -> None:
        """A local turn began with speech at ``speech_start_ns``: send the audio from
        ``padding_ms`` before it, then everything until :meth:`end_turn`."""
        self.in_turn = True
        cutoff = speech_start_ns - padding_ms * 1_000_000
        for ts, pcm in self._preroll:
            if ts + len(pcm) / BYTES_PER_MS * 1e6 >= cutoff:
                self._queue(pcm, ts)
                self._turn += pcm
        self._preroll.clear()

    def end_turn(self) -> float:
        """The local turn ended: flush it; returns its duration in ms."""
        self.in_turn = False
        self.flush()
        turn_ms = len(self._turn) / BYTES_PER_MS
        self._turn.clear()
        return turn_ms

    def _queue(self, pcm: bytes, timestamp_ns: int) -> None:
        self._clock.append((self._appended_ms + len(self._append) / BYTES_PER_MS, timestamp_ns))
        self._append += pcm
        if len(self._append) >= self._append_bytes:
            self.flush()

    def flush(self) -> None:
        """Send the audio waiting for a full append."""
        if not self._append:
            return
        data = bytes(self._append)
        self._append.clear()
        if self._send(base64.b64encode(data).decode("ascii")):
            self._appended_ms += len(data) / BYTES_PER_MS

    def new_session(self) -> None:
        """A new server session: its audio clock starts at 0; a local turn is sent again."""
        self._appended_ms = 0.0
        self._clock.clear()
        self._append.clear()
        if self.in_turn and self._turn:
            self._queue(bytes(self._turn), time.monotonic_ns())
            self.flush()

    def lost(self) -> None:
        """The session is gone: drop what was waiting to be sent."""
        self._append.clear()

    def server_ns(self, audio_ms: Any) -> int | None:
        """The task-clock time of the server's session audio time ``audio_ms``, if known."""
        if not isinstance(audio_ms, (int, float)):
            return None
        best = None
        for start_ms, ts in self._clock:
            if start_ms > audio_ms:
                break
            best = ts + int((audio_ms - start_ms) * 1e6)
        return best
