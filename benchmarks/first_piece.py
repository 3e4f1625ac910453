"""A reply's first piece of speech: Piper's synthesis while the language model writes on.

Run ``python -m benchmarks.first_piece`` (about half a minute). Piper synthesises
short first pieces ("The capital city of", ...) while SmolLM2 evaluates tokens
on one thread next to it, as it does while it writes the rest of a reply, for
each combination of:

* Piper on one or two ONNX Runtime threads (``PiperTTSParams.num_threads``);
* the synthesis as foreground work or not (:mod:`framework.foreground`): the
  model waits between two tokens while it runs, as ``LlamaCppLLM`` does.

It prints the milliseconds per synthesis (p50 and p90 over the pieces, each
said ``--repeats`` times) and, for reference, each Piper setting alone.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np

from framework.foreground import FOREGROUND

__all__ = ["PIECES", "main", "synthesis_ms"]

PIECES = ("The capital city of", "A spider has 8", "The sky is blue", "Sure, I can help.")


def synthesis_ms(
    threads: int, *, foreground: bool, model_busy: bool, repeats: int = 4
) -> list[float]:
    """Milliseconds of each synthesis of :data:`PIECES` under the given conditions."""
    from llama_cpp import Llama

    from processors.llm.llama_cpp import FOREGROUND_WAIT_S, default_model_path
    from processors.tts.piper import PiperTTS, PiperTTSParams

    tts = PiperTTS(PiperTTSParams(num_threads=threads))
    tts.load()
    stop = threading.Event()
    writer: threading.Thread | None = None
    if model_busy:
        llama = Llama(
            model_path=str(default_model_path()),
            n_ctx=256,
            n_threads=1,
            n_threads_batch=1,
            verbose=False,
        )
        token = llama.tokenize(b" the", add_bos=False)

        def write_on() -> None:  # one token after another, yielding as generation does
            while not stop.is_set():
                llama.n_tokens = 0
                llama.eval(token)
                FOREGROUND.wait_clear(FOREGROUND_WAIT_S)

        writer = threading.Thread(target=write_on, daemon=True)
        writer.start()
    times: list[float] = []
    try:
        for _ in range(repeats):
            for piece in PIECES:
                time.sleep(0.05)  # the model gets going again between two pieces
                began = time.perf_counter()
                with FOREGROUND.running() if foreground else nullcontext():
                    tts.synthesize(piece)
                times.append((time.perf_counter() - began) * 1000.0)
    finally:
        stop.set()
        if writer is not None:
            writer.join(5)
    return times


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.first_piece")
    parser.add_argument("--repeats", type=int, default=4, help="times each piece is said")
    args = parser.parse_args(argv)
    print("| Piper threads | the model meanwhile | synthesis p50 / p90 (ms) |")
    print("|---:|---|---:|")
    cases = (
        (False, False, "idle (Piper alone)"),
        (True, False, "writes on"),
        (True, True, "waits (foreground)"),
    )
    for threads in (1, 2):
        for busy, foreground, label in cases:
            ms = synthesis_ms(threads, foreground=foreground, model_busy=busy, repeats=args.repeats)
            p50, p90 = np.percentile(ms, [50, 90])
            print(f"| {threads} | {label} | {p50:.0f} / {p90:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
