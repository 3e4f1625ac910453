"""Complete and incomplete utterances spoken by Piper, for the end-of-turn measurements.

Each sentence has a mid-sentence point (``|``) where a speaker might stop to
think. From it come four clips, each ending the way the audio would look at a
pause (the speech, then :data:`TRAILING_S` of silence):

* ``complete``: the whole sentence;
* ``filler``: the words before the point followed by ", um," (a hesitation);
* ``audio-cut``: the whole sentence's audio cut after the last word before the
  point (the voice carries on into the next word: continuation prosody);
* ``text-cut``: the words before the point synthesised on their own (Piper ends
  them like a finished sentence: only the wording is incomplete).

Piper runs with its generator noise off, so every run gives the same audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from benchmarks.speech import speech_bounds
from framework.audio import resample

__all__ = ["KINDS", "SENTENCES", "TRAILING_S", "Clip", "build_clips", "speak"]

RATE = 16000
TRAILING_S = 0.096
"""Silence after the speech: what the model hears when the turn processor pauses."""

Kind = Literal["complete", "filler", "audio-cut", "text-cut"]
KINDS: tuple[Kind, ...] = ("complete", "filler", "audio-cut", "text-cut")

SENTENCES = (
    "I would like to book a table for | two at seven tonight.",
    "My phone number is two nine three | four zero.",
    "Could you tell me a little bit about | the history of Rome?",
    "Please remind me to call | my sister after lunch.",
    "How far is the nearest | train station from here?",
    "I need to buy milk, eggs and | some bread.",
    "Can you play some music by | the Beatles?",
    "What will the weather be like | tomorrow morning?",
    "I was wondering whether you could | help me with my homework.",
    "Set an alarm for | half past six.",
    "The meeting was moved to | Thursday afternoon.",
    "Turn the lights off in | my kitchen.",
    "I want to change my flight to | Friday evening.",
    "Send a message to | my brother saying sorry.",
    "What time does the | pharmacy close today?",
    "My address is twelve | Baker Street.",
)
"""Sentences with the pause point marked by ``|``."""


@dataclass(frozen=True, slots=True)
class Clip:
    """One utterance: 16 kHz float samples ending :data:`TRAILING_S` after the speech."""

    sentence: int
    kind: Kind
    text: str
    samples: np.ndarray

    @property
    def complete(self) -> bool:
        """True for the whole sentence, the only kind that ends a turn."""
        return self.kind == "complete"


def _to_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    return np.frombuffer(resample(pcm, rate, RATE), dtype="<i2").astype(np.float32) / 32768.0


def _ending(samples: np.ndarray) -> np.ndarray:
    """The clip from its start to the end of speech, then TRAILING_S of silence."""
    pcm = (samples * 32767.0).astype("<i2").tobytes()
    _start, end = speech_bounds(pcm, RATE)
    speech = samples[: round(end * RATE)]
    return np.concatenate([speech, np.zeros(int(TRAILING_S * RATE), dtype=np.float32)])


def speak(voice: Any, text: str) -> tuple[np.ndarray, int, list[tuple[str, int, int]]]:
    """Float audio, its rate and the aligned words (phonemes, start and end sample) of ``text``.

    Piper's generator noise is off, so the same text gives the same audio in every process.
    """
    from piper import SynthesisConfig

    from benchmarks.latency.generate import _aligned_words

    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    audio: list[np.ndarray] = []
    words: list[tuple[str, int, int]] = []
    offset = 0
    for chunk in voice.synthesize(text, syn_config=config, include_alignments=True):
        samples = np.asarray(chunk.audio_float_array, dtype=np.float32)
        if chunk.phoneme_alignments is None:
            raise RuntimeError("Piper gave no word alignment: install the `bench` extra (onnx)")
        words += _aligned_words(chunk.phoneme_alignments, offset)
        audio.append(samples)
        offset += samples.size
    return np.concatenate(audio), int(voice.config.sample_rate), words


def build_clips(sentences: tuple[str, ...] = SENTENCES) -> list[Clip]:
    """Every sentence in the four kinds, in sentence order (needs Piper and onnx)."""
    from benchmarks.latency.generate import _load_voice

    voice = _load_voice()
    clips: list[Clip] = []
    for index, marked in enumerate(sentences):
        head, _sep, _tail = marked.partition("|")
        head = head.strip()
        whole = " ".join(marked.replace("|", " ").split())
        audio, rate, words = speak(voice, whole)
        cut_words = len(head.replace(",", " ").split())
        if len(words) != len(whole.replace(",", " ").split()):
            raise RuntimeError(f"Piper's alignment does not match the words of {whole!r}")
        cut = audio[: words[cut_words - 1][2]]
        texts = {"complete": whole, "filler": f"{head}, um,", "text-cut": head}
        spoken = {"complete": audio}
        spoken.update({k: speak(voice, texts[k])[0] for k in ("filler", "text-cut")})
        for kind in KINDS:
            source = cut if kind == "audio-cut" else spoken[kind]
            text = head if kind == "audio-cut" else texts[kind]
            clips.append(Clip(index, kind, text, _ending(_to_16k(source, rate))))
    return clips
