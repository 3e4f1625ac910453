"""ITU-T G.711 mu-law and A-law companding of PCM16 audio, via numpy lookup tables.

Telephony transports (SIP, Twilio media streams...) carry 8 kHz G.711 audio:
one byte per sample. Encoding maps each of the 65536 int16 values through a
precomputed table and decoding maps each of the 256 codes back, so both are a
single vectorised index operation. (``audioop`` did this before Python 3.13
removed it.)

Decoded values sit in the middle of each quantisation interval. Mu-law has two
codes for zero, ``0xFF`` and ``0x7F``; both decode to 0, which encodes as ``0xFF``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from framework.audio._checks import BytesLike, as_int16, check_pcm16

__all__ = ["alaw_decode", "alaw_encode", "ulaw_decode", "ulaw_encode"]

_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635


def _segment(values: npt.NDArray[np.int64], limit: int) -> npt.NDArray[np.int64]:
    """Return the segment number: how many times ``values`` reaches ``limit << n``."""
    seg = np.zeros_like(values)
    for n in range(1, 8):
        seg += values >= (limit << n)
    return seg


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    samples = np.arange(-32768, 32768, dtype=np.int64)
    sign = np.where(samples < 0, 0x80, 0x00)
    magnitude = np.minimum(np.abs(samples), _ULAW_CLIP) + _ULAW_BIAS
    exponent = _segment(magnitude, 0x80)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    codes: npt.NDArray[np.int64] = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return codes.astype(np.uint8)


def _build_ulaw_decode() -> npt.NDArray[np.int16]:
    codes = ~np.arange(256, dtype=np.int64) & 0xFF
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(codes & 0x80, -magnitude, magnitude).astype("<i2")


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    samples = np.arange(-32768, 32768, dtype=np.int64) >> 3  # 13-bit
    mask = np.where(samples >= 0, 0xD5, 0x55)
    magnitude = np.where(samples >= 0, samples, -samples - 1)
    seg = _segment(magnitude, 0x10)
    shift = np.maximum(seg, 1)
    codes = (seg << 4) | ((magnitude >> shift) & 0x0F)
    return (codes ^ mask).astype(np.uint8)


def _build_alaw_decode() -> npt.NDArray[np.int16]:
    codes = np.arange(256, dtype=np.int64) ^ 0x55
    seg = (codes & 0x70) >> 4
    base = (codes & 0x0F) << 4
    magnitude = np.where(seg == 0, base + 8, (base + 0x108) << np.maximum(seg - 1, 0))
    return np.where(codes & 0x80, magnitude, -magnitude).astype("<i2")


# Encode tables are indexed by the sample's bit pattern read as uint16, so the
# int16 value v sits at v & 0xFFFF; roll the tables built over -32768..32767.
_ULAW_ENCODE = np.roll(_build_ulaw_encode(), -32768)
_ULAW_DECODE = _build_ulaw_decode()
_ALAW_ENCODE = np.roll(_build_alaw_encode(), -32768)
_ALAW_DECODE = _build_alaw_decode()


def _check_codes(data: object) -> npt.NDArray[np.uint8]:
    if isinstance(data, bytes | bytearray | memoryview):
        return np.frombuffer(data, dtype=np.uint8)
    raise TypeError(f"expected G.711 data as bytes, got {type(data).__name__}")


def _encode(pcm: BytesLike, table: npt.NDArray[np.uint8]) -> bytes:
    samples = as_int16(check_pcm16(pcm))
    return table[samples.view(np.uint16)].tobytes()


def ulaw_encode(pcm: BytesLike) -> bytes:
    """Encode PCM16 audio as G.711 mu-law, one byte per sample (``0`` gives ``0xFF``)."""
    return _encode(pcm, _ULAW_ENCODE)


def ulaw_decode(data: BytesLike) -> bytes:
    """Decode G.711 mu-law bytes to PCM16 audio, two bytes per code."""
    return _ULAW_DECODE[_check_codes(data)].tobytes()


def alaw_encode(pcm: BytesLike) -> bytes:
    """Encode PCM16 audio as G.711 A-law, one byte per sample (``0`` gives ``0xD5``)."""
    return _encode(pcm, _ALAW_ENCODE)


def alaw_decode(data: BytesLike) -> bytes:
    """Decode G.711 A-law bytes to PCM16 audio, two bytes per code."""
    return _ALAW_DECODE[_check_codes(data)].tobytes()
