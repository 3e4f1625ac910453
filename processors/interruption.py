"""Barge-in decided on the user's words: the interruption stage of a cascade.

The turn processor hears *that* the user speaks; only the transcriber hears
*what* they say. :class:`InterruptionProcessor` sits right after speech-to-text
and decides whether a user turn that began while the bot was speaking is a
barge-in (the bot stops), a backchannel ("uh-huh", "yeah": the bot goes on) or
a sound with no words at all (a cough, a door: the bot goes on)::

    transport.in -> turn (VAD) -> stt -> interruption -> user context -> llm -> tts
        -> transport.out -> assistant context

* The turn processor (built with ``barge_in_start_ms``) starts such a turn after
  ``onset_ms`` of speech and interrupts nothing itself.
* At that start this stage pauses the bot (:class:`BotAudioPauseFrame`: the
  output transport writes no more audio from its next chunk on, and keeps the
  rest), and holds the turn's frames back from the stages after it.
* As soon as an interim or final transcript of the turn holds ``min_words``
  words that are not all backchannels, it broadcasts the interruption (the
  output drops the rest of the reply and passes on the words heard) and
  releases the held frames: the turn goes on as any user turn, its first word
  included.
* When the user goes quiet and the transcript holds no such words, the bot
  resumes (:class:`BotAudioResumeFrame`) from where it paused; if the user does
  not speak again before the turn ends, the turn is dropped: no user message,
  no reply, and the bot's reply stays whole in the context.
* Speech that goes on for ``max_pause_ms`` with no words transcribed yet stops
  the bot all the same (a transcriber too slow to keep up must not leave the bot
  paused while the user talks).

"Over the bot" includes a silence in the middle of a reply (the next sentence is
still being synthesised: ``BotStoppedSpeakingFrame.mid_reply``). Turns that begin
while the bot is silent otherwise pass through untouched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import ClassVar, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field, field_validator

from framework import Direction, Frame, Processor, handles
from framework.frames import (
    BotAudioPauseFrame,
    BotAudioResumeFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    StartFrame,
    TranscriptionFrame,
    UserPausedSpeakingFrame,
    UserResumedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)

__all__ = [
    "DEFAULT_BACKCHANNELS",
    "InterruptionParams",
    "InterruptionProcessor",
    "is_backchannel",
    "stops_the_bot",
    "words_of",
]

DOWN = Direction.DOWNSTREAM

DEFAULT_BACKCHANNELS: tuple[str, ...] = (
    "uh-huh",
    "mm-hmm",
    "mhm",
    "hmm",
    "mm",
    "yeah",
    "yep",
    "yes",
    "okay",
    "ok",
    "right",
    "sure",
    "i see",
    "got it",
    "oh",
)
"""Said while the bot speaks, these alone keep it speaking (the listener follows)."""

_WORD = re.compile(r"[a-z0-9']+")
# Vocal sounds a transcriber writes down that are not words: hums ("hmm", "mhm",
# "HMHM"), fillers ("um", "uh", "er"), "shh", "pff", laughter ("ha-ha"), "ugh".
_SOUND = re.compile(
    r"(?:h*m+)+h*|u+[hm]+|a+h+|e+[hr]+|o+h+|s+h+|p*f+|h+u+h+|u+g+h+|(?:h+a+)+h*|(?:h+e+)+h*"
)


def words_of(text: str) -> list[str]:
    """The words of a transcript: lower case, punctuation and hyphens dropped.

    Vocal sounds that are not words (hums, fillers, "shh", laughter) are left out:
    a cough that the transcriber writes as "Hmm" or "Um" has no words.
    """
    found = _WORD.findall(text.lower().replace("-", " "))
    return [w for w in found if not _SOUND.fullmatch(w)]


def stops_the_bot(text: str, min_words: int, phrases: Iterable[Sequence[str]]) -> bool:
    """Whether ``text``, said over the bot, stops it: at least ``min_words`` words
    (:func:`words_of`), not all backchannel ``phrases``."""
    words = words_of(text)
    return len(words) >= min_words and not is_backchannel(words, phrases)


def is_backchannel(words: Sequence[str], phrases: Iterable[Sequence[str]]) -> bool:
    """True when ``words`` (not empty) are one or more of ``phrases`` in a row."""
    options = [tuple(p) for p in phrases if p]
    n = len(words)
    reachable = [False] * (n + 1)  # reachable[i]: words[:i] is made of phrases
    reachable[0] = True
    for i in range(n):
        if reachable[i]:
            for phrase in options:
                if tuple(words[i : i + len(phrase)]) == phrase:
                    reachable[i + len(phrase)] = True
    return n > 0 and reachable[n]


class InterruptionParams(BaseModel):
    """The ``[interruption]`` table of a cascade: when the user's speech stops the bot."""

    model_config = ConfigDict(extra="forbid")

    rule: Literal["words", "speech"] = Field(
        default="words",
        description=(
            "'words': while the bot speaks, the user's speech pauses it after onset_ms and "
            "its transcript decides (min_words, backchannels). 'speech': the time rule of "
            "the [vad] table (min_interruption_ms of speech stops the bot, whatever it is)."
        ),
    )
    onset_ms: float = Field(
        default=96.0,
        gt=0,
        le=2000,
        description=(
            "words: speech (while the bot speaks) that starts a possible barge-in: a user "
            "turn, and the bot pauses if pause_bot. Shorter sounds do nothing. Also the "
            "onset of a speech-to-speech pipeline's pause_bot."
        ),
    )
    pause_bot: bool = Field(
        default=True,
        description=(
            "words: pause the bot's audio at the onset, before the words are known (the "
            "barge-in takes effect at once; a backchannel or cough makes a short gap). "
            "False: the bot talks on until the words decide. In a speech-to-speech "
            "pipeline whose server detects turns (off there unless set): a local VAD "
            "pauses the bot at the onset, the server's turn cuts it, silence with no "
            "turn resumes it (processors/realtime/onset.py)."
        ),
    )
    min_words: int = Field(
        default=1,
        ge=1,
        le=20,
        description=(
            "words: words an interim or final transcript must hold (not all backchannels) "
            "before the bot stops."
        ),
    )
    backchannels: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BACKCHANNELS),
        description=(
            "words: phrases that alone (one or several in a row: 'yeah, okay') keep the "
            "bot speaking and make no user turn. Matched on lower-case words, punctuation "
            "and hyphens dropped; sounds that are not words (hmm, uh-huh, um) count as no "
            "words whether listed or not. [] turns the rule off."
        ),
    )
    max_pause_ms: float = Field(
        default=1500.0,
        gt=0,
        le=10000,
        description=(
            "words: speech that goes on this long from the onset with no words transcribed "
            "stops the bot anyway (a transcriber that cannot keep up). A speech-to-speech "
            "pipeline's pause_bot: the longest pause the server leaves undecided."
        ),
    )

    @field_validator("backchannels")
    @classmethod
    def _check_backchannels(cls, value: list[str]) -> list[str]:
        for phrase in value:
            if not _WORD.search(phrase.lower()):
                raise ValueError(f"backchannel {phrase!r} has no letters or digits")
        return value


