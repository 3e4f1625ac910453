"""Frames: the units of work that flow through a pipeline, grouped by topic."""

from framework.frames.audio import AudioFrame, InputAudioFrame, OutputAudioFrame
from framework.frames.base import (
    ControlFrame,
    DataFrame,
    Direction,
    Frame,
    FrameKind,
    SystemFrame,
    Uninterruptible,
)
from framework.frames.control import SettingsUpdateFrame, TTSStartedFrame, TTSStoppedFrame
from framework.frames.lifecycle import (
    CancelFrame,
    EndFrame,
    ErrorFrame,
    InterruptionFrame,
    MetricSample,
    MetricsFrame,
    StartFrame,
)
from framework.frames.llm import (
    FunctionCallFrame,
    FunctionCallResultFrame,
    LLMMessagesFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    LLMRunFrame,
)
from framework.frames.speech import (
    BotAudioPauseFrame,
    BotAudioResumeFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    UserPausedSpeakingFrame,
    UserResumedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from framework.frames.text import (
    InterimTranscriptionFrame,
    LLMTextFrame,
    TextFrame,
    TranscriptionFrame,
    TTSTextFrame,
)

__all__ = [
    "AudioFrame",
    "BotAudioPauseFrame",
    "BotAudioResumeFrame",
    "BotStartedSpeakingFrame",
    "BotStoppedSpeakingFrame",
    "CancelFrame",
    "ControlFrame",
    "DataFrame",
    "Direction",
    "EndFrame",
    "ErrorFrame",
    "Frame",
    "FrameKind",
    "FunctionCallFrame",
    "FunctionCallResultFrame",
    "InputAudioFrame",
    "InterimTranscriptionFrame",
    "InterruptionFrame",
    "LLMMessagesFrame",
    "LLMResponseEndFrame",
    "LLMResponseStartFrame",
    "LLMRunFrame",
    "LLMTextFrame",
    "MetricSample",
    "MetricsFrame",
    "OutputAudioFrame",
    "SettingsUpdateFrame",
    "StartFrame",
    "SystemFrame",
    "TTSStartedFrame",
    "TTSStoppedFrame",
    "TTSTextFrame",
    "TextFrame",
    "TranscriptionFrame",
    "Uninterruptible",
    "UserPausedSpeakingFrame",
    "UserResumedSpeakingFrame",
    "UserStartedSpeakingFrame",
    "UserStoppedSpeakingFrame",
]
