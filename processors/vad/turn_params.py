"""Settings of the turn-taking processor (:class:`~processors.vad.turn.TurnProcessor`).

The VAD's own settings (:class:`~processors.vad.base.VADParams`) plus how a pause
becomes the end of a turn (Smart Turn, the words' second opinion, hesitations)
and the barge-in policy. docs/turn-taking.md explains each default and how it
was measured.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from processors.vad.base import VADParams
from processors.vad.eou import HOLD_PHRASES, OPEN_ENDINGS

__all__ = ["TurnParams"]


class TurnParams(VADParams):
    """Settings of :class:`TurnProcessor`: the VAD settings plus barge-in policy."""

    vad: Literal["silero", "webrtc"] = Field(
        default="silero",
        description="VAD backend used when no analyzer is passed in (silero resists noise).",
    )
    min_interruption_ms: float = Field(
        default=300.0,
        ge=0,
        le=5000,
        description=(
            "While the bot speaks, user speech must last this long (and at least start_ms) "
            "before it counts as a turn and interrupts the bot, so clicks and noise do not. "
            "Not used while the bot speaks when a later stage decides barge-in on the "
            "user's words (the cascades' [interruption] rule = 'words')."
        ),
    )
    interrupt_on_start: bool = Field(
        default=True,
        description=(
            "While the bot is silent, a user start also broadcasts an interruption, "
            "cancelling any reply still being prepared."
        ),
    )
    end_of_turn: Literal["smart_turn", "silence"] = Field(
        default="smart_turn",
        description=(
            "How a pause becomes the end of the turn. 'smart_turn': the Smart Turn v3.2 model "
            "judges the last 8 s of the turn at each pause; complete ends the turn after "
            "complete_stop_ms of silence, incomplete waits up to incomplete_stop_ms. "
            "'silence': stop_ms of silence always ends it. The model runs at the pause, so "
            "with pause_ms = 0 turns end on stop_ms whatever this says. See docs/turn-taking.md."
        ),
    )
    complete_stop_ms: float = Field(
        default=200.0,
        gt=0,
        le=10000,
        description="smart_turn: silence that ends a turn the model judged complete.",
    )
    incomplete_stop_ms: float = Field(
        default=1500.0,
        gt=0,
        le=10000,
        description=("smart_turn: silence that ends a turn the model judged incomplete."),
    )
    unjudged_stop_ms: float = Field(
        default=800.0,
        gt=0,
        le=10000,
        description=(
            "smart_turn: silence that ends a turn while the model has not answered yet "
            "(normally ~50 ms after the pause; longer only on a CPU too busy for it)."
        ),
    )
    end_of_turn_threshold: float = Field(
        default=0.5,
        gt=0.0,
        lt=1.0,
        description="smart_turn: probability at or above which the model's verdict is 'complete'.",
    )
    transcript_check: bool = Field(
        default=False,
        description=(
            "smart_turn: also ask the words. A pause Smart Turn judges complete ends the "
            "turn only once the pause's transcript is judged too (an EndOfUtteranceFrame "
            "from the end-of-utterance stage, which the cascade adds after speech-to-text); "
            "words judged unfinished make it wait transcript_incomplete_stop_ms. "
            "See docs/turn-taking.md."
        ),
    )
    transcript_threshold: float = Field(
        default=1e-7,
        gt=0.0,
        lt=1.0,
        description=(
            "transcript_check: the language model's end-of-utterance probability below "
            "which the words are unfinished."
        ),
    )
    transcript_complete_threshold: float | None = Field(
        default=1e-3,
        gt=0.0,
        lt=1.0,
        description=(
            "transcript_check: the end-of-utterance probability from which the words "
            "overrule a Smart Turn verdict of 'incomplete': the turn ends as if judged "
            "complete (after complete_stop_ms, or longer after a hesitation). None: "
            "Smart Turn's 'incomplete' always waits incomplete_stop_ms."
        ),
    )
    transcript_incomplete_stop_ms: float = Field(
        default=1500.0,
        gt=0,
        le=10000,
        description=(
            "transcript_check: silence that ends a turn Smart Turn judged complete but whose "
            "words read unfinished. Shorter than a long incomplete_stop_ms on purpose: the "
            "words misjudge some bare one-word answers, which then wait this long."
        ),
    )
    hold_phrases: list[str] = Field(
        default_factory=lambda: list(HOLD_PHRASES),
        description=(
            "transcript_check: words that ask for time, not a reply ('wait', 'hold on', "
            "'um'). A pause whose whole transcript is made of them is unfinished whatever "
            "the models say: the turn waits transcript_incomplete_stop_ms for the rest."
        ),
    )
    open_endings: list[str] = Field(
        default_factory=lambda: list(OPEN_ENDINGS),
        description=(
            "transcript_check: punctuation that, ending a pause's transcript, says the "
            "transcriber heard the sentence go on ('I am packing, a tent, two sleeping "
            "bags,'): the turn waits transcript_incomplete_stop_ms, whatever the models say."
        ),
    )
    transcript_wait_ms: float = Field(
        default=1200.0,
        gt=0,
        le=10000,
        description=(
            "transcript_check: the longest silence to wait for the words' verdict once "
            "Smart Turn says complete; without it by then the turn ends on Smart Turn's."
        ),
    )

    hesitation_ms: float = Field(
        default=500.0,
        ge=0,
        le=10000,
        description=(
            "smart_turn: a pause at least this long that the user goes on from is a "
            "hesitation. Later in the same turn, a pause judged complete ends the turn only "
            "after hesitation_margin_ms more silence than the longest hesitation so far (at "
            "most incomplete_stop_ms): a speaker who has stopped to think once often does "
            "again. Longer than the ~300 ms between two sentences; 0 turns it off."
        ),
    )
    hesitation_margin_ms: float = Field(
        default=300.0,
        ge=0,
        le=10000,
        description="hesitation_ms: silence beyond the longest hesitation before a turn ends.",
    )

    @model_validator(mode="after")
    def _check_smart_turn(self) -> TurnParams:
        if self.end_of_turn != "smart_turn":
            return self
        if self.complete_stop_ms > self.incomplete_stop_ms:
            raise ValueError(
                f"complete_stop_ms ({self.complete_stop_ms:g}) must not exceed "
                f"incomplete_stop_ms ({self.incomplete_stop_ms:g})"
            )
        return self
