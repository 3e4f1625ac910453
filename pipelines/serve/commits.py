"""User audio items: the input buffer committed as an item, and the item's transcript.

Every committed user audio item is registered in ``SessionState.transcribed``
until the STT's transcript of its turn arrives (:func:`fill_transcript`);
responses wait on that before they ask the language model.
"""

from __future__ import annotations

import anyio

from pipelines.serve.items import Item, Part
from pipelines.serve.protocol import event, new_id
from pipelines.serve.state import Send, SessionState

__all__ = ["commit_buffer", "fill_transcript"]


def commit_buffer(state: SessionState, send: Send, item_id: str | None = None) -> Item:
    """Turn the input buffer into a user audio item (committed, added, done)."""
    data, _, _ = state.input.take()
    item = Item(
        id=item_id or new_id("item"),
        type="message",
        role="user",
        content=[Part(type="input_audio", audio=bytearray(data), audio_format=state.input.format)],
    )
    previous = state.conversation.add(item)
    state.transcribed[item.id] = anyio.Event()
    send(event("input_audio_buffer.committed", item_id=item.id, previous_item_id=previous))
    send(event("conversation.item.added", previous_item_id=previous, item=item.wire()))
    send(event("conversation.item.done", previous_item_id=previous, item=item.wire()))
    return item


def fill_transcript(state: SessionState, send: Send, slot: Item, text: str) -> None:
    """Give a committed user audio item the STT's transcript (and report it if asked)."""
    part = next((p for p in slot.content if p.type == "input_audio"), None)
    if part is not None:
        part.heard = text
        if state.config.audio.input.transcription is not None:
            part.transcript = text
            ids = {"item_id": slot.id, "content_index": slot.content.index(part)}
            if text:
                send(event("conversation.item.input_audio_transcription.delta", **ids, delta=text))
            send(
                event(
                    "conversation.item.input_audio_transcription.completed",
                    **ids,
                    transcript=text,
                    usage={"type": "duration", "seconds": round(part.duration_ms / 1000, 3)},
                )
            )
    waiter = state.transcribed.pop(slot.id, None)
    if waiter is not None:
        waiter.set()
