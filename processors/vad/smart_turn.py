"""Smart Turn v3.2: a semantic end-of-turn model on the user's audio.

The model (BSD-2-Clause, by Daily) is a small Whisper-encoder classifier that
listens to the last 8 s of a user's speech and gives the probability that the
speaker has finished their turn, judging from intonation and wording rather
than from the length of the silence. Its ONNX file ships inside the
``pipecat-ai`` wheel (``pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx``);
``scripts/setup.sh`` installs that wheel with ``--no-deps``, and this module
finds the file through the wheel's installed-files record without importing
``pipecat``. It runs with onnxruntime.

Input: ``input_features``, float32 ``(batch, 80, 800)``: Whisper's 80-bin
log-mel spectrogram of 8 s of 16 kHz audio (10 ms hop), computed from a clip
zero-padded *at the start* to 8 s and normalised to zero mean and unit
variance. Output: ``logits``, ``(batch, 1)``, already passed through a sigmoid.
"""

from __future__ import annotations

import importlib.metadata
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from processors.stt._mel import HOP_LENGTH, N_MELS, SAMPLE_RATE, log_mel_spectrogram

__all__ = [
    "SMART_TURN_FRAMES",
    "SMART_TURN_SECONDS",
    "SmartTurnModel",
    "shared_model",
    "smart_turn_features",
    "smart_turn_model_path",
]

SMART_TURN_SECONDS = 8
"""Seconds of audio the model sees: the last 8 s of the turn."""
SMART_TURN_FRAMES = SMART_TURN_SECONDS * SAMPLE_RATE // HOP_LENGTH
"""Feature frames the model takes (800)."""
_SAMPLES = SMART_TURN_SECONDS * SAMPLE_RATE
_DISTRIBUTION = "pipecat-ai"
_MODEL_FILE = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
_NORMALISE_EPS = 1e-7


def smart_turn_model_path() -> Path:
    """The Smart Turn v3.2 ONNX file inside the installed ``pipecat-ai`` wheel.

    Read from the distribution's installed-files record: nothing of ``pipecat``
    is imported or executed. Raises ``RuntimeError`` naming the fix when the
    wheel or the file is missing.
    """
    hint = (
        "install it with 'pip install --no-deps pipecat-ai==1.14.0' (scripts/setup.sh does), "
        'or use end_of_turn = "silence"'
    )
    try:
        dist = importlib.metadata.distribution(_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise RuntimeError(f"the Smart Turn model needs the {_DISTRIBUTION} wheel: {hint}") from exc
    for entry in dist.files or ():
        if entry.as_posix() == _MODEL_FILE:
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                return path
            break
    raise RuntimeError(
        f"{_MODEL_FILE} is missing from the installed {_DISTRIBUTION} {dist.version}: {hint}"
    )


def smart_turn_features(samples: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """The model's input for one clip of float samples at 16 kHz: shape ``(80, 800)``.

    Keeps the last 8 s, zero-pads shorter clips at the start, normalises the
    padded 8 s to zero mean and unit variance, then takes the Whisper log-mel
    spectrogram of it (:func:`processors.stt._mel.log_mel_spectrogram`).
    """
    x = np.asarray(samples, dtype=np.float32).reshape(-1)[-_SAMPLES:]
    if x.size < _SAMPLES:
        x = np.concatenate([np.zeros(_SAMPLES - x.size, dtype=np.float32), x])
    x = (x - x.mean()) / np.sqrt(x.var() + _NORMALISE_EPS)
    features = log_mel_spectrogram(x, n_frames=SMART_TURN_FRAMES)
    assert features.shape == (N_MELS, SMART_TURN_FRAMES)
    return features


class SmartTurnModel:
    """Smart Turn v3.2 on onnxruntime: load once, then :meth:`predict` per pause.

    Thread-safe: one inference at a time (onnxruntime sessions may run
    concurrently, but on a small CPU two at once only slow each other down).
    :meth:`load` and :meth:`predict` block; call them from a worker thread.
    """

    def __init__(self, model_path: str | Path | None = None, *, threads: int = 1) -> None:
        """Use ``model_path`` (default: the file in the ``pipecat-ai`` wheel), ``threads`` cores."""
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads!r}")
        self._path = Path(model_path) if model_path is not None else None
        self._threads = threads
        self._session: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """True once the ONNX session exists."""
        return self._session is not None

    def load(self) -> None:
        """Create the ONNX session (about 0.1-0.3 s) unless it exists; checks the input shape."""
        with self._lock:
            if self._session is not None:
                return
            try:
                import onnxruntime
            except ImportError as exc:
                raise RuntimeError(
                    "onnxruntime is not installed: install the `local` extra "
                    "(pip install -e '.[local]')"
                ) from exc
            from processors.shared_models import limit_blas_threads

            limit_blas_threads(1)  # the features' matrix product: see limit_blas_threads
            path = self._path or smart_turn_model_path()
            if not path.is_file():
                raise RuntimeError(f"Smart Turn model file not found: {path}")
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
            [inp] = session.get_inputs()
            if list(inp.shape[1:]) != [N_MELS, SMART_TURN_FRAMES]:
                raise RuntimeError(
                    f"{path.name} takes {inp.name} of shape {inp.shape}, "
                    f"not (batch, {N_MELS}, {SMART_TURN_FRAMES}): not a Smart Turn v3 model"
                )
            self._input = inp.name
            self._session = session

    def predict(self, samples: npt.ArrayLike) -> float:
        """Probability in ``[0, 1]`` that the clip (float, 16 kHz) ends a finished turn."""
        features = smart_turn_features(samples)[np.newaxis]
        self.load()
        with self._lock:
            [out] = self._session.run(None, {self._input: features})
        return float(np.clip(np.asarray(out).reshape(-1)[0], 0.0, 1.0))

    def predict_pcm16(self, pcm: bytes) -> float:
        """:meth:`predict` on PCM16 mono bytes at 16 kHz."""
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        return self.predict(samples)

    def timed_predict(self, samples: npt.ArrayLike) -> tuple[float, float]:
        """:meth:`predict` and the seconds it took (features included)."""
        began = time.perf_counter()
        probability = self.predict(samples)
        return probability, time.perf_counter() - began


_shared: SmartTurnModel | None = None
_shared_lock = threading.Lock()


def shared_model() -> SmartTurnModel:
    """One :class:`SmartTurnModel` for the whole process (created here, loaded on first use).

    Turn processors share it, so a server with many sessions loads the model once;
    its lock runs one inference at a time.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SmartTurnModel()
        return _shared
