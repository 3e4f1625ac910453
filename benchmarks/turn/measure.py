"""Smart Turn v3.2 against the LLM's end-of-utterance probability, on the same utterances.

Run ``python -m benchmarks.turn.measure`` (about a minute): it speaks the
sentences of :mod:`benchmarks.turn.corpus` with Piper in four kinds (complete,
filler, audio-cut, text-cut), scores every clip with Smart Turn (on the audio)
and with SmolLM2's probability of ``<|im_end|>`` (on Whisper tiny.en's
transcript of the same audio), and prints the tables of docs/turn-taking.md:
probability distributions per kind, the share judged complete, accuracy,
ROC AUC, and the time per call. Latencies are wall-clock on a shared CPU.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from benchmarks.turn.corpus import KINDS, SENTENCES, Clip, build_clips

if TYPE_CHECKING:
    from processors.vad.eou import TextForm

__all__ = [
    "Scores",
    "auc",
    "main",
    "overruled",
    "score_llm",
    "score_smart_turn",
    "summarise",
    "transcribe",
]


@dataclass(frozen=True, slots=True)
class Scores:
    """One detector's probabilities (and seconds per call) for each clip, in clip order."""

    name: str
    probabilities: list[float]
    seconds: list[float]


def score_smart_turn(clips: Sequence[Clip], threads: int = 1) -> Scores:
    """Smart Turn v3.2 on each clip's audio."""
    from processors.vad.smart_turn import SmartTurnModel

    model = SmartTurnModel(threads=threads)
    model.load()
    model.predict(np.zeros(16000, dtype=np.float32))  # the first run allocates
    results = [model.timed_predict(c.samples) for c in clips]
    return Scores("smart_turn", [p for p, _ in results], [s for _, s in results])


