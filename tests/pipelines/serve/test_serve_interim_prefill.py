"""``parley serve --option interim_prefill=true``: the words heard are evaluated ahead of the pause.

Real models behind a server on 127.0.0.1 (Silero, Smart Turn v3.2, Whisper,
SmolLM2, Piper) and a real WebSocket; the question is spoken in real time so that
the transcriber's interim passes run while it is said.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
import websockets

from pipelines.serve.app import running_server
from processors.vad.eou import TranscriptEndOfTurn
from tests.pipelines.serve.helpers import connect_session, event_types, say, speech_24k

pytestmark = [pytest.mark.anyio, pytest.mark.models]

QUESTION = "Could you tell me a little bit about the history of Rome?"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def model_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """The words heard each prefill evaluated, and the tokens each check evaluated."""
    calls: dict[str, list[Any]] = {"prefilled": [], "checked": []}
    prefill, probability = TranscriptEndOfTurn.prefill, TranscriptEndOfTurn.probability

    def prefilling(self: TranscriptEndOfTurn, history: Sequence[Any] = (), text: str = "") -> int:
        tokens = prefill(self, history, text)
        if tokens:
            calls["prefilled"].append(text)
        return tokens

    def checking(
        self: TranscriptEndOfTurn,
        text: str,
        history: Sequence[Any] = (),
        stop: threading.Event | None = None,
    ) -> float | None:
        value = probability(self, text, history, stop)
        calls["checked"].append((text, self.last_tokens))
        return value

    monkeypatch.setattr(TranscriptEndOfTurn, "prefill", prefilling)
    monkeypatch.setattr(TranscriptEndOfTurn, "probability", checking)
    return calls


async def _ask(interim_prefill: bool) -> list[dict[str, Any]]:
    async with (
        running_server(
            "cascade-local", overrides=["llm.max_tokens=8"], interim_prefill=interim_prefill
        ) as url,
        websockets.connect(f"{url}/realtime") as ws,
    ):
        client = await connect_session(ws, {"type": "semantic_vad", "eagerness": "high"})
        await say(client, 300, speech_24k(QUESTION), live=True)
        await say(client, 2500)
        return await client.until("response.done", limit_s=120)


@pytest.mark.parametrize("interim_prefill", [True, False])
async def test_the_check_at_the_pause_evaluates_only_the_words_not_heard_before(
    model_calls: dict[str, list[Any]], interim_prefill: bool
) -> None:
    events = await _ask(interim_prefill)
    assert event_types(events).count("response.created") == 1
    heard = [text for text in model_calls["prefilled"] if text]
    checks = [tokens for text, tokens in model_calls["checked"] if "rome" in text.lower()]
    assert checks, model_calls  # the pause's transcript was judged
    if interim_prefill:
        # The words of the interim transcripts (all but the last word of each) went
        # to the model while the question was being said; the check evaluated the rest.
        assert heard and all(QUESTION.lower().startswith(t.lower()) for t in heard[:1]), heard
        assert checks[-1] <= 6, model_calls
    else:
        # No interim pass runs: the check evaluates the whole question at the pause.
        assert heard == []
        assert checks[-1] >= 10, model_calls
