"""Whisper's log-mel front end in numpy: 80 mel bins, 25 ms windows, 10 ms hop, 16 kHz.

The features match what Whisper was trained on: a periodic Hann window of 400
samples, centred frames with reflected edges, the power spectrum through a
Slaney-style mel filterbank (linear below 1 kHz, logarithmic above, each filter
normalised to unit area), then ``log10`` clamped to 8 decades below the peak and
scaled by ``(x + 4) / 4``. A clip is zero-padded to 30 s (3,000 frames), the
window the model always sees; frames past the end of the audio are computed
once as the constant they are instead of by FFT.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

__all__ = ["HOP_LENGTH", "N_FFT", "N_FRAMES", "N_MELS", "SAMPLE_RATE", "log_mel_spectrogram"]

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
N_MELS = 80
N_FRAMES = 3000  # 30 s of 10 ms frames: the encoder's input length
_LOG_FLOOR = -10.0  # log10 of the 1e-10 clamp: the value of digital silence


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # Slaney's scale: 3 mels per 200 Hz up to 1 kHz, then 27 mels per factor of 6.4.
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz * 3.0 / 200.0
    log_part = 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) * 27.0 / np.log(6.4)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * 200.0 / 3.0
    log_part = 1000.0 * np.exp((mel - 15.0) * np.log(6.4) / 27.0)
    return np.where(mel >= 15.0, log_part, linear)


@lru_cache(maxsize=4)
def mel_filterbank(
    n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE
) -> npt.NDArray[np.float32]:
    """Triangular mel filters, shape ``(n_mels, n_fft // 2 + 1)``, each of unit area."""
    bin_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges_mel = np.linspace(
        _hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(sample_rate / 2.0)), n_mels + 2
    )
    edges_hz = _mel_to_hz(edges_mel)
    lo, centre, hi = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bin_hz[None, :] - lo) / (centre - lo)
    falling = (hi - bin_hz[None, :]) / (hi - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= 2.0 / (hi - lo)  # unit area per filter
    filters: npt.NDArray[np.float32] = weights.astype(np.float32)
    return filters


@lru_cache(maxsize=1)
def _hann() -> npt.NDArray[np.float32]:
    n = np.arange(N_FFT)
    window: npt.NDArray[np.float32] = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)).astype(
        np.float32
    )
    return window


def _log_power_mel(samples: npt.NDArray[np.float32], n_frames: int) -> npt.NDArray[np.float32]:
    """``log10`` mel power of the first ``n_frames`` centred frames of ``samples``."""
    half = N_FFT // 2
    # Frame i covers samples [i*hop - half, i*hop + half); beyond the end is zero padding.
    need = (n_frames - 1) * HOP_LENGTH + N_FFT
    padded = np.zeros(need, dtype=np.float32)
    body = samples[: need - half]
    padded[half : half + len(body)] = body
    # Reflect the first samples into the left edge, as a centred STFT does.
    if len(samples) > half:
        padded[:half] = samples[half:0:-1]
    else:
        padded[:half] = 0.0  # too short to reflect; silence is close enough
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH][:n_frames]
    spectrum = np.fft.rfft(frames * _hann(), axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    mel = mel_filterbank() @ power.T
    out: npt.NDArray[np.float32] = np.log10(np.maximum(mel, 1e-10))
    return out


def log_mel_spectrogram(
    samples: npt.NDArray[np.float32], n_frames: int = N_FRAMES
) -> npt.NDArray[np.float32]:
    """Whisper features of float samples at 16 kHz: shape ``(80, n_frames)``, float32.

    The audio is trimmed or zero-padded to ``n_frames`` 10 ms frames (3,000, the
    30 s the model was trained on, unless asked otherwise).
    """
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)[: n_frames * HOP_LENGTH]
    # Frames whose window touches the audio need an FFT; later ones are pure silence.
    live = min(n_frames, (len(samples) + N_FFT // 2) // HOP_LENGTH + 1)
    log_spec = np.full((N_MELS, n_frames), _LOG_FLOOR, dtype=np.float32)
    if live > 0 and len(samples):
        log_spec[:, :live] = _log_power_mel(samples, live)
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    features: npt.NDArray[np.float32] = (log_spec + 4.0) / 4.0
    return features
