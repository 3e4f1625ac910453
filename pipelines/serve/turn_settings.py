"""The turn processor's settings for a session's ``turn_detection``.

``server_vad`` is the VAD alone: ``silence_duration_ms`` of silence ends a turn.
``semantic_vad`` adds the Smart Turn v3.2 end-of-turn model (the cascade's,
:mod:`processors.vad.smart_turn`), one per process, shared by every session
(:func:`~processors.vad.smart_turn.shared_model`: one inference at a time, in a
worker thread). At each pause it judges the turn so far; judged complete, the
turn ends after a short silence, judged incomplete it waits up to the
eagerness's maximum, which are OpenAI's (8 s, 4 s and 2 s for low, medium and
high). See :data:`EAGERNESS` and docs/turn-taking.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from pipelines.serve.session_config import SemanticVad, ServerVad
from processors.vad.smart_turn import shared_model, smart_turn_model_path
from processors.vad.turn import TurnParams

__all__ = ["EAGERNESS", "Eagerness", "check_turn_model", "preload_turn_model", "turn_settings"]

log = logging.getLogger("parley.serve")

_MIN_STOP_MS = 20.0


@dataclass(frozen=True, slots=True)
class Eagerness:
    """How one ``semantic_vad`` eagerness uses the end-of-turn model's verdict."""

    threshold: float
    """Probability from which the model's verdict is "complete"."""
    complete_stop_ms: float
    """Silence that ends a turn judged complete."""
    incomplete_stop_ms: float
    """Silence that ends a turn judged incomplete: the eagerness's maximum wait."""


EAGERNESS: dict[str, Eagerness] = {
    "high": Eagerness(threshold=0.3, complete_stop_ms=150.0, incomplete_stop_ms=2000.0),
    "medium": Eagerness(threshold=0.5, complete_stop_ms=200.0, incomplete_stop_ms=4000.0),
    "auto": Eagerness(threshold=0.5, complete_stop_ms=200.0, incomplete_stop_ms=4000.0),
    "low": Eagerness(threshold=0.7, complete_stop_ms=400.0, incomplete_stop_ms=8000.0),
}
"""``semantic_vad`` eagerness: high answers soonest, low lets the user take their time.

The maximum waits are OpenAI's (2, 4 and 8 s); ``auto`` is ``medium``, as there.
``medium`` takes the model's own operating point (0.5) and the cascade's 200 ms
after a complete verdict; ``high`` also believes less sure verdicts of
"complete" (0.3) and answers them after 150 ms; ``low`` wants a surer verdict
(0.7) and 400 ms of silence."""


def turn_settings(
    turn_detection: ServerVad | SemanticVad | None,
    base: TurnParams,
    *,
    speculate: bool,
    words: bool = False,
) -> dict[str, Any]:
    """The :class:`~processors.vad.turn.TurnParams` changes for ``turn_detection``.

    ``base`` is the pipeline file's ``[vad]`` settings (its ``pause_ms``,
    ``unjudged_stop_ms`` and ``threshold`` are kept where the protocol says
    nothing). ``speculate`` reports pauses inside ``server_vad`` turns;
    ``semantic_vad`` always has them, since the model judges at each pause.
    ``words`` says that the session judges each pause's transcript
    (:class:`~pipelines.serve.speculation.Speculator`): ``semantic_vad`` then
    waits for the words' verdict too (``transcript_check``, with ``base``'s
    threshold and wait), unless ``create_response`` is off, as the pause is not
    transcribed for a turn no reply follows.
    """
    pause_ms = base.pause_ms or float(TurnParams.model_fields["pause_ms"].default)
    if turn_detection is None:  # manual turns: the VAD only tracks speech
        return {"end_of_turn": "silence", "pause_ms": 0.0, "stop_ms": base.stop_ms}
    if isinstance(turn_detection, ServerVad):
        stop_ms = max(float(turn_detection.silence_duration_ms), _MIN_STOP_MS)
        return {
            "end_of_turn": "silence",
            "stop_ms": stop_ms,
            "threshold": max(turn_detection.threshold, 0.01),
            "pause_ms": pause_ms if speculate and pause_ms < stop_ms else 0.0,
        }
    eager = EAGERNESS[turn_detection.eagerness]
    unjudged = min(max(base.unjudged_stop_ms, eager.complete_stop_ms), eager.incomplete_stop_ms)
    return {
        "end_of_turn": "smart_turn",
        "threshold": base.threshold,
        "pause_ms": pause_ms,
        "end_of_turn_threshold": eager.threshold,
        "complete_stop_ms": eager.complete_stop_ms,
        "incomplete_stop_ms": eager.incomplete_stop_ms,
        "unjudged_stop_ms": unjudged,
        "stop_ms": eager.incomplete_stop_ms,
        # The words' second opinion (processors/vad/eou.py) needs the pause's
        # transcript; without it the turn would wait transcript_wait_ms for nothing.
        "transcript_check": words and turn_detection.create_response,
        "transcript_threshold": base.transcript_threshold,
        "transcript_complete_threshold": base.transcript_complete_threshold,
        "transcript_wait_ms": base.transcript_wait_ms,
        "transcript_incomplete_stop_ms": base.transcript_incomplete_stop_ms,
    }


async def preload_turn_model() -> None:
    """Load the shared Smart Turn model in a worker thread, unless it is loaded.

    A session switched to ``semantic_vad`` by ``session.update`` would otherwise
    load it at its first pause. A failure is logged; the turn processor reports
    it again at the pause, and the turn still ends (on ``unjudged_stop_ms``).
    """
    model = shared_model()
    if model.loaded:
        return
    try:
        await anyio.to_thread.run_sync(model.load)
    except Exception:
        log.exception("the Smart Turn model failed to load")


def check_turn_model() -> str | None:
    """Why ``semantic_vad`` cannot run here (the model file is missing), or None."""
    try:
        smart_turn_model_path()
    except RuntimeError as exc:
        return str(exc)
    return None
