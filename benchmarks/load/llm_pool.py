"""Two replies asked at the same moment, on one llama.cpp context or on a pool of two.

``python -m benchmarks.load.llm_pool [SIZES...]`` (default ``1 2``): for each pool
size, three rounds of two threads asking SmolLM2-135M (one thread each, the shipped
settings) two different questions at once, through
:class:`~processors.llm._llama_pool.LlamaPool` as :class:`LlamaCppLLM` does. With
one context the second reply waits for the first (the old per-model lock); with
two they run side by side. Prints, per round, each reply's time to first token and
to its end (wall seconds from the moment both were asked), earlier reply first.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from processors.llm._llama_pool import LlamaPool
from processors.llm.llama_cpp import default_model_path

__all__ = ["main", "rounds"]

SYSTEM = "You are a friendly voice assistant. Answer in one short sentence."
QUESTIONS = ("What is the capital city of France?", "Can you recommend a good book to read?")


def _load() -> Any:
    from llama_cpp import Llama

    path = str(default_model_path())
    return Llama(model_path=path, n_ctx=2048, n_threads=1, n_batch=256, verbose=False)


def rounds(size: int, count: int = 3) -> list[list[tuple[float, float]]]:
    """Per round, (first token, end) of each of the two replies, sorted."""
    pool = LlamaPool(_load, size)
    taken = [pool.take() for _ in range(size)]  # every context loaded before timing
    for context in taken:
        pool.give(context)
    results = []
    for index in range(count):
        start = time.perf_counter()
        times: list[tuple[float, float]] = []

        def reply(
            question: str,
            index: int = index,
            start: float = start,
            times: list[tuple[float, float]] = times,
        ) -> None:
            llama = pool.take()
            assert llama is not None  # no stop event: take waits for a context
            try:
                first = None
                messages = [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"{question} ({index})"},
                ]
                stream = llama.create_chat_completion(
                    messages=messages, stream=True, max_tokens=20, temperature=0.0
                )
                for chunk in stream:
                    if first is None and chunk["choices"][0]["delta"].get("content"):
                        first = time.perf_counter() - start
                times.append((first or 0.0, time.perf_counter() - start))
            finally:
                pool.give(llama)

        threads = [threading.Thread(target=reply, args=(q,)) for q in QUESTIONS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        results.append(sorted(times))
    pool.close(lambda llama: llama.close())
    return results


def main(argv: list[str] | None = None) -> int:
    """Print the rounds for each pool size given (default 1 and 2)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        sizes = [int(a) for a in args] or [1, 2]
    except ValueError:
        print(f"pool sizes are whole numbers, not {' '.join(args)!r}", file=sys.stderr)
        return 2
    if any(not 1 <= size <= 4 for size in sizes):
        print("each pool size must be 1..4", file=sys.stderr)
        return 2
    for size in sizes:
        for (first_a, end_a), (first_b, end_b) in rounds(size):
            print(
                f"contexts={size}: first token {first_a:.2f} / {first_b:.2f} s, "
                f"done {end_a:.2f} / {end_b:.2f} s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
