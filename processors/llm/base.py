"""What every LLM stage does around its model: the reply's framing, checks and metrics.

:class:`LLMProcessor` answers each :class:`~framework.frames.llm.LLMMessagesFrame`
with ``LLMResponseStartFrame``, the text its backend streams (``LLMTextFrame``
through :meth:`LLMProcessor.push_text`) and ``LLMResponseEndFrame``. A backend
implements :meth:`~LLMProcessor.load` (blocking, in a worker thread at start) and
:meth:`~LLMProcessor.generate` (the streaming of one reply).

The base keeps what would otherwise be written once per backend:

* the loading gate (:class:`~processors.loading.ModelGate`): messages that come
  before the model is ready wait for it; without a model each request is a
  failed reply;
* the empty-request check (an error naming the stage, no reply);
* failures: a reply whose generation raises is ended where it stopped (the End
  frame follows the text already pushed) and counted by ``failures``
  (:class:`~processors.faults.FailureCounter`); ``max_failures_in_a_row`` in a
  row makes the error fatal;
* metrics per reply: ``ttft`` (seconds from the messages frame, or from the end
  of the model's load when the frame came earlier, to the first text), then
  ``tokens`` and ``tokens_per_s`` (text pieces pushed, and their rate after the
  first), plus what the backend adds (:meth:`~LLMProcessor.reply_metrics`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from framework.frames.base import Direction
from framework.frames.lifecycle import MetricSample, MetricsFrame, StartFrame
from framework.frames.llm import LLMMessagesFrame, LLMResponseEndFrame, LLMResponseStartFrame
from framework.frames.text import LLMTextFrame
from framework.processor import Processor, ProcessorContext, handles
from processors.faults import FailureCounter
from processors.loading import ModelGate

__all__ = ["LLMProcessor", "Reply"]

Sample = tuple[str, float, str]


@dataclass(slots=True)
class Reply:
    """What happened during one reply; backends may subclass it to add their counters."""

    start_ns: int = 0
    """When the request was made (the messages frame, or the model's ready time)."""
    first_ns: int = 0
    last_ns: int = 0
    tokens: int = 0
    """Text pieces pushed: a token of a local model, a delta of a server's stream."""
    ttft_s: float | None = None
    tokens_per_s: float = 0.0
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The reply's text so far."""
        return "".join(self.parts)


R = TypeVar("R", bound=Reply)


class LLMProcessor(Processor, Generic[R]):
    """Base of LLM stages, generic over their reply statistics; see the module docstring.

    Subclasses set :attr:`model_kind` (the word used in load errors), implement
    :meth:`load` and :meth:`generate`, and may override :meth:`new_reply`,
    :meth:`reply_metrics`, :meth:`metric_extra` and :meth:`describe_failure`.
    """

    model_kind: ClassVar[str] = "model"
    load_is_fatal: ClassVar[bool] = False
    """A failed load ends the task (a missing API key) instead of failing each reply."""

    def __init__(self, *, name: str | None, max_failures_in_a_row: int) -> None:
        """Create the stage (queued: one reply at a time, in order)."""
        super().__init__(name=name, queued=True)
        self.model_gate = ModelGate(self, self.model_kind, fatal=self.load_is_fatal)
        """Open once the model is loaded (or failed to load)."""
        self.failures = FailureCounter(self, max_failures_in_a_row)
        """Failed replies in a row, and the error frames reporting them."""

    # --------------------------------------------------------- backend API

    def load(self) -> None:
        """Load the model or make the client. Blocking: runs in a worker thread at start."""

    async def generate(self, frame: LLMMessagesFrame, reply: R) -> None:
        """Stream one reply to ``frame`` through :meth:`push_text`; raise on failure."""
        raise NotImplementedError

    def new_reply(self) -> R:
        """The statistics object of a new reply."""
        raise NotImplementedError

    def reply_metrics(self, reply: R) -> list[Sample]:
        """Backend-specific metrics of a finished reply (name, value, unit)."""
        return []

    def metric_extra(self) -> dict[str, Any]:
        """Extra fields attached to every metric sample (e.g. the model id)."""
        return {}

    def describe_failure(self, reply: R, exc: Exception) -> tuple[str, Exception | None]:
        """What a failed reply's error says, and the exception it carries."""
        return f"failed after {reply.tokens} tokens", exc

    # ----------------------------------------------------------- lifecycle

    async def setup(self, context: ProcessorContext) -> None:
        """Attach to the task and close the loading gate until the start."""
        self.model_gate.arm()
        await super().setup(context)

    async def on_start(self, frame: StartFrame) -> None:
        """Load the model in a worker thread; the Start frame goes on either way."""
        await self.model_gate.load(self.load)

    # ------------------------------------------------------------- replies

    @handles(LLMMessagesFrame)
    async def _messages(self, frame: LLMMessagesFrame, direction: Direction) -> None:
        if await self.model_gate.wait() is not None or not self.loaded():
            missing = f"the {self.model_kind} is not loaded{self.model_gate.reason()}"
            await self.failures.failed(f"cannot answer: {missing}")
            return
        if not frame.messages:
            await self.push_error(f"{self.name}: LLMMessagesFrame has no messages to answer")
            return
        reply = self.new_reply()
        reply.start_ns = max(frame.timestamp_ns, self.model_gate.ready_ns)
        await self.push(LLMResponseStartFrame())
        failure: Exception | None = None
        try:
            await self.generate(frame, reply)
        except Exception as exc:  # a model error, an HTTP error, a broken stream
            failure = exc
        await self.push(LLMResponseEndFrame())
        if reply.tokens > 1 and reply.last_ns > reply.first_ns:
            reply.tokens_per_s = (reply.tokens - 1) / ((reply.last_ns - reply.first_ns) / 1e9)
        samples: list[Sample] = [("tokens", float(reply.tokens), "tokens")]
        samples.append(("tokens_per_s", reply.tokens_per_s, "tokens/s"))
        await self.push_metrics(*samples, *self.reply_metrics(reply))
        if failure is None:
            self.failures.succeeded()
            return
        message, exception = self.describe_failure(reply, failure)
        await self.failures.failed(message, exception)

    def loaded(self) -> bool:
        """Whether the model (or client) is there to answer; True once loaded by default."""
        return True

    async def push_text(self, reply: R, text: str) -> None:
        """Push one piece of the reply's text and count it (the first one sets ``ttft``)."""
        now = time.monotonic_ns()
        reply.tokens += 1
        reply.last_ns = now
        reply.parts.append(text)
        await self.push(LLMTextFrame(text=text))
        if not reply.first_ns:
            reply.first_ns = now
            reply.ttft_s = (now - reply.start_ns) / 1e9
            await self.push_metrics(("ttft", reply.ttft_s, "s"))

    async def push_metrics(self, *samples: Sample) -> None:
        """Push ``samples`` as one metrics frame from this stage."""
        extra = self.metric_extra()
        await self.push(
            MetricsFrame(
                samples=[MetricSample(self.name, n, v, u, dict(extra)) for n, v, u in samples]
            )
        )
