"""Short clips against Whisper's repetition loops and words from noise, on both transcription paths.

Twenty-four one- to three-word answers ("Yes.", "Nine.", "Side left.", names,
numbers), spoken by Piper's joe voice, each clean and at 10 dB SNR (pink noise
under the whole clip), and non-speech clips (pink and white noise, mains hum).
Each goes through

* the cascade's STT stage, :class:`~processors.stt.whisper.WhisperSTT` as
  ``cascade-local`` sets it up, fed the turn a VAD would frame (speech start
  after 200 ms of speech, end after 400 ms of silence), interim passes and all;
* ``parley serve`` running ``cascade-local`` over a real WebSocket, as
  ``realtime-local`` uses it: the server's VAD closes the speech turns; the
  non-speech clips are committed by hand (a VAD would rarely open a turn on them).

A transcript is a **repetition hallucination** when a word n-gram (n = 1..3,
compared without case or punctuation) occurs more than twice in it, or it has
more than three times the words of the reference. A non-speech clip must give
an empty transcript.

    python -m benchmarks.stt_short_clips            # both paths
    python benchmarks/stt_short_clips.py --paths cascade

Run by path with ``PYTHONPATH`` set to another checkout, the script measures that
checkout's code (it imports only what every version has).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import numpy as np

__all__ = [
    "TEXTS",
    "Clip",
    "hallucination",
    "make_clips",
    "non_speech_clips",
    "run_cascade",
    "run_serve",
    "said_twice",
    "tally",
]

TEXTS = (
    "Yes.", "No.", "Nine.", "Side left.", "Okay.", "Seven.", "Thank you.", "Hello.",
    "Stop.", "Forty two.", "Sarah.", "Go ahead.", "Turn right.", "Maybe later.",
    "Three fifteen.", "Good morning.", "Not really.", "Absolutely.", "Twenty.",
    "John Smith.", "Wait.", "Sure thing.", "Eleven.", "Paris, France.",
)  # fmt: skip
RATE = 16000
LEAD_S = 0.5  # before the speech
TAIL_S = 0.8  # after it: room for the VAD's 400 ms of silence
STOP_MS = 400
START_MS = 200
SNR_DB = 10.0
_CHUNK = 640  # 20 ms of PCM16 at 16 kHz
_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class Clip:
    """A clip as 16 kHz PCM16: its reference text ("" for non-speech) and speech bounds."""

    name: str
    text: str
    pcm: bytes
    speech: tuple[int, int]  # samples; the whole clip for non-speech


@dataclass
class Heard:
    """What one path made of one clip: the final transcript (None: none came) and interims."""

    clip: Clip
    final: str | None
    interims: list[str] = field(default_factory=list)


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little")


def _pcm(samples: np.ndarray) -> bytes:
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()


def make_clips(snr_db: float | None) -> list[Clip]:
    """The spoken clips, clean (``snr_db`` None) or with pink noise at ``snr_db``."""
    from benchmarks.latency.generate import pink_noise
    from framework.audio import resample
    from processors.tts.piper import PiperTTS

    tts = PiperTTS()
    tts.load()
    clips = []
    for text in TEXTS:
        speech = resample(tts.synthesize(text), tts.voice_sample_rate, RATE)
        x = np.frombuffer(speech, dtype="<i2").astype(np.float64)
        loud = np.flatnonzero(np.abs(x) > 300)
        lead = int(LEAD_S * RATE)
        bounds = (lead + int(loud[0]), lead + int(loud[-1]) + 1)
        audio = np.concatenate([np.zeros(lead), x, np.zeros(int(TAIL_S * RATE))])
        name = text
        if snr_db is not None:
            level = np.sqrt(np.mean(x[loud[0] : loud[-1] + 1] ** 2)) / 10 ** (snr_db / 20)
            audio = audio + level * pink_noise(audio.size, _seed(text, snr_db))
            name = f"{text} @{snr_db:g} dB"
        clips.append(Clip(name, text, _pcm(audio), bounds))
    return clips


def non_speech_clips() -> list[Clip]:
    """Noise alone, 1.5 s each: pink at three levels, white, and a 50 Hz hum."""
    from benchmarks.latency.generate import pink_noise

    n = int(1.5 * RATE)
    t = np.arange(n) / RATE
    white = np.random.default_rng(_seed("white")).standard_normal(n)
    hum = np.sin(2 * np.pi * 50 * t) + 0.3 * np.sin(2 * np.pi * 150 * t)
    hum /= np.sqrt(np.mean(hum**2))
    kinds = [
        ("pink -45 dBFS", pink_noise(n, 1), -45.0),
        ("pink -35 dBFS", pink_noise(n, 2), -35.0),
        ("pink -25 dBFS", pink_noise(n, 3), -25.0),
        ("white -35 dBFS", white, -35.0),
        ("hum -45 dBFS", hum, -45.0),
    ]
    return [Clip(name, "", _pcm(32768 * 10 ** (db / 20) * x), (0, n)) for name, x, db in kinds]


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("-", " "))


def hallucination(reference: str, transcript: str | None) -> str | None:
    """Why ``transcript`` is a repetition hallucination of ``reference``, or None if it is not.

    For non-speech (``reference`` empty) any words at all are a hallucination.
    """
    words = _words(transcript or "")
    if not reference:
        return f"words from non-speech: {transcript!r}" if words else None
    limit = 3 * len(_words(reference))
    if len(words) > limit:
        return f"{len(words)} words for {len(_words(reference))}: {transcript!r}"
    for n in (1, 2, 3):
        grams = Counter(tuple(words[k : k + n]) for k in range(len(words) - n + 1))
        gram, count = max(grams.items(), key=lambda kv: kv[1], default=((), 0))
        if count > 2:
            return f"{' '.join(gram)!r} {count} times: {transcript!r}"
    return None


def said_twice(reference: str, transcript: str | None) -> bool:
    """Whether a word or pair of words occurs twice in ``transcript`` but once at most in
    ``reference``: "9 9" for "Nine.", short of a hallucination but a wrong transcript."""
    words, ref = _words(transcript or ""), _words(reference)
    for n in (1, 2):
        grams = Counter(tuple(words[k : k + n]) for k in range(len(words) - n + 1))
        said = Counter(tuple(ref[k : k + n]) for k in range(len(ref) - n + 1))
        if any(count >= 2 and said[gram] < 2 for gram, count in grams.items()):
            return True
    return False


def _turn_frames(clip: Clip, t0_ns: int) -> tuple[list[object], int]:
    """Frames of a clip as the cascade's VAD would frame the turn (see the module docstring)."""
    from framework.frames import (
        InputAudioFrame,
        UserStartedSpeakingFrame,
        UserStoppedSpeakingFrame,
    )

    s0, s1 = clip.speech
    start_at, stop_at = s0 + START_MS * RATE // 1000, s1 + STOP_MS * RATE // 1000
    frames: list[object] = []
    started = stopped = False
    for k in range(0, len(clip.pcm), _CHUNK):
        ts = t0_ns + k // 2 * 62_500
        chunk = clip.pcm[k : k + _CHUNK]
        frames.append(InputAudioFrame(audio=chunk, sample_rate=RATE, timestamp_ns=ts))
        heard = (k + len(chunk)) // 2
        if not started and heard >= start_at:
            started = True
            frames.append(UserStartedSpeakingFrame(speech_start_ns=t0_ns + s0 * 62_500))
        if started and not stopped and heard >= stop_at:
            stopped = True
            frames.append(UserStoppedSpeakingFrame(speech_end_ns=t0_ns + s1 * 62_500))
    if not stopped:
        frames.append(UserStoppedSpeakingFrame(speech_end_ns=t0_ns + s1 * 62_500))
    return frames, t0_ns + len(clip.pcm) // 2 * 62_500


