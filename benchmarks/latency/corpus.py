"""The benchmark corpus: conversations of user turns with known words and speech times.

A corpus is a folder holding WAV files and a ``manifest.jsonl``, one JSON object
per line, one line per *item* (a user turn or a stretch without speech)::

    {"conversation": "booking", "turn": 1, "kind": "normal", "audio": "booking-1.wav",
     "transcript": "I would like to book a table.", "speech_start_s": 0.3,
     "speech_end_s": 2.1}

Items play in ``turn`` order within a conversation. ``kind`` is one of

* ``normal``: the user speaks once the bot has answered the previous item and been
  silent for ``gap_s``;
* ``barge_in``: the user talks over the bot, ``delay_s`` after the bot's reply to
  the previous item started;
* ``noise``: a normal turn with background noise under the speech (``snr_db``);
* ``hesitation``: a normal turn with mid-sentence pauses (``pauses``: each pause's
  start and end offsets), such as a list or an "um": the turn is one utterance and
  should be answered once, after its last word;
* ``one_word``: a normal turn of a single word ("Yes.", "Seven.");
* ``backchannel``: a short acknowledgement ("uh-huh", "yeah") spoken ``delay_s``
  after the bot's reply started; it expects no reply, and a bot that stops for it
  counts a false interruption;
* ``short_barge_in``: a barge-in that opens with a short word ("Wait, ...");
* ``silence``: no speech at all (digital silence or noise only, ``audio`` or
  ``duration_s``): any user turn or interruption it causes is false. Played after
  the reply (``trigger = "after_reply"``, the default) it checks false turns;
  played during it (``"during_reply"``) it checks false interruptions.

``speech_start_s``/``speech_end_s`` are offsets in the item's audio of the first
and last speech sample; optional ``words`` give each word's offsets. A bad line is
refused with an error naming the file, the line and the field.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "Corpus",
    "CorpusConversation",
    "CorpusError",
    "CorpusItem",
    "ManifestLine",
    "Word",
    "load_corpus",
    "parse_manifest",
]

Kind = Literal[
    "normal",
    "barge_in",
    "noise",
    "silence",
    "hesitation",
    "one_word",
    "backchannel",
    "short_barge_in",
]
Trigger = Literal["after_reply", "during_reply"]
SPEECH_KINDS = (
    "normal",
    "barge_in",
    "noise",
    "hesitation",
    "one_word",
    "backchannel",
    "short_barge_in",
)
DURING_REPLY_KINDS = ("barge_in", "short_barge_in", "backchannel")
"""Kinds played over the bot's reply by default."""
NO_REPLY_KINDS = ("backchannel",)
"""Speech kinds that expect no reply by default."""
CORPUS_RATE = 16000
"""The rate the built-in corpus is stored at; a user corpus may use any rate."""


class CorpusError(ValueError):
    """A corpus folder or manifest is malformed; the message says where and why."""


class Word(BaseModel):
    """A word of a turn and its offsets in the item's audio (seconds)."""

    model_config = ConfigDict(extra="forbid")

    word: str = Field(min_length=1)
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)


