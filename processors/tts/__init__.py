"""Text-to-speech stage: the streaming splitter, the stage base class and the Piper backend.

Importing this package loads pydantic but no model runtime: ``piper`` and
``onnxruntime`` are imported when a :class:`PiperTTS` loads its voice. piper-tts
is GPL-3.0-or-later; see :mod:`processors.tts.piper`.
"""

from processors.tts.base import TTSParams, TTSProcessor, clean_for_speech
from processors.tts.piper import PiperTTS, PiperTTSParams
from processors.tts.text import SentenceSplitter, split_text

__all__ = [
    "PiperTTS",
    "PiperTTSParams",
    "SentenceSplitter",
    "TTSParams",
    "TTSProcessor",
    "clean_for_speech",
    "split_text",
]
