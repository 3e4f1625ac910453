"""Turn-taking frames: who is speaking, as decided by a VAD, a turn detector or a server."""

from __future__ import annotations

from dataclasses import dataclass

from framework.frames.base import SystemFrame

__all__ = [
    "BotAudioPauseFrame",
    "BotAudioResumeFrame",
    "BotStartedSpeakingFrame",
    "BotStoppedSpeakingFrame",
    "EndOfUtteranceFrame",
    "UserPausedSpeakingFrame",
    "UserResumedSpeakingFrame",
    "UserStartedSpeakingFrame",
    "UserStoppedSpeakingFrame",
]


@dataclass(slots=True, kw_only=True)
class UserStartedSpeakingFrame(SystemFrame):
    """The user began a turn. ``speech_start_ns`` is when the speech itself began, if known."""

    speech_start_ns: int | None = None


@dataclass(slots=True, kw_only=True)
class UserStoppedSpeakingFrame(SystemFrame):
    """The user's turn ended. ``speech_end_ns`` is when the speech itself ended, if known."""

    speech_end_ns: int | None = None


@dataclass(slots=True, kw_only=True)
class UserPausedSpeakingFrame(SystemFrame):
    """The user went quiet during a turn: a tentative end of turn.

    Stages may start answering at once (transcribe, generate, synthesise) so the
    reply is ready when :class:`UserStoppedSpeakingFrame` confirms the end; the
    output transport does not play it before then. ``speech_end_ns`` is when the
    speech itself ended.
    """

    speech_end_ns: int | None = None


@dataclass(slots=True, kw_only=True)
class UserResumedSpeakingFrame(SystemFrame):
    """The user spoke again after a pause, before the end of turn was decided.

    Whatever was started on the pause is void; the turn goes on.
    """

    speech_start_ns: int | None = None


@dataclass(slots=True, kw_only=True)
class EndOfUtteranceFrame(SystemFrame):
    """A verdict on a pause from its transcript, sent upstream to the turn processor.

    ``probability`` is how likely the words so far are a finished utterance (None:
    no opinion, e.g. nothing was transcribed); ``speech_end_ns`` is the
    ``UserPausedSpeakingFrame.speech_end_ns`` of the pause it judges, so a verdict
    on a pause the user has since spoken past is recognised and dropped.
    """

    probability: float | None = None
    speech_end_ns: int | None = None
    text: str = ""
    model_s: float = 0.0


@dataclass(slots=True, kw_only=True)
class BotStartedSpeakingFrame(SystemFrame):
    """The output transport started playing bot audio."""


@dataclass(slots=True, kw_only=True)
class BotStoppedSpeakingFrame(SystemFrame):
    """The output transport stopped playing bot audio. ``interrupted`` if it was cut off.

    ``mid_reply``: the audio ran out before the end of the reply (the next sentence
    is still being synthesised); the bot still has the floor.
    """

    interrupted: bool = False
    played_s: float = 0.0
    mid_reply: bool = False


@dataclass(slots=True, kw_only=True)
class BotAudioPauseFrame(SystemFrame):
    """Hold the bot's audio: the user may be barging in, and it is not known yet.

    The output transport writes no more audio from its next chunk on and keeps
    the rest of the reply. A :class:`BotAudioResumeFrame` plays it on from there;
    an interruption drops it (the words not played count as not heard). After
    ``timeout_s`` without either, the audio plays on by itself.
    """

    timeout_s: float = 5.0


@dataclass(slots=True, kw_only=True)
class BotAudioResumeFrame(SystemFrame):
    """Play the bot's audio held by :class:`BotAudioPauseFrame` on from where it stopped."""
