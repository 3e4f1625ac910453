"""A low-delay streaming resampler: a short windowed-sinc FIR, run polyphase in numpy.

soxr's streaming presets hold back audio in blocks: fed a live stream in 20 ms
chunks, ``LQ`` keeps 11 ms on average (up to 20 ms) and ``HQ`` 21 ms (up to
37 ms) between 16 and 24 kHz, and every held-back millisecond of a user's
speech reaches the VAD and the transcriber that much later. :class:`LowDelayStream`
holds back only its filter's group delay, about 1 ms: a Kaiser-windowed sinc
with a 60 dB stopband whose transition band runs from 90 % to 110 % of the
lower Nyquist frequency. That is plenty for speech recognition and voice
activity, not for music; audio a person hears keeps soxr's ``HQ``.

The conversion from ``from_rate`` to ``to_rate`` upsamples by ``L`` and
downsamples by ``M`` (the reduced ratio); the filter is designed at the
upsampled rate and split into ``L`` phases, so each output sample costs one
dot product of ~36 input samples (16 <-> 24 kHz). The filter is as long as
makes its delay a whole number of output samples, and the stream drops those
first samples: the output is aligned with the input, and a stream's pieces,
concatenated with the last one, are the same however the input
was split.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

__all__ = ["LowDelayStream"]

_STOPBAND_DB = 60.0
_PASS = 0.9  # passband edge, as a fraction of the lower Nyquist frequency
_STOP = 1.1  # stopband edge
_PHASE_LOOP_MAX = 8  # up to this many phases, one matrix product per phase


def _design(up: int, down: int) -> tuple[npt.NDArray[np.float32], int]:
    """The polyphase filter bank (``up`` rows) and its delay in output samples."""
    nyquist = min(up, down) / 2.0  # in cycles per sample at the upsampled rate, times up*down
    rate = float(up * down)  # the upsampled rate, in the same units
    cutoff = (_PASS + _STOP) / 2.0 * nyquist / rate  # cycles per upsampled sample
    width = (_STOP - _PASS) * nyquist / rate
    # Kaiser's estimate of the length for the stopband, then the next length whose
    # group delay, (n - 1) / 2 upsampled samples, is a whole number of output samples.
    estimate = (_STOPBAND_DB - 7.95) / (2.285 * 2.0 * math.pi * width) + 1.0
    delay = max(1, math.ceil((estimate - 1.0) / (2.0 * down)))
    length = 2 * down * delay + 1
    beta = 0.1102 * (_STOPBAND_DB - 8.7)
    n = np.arange(length) - (length - 1) / 2.0
    taps = 2.0 * cutoff * np.sinc(2.0 * cutoff * n) * np.kaiser(length, beta)
    taps *= up / taps.sum()  # unity gain after the zeros the upsampling inserts
    per_phase = math.ceil(length / up)
    padded = np.zeros(per_phase * up)
    padded[:length] = taps
    # bank[p, k] weighs input sample (i - k) for an output whose upsampled index is
    # i * up + p; reversed here so that it multiplies a window in time order.
    bank = padded.reshape(per_phase, up).T[:, ::-1].copy()
    return bank.astype(np.float32), delay


class LowDelayStream:
    """Resample float32 frames (``(n, channels)``) from ``from_rate`` to ``to_rate`` as they come.

    :meth:`resample_chunk` returns what the input so far fully determines, less
    the filter's delay held back, and the rest with ``last=True``, as soxr's
    ``ResampleStream`` does; :meth:`clear` starts a new stream.
    """

    __slots__ = ("_bank", "_delay", "_down", "_history", "_n_in", "_n_out", "_taps", "_up")

    def __init__(self, from_rate: int, to_rate: int, num_channels: int) -> None:
        """Design the filter for ``from_rate`` -> ``to_rate`` (positive integers, not equal)."""
        g = math.gcd(from_rate, to_rate)
        self._up, self._down = to_rate // g, from_rate // g
        self._bank, self._delay = _design(self._up, self._down)
        self._taps = self._bank.shape[1]
        self._history = np.zeros((self._taps - 1, num_channels), dtype=np.float32)
        self._n_in = 0  # input samples taken since the stream began
        self._n_out = 0  # output samples computed (the first ``delay`` are dropped)

    def resample_chunk(
        self, frames: npt.NDArray[np.float32], last: bool = False
    ) -> npt.NDArray[np.float32]:
        """Take the next frames; return the output they complete (soxr's call).

        With ``last`` the stream ends: the held-back output comes too. Call
        :meth:`clear` before a new stream.
        """
        return self._run(frames, final=last)

    def clear(self) -> None:
        """Drop any held-back audio and start a new stream."""
        self._history[:] = 0.0
        self._n_in = self._n_out = 0

    def _run(self, frames: npt.NDArray[np.float32], *, final: bool) -> npt.NDArray[np.float32]:
        up, down, taps = self._up, self._down, self._taps
        channels = self._history.shape[1]
        n_in = self._n_in + frames.shape[0]
        if final:
            # Every output the input implies (ceil(n_in * up / down)), plus the delay.
            last = -(-n_in * up // down) + self._delay - 1
            needed = (last * down) // up + 1  # input samples that output reads up to
            pad = np.zeros((max(needed - n_in, 0), channels), dtype=np.float32)
            frames = np.concatenate([frames, pad]) if pad.size else frames
        else:
            last = ((n_in - 1) * up + up - 1) // down if n_in else -1
        buffer = np.concatenate([self._history, frames.astype(np.float32, copy=False)])
        first_in = self._n_in - (taps - 1)  # the input index of buffer[0]
        count = last + 1 - self._n_out
        values = np.zeros((max(count, 0), channels), dtype=np.float32)
        if count > 0:
            # The taps-long window of input ending at each output's newest sample,
            # as strided views of the buffer (no copy): buffer[s : s + taps] per row.
            step, across = buffer.strides
            if up <= _PHASE_LOOP_MAX:
                # Outputs up apart share a phase and their windows lie down apart: one
                # matrix product per phase.
                for r in range(min(up, count)):
                    position = (self._n_out + r) * down
                    start = position // up - first_in - (taps - 1)
                    rows = len(range(r, count, up))
                    windows = np.ndarray(
                        (rows, channels, taps),
                        np.float32,
                        buffer=buffer,
                        offset=start * step,
                        strides=(down * step, across, step),
                    )
                    values[r::up] = windows @ self._bank[position % up]
            else:
                positions = np.arange(self._n_out, last + 1) * down
                starts = positions // up - first_in - (taps - 1)
                every = as_strided(
                    buffer, (buffer.shape[0] - taps + 1, channels, taps), (step, across, step)
                )
                values[:] = np.einsum("ict,it->ic", every[starts], self._bank[positions % up])
        result = values[max(self._delay - self._n_out, 0) :]
        self._n_out = max(self._n_out, last + 1)
        self._n_in = n_in
        self._history = buffer[buffer.shape[0] - (taps - 1) :].copy()
        return result