class _Candidate:
    """A user turn that began while the bot spoke, not judged yet."""

    def __init__(self, start: UserStartedSpeakingFrame) -> None:
        self.held: list[Frame] = [start]  # frames kept back from the stages after this one
        self.quiet = False  # the user paused or stopped: a transcript will judge the turn
        self.stopped = False
        self.judged_quiet = False  # that transcript came and held no barge-in words
        self.epoch = 0  # bumped at each resume: the timer of an older stretch is void
        self.last_text = ""


class InterruptionProcessor(Processor):
    """Decides barge-in on the user's words; see the module docstring.

    Place it right after the speech-to-text stage, with a turn processor built
    with ``barge_in_start_ms=params.onset_ms`` before it. Events for the log:
    ``barge_in`` (the bot is stopped: ``reason`` and ``text``) and
    ``barge_in_ignored`` (``reason``: backchannel, no words or too few words; ``text``).
    """

    Params: ClassVar[type[InterruptionParams]] = InterruptionParams

    def __init__(self, params: InterruptionParams | None = None, *, name: str | None = None):
        """Create the stage; ``params`` defaults to the defaults of the ``[interruption]`` table."""
        super().__init__(name=name)
        self.params = params or InterruptionParams()
        self._phrases = [words_of(p) for p in self.params.backchannels]
        self._allow = True
        self._bot_speaking = False
        self._candidate: _Candidate | None = None
        self._paused = False  # this stage paused the bot and has not lifted it

    @property
    def deciding(self) -> bool:
        """True while a turn that began over the bot waits for its words."""
        return self._candidate is not None

    def barge_in_words(self, text: str) -> bool:
        """Whether ``text`` stops the bot: ``min_words`` words, not all backchannels."""
        return stops_the_bot(text, self.params.min_words, self._phrases)

    async def on_start(self, frame: StartFrame) -> None:
        """Take the task's interruption policy."""
        self._allow = frame.allow_interruptions

    async def on_interruption(
        self, frame: InterruptionFrame, dropped: Sequence[tuple[Frame, Direction]]
    ) -> None:
        """Any interruption lifts the output's pause: a later onset pauses the bot anew."""
        self._paused = False

    # ------------------------------------------------------------ bot state

    @handles(BotStartedSpeakingFrame)
    async def _bot_started(self, frame: BotStartedSpeakingFrame, direction: Direction) -> None:
        self._bot_speaking = True
        await self.push(frame, direction)

    @handles(BotStoppedSpeakingFrame)
    async def _bot_stopped(self, frame: BotStoppedSpeakingFrame, direction: Direction) -> None:
        self._bot_speaking = frame.mid_reply  # between two sentences it keeps the floor
        await self.push(frame, direction)

    # ------------------------------------------------------------ the user's turn

    @handles(UserStartedSpeakingFrame)
    async def _started(self, frame: UserStartedSpeakingFrame, direction: Direction) -> None:
        if direction is not DOWN:
            await self.push(frame, direction)
            return
        if self._candidate is not None:  # never stopped: let it go
            await self._drop("no words")
        if not (self._allow and self._bot_speaking and self.params.rule == "words"):
            await self.push(frame, direction)
            return
        self._candidate = candidate = _Candidate(frame)
        await self._pause_bot()
        self._start_timer(candidate)

    @handles(UserPausedSpeakingFrame)
    async def _paused_speaking(self, frame: UserPausedSpeakingFrame, direction: Direction) -> None:
        candidate = self._candidate
        if direction is not DOWN or candidate is None:
            await self.push(frame, direction)
            return
        candidate.held.append(frame)
        candidate.quiet = True

    @handles(UserResumedSpeakingFrame)
    async def _resumed(self, frame: UserResumedSpeakingFrame, direction: Direction) -> None:
        candidate = self._candidate
        if direction is not DOWN or candidate is None:
            await self.push(frame, direction)
            return
        # The pause and its transcript are superseded: the next transcript covers the
        # whole turn, so the stages after this one need neither.
        del candidate.held[1:]
        candidate.quiet = candidate.judged_quiet = False
        candidate.epoch += 1
        if self._bot_speaking:
            await self._pause_bot()
        self._start_timer(candidate)

    @handles(UserStoppedSpeakingFrame)
    async def _stopped(self, frame: UserStoppedSpeakingFrame, direction: Direction) -> None:
        candidate = self._candidate
        if direction is not DOWN or candidate is None:
            await self.push(frame, direction)
            return
        candidate.held.append(frame)
        candidate.quiet = candidate.stopped = True
        if candidate.judged_quiet:  # the pause's transcript was the turn's: nothing in it
            await self._drop(self._why_not(candidate.last_text))

    @handles(InterimTranscriptionFrame)
    async def _interim(self, frame: InterimTranscriptionFrame, direction: Direction) -> None:
        await self.push(frame, direction)
        candidate = self._candidate
        if direction is DOWN and candidate is not None and not candidate.judged_quiet:
            candidate.last_text = frame.text
            if self.barge_in_words(frame.text):
                await self._confirm("words", frame.text)

    @handles(TranscriptionFrame)
    async def _transcript(self, frame: TranscriptionFrame, direction: Direction) -> None:
        candidate = self._candidate
        if direction is not DOWN or candidate is None:
            await self.push(frame, direction)
            return
        candidate.held.append(frame)
        candidate.last_text = frame.text
        if self.barge_in_words(frame.text):
            await self._confirm("words", frame.text)
            return
        candidate.judged_quiet = True
        if candidate.stopped:
            await self._drop(self._why_not(frame.text))
        else:  # quiet, maybe for good: the bot goes on meanwhile
            await self._resume_bot()

    # ------------------------------------------------------------ decisions

    def _why_not(self, text: str) -> str:
        words = words_of(text)
        if not words:
            return "no words"
        return "backchannel" if is_backchannel(words, self._phrases) else "too few words"

    async def _confirm(self, reason: str, text: str) -> None:
        """A barge-in: stop the bot, then let the turn's held frames go on."""
        candidate, self._candidate = self._candidate, None
        if candidate is None:
            return
        self.report_event("barge_in", reason=reason, text=text)
        self._paused = False  # the interruption lifts the pause at the output
        await self.broadcast_interruption()
        for frame in candidate.held:
            await self.push(frame, DOWN)

    async def _drop(self, reason: str) -> None:
        """Not a barge-in: the bot plays on and the turn goes no further."""
        candidate, self._candidate = self._candidate, None
        if candidate is None:
            return
        self.report_event("barge_in_ignored", reason=reason, text=candidate.last_text)
        await self._resume_bot()

    async def _pause_bot(self) -> None:
        if self.params.pause_bot and not self._paused:
            self._paused = True
            timeout_s = self.params.max_pause_ms / 1000.0 + 5.0  # the output's own safety net
            await self.push(BotAudioPauseFrame(timeout_s=timeout_s), DOWN)

    async def _resume_bot(self) -> None:
        if self._paused:
            self._paused = False
            await self.push(BotAudioResumeFrame(), DOWN)

    def _start_timer(self, candidate: _Candidate) -> None:
        self.context.task_group.start_soon(self._expire, candidate, candidate.epoch)

    async def _expire(self, candidate: _Candidate, epoch: int) -> None:
        """``max_pause_ms`` after the onset (or a resume): still talking, still no words."""
        await anyio.sleep(self.params.max_pause_ms / 1000.0)
        if self._candidate is candidate and candidate.epoch == epoch and not candidate.quiet:
            await self._confirm("speech without words", candidate.last_text)