def transcribe(clips: Sequence[Clip], threads: int = 2) -> tuple[list[str], list[float]]:
    """Whisper tiny.en's text of each clip (what the STT stage has at a pause), and its seconds."""
    from processors.stt._whisper_engine import PassOptions, default_model_dir, load_model

    model = load_model(default_model_dir(), "int8", threads)
    texts, seconds = [], []
    for clip in clips:
        pcm = (np.clip(clip.samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        began = time.perf_counter()
        texts.append(model.transcribe(pcm, PassOptions()) or "")
        seconds.append(time.perf_counter() - began)
    return texts, seconds


GENERIC_PROMPT = "You are a helpful AI assistant."


def score_llm(
    texts: Sequence[str],
    threads: int = 1,
    system_prompt: str = GENERIC_PROMPT,
    form: TextForm = "words",
) -> Scores:
    """SmolLM2's end-of-utterance probability on each transcript (the cascade's detector),
    read in ``form``."""
    from processors.llm.llama_cpp import LlamaCppLLMParams
    from processors.vad.eou import TranscriptEndOfTurn

    params = LlamaCppLLMParams(n_ctx=512, n_threads=threads, n_batch=128, warmup=False)
    model = TranscriptEndOfTurn(params, system_prompt=system_prompt, form=form)
    model.load()
    try:
        model.probability("hello")  # the first run evaluates the cached template prefix
        results = [model.timed_probability(t) for t in texts]
    finally:
        model.release()
    return Scores(f"llm_eou ({form})", [p for p, _ in results], [s for _, s in results])


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """ROC AUC: the chance a complete clip scores above an incomplete one (ties count half)."""
    if not positives or not negatives:
        raise ValueError("auc needs both complete and incomplete scores")
    wins = 0.0
    for p in positives:
        for n in negatives:
            wins += 1.0 if p > n else 0.5 if p == n else 0.0
    return wins / (len(positives) * len(negatives))


def best_threshold(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """The threshold with the best balanced accuracy on this data (optimistic by design)."""
    candidates = sorted(set(positives) | set(negatives))

    def balanced(t: float) -> float:
        tpr = sum(p >= t for p in positives) / len(positives)
        tnr = sum(n < t for n in negatives) / len(negatives)
        return (tpr + tnr) / 2

    return max(candidates, key=balanced)


def cross_validated_accuracy(clips: Sequence[Clip], scores: Scores) -> float:
    """Accuracy with the threshold fitted on the other half of the sentences (2-fold)."""
    correct = 0
    for fold in (0, 1):
        train = [
            (c, p)
            for c, p in zip(clips, scores.probabilities, strict=True)
            if c.sentence % 2 != fold
        ]
        test = [
            (c, p)
            for c, p in zip(clips, scores.probabilities, strict=True)
            if c.sentence % 2 == fold
        ]
        t = best_threshold(
            [p for c, p in train if c.complete], [p for c, p in train if not c.complete]
        )
        correct += sum((p >= t) == c.complete for c, p in test)
    return correct / len(clips)


def summarise(
    clips: Sequence[Clip], scores: Scores, threshold: float, kinds: Sequence[str] = KINDS
) -> list[str]:
    """Markdown rows: per kind, the distribution and the share at or above ``threshold``."""
    rows = []
    for kind in kinds:
        values = [p for c, p in zip(clips, scores.probabilities, strict=True) if c.kind == kind]
        if not values:
            continue
        q = np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0])
        judged = sum(v >= threshold for v in values) / len(values)
        rows.append(
            f"| {scores.name} | {kind} | {len(values)} | "
            + " | ".join(_fmt(v) for v in q)
            + f" | {judged:.0%} |"
        )
    return rows


def _fmt(value: float) -> str:
    return f"{value:.3f}" if value >= 0.001 else f"{value:.0e}"


def _accuracy(
    clips: Sequence[Clip], scores: Scores, threshold: float, incomplete: Callable[[Clip], bool]
) -> tuple[float, float]:
    chosen = [(c, p) for c, p in zip(clips, scores.probabilities, strict=True)]
    pos = [p for c, p in chosen if c.complete]
    neg = [p for c, p in chosen if incomplete(c)]
    correct = sum(p >= threshold for p in pos) + sum(p < threshold for p in neg)
    return correct / (len(pos) + len(neg)), auc(pos, neg)


def report(clips: Sequence[Clip], detectors: Sequence[tuple[Scores, float]]) -> str:
    """The markdown tables for ``detectors`` (scores and their decision threshold)."""
    lines = [
        "| detector | kind | clips | min | p25 | median | p75 | max | judged complete |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for scores, threshold in detectors:
        lines += summarise(clips, scores, threshold)
    lines += [
        "",
        "| detector | threshold | incomplete kinds | accuracy | ROC AUC | ms per call (p50, p90) |",
        "|---|---|---|---|---|---|",
    ]
    groups: list[tuple[str, Callable[[Clip], bool]]] = [
        ("all three", lambda c: not c.complete),
        ("filler + audio-cut", lambda c: c.kind in ("filler", "audio-cut")),
        ("text-cut", lambda c: c.kind == "text-cut"),
    ]
    for scores, threshold in detectors:
        ms = sorted(s * 1000.0 for s in scores.seconds)
        p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
        for label, incomplete in groups:
            accuracy, area = _accuracy(clips, scores, threshold, incomplete)
            lines.append(
                f"| {scores.name} | {_fmt(threshold)} | {label} | {accuracy:.0%} | {area:.2f} | "
                f"{statistics.median(ms):.0f}, {p90:.0f} |"
            )
    return "\n".join(lines)


COMBINED_THRESHOLDS = (3e-8, 1e-7, 3e-7, 1e-6, 1e-5)


def combined(clips: Sequence[Clip], smart: Scores, llm: Scores) -> str:
    """Markdown rows: what ends after the short silence when Smart Turn (at 0.5) and then
    the words (at each threshold) must both call a clip complete, as the cascade does."""
    through = [
        (c, w)
        for c, s, w in zip(clips, smart.probabilities, llm.probabilities, strict=True)
        if s >= 0.5
    ]
    complete = sum(c.complete for c in clips)
    incomplete = len(clips) - complete
    lines = [
        f"| {llm.name}: threshold | complete sentences ending at once (of {complete}) "
        f"| incomplete clips ending there (of {incomplete}) |",
        "|---|---:|---:|",
        f"| none (Smart Turn alone) | {sum(c.complete for c, _ in through)} "
        f"| {sum(not c.complete for c, _ in through)} |",
    ]
    return "\n".join(lines + _rows_from(through, COMBINED_THRESHOLDS))


def _rows_from(pairs: Sequence[tuple[Clip, float]], thresholds: Sequence[float]) -> list[str]:
    """Markdown rows: at each threshold, the complete and incomplete clips whose words'
    probability reaches it."""
    rows = []
    for t in thresholds:
        reached = [c for c, w in pairs if w >= t]
        rows.append(
            f"| {_fmt(t)} | {sum(c.complete for c in reached)} "
            f"| {sum(not c.complete for c in reached)} |"
        )
    return rows


OVERRULE_THRESHOLDS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def overruled(clips: Sequence[Clip], smart: Scores, llm: Scores) -> str:
    """Markdown rows: of the clips Smart Turn (at 0.5) holds back, which the words free
    at each threshold (``transcript_complete_threshold``: they end as if complete).

    The pipeline's hold phrases and open endings (a transcript ending in a comma) are
    not applied here, so the incomplete counts are upper bounds."""
    held = [
        (c, w)
        for c, s, w in zip(clips, smart.probabilities, llm.probabilities, strict=True)
        if s < 0.5
    ]
    complete = sum(c.complete for c, _ in held)
    incomplete = len(held) - complete
    lines = [
        f"| {llm.name}: overruling from | complete sentences Smart Turn holds back that end "
        f"at once (of {complete}) | incomplete clips it holds back that end (of {incomplete}) |",
        "|---|---:|---:|",
    ]
    return "\n".join(lines + _rows_from(held, OVERRULE_THRESHOLDS))


def main(argv: Sequence[str] | None = None) -> int:
    """Build the clips, score them both ways and print the tables."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.turn.measure")
    parser.add_argument("--sentences", type=int, default=len(SENTENCES), help="how many to use")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per model")
    parser.add_argument("--show", action="store_true", help="print every clip's scores")
    parser.add_argument(
        "--system-prompt",
        default=GENERIC_PROMPT,
        help="the system prompt before the user's words in the LLM's prompt (the pipeline "
        "file's, to measure the threshold a pipeline should use)",
    )
    parser.add_argument(
        "--form",
        choices=("words", "transcript", "both"),
        default="both",
        help="how the LLM reads the transcript: normalised words, as transcribed without "
        "its closing mark, or both (compared)",
    )
    args = parser.parse_args(argv)
    began = time.perf_counter()
    clips = build_clips(SENTENCES[: args.sentences])
    texts, stt_seconds = transcribe(clips)
    smart = score_smart_turn(clips, args.threads)
    forms: list[TextForm] = ["words", "transcript"] if args.form == "both" else [args.form]
    llms = [score_llm(texts, args.threads, args.system_prompt, form) for form in forms]
    detectors = [(smart, 0.5)]
    for llm in llms:
        pos = [p for c, p in zip(clips, llm.probabilities, strict=True) if c.complete]
        neg = [p for c, p in zip(clips, llm.probabilities, strict=True) if not c.complete]
        detectors.append((llm, best_threshold(pos, neg)))
    if args.show:
        for i, (c, t) in enumerate(zip(clips, texts, strict=True)):
            words = " ".join(f"{llm.name}={llm.probabilities[i]:.2e}" for llm in llms)
            print(f"{c.kind:9} smart={smart.probabilities[i]:.3f} {words} | {c.text!r} -> {t!r}")
    print(report(clips, detectors))
    for llm in llms:
        print()
        print(combined(clips, smart, llm))
        print()
        print(overruled(clips, smart, llm))
    stt_ms = sorted(s * 1000.0 for s in stt_seconds)
    print(
        f"\nWhisper tiny.en transcript of a clip (the llm_eou input): p50 "
        f"{statistics.median(stt_ms):.0f} ms, p90 {stt_ms[int(0.9 * len(stt_ms))]:.0f} ms"
    )
    for scores, _ in detectors:
        print(
            f"{scores.name}: accuracy with a threshold fitted on the other half of the "
            f"sentences: {cross_validated_accuracy(clips, scores):.0%}"
        )
    print(f"\n{len(clips)} clips in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
