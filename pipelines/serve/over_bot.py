"""Speech over the bot's audio: a barge-in, or a backchannel the bot talks through.

The cascade's interruption stage (:mod:`processors.interruption`) lets a bot carry on
through "uh-huh" or a cough; this is the same rule in ``parley serve``, taken from
the served pipeline file's ``[interruption]`` table (``rule = "words"``, its
``min_words``, ``backchannels`` and ``max_pause_ms``).

When speech starts while the client plays a reply that was playing before it
(as far as the server can tell: the audio it sent, played in real time from the
first delta on, :class:`Playback`), or between two pieces of a reply whose audio
had begun, a VAD turn under ``interrupt_response`` is *held*: no
``input_audio_buffer.speech_started`` yet, and the response goes on. The held turn
becomes a barge-in, with the events a turn would have had from its start and the
response cancelled, as soon as either

* the speech has gone on for ``backchannel_ms`` after its start (a backchannel is
  short; at most the file's ``max_pause_ms``), or the user speaks again after a
  pause once that time has passed (under ``semantic_vad`` a turn may stay open
  through a long pause: silence is no speech going on), or
* its transcript holds ``min_words`` words that are not all backchannels.

A held turn whose transcript is only backchannels, or has no words at all (a
cough the transcriber writes as "Hmm"), is dropped: no event, no item, its audio
leaves the input buffer, and the reply plays on. A client that paused the bot at the
speech onset (the realtime processor's ``pause_bot``) resumes it after its silence
wait, since no turn came.

Speech that began before the reply's audio did, or less than ``MIN_QUIET_NS`` after
the user's own last words (the user went on after a pause the server took for the
end of the turn, and the reply started meanwhile), is not held: a client's onset
pause did not fire for it (to the client the user never stopped), so it interrupts
at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from processors.interruption import InterruptionParams, stops_the_bot, words_of

__all__ = [
    "MIN_QUIET_NS",
    "ONSET_GRACE_NS",
    "HeldTurn",
    "Playback",
    "is_barge_in",
    "over_bot_rules",
]

MIN_QUIET_NS = 1_000_000_000
"""Speech that follows the user's own last words by less than this is the user going
on after a pause the server took for the end of the turn (a reply began in it), not a
remark over the bot: it interrupts at once. A listener's "uh-huh" comes after the bot
has been speaking a while; the pauses inside a sentence are 0.5-0.9 s."""

ONSET_GRACE_NS = 100_000_000
"""Speech counts as over a reply that began up to this long after the speech's onset
(as the server's VAD places it, a window or so early): a client that pauses the bot
at the onset hears the speech about 100 ms in, when that reply already plays."""


class Playback:
    """When the client will have played the audio sent so far (wall clock, ns).

    Each delta is taken as played in real time, after the audio before it, and
    from the moment it was sent at the earliest.
    """

    def __init__(self, clock: Callable[[], int] = time.monotonic_ns) -> None:
        """Nothing playing; times come from ``clock`` (ns)."""
        self.until_ns = 0
        self.since_ns = 0
        """When the stretch playing now began."""
        self._clock = clock

    def now_ns(self) -> int:
        """The clock's time."""
        return self._clock()

    def sent(self, duration_ms: float) -> None:
        """``duration_ms`` of reply audio went to the client now."""
        now = self._clock()
        if now >= self.until_ns:
            self.since_ns = now
        self.until_ns = max(self.until_ns, now) + int(duration_ms * 1e6)

    def playing(self) -> bool:
        """True while audio sent is presumably still playing."""
        return self._clock() < self.until_ns

    def playing_since(self, when_ns: int) -> bool:
        """True while audio plays that was already playing at ``when_ns`` (clock time)."""
        return self.playing() and self.since_ns <= when_ns

    def stop(self) -> None:
        """The client stopped playing (a barge-in, a truncate)."""
        self.until_ns = 0


@dataclass(eq=False)
class HeldTurn:
    """A VAD turn over the bot's audio, not announced yet (see the module docstring)."""

    item_id: str
    """The id its item gets if it becomes a barge-in."""
    start_ms: float
    """Where its audio starts in the input buffer (``audio_start_ms``)."""
    timer: anyio.CancelScope
    """The ``backchannel_ms`` wait that makes long speech a barge-in."""
    speech_end_ns: int | None = None
    """When the VAD heard it end (None while the turn is open)."""
    paused: bool = False
    """The VAD reports a pause inside it (the user is silent, the turn still open)."""
    expired: bool = False
    """``backchannel_ms`` has passed since it began."""


def is_barge_in(text: str, rules: InterruptionParams) -> bool:
    """True when ``text`` holds ``min_words`` words that are not all backchannels."""
    return stops_the_bot(text, rules.min_words, [words_of(p) for p in rules.backchannels])


def over_bot_rules(rules: InterruptionParams, hold_ms: float) -> InterruptionParams | None:
    """The rules a session holds speech over the bot by: the file's ``[interruption]``
    with ``max_pause_ms`` cut to ``hold_ms``; None (interrupt at once) unless its rule
    is ``words`` and ``hold_ms`` is positive."""
    if rules.rule != "words" or hold_ms <= 0:
        return None
    return rules.model_copy(update={"max_pause_ms": min(rules.max_pause_ms, hold_ms)})