class ManifestLine(BaseModel):
    """One line of ``manifest.jsonl``: a user turn or a stretch without speech."""

    model_config = ConfigDict(extra="forbid")

    conversation: str = Field(min_length=1, description="Conversation the item belongs to.")
    turn: int = Field(ge=0, description="Order of the item within its conversation.")
    kind: Kind = Field(default="normal", description="What the item tests (see the module doc).")
    audio: str | None = Field(
        default=None, description="WAV path, relative to the folder and inside it."
    )
    duration_s: float | None = Field(
        default=None, gt=0, le=600, description="Length of a silence item that has no audio."
    )
    transcript: str = Field(default="", description="What the user says (empty for silence).")
    speech_start_s: float | None = Field(default=None, ge=0)
    speech_end_s: float | None = Field(default=None, ge=0)
    words: list[Word] = Field(default_factory=list)
    pauses: list[tuple[float, float]] = Field(
        default_factory=list, description="Start and end offsets of pauses inside the speech."
    )
    trigger: Trigger | None = Field(
        default=None,
        description="after_reply (default) or during_reply (default for barge_in).",
    )
    gap_s: float | None = Field(
        default=None, ge=0, le=60, description="Silence after the bot's reply before this item."
    )
    delay_s: float | None = Field(
        default=None, ge=0, le=60, description="during_reply: delay after the bot started."
    )
    snr_db: float | None = Field(default=None, description="Speech-to-noise ratio, if noisy.")
    reply_expected: bool | None = Field(
        default=None, description="Whether the bot should answer (default: speech kinds)."
    )
    word_times: str = Field(default="", description="How the word times were obtained.")

    @field_validator("audio")
    @classmethod
    def _inside_the_folder(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("name a WAV file in the corpus folder")
        if PurePath(value).is_absolute():
            raise ValueError(
                f"{value!r} is an absolute path; give it relative to the corpus folder"
            )
        if PurePath(os.path.normpath(value)).parts[:1] == ("..",):
            raise ValueError(f"{value!r} leads outside the corpus folder; keep the WAVs inside it")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ManifestLine:
        # messages start with the field they are about: parse_manifest names it
        speech = self.kind in SPEECH_KINDS
        if self.audio is None and not (self.kind == "silence" and self.duration_s):
            raise ValueError("audio: required (only a silence item may give duration_s instead)")
        if speech:
            if not self.transcript.strip():
                raise ValueError(f"transcript: required for a {self.kind} turn")
            if self.speech_start_s is None:
                raise ValueError(f"speech_start_s: required for a {self.kind} turn")
            if self.speech_end_s is None:
                raise ValueError(f"speech_end_s: required for a {self.kind} turn")
            if self.speech_end_s <= self.speech_start_s:
                raise ValueError("speech_end_s: must be greater than speech_start_s")
        elif self.transcript.strip():
            raise ValueError("transcript: a silence item has no transcript")
        elif self.speech_start_s is not None or self.speech_end_s is not None:
            raise ValueError("speech_start_s: a silence item has no speech times")
        for word in self.words:
            if word.end_s < word.start_s:
                raise ValueError(f"words: {word.word!r} ends before it starts")
        lo, hi = self.speech_start_s or 0.0, self.speech_end_s or 0.0
        for start, end in self.pauses:
            if not (lo <= start < end <= hi):
                raise ValueError(
                    f"pauses: ({start}, {end}) must lie inside the speech and end after it starts"
                )
        if self.kind in DURING_REPLY_KINDS and self.trigger == "after_reply":
            raise ValueError(f"trigger: a {self.kind} turn plays during_reply")
        return self


@dataclass(frozen=True)
class CorpusItem:
    """A validated corpus item with its audio (mono PCM16 at :attr:`sample_rate`)."""

    conversation: str
    turn: int
    kind: Kind
    pcm: bytes = field(repr=False)
    sample_rate: int
    transcript: str
    speech_start_s: float | None
    speech_end_s: float | None
    trigger: Trigger
    gap_s: float | None
    delay_s: float | None
    snr_db: float | None
    reply_expected: bool
    words: tuple[Word, ...] = ()
    audio: str | None = None
    pauses: tuple[tuple[float, float], ...] = ()

    @property
    def duration_s(self) -> float:
        """Length of the item's audio."""
        return len(self.pcm) / 2 / self.sample_rate

    @property
    def is_speech(self) -> bool:
        """True for user turns, False for stretches without speech."""
        return self.kind in SPEECH_KINDS


@dataclass(frozen=True)
class CorpusConversation:
    """The items of one conversation, in order."""

    name: str
    items: tuple[CorpusItem, ...]

    @property
    def turns(self) -> int:
        """Number of user turns (items with speech)."""
        return sum(1 for item in self.items if item.is_speech)

    def head(self, turns: int) -> CorpusConversation:
        """The conversation cut after its first ``turns`` user turns."""
        kept: list[CorpusItem] = []
        count = 0
        for item in self.items:
            if item.is_speech:
                if count >= turns:
                    break
                count += 1
            kept.append(item)
        return CorpusConversation(self.name, tuple(kept))


@dataclass(frozen=True)
class Corpus:
    """A loaded corpus: its conversations and an identity for reports."""

    path: Path
    conversations: tuple[CorpusConversation, ...]
    digest: str
    source: str = "user"

    def conversation(self, name: str) -> CorpusConversation:
        """The conversation called ``name``."""
        for conversation in self.conversations:
            if conversation.name == name:
                return conversation
        raise KeyError(name)


def _field_of(error: dict[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    return ".".join(loc) if loc else "(line)"


def parse_manifest(text: str, source: str = "manifest.jsonl") -> list[ManifestLine]:
    """Validate manifest text; a bad line raises :class:`CorpusError` naming line and field."""
    lines: list[ManifestLine] = []
    seen: dict[tuple[str, int], int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{source} line {number}: not valid JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise CorpusError(f"{source} line {number}: expected a JSON object")
        try:
            line = ManifestLine.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = _field_of(dict(first))
            message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
            if where == "(line)":
                named, sep, rest = message.partition(": ")
                if sep and named in ManifestLine.model_fields:
                    where, message = named, rest
                else:
                    raise CorpusError(f"{source} line {number}: {message}") from None
            raise CorpusError(f"{source} line {number}, field {where!r}: {message}") from None
        key = (line.conversation, line.turn)
        if key in seen:
            raise CorpusError(
                f"{source} line {number}, field 'turn': turn {line.turn} of conversation "
                f"{line.conversation!r} already appears on line {seen[key]}"
            )
        seen[key] = number
        lines.append(line)
    if not lines:
        raise CorpusError(f"{source}: no items; write one JSON object per line")
    return lines


def _load_item(line: ManifestLine, number: int, folder: Path, source: str) -> CorpusItem:
    from framework.audio import is_wav, read_wav, to_mono

    where = f"{source} line {number}, field 'audio'"
    if line.audio is not None:
        path = folder / line.audio
        if not path.is_file():
            raise CorpusError(f"{where}: no such file {str(path)!r}")
        try:
            wav = read_wav(path) if is_wav(path) else None
        except (ValueError, OSError) as exc:
            # read_wav's message starts with the path: say it once, as the manifest does
            reason = str(exc).removeprefix(f"{path}: ")
            raise CorpusError(f"{where}: {line.audio!r}: {reason}") from None
        if wav is None:
            raise CorpusError(f"{where}: {line.audio!r} is not a WAV file; convert it to WAV")
        pcm = to_mono(wav.pcm, wav.num_channels) if wav.num_channels > 1 else wav.pcm
        rate = wav.sample_rate
    else:
        rate = CORPUS_RATE
        pcm = bytes(2 * round((line.duration_s or 0.0) * rate))
    duration = len(pcm) / 2 / rate
    for name in ("speech_start_s", "speech_end_s"):
        value = getattr(line, name)
        if value is not None and value > duration + 1e-3:
            raise CorpusError(
                f"{source} line {number}, field {name!r}: {value} s is past the end of the audio "
                f"({duration:.3f} s)"
            )
    speech = line.kind in SPEECH_KINDS
    trigger: Trigger = line.trigger or (
        "during_reply" if line.kind in DURING_REPLY_KINDS else "after_reply"
    )
    default_reply = speech and line.kind not in NO_REPLY_KINDS
    return CorpusItem(
        conversation=line.conversation,
        turn=line.turn,
        kind=line.kind,
        pcm=pcm,
        sample_rate=rate,
        transcript=line.transcript.strip(),
        speech_start_s=line.speech_start_s,
        speech_end_s=line.speech_end_s,
        trigger=trigger,
        gap_s=line.gap_s,
        delay_s=line.delay_s,
        snr_db=line.snr_db,
        reply_expected=line.reply_expected if line.reply_expected is not None else default_reply,
        words=tuple(line.words),
        audio=line.audio,
        pauses=tuple(line.pauses),
    )


def load_corpus(folder: str | Path, *, source: str = "user") -> Corpus:
    """Read and check a corpus folder (``manifest.jsonl`` and its WAV files)."""
    root = Path(folder)
    manifest = root / "manifest.jsonl"
    if not root.is_dir():
        raise CorpusError(f"{root}: not a folder; give a folder holding manifest.jsonl and WAVs")
    if not manifest.is_file():
        raise CorpusError(f"{root}: no manifest.jsonl (one JSON object per turn)")
    text = manifest.read_text(encoding="utf-8")
    lines = parse_manifest(text, str(manifest))
    numbers = _line_numbers(text)
    items = [_load_item(line, numbers[i], root, str(manifest)) for i, line in enumerate(lines)]
    order: list[str] = []
    grouped: dict[str, list[CorpusItem]] = {}
    for item in items:
        if item.conversation not in grouped:
            order.append(item.conversation)
            grouped[item.conversation] = []
        grouped[item.conversation].append(item)
    conversations = tuple(
        CorpusConversation(name, tuple(sorted(grouped[name], key=lambda it: it.turn)))
        for name in order
    )
    digest = hashlib.sha256(text.encode("utf-8"))
    for item in items:
        digest.update(hashlib.sha256(item.pcm).digest())
    return Corpus(root, conversations, digest.hexdigest()[:16], source)


def _line_numbers(text: str) -> list[int]:
    """Line numbers of the item lines (skipping blanks and comments), as parse_manifest does."""
    return [
        n
        for n, raw in enumerate(text.splitlines(), start=1)
        if raw.strip() and not raw.lstrip().startswith("#")
    ]
