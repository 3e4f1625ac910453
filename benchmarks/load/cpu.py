"""CPU seconds per spoken turn of each model of cascade-local: ``python -m benchmarks.load.cpu``.

The models run one after the other in this process, with the settings of the
shipped pipeline, on the built-in corpus's plain spoken turns; each figure is
the process's CPU time (every thread) around the call, so it does not depend on
what else the machine runs as much as wall time does. Whisper transcribes
while the user speaks (a pass per ``interim_interval_ms`` of new audio, 500 ms,
plus the final one), so a turn costs several passes: the table gives one pass
and the passes a turn of that length takes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.latency.corpus import load_corpus
from benchmarks.latency.generate import builtin_corpus
from benchmarks.load.runner import spoken_turns
from framework.audio.resample import resample

__all__ = ["main", "measure"]

SYSTEM = "You are a friendly voice assistant. Answer in one short sentence."


def _cpu(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    start = time.process_time()
    result = fn(*args, **kwargs)
    return time.process_time() - start, result


def measure(turns: int) -> dict[str, list[float]]:
    """CPU seconds per call of each model over the first ``turns`` corpus turns."""
    from llama_cpp import Llama

    from processors.llm.llama_cpp import LlamaCppLLMParams, default_model_path
    from processors.stt._whisper_engine import PassOptions, default_model_dir, load_model
    from processors.stt.whisper import WhisperSTTParams
    from processors.tts.piper import PiperTTS
    from processors.vad.silero import SileroVAD
    from processors.vad.smart_turn import shared_model

    w = WhisperSTTParams()
    whisper = load_model(default_model_dir(), w.compute_type, w.cpu_threads)
    p = LlamaCppLLMParams()
    llm = Llama(
        model_path=str(default_model_path()),
        n_ctx=p.n_ctx,
        n_threads=p.n_threads,
        n_batch=p.n_batch,
        verbose=False,
    )
    tts = PiperTTS()
    tts.load()
    smart_turn = shared_model()
    smart_turn.load()
    figures: dict[str, list[float]] = {k: [] for k in ("silero", "smart_turn", "whisper_pass")}
    figures.update({"whisper_passes": [], "llm": [], "llm_tokens": [], "piper": []})
    for turn in spoken_turns(load_corpus(builtin_corpus()))[:turns]:
        pcm = resample(turn.pcm, 24000, 16000)
        vad = SileroVAD()
        figures["silero"].append(_cpu(vad.analyze, pcm)[0])
        vad.close()
        figures["smart_turn"].append(_cpu(smart_turn.predict_pcm16, pcm[-256000:])[0])
        cpu, _ = _cpu(whisper.transcribe, pcm, PassOptions())
        figures["whisper_pass"].append(cpu)
        figures["whisper_passes"].append(1 + turn.speech_end_s / (w.interim_interval_ms / 1000))
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": turn.transcript},
        ]
        cpu, reply = _cpu(
            llm.create_chat_completion,
            messages=messages,
            max_tokens=p.max_tokens,
            temperature=p.temperature,
            seed=p.seed,
        )
        figures["llm"].append(cpu)
        figures["llm_tokens"].append(reply["usage"]["completion_tokens"])
        text = reply["choices"][0]["message"]["content"] or "Okay."
        figures["piper"].append(_cpu(tts.synthesize, text)[0])
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Print the median CPU seconds per turn of each model."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load.cpu")
    parser.add_argument("--turns", type=int, default=8, help="corpus turns to measure (8)")
    args = parser.parse_args(argv)
    if not 1 <= args.turns <= 50:
        print("python -m benchmarks.load.cpu: --turns must be 1..50", file=sys.stderr)
        return 2
    figures = measure(args.turns)
    med = {k: statistics.median(v) for k, v in figures.items()}
    whisper_turn = med["whisper_pass"] * med["whisper_passes"]
    rows = [
        ("Silero VAD, the whole turn's audio", med["silero"]),
        ("Smart Turn, one verdict (a turn has one per pause)", med["smart_turn"]),
        ("Whisper tiny.en, one pass", med["whisper_pass"]),
        (f"Whisper, {med['whisper_passes']:.1f} passes (incremental)", whisper_turn),
        (f"SmolLM2-135M reply ({med['llm_tokens']:.0f} tokens)", med["llm"]),
        ("Piper, the whole reply", med["piper"]),
    ]
    total = med["silero"] + med["smart_turn"] + whisper_turn + med["llm"] + med["piper"]
    for label, value in rows:
        print(f"{label:<55} {value:6.3f} s")
    print(f"{'a turn in all (one Smart Turn verdict)':<55} {total:6.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