async def run_cascade(clips: Sequence[Clip]) -> list[Heard]:
    """Each clip as one turn through ``cascade-local``'s WhisperSTT stage."""
    from framework import Direction, Frame, Pipeline, PipelineTask, Processor
    from framework.frames import InterimTranscriptionFrame, TranscriptionFrame
    from pipelines.config import load_pipeline_file
    from pipelines.factory import build_stage
    from pipelines.shipped import resolve_pipeline

    heard = [Heard(clip, None) for clip in clips]
    turn = 0

    class Collect(Processor):
        async def process_frame(self, frame: Frame, direction: Direction) -> None:
            nonlocal turn
            if isinstance(frame, InterimTranscriptionFrame) and turn < len(heard):
                heard[turn].interims.append(frame.text)
            elif isinstance(frame, TranscriptionFrame) and turn < len(heard):
                heard[turn].final = frame.text
                turn += 1
            await self.push(frame, direction)

    config = load_pipeline_file(resolve_pipeline("cascade-local"))
    stt = build_stage(config, "stt")
    frames: list[object] = []
    t = time.monotonic_ns()
    for clip in clips:
        more, t = _turn_frames(clip, t)
        frames += more
    task = PipelineTask(Pipeline([stt, Collect(name="collect")]))
    await task.queue_frames(frames)  # type: ignore[arg-type]
    await task.stop_when_done()
    with anyio.fail_after(60 + 10 * len(clips)):
        await task.run()
    if task.errors:
        raise RuntimeError(f"the STT stage failed: {[e.message for e in task.errors]}")
    return heard


