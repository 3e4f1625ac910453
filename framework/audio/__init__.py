"""Audio utilities: PCM16 conversion, resampling, chunking, G.711, WAV files and levels.

All functions work on interleaved 16-bit little-endian PCM ``bytes`` (the
layout of :class:`~framework.frames.audio.AudioFrame`) unless their name says
otherwise; the ``frame_*`` helpers and :func:`resample_frame` take audio frames.

Byte-taking functions raise :class:`TypeError` for anything but bytes-like
input and :class:`ValueError` for an odd number of bytes. This package imports
numpy, soxr and soundfile, so ``import framework`` does not import it.
"""

from framework.audio._checks import BytesLike
from framework.audio.chunk import Chunker, bytes_per_ms, chunk_bytes, chunk_pcm, silence
from framework.audio.frames import (
    frame_dbfs,
    frame_is_silent,
    frame_peak,
    frame_rms,
    frame_to_mono,
    frame_with_audio,
    frame_with_channels,
    resample_frame,
)
from framework.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from framework.audio.levels import dbfs, is_silent, peak, rms
from framework.audio.pcm import (
    convert_channels,
    float32_to_pcm16,
    interleave,
    pcm16_to_float32,
    pcm_duration_s,
    to_mono,
)
from framework.audio.resample import LISTENING_QUALITY, Quality, StreamResampler, resample
from framework.audio.signals import sine_wave
from framework.audio.wav import WavAudio, WavWriter, is_wav, read_wav, write_wav

__all__ = [
    "LISTENING_QUALITY",
    "BytesLike",
    "Chunker",
    "Quality",
    "StreamResampler",
    "WavAudio",
    "WavWriter",
    "alaw_decode",
    "alaw_encode",
    "bytes_per_ms",
    "chunk_bytes",
    "chunk_pcm",
    "convert_channels",
    "dbfs",
    "float32_to_pcm16",
    "frame_dbfs",
    "frame_is_silent",
    "frame_peak",
    "frame_rms",
    "frame_to_mono",
    "frame_with_audio",
    "frame_with_channels",
    "interleave",
    "is_silent",
    "is_wav",
    "pcm16_to_float32",
    "pcm_duration_s",
    "peak",
    "read_wav",
    "resample",
    "resample_frame",
    "rms",
    "silence",
    "sine_wave",
    "to_mono",
    "ulaw_decode",
    "ulaw_encode",
    "write_wav",
]
