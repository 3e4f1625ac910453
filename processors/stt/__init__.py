"""Speech-to-text stage: the turn logic shared by transcribers, and two local backends.

* :class:`~processors.stt.whisper.WhisperSTT`: Whisper tiny.en on CTranslate2,
  re-transcribing while the user speaks; the accurate one.
* :class:`~processors.stt.pocketsphinx.PocketSphinxSTT`: PocketSphinx, truly
  streaming; light and fast but much less accurate on natural speech.

Importing this package loads pydantic but no model runtime: numpy, ctranslate2
and pocketsphinx are imported when a backend loads its model.
"""

from processors.stt.base import SAMPLE_RATE, STTParams, STTProcessor, TurnAudio
from processors.stt.pocketsphinx import PocketSphinxSTT, PocketSphinxSTTParams
from processors.stt.whisper import WhisperSTT, WhisperSTTParams

__all__ = [
    "SAMPLE_RATE",
    "PocketSphinxSTT",
    "PocketSphinxSTTParams",
    "STTParams",
    "STTProcessor",
    "TurnAudio",
    "WhisperSTT",
    "WhisperSTTParams",
]
