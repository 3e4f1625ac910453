"""Turning one realtime response's audio and transcript into frames, in contract order.

For each response that produces output the writer pushes
``LLMResponseStartFrame`` and ``TTSStartedFrame`` first, then the transcript as
:class:`~framework.frames.TTSTextFrame` pieces interleaved with the audio as
:class:`~framework.frames.OutputAudioFrame`, in the order the server sent them,
and ``TTSStoppedFrame`` + ``LLMResponseEndFrame`` at the end.

Transcript text is held until audio comes, then pushed as one piece just
before that audio, so each piece is followed by the audio that speaks it (a
sentence-by-sentence server gives one piece per sentence). Pieces end at word
boundaries, never inside a word (the assistant context joins pieces with
spaces, and the output transport counts heard words per piece): a trailing
fragment that may continue in the next delta waits for the next audio. OpenAI
sends a segment's transcript slightly ahead of its audio, so the heard text
after a barge-in can run a word or two ahead of the audio actually played; the
server-side conversation is cut exactly, by ``conversation.item.truncate``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from framework.frames import (
    Frame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    OutputAudioFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)

__all__ = ["ReplyWriter"]

SERVER_RATE = 24000
_CLAUSE_END = (".", ",", "!", "?", ";", ":", "\u2026")

Push = Callable[[Frame], Awaitable[None]]


class ReplyWriter:
    """Frames for the response ``response_id``; one writer per response with output."""

    def __init__(self, push: Push, response_id: str, out_rate: int) -> None:
        from framework.audio import StreamResampler

        self.response_id = response_id
        self._push = push
        self._out_rate = out_rate
        self._resampler = StreamResampler(SERVER_RATE, out_rate)
        self._words = ""
        self.started = False
        self.finished = False
        self.text_pushed = ""

    async def _start(self) -> None:
        if not self.started:
            self.started = True
            await self._push(LLMResponseStartFrame())
            await self._push(TTSStartedFrame())

    async def audio(self, pcm: bytes) -> None:
        """Push ``pcm`` (24 kHz mono PCM16), resampled to the output rate."""
        if self.finished:
            return
        await self._start()
        if self._words:
            await self._push_words()
        out = self._resampler.process(pcm)
        if out:
            await self._push(OutputAudioFrame(audio=out, sample_rate=self._out_rate))

    async def text(self, delta: str) -> None:
        """Add transcript text; it is pushed before the next audio."""
        if self.finished or not delta:
            return
        await self._start()
        self._words += delta

    async def _push_words(self) -> None:
        """Push the held words up to the last boundary; keep a fragment that may go on."""
        words = self._words
        if words.endswith((" ", "\n")) or words.rstrip().endswith(_CLAUSE_END):
            cut = len(words)
        else:
            cut = max(words.rfind(" "), words.rfind("\n"))
        if cut > 0:
            self._words = words[cut:]
            await self._piece(words[:cut])

    async def _piece(self, piece: str) -> None:
        if piece.strip():
            self.text_pushed += piece
            await self._push(TTSTextFrame(text=piece.strip()))

    async def flush_text(self, final: str | None = None) -> None:
        """Push the words held back, and the part of a ``final`` transcript not yet seen."""
        if self.finished:
            return
        pending, self._words = self._words, ""
        if final is not None:
            seen = (self.text_pushed + pending).strip()
            final = final.strip()
            if final.startswith(seen) and len(final) > len(seen):
                pending += final[len(seen) :]
            elif not seen and final:
                pending = final
        if pending.strip():
            await self._start()
            await self._piece(pending)

    async def flush_audio(self) -> None:
        """Push the resampler's tail (at the end of an item's audio)."""
        if self.finished or self._resampler.passthrough:
            return
        tail = self._resampler.flush()
        if tail:
            await self._push(OutputAudioFrame(audio=tail, sample_rate=self._out_rate))

    async def finish(self) -> None:
        """End the reply: remaining words and audio, then the stop frames (if it started)."""
        if self.finished:
            return
        await self.flush_text()
        await self.flush_audio()
        self.finished = True
        if self.started:
            await self._push(TTSStoppedFrame())
            await self._push(LLMResponseEndFrame())

    def abort(self) -> None:
        """The reply was interrupted: push nothing more for it."""
        self.finished = True
        self._words = ""
        self._resampler.reset()
