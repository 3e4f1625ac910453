"""Where the loud part of a growing turn ends, from the levels of its 20 ms frames.

A frame is loud when its RMS is within 30 dB of the loudest frame of the turn so
far and above about -60 dBFS. Once the speech is over, the audio after the last
loud frame is the quiet the VAD is waiting through: a transcriber can start its
final work then, before the VAD decides (see :class:`~processors.stt.whisper.WhisperSTT`).
In noise louder than 30 dB below the speech every frame is loud, and nothing is
learnt; a caller must not depend on it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LoudnessTracker"]

_FRAME = 320  # 20 ms at 16 kHz
_FRAME_BYTES = 2 * _FRAME
_BELOW_PEAK = 10 ** (-30 / 20)
_FLOOR = 30.0  # RMS in PCM16 units: about -60 dBFS


class LoudnessTracker:
    """Feed a turn's audio in order with :meth:`update`; read :attr:`loud_end`."""

    __slots__ = ("_peak", "_rest", "_scanned", "loud_end")

    def __init__(self) -> None:
        self._peak = 0.0
        self._rest = b""
        self._scanned = 0
        self.loud_end = 0
        """Sample index just past the last loud frame (0: none yet)."""

    def update(self, pcm: bytes) -> None:
        """Scan the turn's next audio, mono PCM16 at 16 kHz."""
        data = self._rest + pcm if self._rest else pcm
        whole = len(data) // _FRAME_BYTES * _FRAME_BYTES
        self._rest = data[whole:]
        if not whole:
            return
        frames = np.frombuffer(data, dtype="<i2", count=whole // 2).astype(np.float32)
        levels = np.sqrt(np.mean(np.square(frames.reshape(-1, _FRAME)), axis=1))
        self._peak = max(self._peak, float(levels.max()))
        loud = np.flatnonzero(levels >= max(_FLOOR, self._peak * _BELOW_PEAK))
        if len(loud):
            self.loud_end = self._scanned + (int(loud[-1]) + 1) * _FRAME
        self._scanned += len(levels) * _FRAME
