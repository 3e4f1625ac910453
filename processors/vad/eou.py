"""The words' opinion on the end of a turn: a language model's end-of-utterance probability.

Smart Turn (:mod:`processors.vad.smart_turn`) judges a pause from the voice.
A phrase spoken with a finished intonation ("For the camping trip I am
packing") fools it; the words do not. :class:`TranscriptEndOfTurn` puts the
pause's transcript into the chat template as the user's unfinished message and
reads the probability that the model's next token ends the message
(``<|im_end|>`` for SmolLM2): the probability that the user has finished.
The transcript is lower-cased and stripped of punctuation first, because the
transcriber's punctuation ("for." or "for...") would give the answer away.

The model is the cascade's own language model: :func:`acquire_llama` hands out
the process's shared pool of ``Llama`` contexts for the same settings, so no
second copy of the model is loaded. The check borrows a context the way a reply
does, naming the same conversation (``affinity``: the LLM stage's), so it lands
on the context that holds the conversation and the reply after it lands there
too; the prompt starts with the conversation the reply will be generated from
(system prompt and history, rendered by the model's own chat template): the
reply that follows re-evaluates only the user's message, not the whole prompt.

:class:`EndOfUtteranceProcessor` is the stage that asks it, right after
speech-to-text in a cascade: at a pause (between ``UserPausedSpeakingFrame``
and the end or resumption of the turn) it holds the pause's
``TranscriptionFrame`` while the model judges it in a worker thread (so the
reply's generation, which waits on the same model, comes after the verdict),
sends the verdict upstream to the turn processor as an
:class:`~framework.frames.EndOfUtteranceFrame`, then lets the transcript go on.
While the user speaks it evaluates the conversation so far in the background,
then the words of each interim transcript but its last, so that at the pause only
the words heard since are left to evaluate.
See docs/turn-taking.md, "The words' second opinion".
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from framework import Direction, Processor, handles
from framework.frames import (
    EndOfUtteranceFrame,
    InterimTranscriptionFrame,
    StartFrame,
    TranscriptionFrame,
    UserPausedSpeakingFrame,
    UserResumedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.interruption import is_backchannel

if TYPE_CHECKING:
    from processors.llm._llama_pool import LlamaPool
    from processors.llm.context import LLMContext
    from processors.llm.llama_cpp import LlamaCppLLMParams
    from processors.shared_models import SharedModel

__all__ = [
    "HOLD_PHRASES",
    "OPEN_ENDINGS",
    "EndOfUtteranceProcessor",
    "TranscriptEndOfTurn",
    "asks_for_more",
    "holds_the_turn",
    "normalise_transcript",
]

_PUNCTUATION = re.compile(r"[^\w\s']")
_SENTINEL = "\u2063eou\u2063"  # marks where the user's words go in the rendered template
Message = dict[str, Any]
TextForm = Literal["words", "transcript"]
"""How the check reads a transcript: ``"words"`` (:func:`normalise_transcript`) or
``"transcript"`` (:func:`as_transcribed`)."""


_DIGITS = re.compile(r"\d+")
_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _number_words(digits: str) -> str:
    """A number as read out: up to two digits as words, longer ones digit by digit.

    Digit by digit is how codes and phone numbers are said, and a group of them
    ("two nine three") reads as unfinished where "two hundred ninety three" does not.
    """
    if len(digits) > 2 or (len(digits) == 2 and digits[0] == "0"):
        return " ".join(_ONES[int(d)] for d in digits)
    value = int(digits)
    if value < 20:
        return _ONES[value]
    return _TENS[value // 10 - 2] + (f" {_ONES[value % 10]}" if value % 10 else "")


def normalise_transcript(text: str) -> str:
    """Lower case, numbers in words, no punctuation, single spaces.

    The model reads words: Whisper's "7" scored 100 times less likely to end a
    message than "seven".
    """
    spoken = _DIGITS.sub(lambda m: f" {_number_words(m.group())} ", text.lower())
    return " ".join(_PUNCTUATION.sub(" ", spoken).split())


HOLD_PHRASES = (
    "wait", "wait a second", "wait a minute", "hold on", "hang on", "one second",
    "one sec", "just a second", "just a moment", "let me think", "let me see",
    "um", "uh", "er", "erm", "hmm", "so", "and", "but", "well", "actually",
)  # fmt: skip
"""Words that ask for time, not a reply; alone they leave the turn open."""

OPEN_ENDINGS = (",", ";", ":", "...", "\u2026", "-", "\u2013", "\u2014")
"""Punctuation with which a transcriber ends words it heard go on."""


_CLOSING = re.compile(r"[\s.?!\u2026]+$")


def as_transcribed(text: str) -> str:
    """The transcript as the reply's prompt will hold it, without its closing full
    stop, question or exclamation mark.

    Only that last mark gives the answer away; the rest is what the reply's prompt
    holds token for token, so the reply that follows the check evaluates only the
    mark and the chat template's few tokens after the check's cache.
    """
    return _CLOSING.sub("", text.strip())


def holds_the_turn(text: str, phrases: Sequence[str]) -> bool:
    """Whether ``text`` is made only of ``phrases`` ("Wait.", "Um, hold on"): a request
    for time, not a message to answer.

    SmolLM2 reads a bare "Wait." as a finished message (3e-6 after an interrupted
    story, above the threshold), and a user who stops the bot with it usually goes
    on after a breath. Matched on normalised words, one phrase after another, as
    the interruption stage matches backchannels.
    """
    words = normalise_transcript(text).split()
    return is_backchannel(words, [normalise_transcript(p).split() for p in phrases])


def asks_for_more(text: str, hold_phrases: Sequence[str], open_endings: Sequence[str]) -> bool:
    """Whether a pause's transcript says the user is not done, whatever the models say.

    Made only of ``hold_phrases`` ("Wait."), or ending with one of ``open_endings``:
    the transcriber heard the sentence go on ("I am packing, a tent, two sleeping
    bags," where the words alone score a finished list).
    """
    text = text.rstrip()
    if any(ending and text.endswith(ending) for ending in open_endings):
        return True
    return holds_the_turn(text, hold_phrases)


class TranscriptEndOfTurn:
    """P(the user's message ends here | the conversation and the user's words so far).

    ``llm_params`` selects the ``Llama`` (the cascade's LLM settings, to share its
    model; default: SmolLM2-135M-Instruct with the LLM stage's defaults).
    ``system_prompt`` is used when :meth:`probability` gets no history (default: the
    template's own, which is what ``benchmarks/turn`` measured). ``affinity`` names
    the conversation to the pool of contexts (the LLM stage's
    :attr:`~processors.llm.llama_cpp.LlamaCppLLM.affinity`), so the check and the
    reply share the context that holds it.
    """

    def __init__(
        self,
        llm_params: LlamaCppLLMParams | None = None,
        *,
        system_prompt: str | None = None,
        affinity: object = None,
        form: TextForm = "words",
    ) -> None:
        """Create the detector; the model is taken at :meth:`load`."""
        from processors.llm.llama_cpp import LlamaCppLLMParams

        self.llm_params = llm_params or LlamaCppLLMParams()
        self.system_prompt = system_prompt
        self.form: TextForm = form
        self.affinity = affinity if affinity is not None else self
        self._shared: SharedModel[LlamaPool] | None = None
        self._formatter: Any = None
        self._end = -1
        self._lock = threading.Lock()
        self._prefilling = False
        self._own = threading.Lock()  # one use of the model at a time by this detector
        self.last_wait_s = 0.0
        """How long the last :meth:`probability` waited for a context of the shared model."""
        self.last_tokens = 0
        """How many prompt tokens the last :meth:`probability` evaluated (the rest was cached)."""

    def loaded(self) -> bool:
        """Whether :meth:`load` has taken the model."""
        return self._shared is not None

    def busy(self) -> bool:
        """Whether a reply is being generated for this conversation, or none is free.

        A check then would wait (every context lent out) or run on a context that
        does not hold the conversation (its own reply holds that one). Not for this
        detector's own :meth:`prefill`: the check needs that work done anyway.
        """
        shared = self._shared
        if shared is None or self._prefilling:
            return False
        pool = shared.model
        return pool.full() or pool.lent_to(self.affinity)

    def load(self) -> None:
        """Take the process's shared ``Llama`` (loading it if no stage has); blocking."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        from processors.llm.llama_cpp import acquire_llama

        with self._lock:
            if self._shared is not None:
                return
            shared = acquire_llama(self.llm_params, self.system_prompt or "")
            llama = shared.model.first  # the template and tokens are the model's, not a context's
            template = llama.metadata.get("tokenizer.chat_template")
            if not template:
                from processors.shared_models import MODELS

                MODELS.release(shared)
                raise ValueError(
                    f"{self.llm_params.model_path or 'the default model'} has no chat template: "
                    "the end-of-utterance check needs one"
                )
            eos, bos = llama.token_eos(), llama.token_bos()
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llama._model.token_get_text(bos) if bos != -1 else "",
                add_generation_prompt=False,
            )
            tail = self._render([{"role": "user", "content": _SENTINEL}]).split(_SENTINEL, 1)[1]
            tokens = llama.tokenize(tail.encode(), add_bos=False, special=True)
            if not tokens:
                from processors.shared_models import MODELS

                MODELS.release(shared)
                raise ValueError("the chat template puts nothing after a user message")
            self._end = tokens[0]
            self._shared = shared

    def release(self) -> None:
        """Give the model back (freed when no stage uses it)."""
        from processors.shared_models import MODELS

        with self._lock:
            shared, self._shared = self._shared, None
        if shared is not None:
            MODELS.release(shared)

    def _render(self, messages: list[Message]) -> str:
        return str(self._formatter(messages=messages).prompt)

    def prompt(self, text: str, history: Sequence[Message] = ()) -> str:
        """The template text ending where the model chooses whether the message ends.

        ``history`` is the conversation before the user's words (system prompt first,
        as ``LLMContext.snapshot()`` gives it); without one, ``system_prompt`` alone.
        """
        if self._formatter is None:
            raise RuntimeError("load() the end-of-utterance model first")
        messages = [_plain(m) for m in history]
        if not messages and self.system_prompt:
            messages = [{"role": "system", "content": self.system_prompt}]
        messages.append({"role": "user", "content": _SENTINEL})
        head = self._render(messages).split(_SENTINEL, 1)[0]
        words = normalise_transcript(text) if self.form == "words" else as_transcribed(text)
        return head + words

    def probability(
        self, text: str, history: Sequence[Message] = (), stop: threading.Event | None = None
    ) -> float | None:
        """Probability that ``text`` is a finished user message; blocking (a worker thread).

        Waits for a context of the shared model (other stages' generations hold them
        all); returns None when ``stop`` is set before one is free.
        """
        shared = self._shared
        if shared is None:
            raise RuntimeError("load() the end-of-utterance model first")
        self.last_wait_s, self.last_tokens = 0.0, 0
        prompt = self.prompt(text, history)
        began = time.perf_counter()
        # A prefill in flight holds the conversation's context; wait for it rather
        # than take another context that would evaluate the whole conversation.
        while not self._own.acquire(timeout=0.02):
            if stop is not None and stop.is_set():
                return None
        try:
            pool = shared.model
            llama = pool.take(stop, self.affinity)
            if llama is None:
                return None
            self.last_wait_s = time.perf_counter() - began
            try:
                return self._next_token_probability(llama, prompt)
            finally:
                pool.give(llama, self.affinity)
        finally:
            self._own.release()

    def prefill(
        self, history: Sequence[Message] = (), text: str = "", *, owner: object = None
    ) -> int:
        """Evaluate the conversation, and ``text`` (the user's words so far), now if the
        model is free.

        Run while the user speaks, it takes the last reply's tokens (which the cache
        rarely holds as the context has them) and the words already heard off the
        pause's critical path: the check then evaluates only the words that came
        after ``text``. ``owner`` (default :attr:`affinity`) names the context to
        prefer: another caller's, such as a reply's that runs beside the check, gets
        the conversation evaluated the same way, since a reply's prompt starts with
        the check's. Returns how many tokens it evaluated (0 when no context is free
        now, or this detector is already using the model).
        """
        shared = self._shared
        if shared is None or not self._own.acquire(blocking=False):
            return 0
        owner = self.affinity if owner is None else owner
        try:
            pool = shared.model
            llama = pool.take(owner=owner, wait=False)
            if llama is None:
                return 0
            self._prefilling = True
            try:
                return self._evaluate(llama, self.prompt(text, history))
            finally:
                self._prefilling = False
                pool.give(llama, owner)
        finally:
            self._own.release()

    def room(self) -> int:
        """Contexts of the shared model a caller could take now: free, or not loaded yet."""
        shared = self._shared
        return shared.model.room() if shared is not None else 0

    def timed_probability(self, text: str, history: Sequence[Message] = ()) -> tuple[float, float]:
        """:meth:`probability` and the seconds it took (the wait for a context included)."""
        began = time.perf_counter()
        value = self.probability(text, history)
        return (value if value is not None else math.nan), time.perf_counter() - began

    def _next_token_probability(self, llm: Any, prompt: str) -> float:
        import numpy as np

        self.last_tokens = self._evaluate(llm, prompt)
        # Only the last token's logits are kept (logits_all is off): read them from the context.
        vocab = llm.n_vocab()
        raw = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(vocab,))
        logits = raw.astype(np.float64)
        logits -= logits.max()
        weights = np.exp(logits)
        return float(weights[self._end] / weights.sum())

    @staticmethod
    def _evaluate(llm: Any, prompt: str) -> int:
        """Bring a borrowed context's cache to ``prompt``; return the tokens evaluated."""
        tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        # Keep the cached prefix (the conversation, the template) and evaluate only
        # the rest; eval() drops the cache beyond n_tokens itself.
        cached = llm._input_ids[: llm.n_tokens].tolist()
        keep = 0
        while keep < min(len(cached), len(tokens) - 1) and cached[keep] == tokens[keep]:
            keep += 1
        llm.n_tokens = keep
        try:
            llm.eval(tokens[keep:])
        except Exception:
            llm.reset()  # the next caller evaluates its whole prompt on a clean state
            raise
        return len(tokens) - keep


def _plain(message: Message) -> Message:
    """A message the chat template can render: role and text content."""
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return {"role": str(message.get("role", "user")), "content": content or ""}


class EndOfUtteranceProcessor(Processor):
    """Judges each pause's transcript and tells the turn processor; see the module docstring.

    ``detector`` is the model (its ``load`` runs at ``StartFrame`` in a worker
    thread); ``context`` the conversation whose history starts the prompt. A
    transcript outside a pause (the turn already ended, or resumed) passes at once;
    one the user resumed past while it was judged is dropped (the transcriber's
    next one covers the whole turn), and so is its verdict's wait for the model.
    At each user start the conversation so far is evaluated in the background
    (:meth:`TranscriptEndOfTurn.prefill`), and at each interim transcript the words
    heard so far but the last (when the model is free and no prefill is on its way),
    so the check at the pause evaluates only the words that came after them.
    """

    def __init__(
        self,
        detector: TranscriptEndOfTurn,
        *,
        context: LLMContext | None = None,
        name: str = "end_of_utterance",
    ) -> None:
        """Create the stage around ``detector``."""
        super().__init__(name=name)
        self.detector = detector
        self._conversation = context
        self._pause_end_ns: int | None = None  # set while a pause awaits its transcript
        self._check_stop: threading.Event | None = None  # makes a check stop waiting
        self._resumes = 0
        self._speaking = False  # between the user's start and the end of the turn
        self._prefilling = False  # a prefill is on its way to the model

    async def on_start(self, frame: StartFrame) -> None:
        """Take the model in a worker thread (shared with the LLM stage when it has it)."""
        await self.run_blocking(self.detector.load)

    async def cleanup(self) -> None:
        """Give the model back."""
        if self._check_stop is not None:
            self._check_stop.set()
        await self.run_blocking(self.detector.release)

    @handles(UserPausedSpeakingFrame)
    async def _paused(self, frame: UserPausedSpeakingFrame, direction: Direction) -> None:
        if direction is Direction.DOWNSTREAM:
            self._pause_end_ns = frame.speech_end_ns
        await self.push(frame, direction)

    @handles(UserStartedSpeakingFrame)
    async def _started(self, frame: UserStartedSpeakingFrame, direction: Direction) -> None:
        if direction is Direction.DOWNSTREAM:
            self._pause_end_ns = None
            self._speaking = True
            self.context.task_group.start_soon(self._prefill, "")
        await self.push(frame, direction)

    @handles(InterimTranscriptionFrame)
    async def _interim(self, frame: InterimTranscriptionFrame, direction: Direction) -> None:
        if direction is Direction.DOWNSTREAM and self._speaking and not self.detector.busy():
            # All but the last word, which the next pass may hear whole or otherwise.
            heard = " ".join(frame.text.split()[:-1])
            if heard:
                self.context.task_group.start_soon(self._prefill, heard)
        await self.push(frame, direction)

    @handles(UserResumedSpeakingFrame, UserStoppedSpeakingFrame)
    async def _moved_on(
        self, frame: UserResumedSpeakingFrame | UserStoppedSpeakingFrame, direction: Direction
    ) -> None:
        if direction is Direction.DOWNSTREAM:
            self._pause_end_ns = None
            self._speaking = isinstance(frame, UserResumedSpeakingFrame)
            if isinstance(frame, UserResumedSpeakingFrame):
                self._resumes += 1
                if self._check_stop is not None:  # a check waiting for the model gives up
                    self._check_stop.set()
        await self.push(frame, direction)

    @handles(TranscriptionFrame)
    async def _transcript(self, frame: TranscriptionFrame, direction: Direction) -> None:
        pause_end_ns = self._pause_end_ns
        if direction is Direction.DOWNSTREAM and pause_end_ns is not None:
            self._pause_end_ns = None
            if self.detector.busy():
                # A reply is being generated (the bot's, or one the user may be
                # interrupting): the check would wait for it, and so would the stages
                # after this one. Judge in the background and pass the words on now.
                self.context.task_group.start_soon(self._judge, frame.text, pause_end_ns)
                await self.push(frame, direction)
                return
            resumes = self._resumes
            await self._judge(frame.text, pause_end_ns)
            if self._resumes != resumes:
                # The user went on while it was judged: speech-to-text continues the
                # turn and its next transcript covers all of it. A pause transcript not
                # yet passed on at a resume is never passed on (docs/frame-flow.md).
                return
        await self.push(frame, direction)

    async def _prefill(self, heard: str) -> None:
        context = self._conversation
        if context is None or not self.detector.loaded() or self._prefilling:
            return
        self._prefilling = True
        try:
            tokens = await self.run_blocking(self.detector.prefill, context.snapshot(), heard)
        except Exception as exc:
            await self.push_error(f"{self.name}: end-of-utterance prefill failed: {exc}")
            return
        finally:
            self._prefilling = False
        self.report_event("end_of_utterance_prefill", tokens=tokens, words=len(heard.split()))

    async def _judge(self, text: str, pause_end_ns: int) -> None:
        probability: float | None = None
        began = time.perf_counter()
        if text.strip() and self.detector.loaded():
            try:
                context = self._conversation
                history = context.snapshot() if context is not None else []
                stop = self._check_stop = threading.Event()
                probability = await self.run_blocking(
                    self.detector.probability, text, history, stop
                )
            except Exception as exc:  # the turn processor decides on the voice alone
                await self.push_error(f"{self.name}: end-of-utterance model failed: {exc}")
        verdict = EndOfUtteranceFrame(
            probability=probability,
            speech_end_ns=pause_end_ns,
            text=text,
            model_s=time.perf_counter() - began,
        )
        self.report_event(
            "end_of_utterance",
            probability=probability,
            seconds=round(verdict.model_s, 4),
            lock_wait_s=round(self.detector.last_wait_s, 4),
            tokens=self.detector.last_tokens,
        )
        await self.push(verdict, Direction.UPSTREAM)
