"""Input audio of a session: the buffer, the session's audio clock and pipeline frames.

Appended audio (24 kHz PCM16, or 8 kHz G.711 mu-law/A-law) is kept raw in the
input buffer until it is committed or cleared, and converted to PCM16 at the
pipeline's input rate (16 kHz by default) in :class:`InputAudioFrame`\\ s of up to
20 ms. What an append brings goes on at once, the last frame shorter (down to
5 ms) rather than held for the next append: held, it would reach the VAD up to
20 ms later. The resampler's filter still holds a few milliseconds: a commit
sends them on (:meth:`InputAudioBuffer.flush`), so the turn's transcript hears
its last sound, and a clear drops them, so the cleared audio reaches no turn.

One clock serves both sides. The session clock counts milliseconds of all audio
appended since the session began (``audio_start_ms``/``audio_end_ms`` are read
on it, as OpenAI does); each pipeline frame is stamped ``origin_ns`` plus the
time of its first sample on that clock, so a VAD's ``speech_start_ns`` converts
back to session milliseconds exactly with :meth:`InputAudioBuffer.ms_at`.
"""

from __future__ import annotations

from framework.audio import (
    LISTENING_QUALITY,
    Chunker,
    StreamResampler,
    alaw_decode,
    ulaw_decode,
)
from framework.frames import InputAudioFrame
from pipelines.serve.items import BYTES_PER_MS

__all__ = ["InputAudioBuffer"]

_NATIVE_RATE = {"audio/pcm": 24000, "audio/pcmu": 8000, "audio/pcma": 8000}


class InputAudioBuffer:
    """The input buffer and its conversion to pipeline frames (see the module docstring)."""

    def __init__(self, pipeline_rate: int, origin_ns: int, fmt: str = "audio/pcm") -> None:
        """Convert to ``pipeline_rate`` Hz; frames are stamped from ``origin_ns``."""
        self.pipeline_rate = pipeline_rate
        self.origin_ns = origin_ns
        self.buffer = bytearray()
        self.buffer_start_ms = 0.0
        self.clock_ms = 0.0
        self._format = ""
        self._carry = b""
        self._resampler: StreamResampler | None = None
        self._chunker = Chunker(pipeline_rate, 1, 20)
        self._min_tail = pipeline_rate * 5 // 1000 * 2  # bytes: 5 ms
        self._samples_out = 0
        self.set_format(fmt)

    @property
    def format(self) -> str:
        """The input format (``audio/pcm``, ``audio/pcmu`` or ``audio/pcma``)."""
        return self._format

    @property
    def buffer_ms(self) -> float:
        """Milliseconds of audio in the buffer."""
        return len(self.buffer) / BYTES_PER_MS[self._format]

    def set_format(self, fmt: str) -> None:
        """Switch the input format; takes effect for the next append."""
        if fmt == self._format:
            return
        if fmt not in _NATIVE_RATE:
            raise ValueError(f"unknown input format {fmt!r}")
        self._format = fmt
        rate = _NATIVE_RATE[fmt]
        self._resampler = (
            StreamResampler(rate, self.pipeline_rate, quality=LISTENING_QUALITY)
            if rate != self.pipeline_rate
            else None
        )
        self.clear()

    def append(self, data: bytes) -> list[InputAudioFrame]:
        """Add appended audio to the buffer; return the pipeline frames it completes."""
        self.buffer += data
        self.clock_ms += len(data) / BYTES_PER_MS[self._format]
        if self._format == "audio/pcmu":
            pcm = ulaw_decode(data)
        elif self._format == "audio/pcma":
            pcm = alaw_decode(data)
        else:
            pcm = self._carry + data
            if len(pcm) % 2:
                pcm, self._carry = pcm[:-1], pcm[-1:]
            else:
                self._carry = b""
        if self._resampler is not None:
            pcm = self._resampler.process(pcm)
        chunks = self._chunker.push(pcm)
        if self._chunker.pending >= self._min_tail:
            chunks.append(self._chunker.flush(pad=False) or b"")
        return self._frames(chunks)

    def flush(self) -> list[InputAudioFrame]:
        """Frames of the audio still held in conversion (the resampler's filter, the
        last few milliseconds): what was appended has then all gone to the pipeline."""
        pcm = self._resampler.flush() if self._resampler is not None else b""
        chunks = self._chunker.push(pcm)
        tail = self._chunker.flush(pad=False)
        if tail:
            chunks.append(tail)
        return self._frames(chunks)

    def _frames(self, chunks: list[bytes]) -> list[InputAudioFrame]:
        frames = []
        for chunk in chunks:
            ts = self.origin_ns + round(self._samples_out * 1e9 / self.pipeline_rate)
            self._samples_out += len(chunk) // 2
            frames.append(
                InputAudioFrame(audio=chunk, sample_rate=self.pipeline_rate, timestamp_ns=ts)
            )
        return frames

    def ms_at(self, ns: int | None) -> int:
        """Session-clock milliseconds of a pipeline timestamp (now if None)."""
        if ns is None:
            return round(self.clock_ms)
        return max(0, round((ns - self.origin_ns) / 1e6))

    def now_ns(self) -> int:
        """The pipeline timestamp of the end of the audio converted so far."""
        return self.origin_ns + round(self._samples_out * 1e9 / self.pipeline_rate)

    def take(self) -> tuple[bytes, float, float]:
        """Empty the buffer: its audio and its start and end on the session clock."""
        data = bytes(self.buffer)
        start = self.buffer_start_ms
        self.buffer.clear()
        self.buffer_start_ms = self.clock_ms
        return data, start, self.clock_ms

    def clear(self) -> None:
        """Drop the buffered audio, and what of it is still in conversion (the clock goes on)."""
        self.buffer.clear()
        self.buffer_start_ms = self.clock_ms
        self._carry = b""
        if self._resampler is not None:
            self._resampler.reset()
        self._chunker.reset()
        # the next frame is stamped where the next append starts on the session clock
        self._samples_out = round(self.clock_ms * self.pipeline_rate / 1000)

    def trim_before(self, ms: float) -> None:
        """Drop buffered audio older than session time ``ms``."""
        if ms <= self.buffer_start_ms:
            return
        per_ms = BYTES_PER_MS[self._format]
        drop = min(len(self.buffer), int((ms - self.buffer_start_ms) * per_ms))
        drop -= drop % (2 if self._format == "audio/pcm" else 1)
        del self.buffer[:drop]
        self.buffer_start_ms += drop / per_ms
