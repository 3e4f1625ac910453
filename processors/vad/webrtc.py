"""The webrtcvad backend: a fast GMM voice detector with a yes/no answer per frame."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from processors.vad.base import VADAnalyzer

__all__ = ["WebRTCVAD"]

_RATES = (8000, 16000, 32000, 48000)


class WebRTCVAD(VADAnalyzer):
    """Voice activity from ``webrtcvad`` (the ``webrtcvad-wheels`` package).

    Confidence is 0 or 1. About 2 us per frame, but it flags steady noise as
    speech (see docs/vad.md), so pair it with ``min_volume_dbfs`` or prefer Silero.
    Runs at 8, 16, 32 or 48 kHz natively; other rates are resampled to 16 kHz.
    """

    name = "webrtc"

    def __init__(
        self,
        sample_rate: int = 16000,
        *,
        aggressiveness: int = 3,
        frame_ms: Literal[10, 20, 30] = 30,
    ) -> None:
        """Create the analyzer; ``aggressiveness`` 0-3, ``frame_ms`` 10, 20 or 30."""
        if isinstance(aggressiveness, bool) or aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"aggressiveness must be 0, 1, 2 or 3, got {aggressiveness!r}")
        if isinstance(frame_ms, bool) or frame_ms not in (10, 20, 30):
            raise ValueError(f"frame_ms must be 10, 20 or 30, got {frame_ms!r}")
        self._aggressiveness = aggressiveness
        self._frame_ms = frame_ms
        self._vad: Any = None
        super().__init__(sample_rate)

    def load(self) -> None:
        """Create the detector (imports ``webrtcvad``)."""
        if self._vad is not None:
            return
        try:
            import webrtcvad
        except ImportError as exc:
            raise RuntimeError(
                "webrtcvad is not installed: install the `local` extra "
                "(pip install -e '.[local]') or the webrtcvad-wheels package"
            ) from exc
        self._vad = webrtcvad.Vad(self._aggressiveness)

    def _native_rate(self, sample_rate: int) -> int:
        return sample_rate if sample_rate in _RATES else 16000

    def _window_samples(self, native_rate: int) -> int:
        return native_rate * self._frame_ms // 1000

    def _score(self, window: np.ndarray) -> float:
        if self._vad is None:
            self.load()
        return 1.0 if self._vad.is_speech(window.tobytes(), self.native_rate) else 0.0
