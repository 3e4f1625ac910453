"""Book-keeping of a realtime conversation, free of I/O so it can be reasoned about alone.

* :class:`Playback` knows which assistant audio was pushed, how much of each item
  the output transport really played, and so where to truncate after a barge-in.
* :class:`History` is the conversation as the user experienced it (heard
  assistant text, transcribed user turns, tool calls), replayed into a new
  server session after a reconnect.
* :class:`Responses` tracks the server's single active response so that
  ``response.create`` never races one (``conversation_already_has_active_response``).
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AudioItem", "History", "Playback", "ResponseInfo", "Responses", "Truncation"]


@dataclass(slots=True)
class AudioItem:
    """An assistant item that carried audio, in one server session (``generation``)."""

    item_id: str
    response_id: str
    generation: int
    received_ms: float = 0.0
    played_ms: float = 0.0
    audio_done: bool = False


@dataclass(frozen=True, slots=True)
class Truncation:
    """What to do after an interruption: truncate ``item_id`` at ``audio_end_ms``."""

    item_id: str
    audio_end_ms: int
    heard_fraction: float
    generation: int


class Playback:
    """Pushed-but-unconfirmed assistant audio, in push order, and per-item playtime.

    The output transport reports played audio per stretch (from
    ``BotStartedSpeakingFrame`` to ``BotStoppedSpeakingFrame``). A stretch that ends
    because the queue ran dry played everything pushed; one cut by an
    interruption played ``played_s`` from the head of the pushed audio.
    """

    def __init__(self) -> None:
        self.items: dict[str, AudioItem] = {}
        self._pushed: deque[tuple[AudioItem, float]] = deque()
        self._last: AudioItem | None = None

    def received(self, item_id: str, response_id: str, generation: int, ms: float) -> AudioItem:
        """Record ``ms`` of audio received for ``item_id`` (pushed or not)."""
        item = self.items.get(item_id)
        if item is None:
            item = self.items[item_id] = AudioItem(item_id, response_id, generation)
            if len(self.items) > 64:  # old items cannot be interrupted any more
                self.items.pop(next(iter(self.items)))
        item.received_ms += ms
        self._last = item
        return item

    def pushed(self, item: AudioItem, ms: float) -> None:
        """``ms`` of ``item``'s audio went downstream to be played."""
        if self._pushed and self._pushed[-1][0] is item:
            self._pushed[-1] = (item, self._pushed[-1][1] + ms)
        else:
            self._pushed.append((item, ms))

    @property
    def pending_ms(self) -> float:
        """Audio pushed and not yet known to be played."""
        return sum(ms for _, ms in self._pushed)

    def played_all(self) -> None:
        """The queue ran dry: everything pushed has played."""
        for item, ms in self._pushed:
            item.played_ms += ms
        self._pushed.clear()

    def interrupted(self, played_s: float, current_response: str | None) -> Truncation | None:
        """An interruption cut playback after ``played_s`` of the current stretch.

        Returns the truncation to send, or None when nothing needs cutting: no
        audio was heard of the item, or it was heard in full and is complete.
        """
        left = max(0.0, played_s) * 1000.0
        head: AudioItem | None = None
        for item, ms in self._pushed:
            take = min(ms, left)
            item.played_ms += take
            left -= take
            head = item
            if take < ms:
                break
        self._pushed.clear()
        if head is None:
            last = self._last
            if last is None or last.response_id != current_response:
                return None
            head = last
        end_ms = int(min(head.played_ms, head.received_ms))
        fully_heard = head.audio_done and end_ms >= int(head.received_ms) - 1
        if end_ms <= 0 or fully_heard:
            return None
        fraction = end_ms / head.received_ms if head.received_ms else 0.0
        return Truncation(head.item_id, end_ms, min(1.0, fraction), head.generation)

    def audio_done(self, item_id: str) -> None:
        """The server sent all audio of ``item_id``."""
        item = self.items.get(item_id)
        if item is not None:
            item.audio_done = True

    def reset(self) -> None:
        """Forget unconfirmed audio (after an interruption was resolved or a new session)."""
        self._pushed.clear()
        self._last = None


def heard_prefix(text: str, fraction: float) -> str:
    """The words of ``text`` heard when ``fraction`` of its audio played."""
    words = text.split()
    count = int(len(words) * max(0.0, min(1.0, fraction)))
    return " ".join(words[:count])


@dataclass(slots=True)
class _Entry:
    kind: str  # "user" | "assistant" | "call" | "output"
    key: str  # item id, or call id for tool entries
    text: str = ""
    name: str = ""


