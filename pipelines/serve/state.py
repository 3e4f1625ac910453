"""The state of one Realtime session, in one place.

:class:`SessionState` holds everything a session knows: its configuration, the
conversation, the input audio buffer, the active response, the user turn in
progress and the reply prepared at a pause of it. The session's components
(:mod:`pipelines.serve.turns`, :mod:`pipelines.serve.replies`,
:mod:`pipelines.serve.speculation` and the client event handlers of
:mod:`pipelines.serve.handlers`) each get this one object and change it; none
keeps session state of its own.

The state machine, read off the fields:

* a user turn is open in the STT while ``stt_turn_open`` (opened by the VAD when
  ``turn_by_vad``, else by the first append under manual turns); its item id,
  announced by ``speech_started``, is ``vad_item_id``;
* every turn closed in the STT waits in ``slots`` for its one transcript: the
  committed item, a :class:`Speculation` (the turn was transcribed at a pause) or
  None (nobody wants it); ``transcribed`` holds the events responses wait on;
* at most one response is active (``response``); ``deferred_auto`` marks a VAD
  turn that ended while it ran and is answered when it ends;
* ``speculation`` is the pause of the open VAD turn, whose reply may be held.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVarTuple

import anyio

from pipelines.serve.audio import InputAudioBuffer
from pipelines.serve.items import Conversation, Item
from pipelines.serve.over_bot import HeldTurn, Playback
from pipelines.serve.responses import Response, ResponseSettings
from pipelines.serve.session_config import SessionConfig, TurnDetection

__all__ = ["HeldReply", "Send", "SessionState", "Spawn", "Speculation"]

Send = Callable[[dict[str, Any]], None]
"""Queue a server event (the session sends them in order)."""

_Args = TypeVarTuple("_Args")


class Spawn(Protocol):
    """Start ``fn(*args)`` as a task of the session (it ends with the session)."""

    def __call__(
        self, fn: Callable[[*_Args], Coroutine[Any, Any, Any]], /, *args: *_Args
    ) -> None: ...


class HeldReply:
    """A speculative reply's output, recorded in order until the turn ends.

    It takes the calls the session's output hooks make on a
    :class:`~pipelines.serve.responses.Response` and :meth:`replay` makes them
    on the real one, so the events are exactly those of a live reply.
    """

    def __init__(self, settings: ResponseSettings) -> None:
        """Record a reply made with ``settings``."""
        self.settings = settings
        self.llm_chunks = 0
        self.limit_hit = False
        self.ended = False
        """The reply's end (``LLMResponseEndFrame``) has reached the output."""
        self.has_audio = False
        self._calls: list[Callable[[Response], None]] = []

    def transcript(self, text: str) -> None:
        """A spoken piece's text."""
        self._calls.append(lambda response: response.transcript(text))

    def text(self, text: str) -> None:
        """Text of a text-only reply."""
        self._calls.append(lambda response: response.text(text))

    def audio(self, pcm: bytes, sample_rate: int) -> None:
        """Synthesised audio."""
        self.has_audio = self.has_audio or bool(pcm)
        data = bytes(pcm)
        self._calls.append(lambda response: response.audio(data, sample_rate))

    def flush_audio(self) -> None:
        """The end of a spoken piece's synthesis."""
        self._calls.append(Response.flush_audio)

    def function_call(self, call_id: str, name: str, arguments: str) -> None:
        """A function call of the model."""
        self._calls.append(lambda response: response.function_call(call_id, name, arguments))

    @property
    def recorded(self) -> int:
        """How many output calls are waiting to be replayed."""
        return len(self._calls)

    def replay(self, response: Response) -> None:
        """Make every recorded call on ``response``, in order."""
        response.llm_chunks = self.llm_chunks
        response.limit_hit = self.limit_hit
        for call in self._calls:
            call(response)
        self._calls.clear()


@dataclass(eq=False)
class Speculation:
    """One pause of a VAD turn: its transcript and the reply prepared from it."""

    item_id: str
    """The id the turn's item will have (the one ``speech_started`` announced)."""
    config: SessionConfig
    """The session configuration at the pause; a later ``session.update`` voids the reply."""
    conversation_ids: list[str] = field(default_factory=list)
    transcribed: bool = False
    text: str = ""
    reply: HeldReply | None = None
    speech_end_ns: int | None = None
    """When the speech before the pause ended (the words' verdict names the pause by it)."""


@dataclass(eq=False)
class SessionState:
    """What one session knows (see the module docstring for how the fields move)."""

    config: SessionConfig
    """The session configuration (``session.update`` replaces it)."""
    input: InputAudioBuffer
    """Appended audio not committed yet, and the session's audio clock."""
    conversation: Conversation = field(default_factory=Conversation)

    # -- the pipeline
    ready: anyio.Event = field(default_factory=anyio.Event)
    """Set once every stage of the pipeline has started (models loaded)."""
    start_errors: list[str] = field(default_factory=list)
    """Errors stages reported before the pipeline was ready."""

    # -- replies
    response: Response | None = None
    """The active response (one at a time)."""
    prepare_scope: anyio.CancelScope | None = None
    """The task preparing the active response's model input (waits for transcripts)."""
    deferred_auto: bool = False
    """A VAD turn ended while a response was active: answer it when that response ends."""
    audio_produced: bool = False
    """Assistant audio went out (the voice can no longer change)."""
    idle_scope: anyio.CancelScope | None = None
    """The idle timeout armed after a completed response, if any."""

    # -- user turns
    stt_turn_open: bool = False
    turn_by_vad: bool = False
    """The open STT turn was opened by the VAD (else by the session, manual turns)."""
    vad_item_id: str | None = None
    """The item id ``speech_started`` announced for the open VAD turn."""
    vad_speaking: bool = False
    """What the VAD last said, in any mode (manual turns ignore it)."""
    vad_start_ns: int | None = None
    vad_end_ns: int | None = None
    """When the VAD last heard the user's speech end (wall clock, ``time.monotonic_ns``)."""
    slots: deque[Item | Speculation | HeldTurn | None] = field(default_factory=deque)
    """Turns closed in the STT, oldest first, each waiting for its transcript."""
    transcribed: dict[str, anyio.Event] = field(default_factory=dict)
    """Committed user audio items whose transcript has not arrived, by id."""
    speculation: Speculation | None = None
    """The pause of the open VAD turn the STT has transcribed (None outside one)."""
    held: HeldTurn | None = None
    """The open VAD turn, when it began over the bot's audio and is not announced yet
    (:mod:`pipelines.serve.over_bot`); once it ends its slot waits for the words."""
    playback: Playback = field(default_factory=Playback)
    """When the client will have played the reply audio sent so far."""

    @property
    def turn_detection(self) -> TurnDetection | None:
        """The session's turn detection settings (None: manual turns)."""
        return self.config.audio.input.turn_detection

    def held_reply(self) -> HeldReply | None:
        """The reply being prepared for the open turn, if one is."""
        spec = self.speculation
        return spec.reply if spec is not None else None