async def _transcript(ws: object, limit_s: float) -> str | None:
    """The next input transcription's text, or None if none comes within ``limit_s``."""
    with anyio.move_on_after(limit_s):
        while True:
            event = json.loads(await ws.recv())  # type: ignore[attr-defined]
            if event["type"] == "conversation.item.input_audio_transcription.completed":
                return str(event["transcript"])
            if event["type"] == "error":
                raise RuntimeError(f"server error: {event['error']}")
    return None


async def run_serve(speech: Sequence[Clip], non_speech: Sequence[Clip] = ()) -> list[Heard]:
    """Speech clips in server-VAD turns, non-speech clips committed by hand, on one connection."""
    import websockets

    from framework.audio import resample
    from pipelines.serve.app import running_server

    heard: list[Heard] = []
    async with (
        running_server("cascade-local") as url,
        websockets.connect(f"{url}/realtime", max_size=None) as ws,
    ):

        async def configure(turn_detection: dict[str, object] | None) -> None:
            session = {
                "type": "realtime",
                "audio": {
                    "input": {
                        "transcription": {"model": "whisper-1"},
                        "turn_detection": turn_detection,
                    }
                },
            }
            await ws.send(json.dumps({"type": "session.update", "session": session}))

        async def append(clip: Clip) -> None:
            audio = resample(clip.pcm, RATE, 24000)
            for k in range(0, len(audio), 4800):
                b64 = base64.b64encode(audio[k : k + 4800]).decode("ascii")
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": b64}))

        vad = {"type": "server_vad", "silence_duration_ms": STOP_MS, "create_response": False}
        await configure(vad)
        for clip in speech:
            await append(clip)
            heard.append(Heard(clip, await _transcript(ws, 30.0)))
        await configure(None)
        for clip in non_speech:
            await append(clip)
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            heard.append(Heard(clip, await _transcript(ws, 30.0)))
    return heard


def _scorer() -> Callable[[str, str], float]:
    """This checkout's WER, whichever code is measured (the scoring stays the same)."""
    path = Path(__file__).resolve().parent / "latency" / "wer.py"
    spec = importlib.util.spec_from_file_location("_short_clips_wer", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the WER scorer from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.wer  # type: ignore[no-any-return]


@dataclass
class Tally:
    """Counts for one path and condition."""

    clips: int = 0
    hallucinated: int = 0
    said_twice: int = 0
    missing: int = 0
    errors: float = 0.0  # WER times reference words, summed
    words: int = 0


def tally(path: str, runs: list[Heard], *, verbose: bool = True) -> Tally:
    """Count the hallucinations (finals and interims), doubled words, missing transcripts, WER."""
    wer = _scorer()
    t = Tally(clips=len(runs))
    for h in runs:
        why = next(
            (w for text in [h.final, *h.interims] if (w := hallucination(h.clip.text, text))), None
        )
        twice = why is None and said_twice(h.clip.text, h.final)
        t.hallucinated += why is not None
        t.said_twice += twice
        t.missing += h.final is None
        if h.clip.text:
            n = len(_words(h.clip.text))
            t.errors += wer(h.clip.text, h.final or "") * n
            t.words += n
        if verbose:
            mark = f"HALLUCINATION {why}" if why else "said twice" if twice else ""
            print(f"  {path:7} {h.clip.name:24} -> {h.final!r} {mark}")
    return t


def main(argv: list[str] | None = None) -> int:
    """Run the clip set through the chosen paths and print counts per path and condition."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", default="cascade,serve", help="cascade, serve or both")
    args = parser.parse_args(argv)
    import processors

    print(f"code under test: {processors.__path__[0].removesuffix('/processors')}")
    sets = {"clean": make_clips(None), f"{SNR_DB:g} dB SNR": make_clips(SNR_DB)}
    noise = non_speech_clips()
    rows = []
    for path in args.paths.split(","):
        for condition, clips in [*sets.items(), ("non-speech", noise)]:
            if path == "cascade":
                runs = anyio.run(run_cascade, clips)
            elif condition == "non-speech":
                runs = anyio.run(run_serve, [], clips)
            else:
                runs = anyio.run(run_serve, clips)
            rows.append((path, condition, tally(path, runs)))
    print("\n| path | clips | hallucinated | a word said twice | no transcript | WER |")
    print("| --- | --- | --- | --- | --- | --- |")
    for path, condition, t in rows:
        wer = f"{t.errors / t.words:.1%}" if t.words else "-"
        print(
            f"| {path}, {condition} | {t.clips} | {t.hallucinated} | {t.said_twice} "
            f"| {t.missing} | {wer} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