class History:
    """The conversation so far, as items a client may create (text only: the client
    cannot create assistant audio), for replay into a fresh server session."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._index: dict[tuple[str, str], _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _add(self, entry: _Entry) -> _Entry:
        existing = self._index.get((entry.kind, entry.key))
        if existing is not None:
            return existing
        self._entries.append(entry)
        self._index[(entry.kind, entry.key)] = entry
        return entry

    def user(self, item_id: str, text: str | None = None) -> None:
        """A user turn (its transcript may come later, with the same ``item_id``)."""
        entry = self._add(_Entry("user", item_id))
        if text is not None:
            entry.text = text.strip()

    def assistant(self, item_id: str, delta: str = "") -> None:
        """Append spoken text to the assistant item ``item_id``."""
        self._add(_Entry("assistant", item_id)).text += delta

    def assistant_text(self, item_id: str) -> str:
        """The text recorded for an assistant item."""
        entry = self._index.get(("assistant", item_id))
        return entry.text if entry else ""

    def set_assistant(self, item_id: str, text: str) -> None:
        """Replace the assistant item's text (the final transcript, or the heard part)."""
        self._add(_Entry("assistant", item_id)).text = text

    def function_call(self, call_id: str, name: str, arguments: str) -> None:
        """The model called a tool."""
        self._add(_Entry("call", call_id, arguments, name))

    def function_output(self, call_id: str, output: str) -> None:
        """A tool's result was given back."""
        self._add(_Entry("output", call_id, output))

    def seed(self, messages: list[dict[str, Any]]) -> None:
        """Start from chat-format messages (a shared LLMContext)."""
        for n, msg in enumerate(messages):
            role, content = msg.get("role"), msg.get("content")
            text = content if isinstance(content, str) else _text_of(content)
            if role == "user":
                self.user(f"seed_{n}", text)
            elif role == "assistant":
                if text:
                    self.set_assistant(f"seed_{n}", text)
                for call in msg.get("tool_calls") or []:
                    fn = call.get("function", {})
                    self.function_call(
                        call.get("id", ""), fn.get("name", ""), fn.get("arguments", "")
                    )
            elif role == "tool":
                self.function_output(str(msg.get("tool_call_id", "")), text)

    def items(self, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` entries as ``conversation.item.create`` items, in order.

        Empty turns are skipped, and so are tool outputs whose call was cut off.
        """
        built: list[dict[str, Any]] = []
        calls: set[str] = set()
        for entry in self._entries[-limit:] if limit else []:
            if entry.kind == "user" and entry.text:
                built.append(_message("user", "input_text", entry.text))
            elif entry.kind == "assistant" and entry.text.strip():
                built.append(_message("assistant", "output_text", entry.text.strip()))
            elif entry.kind == "call":
                calls.add(entry.key)
                built.append(
                    {
                        "type": "function_call",
                        "call_id": entry.key,
                        "name": entry.name,
                        "arguments": entry.text or "{}",
                    }
                )
            elif entry.kind == "output" and entry.key in calls:
                built.append(
                    {"type": "function_call_output", "call_id": entry.key, "output": entry.text}
                )
        return built


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else json.dumps(content)


def _message(role: str, part: str, text: str) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": [{"type": part, "text": text}]}


@dataclass(slots=True)
class ResponseInfo:
    """One server response as this client saw it."""

    response_id: str
    muted: bool = False  # interrupted: its further output is dropped
    started_output: bool = False
    audio_started: bool = False
    calls: set[str] = field(default_factory=set)  # tool calls still running
    had_calls: bool = False
    done: bool = False


class Responses:
    """The server allows one active response per conversation: create only when idle.

    ``state`` is ``idle``, ``requested`` (a ``response.create`` is on its way) or
    ``active`` (between ``response.created`` and ``response.done``). A request
    made while not idle is remembered and sent when the active one is done.
    """

    def __init__(self) -> None:
        self.state = "idle"
        self.active: ResponseInfo | None = None
        self.pending = False
        self.pending_for_tools = False
        self.create_event_id = ""
        self.by_id: dict[str, ResponseInfo] = {}

    def want(self, *, for_tools: bool = False) -> bool:
        """Ask for a response; True if it may be created now, else it is queued."""
        if self.state == "idle":
            return True
        self.pending = True
        self.pending_for_tools = self.pending_for_tools or for_tools
        return False

    def sent(self, event_id: str) -> None:
        """A ``response.create`` with ``event_id`` was sent."""
        self.state = "requested"
        self.create_event_id = event_id

    def created(self, response_id: str) -> ResponseInfo:
        """``response.created``: the server's response (ours or its VAD's) is active."""
        info = self.by_id.get(response_id) or ResponseInfo(response_id)
        self.by_id[response_id] = info
        if len(self.by_id) > 32:
            self.by_id.pop(next(iter(self.by_id)))
        self.state = "active"
        self.active = info
        return info

    def get(self, response_id: str) -> ResponseInfo | None:
        """The response ``response_id``, if seen."""
        return self.by_id.get(response_id)

    def done(self, response_id: str) -> ResponseInfo | None:
        """``response.done``: the response is over; a queued create may follow
        (:meth:`take_pending`)."""
        info = self.by_id.get(response_id)
        if info is not None:
            info.done = True
        if self.active is not None and self.active.response_id == response_id:
            self.active = None
        if self.state != "requested":
            self.state = "idle"
        return info

    def take_pending(self) -> bool:
        """True (once) when a queued request can be sent now."""
        if self.state == "idle" and self.pending:
            self.pending = self.pending_for_tools = False
            return True
        return False

    def create_failed(self, *, busy: bool) -> None:
        """Our create was refused; ``busy`` means another response is active: retry later."""
        if self.state == "requested":
            self.state = "active" if busy else "idle"
        if busy:
            self.pending = True

    def drop_pending(self, *, keep_tools: bool = True) -> None:
        """Forget a queued request (after a barge-in), unless it carries tool results."""
        if not (keep_tools and self.pending_for_tools):
            self.pending = self.pending_for_tools = False

    def reset(self) -> None:
        """A new server session: nothing is active."""
        self.state = "idle"
        self.active = None
        self.create_event_id = ""
