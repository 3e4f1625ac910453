"""The conversation context and the two aggregators that keep it up to date.

:class:`LLMContext` holds the conversation as OpenAI-style message dicts, with a
system prompt and a list of tools (OpenAI function-tool dicts). Two processors
share one context (see docs/frame-flow.md):

* :class:`UserContextAggregator`, placed after speech-to-text, collects the
  transcripts of a user turn and, when the turn is over, appends the user
  message and pushes an :class:`~framework.frames.llm.LLMMessagesFrame`.
* :class:`AssistantContextAggregator`, placed after the output transport,
  collects the :class:`~framework.frames.text.TTSTextFrame` text that reaches it
  (only what the user heard) and appends the assistant message at the end of the
  reply or at an interruption.

:func:`context_pair` builds both around a new context.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from framework.frames.base import Direction, Frame
from framework.frames.lifecycle import InterruptionFrame
from framework.frames.llm import (
    LLMMessagesFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    LLMRunFrame,
)
from framework.frames.speech import (
    UserPausedSpeakingFrame,
    UserResumedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from framework.frames.text import TranscriptionFrame, TTSTextFrame
from framework.processor import Processor, handles

__all__ = [
    "AssistantContextAggregator",
    "AssistantContextAggregatorParams",
    "LLMContext",
    "UserContextAggregator",
    "UserContextAggregatorParams",
    "context_pair",
]

Message = dict[str, Any]
_ROLES = frozenset({"system", "user", "assistant", "tool"})


class LLMContext:
    """A conversation: system prompt, messages (OpenAI format) and tools.

    The system prompt is kept apart from the messages and put first by
    :meth:`snapshot`, so it can be changed at any time. Mutating methods copy
    what they are given; :meth:`snapshot` returns copies, so a frame carrying a
    snapshot never changes under its receiver.
    """

    def __init__(
        self,
        system_prompt: str | None = None,
        messages: Iterable[Message] = (),
        tools: Iterable[dict[str, Any]] = (),
    ) -> None:
        """Create a context; ``messages`` must not include the system prompt."""
        self.system_prompt: str | None = system_prompt or None
        self._messages: list[Message] = []
        for message in messages:
            self.add_message(message)
        self.tools: list[dict[str, Any]] = [copy.deepcopy(t) for t in tools]

    @property
    def messages(self) -> list[Message]:
        """A copy of the messages, without the system prompt."""
        return copy.deepcopy(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    def add_message(self, message: Message) -> None:
        """Append one message dict; it needs a known ``role``."""
        if not isinstance(message, dict):
            raise TypeError(f"a message is a dict, got {type(message).__name__}")
        role = message.get("role")
        if role not in _ROLES:
            raise ValueError(
                f"message role must be one of {', '.join(sorted(_ROLES))}, got {role!r}"
            )
        if role == "system":
            raise ValueError("set the system prompt with LLMContext.system_prompt, not a message")
        self._messages.append(copy.deepcopy(message))

    def add_user_message(self, text: str) -> None:
        """Append what the user said."""
        self.add_message({"role": "user", "content": text})

    def add_assistant_message(self, text: str) -> None:
        """Append what the assistant said (what was heard, for a voice bot)."""
        self.add_message({"role": "assistant", "content": text})

    def add_tool_call(self, call_id: str, name: str, arguments: str) -> None:
        """Append an assistant message asking for a tool call; ``arguments`` is a JSON string."""
        self.add_message(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    }
                ],
            }
        )

    def add_tool_result(self, call_id: str, content: str) -> None:
        """Append the result of the tool call ``call_id``."""
        self.add_message({"role": "tool", "tool_call_id": call_id, "content": content})

    def retract_user_message(self, text: str) -> bool:
        """Remove the last message if it is the user message ``text``; True if removed.

        Used when a turn that was answered speculatively turns out not to be over.
        """
        last = self._messages[-1] if self._messages else None
        if last is not None and last.get("role") == "user" and last.get("content") == text:
            self._messages.pop()
            return True
        return False

    def retract_since_user_message(self, text: str) -> list[Message]:
        """Remove the last user message ``text`` and every message after it; return them.

        Used when a turn that had ended turns out to go on: its message and the
        reply it drew are withdrawn, to be replaced by the whole turn. Nothing is
        removed (and ``[]`` returned) when no user message ``text`` is found.
        """
        for index in range(len(self._messages) - 1, -1, -1):
            message = self._messages[index]
            if message.get("role") == "user" and message.get("content") == text:
                removed = self._messages[index:]
                del self._messages[index:]
                return removed
        return []

    def clear(self) -> None:
        """Forget the messages; the system prompt and tools stay."""
        self._messages.clear()

    def snapshot(self) -> list[Message]:
        """The full message list to send to a model: system prompt first, all copies."""
        head: list[Message] = (
            [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        )
        return head + copy.deepcopy(self._messages)

    def messages_frame(self) -> LLMMessagesFrame:
        """An :class:`LLMMessagesFrame` with a snapshot of the messages and tools."""
        return LLMMessagesFrame(messages=self.snapshot(), tools=copy.deepcopy(self.tools))

    def __repr__(self) -> str:
        return f"<LLMContext {len(self._messages)} messages, {len(self.tools)} tools>"


class UserContextAggregatorParams(BaseModel):
    """Settings of :class:`UserContextAggregator`."""

    model_config = ConfigDict(extra="forbid")

    separator: str = Field(
        default=" ",
        description="Put between the transcripts of one turn when there are several.",
    )
    rejoin_ms: float = Field(
        default=2000.0,
        ge=0,
        le=60000,
        description=(
            "A user turn that starts less than this long after the previous one's speech "
            "ended continues it (the end of turn was false): the previous user message and "
            "the reply it drew leave the context, and one message holds both parts. 0 never "
            "rejoins."
        ),
    )


class UserContextAggregator(Processor):
    """Turns the transcripts of a user turn into a user message and asks the LLM to answer.

    A turn is over when the user is not speaking and every
    ``UserStoppedSpeakingFrame`` has had its final ``TranscriptionFrame``, in
    whichever order they came. A transcript arriving with no turn in progress
    (text input, no VAD) ends a turn at once. If the turn's text is not empty,
    the user message is appended to the context and an ``LLMMessagesFrame`` is
    pushed downstream after the frame that ended the turn. An ``LLMRunFrame``
    pushes the context as it stands. Every other frame passes on unchanged.

    Speculation: a ``UserPausedSpeakingFrame`` counts as a tentative stop, so the
    LLM can start on the turn while the VAD waits to confirm its end. If the user
    resumes instead, the message is taken back out of the context and an
    interruption cancels whatever was started; the speech-to-text stage then
    delivers one transcript for the whole turn.

    A false end of turn: when a turn starts within ``rejoin_ms`` of the end of
    the previous turn's speech, it continues that turn. The start has already
    interrupted the reply (the turn processor broadcasts an interruption); when
    the new turn is committed, the previous user message and every message after
    it (what was heard of the reply) are taken out of the context, and the user
    message holds the previous text and the new one together.
    """

    Params: ClassVar[type[UserContextAggregatorParams]] = UserContextAggregatorParams

    def __init__(
        self,
        context: LLMContext,
        params: UserContextAggregatorParams | None = None,
        *,
        name: str | None = None,
    ) -> None:
        """Aggregate into ``context`` (shared with the assistant aggregator)."""
        super().__init__(name=name)
        if not isinstance(context, LLMContext):
            raise TypeError(f"context must be an LLMContext, got {type(context).__name__}")
        self._llm_context = context
        self.params = params or UserContextAggregatorParams()
        self._parts: list[str] = []
        self._speaking = False
        self._paused = False  # a pause counted as a stop, not yet confirmed
        self._speculative: str | None = None  # text answered on a pause, not yet confirmed
        self._stops = 0
        self._finals = 0
        self._last_text: str | None = None  # the last user message committed
        self._last_end_ns: int | None = None  # when the speech of the last turn ended
        self._continues: str | None = None  # this turn continues the message ``_last_text``
        self._withdrawn = False  # that message has left the context already

    @property
    def llm_context(self) -> LLMContext:
        """The shared conversation context."""
        return self._llm_context

    @property
    def pending_text(self) -> str:
        """The text collected for the current turn so far."""
        return self.params.separator.join(self._parts)

    @handles(UserStartedSpeakingFrame)
    async def _started(self, frame: UserStartedSpeakingFrame, direction: Direction) -> None:
        if direction is Direction.DOWNSTREAM:
            self._continues = self._last_text if self._rejoins(frame.speech_start_ns) else None
            self._withdrawn = False
        self._speaking = True
        self._paused = False
        await self.push(frame, direction)

    def _rejoins(self, start_ns: int | None) -> bool:
        """True when a turn starting at ``start_ns`` follows the last one closely enough."""
        end_ns = self._last_end_ns
        if self._last_text is None or start_ns is None or end_ns is None:
            return False
        return 0 <= start_ns - end_ns < self.params.rejoin_ms * 1e6

    @handles(UserStoppedSpeakingFrame)
    async def _stopped(self, frame: UserStoppedSpeakingFrame, direction: Direction) -> None:
        if direction is Direction.DOWNSTREAM and frame.speech_end_ns is not None:
            self._last_end_ns = frame.speech_end_ns
        self._speaking = False
        if self._paused:  # the stop confirms the pause, already counted
            self._paused = False
        else:
            self._stops += 1
        self._speculative = None
        await self.push(frame, direction)
        await self._maybe_commit()

    @handles(UserPausedSpeakingFrame)
    async def _paused_speaking(self, frame: UserPausedSpeakingFrame, direction: Direction) -> None:
        await self.push(frame, direction)
        if direction is not Direction.DOWNSTREAM or not self._speaking:
            return
        self._speaking = False
        self._paused = True
        self._stops += 1
        await self._maybe_commit(speculative=True)

    @handles(UserResumedSpeakingFrame)
    async def _resumed(self, frame: UserResumedSpeakingFrame, direction: Direction) -> None:
        await self.push(frame, direction)
        if direction is not Direction.DOWNSTREAM or not self._paused:
            return
        self._paused = False
        self._speaking = True
        if self._speculative is not None:
            # The answer started on the pause is void: take the message back and
            # cancel the reply in preparation. The whole turn comes as one transcript.
            self._llm_context.retract_user_message(self._speculative)
            self._speculative = None
            await self.broadcast_interruption()
        else:
            self._stops -= 1  # the pause's transcript will not come: the turn goes on
        self._parts.clear()

    @handles(TranscriptionFrame)
    async def _transcript(self, frame: TranscriptionFrame, direction: Direction) -> None:
        text = frame.text.strip()
        if text:
            self._parts.append(text)
        self._finals += 1
        await self.push(frame, direction)
        await self._maybe_commit()

    @handles(LLMRunFrame)
    async def _run(self, frame: LLMRunFrame, direction: Direction) -> None:
        await self.push(self._llm_context.messages_frame(), Direction.DOWNSTREAM)

    async def _maybe_commit(self, *, speculative: bool = False) -> None:
        if self._speaking or self._finals == 0 or self._finals < self._stops:
            return
        text = self.pending_text
        self._parts.clear()
        self._stops = self._finals = 0
        if not text:
            return
        tentative = speculative or self._paused
        if self._continues is not None:
            # A false end of turn: withdraw the earlier part and the reply it drew
            # (once: a commit on a pause that the user resumed has done it already).
            if not self._withdrawn:
                self._llm_context.retract_since_user_message(self._continues)
                self._withdrawn = True
            text = self._continues + self.params.separator + text
            if not tentative:
                self._continues = None
        self._llm_context.add_user_message(text)
        self._last_text = text
        if tentative:
            self._speculative = text
        await self.push(self._llm_context.messages_frame(), Direction.DOWNSTREAM)


class AssistantContextAggregatorParams(BaseModel):
    """Settings of :class:`AssistantContextAggregator`."""

    model_config = ConfigDict(extra="forbid")

    separator: str = Field(
        default=" ", description="Put between the spoken pieces of a reply when joining them."
    )


class AssistantContextAggregator(Processor):
    """Appends what the user heard of each reply to the context.

    Collects the text of the :class:`TTSTextFrame` frames that reach it (placed
    after the output transport, these are the pieces that were played, or the
    heard part of a cut piece) and appends one assistant message on
    ``LLMResponseEndFrame`` or ``InterruptionFrame``, whichever comes first.
    Nothing is appended when nothing was heard. All frames pass on.
    """

    Params: ClassVar[type[AssistantContextAggregatorParams]] = AssistantContextAggregatorParams

    def __init__(
        self,
        context: LLMContext,
        params: AssistantContextAggregatorParams | None = None,
        *,
        name: str | None = None,
    ) -> None:
        """Aggregate into ``context`` (shared with the user aggregator)."""
        super().__init__(name=name)
        if not isinstance(context, LLMContext):
            raise TypeError(f"context must be an LLMContext, got {type(context).__name__}")
        self._llm_context = context
        self.params = params or AssistantContextAggregatorParams()
        self._parts: list[str] = []

    @property
    def llm_context(self) -> LLMContext:
        """The shared conversation context."""
        return self._llm_context

    @property
    def pending_text(self) -> str:
        """The heard text of the current reply not yet committed."""
        return self.params.separator.join(self._parts)

    @handles(TTSTextFrame)
    async def _tts_text(self, frame: TTSTextFrame, direction: Direction) -> None:
        if direction is Direction.DOWNSTREAM:
            text = frame.text.strip()
            if text:
                self._parts.append(text)
        await self.push(frame, direction)

    @handles(LLMResponseStartFrame)
    async def _response_start(self, frame: LLMResponseStartFrame, direction: Direction) -> None:
        if direction is Direction.DOWNSTREAM:
            self._commit()  # a reply that never ended: keep what was heard of it
        await self.push(frame, direction)

    @handles(LLMResponseEndFrame)
    async def _response_end(self, frame: LLMResponseEndFrame, direction: Direction) -> None:
        if direction is Direction.DOWNSTREAM:
            self._commit()
        await self.push(frame, direction)

    async def on_interruption(
        self, frame: InterruptionFrame, dropped: Sequence[tuple[Frame, Direction]]
    ) -> None:
        """Commit what was heard of the interrupted reply."""
        self._commit()

    def _commit(self) -> None:
        text = self.pending_text
        self._parts.clear()
        if text:
            self._llm_context.add_assistant_message(text)


def context_pair(
    system_prompt: str | None = None,
    *,
    tools: Iterable[dict[str, Any]] = (),
    context: LLMContext | None = None,
    user_params: UserContextAggregatorParams | None = None,
    assistant_params: AssistantContextAggregatorParams | None = None,
) -> tuple[UserContextAggregator, AssistantContextAggregator]:
    """Both aggregators around one context (a new one unless ``context`` is given).

    The context is reachable as ``user.llm_context`` (the same object for both).
    """
    if context is None:
        context = LLMContext(system_prompt=system_prompt, tools=tools)
    elif system_prompt is not None or tools:
        raise ValueError("pass either a context or system_prompt/tools for a new one, not both")
    return (
        UserContextAggregator(context, user_params),
        AssistantContextAggregator(context, assistant_params),
    )
