"""What the bot's Opus mode costs and whether it changes what a listener hears.

For each ``opus_application`` the WebRTC transport offers, every speech turn of the
built-in corpus (resampled to 24 kHz, the cascade's output rate) goes through the
transport's own encoder (:class:`~processors.transports.webrtc.audio.OutgoingAudio`,
32 kbps, complexity 5) and a peer's Opus decoder. Reported per mode:

- encoder CPU per 20 ms frame (``time.process_time`` around the encoder only);
- Whisper's transcript of the decoded audio against its transcript of the original:
  words that differ (so recognition errors of the original do not count).

    python -m benchmarks.webrtc.codec
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import time
from typing import Any

__all__ = ["main", "measure"]

MODES = ("voip", "audio", "lowdelay")
RATE = 24000


def _words(text: str | None) -> list[str]:
    return [w.strip(".,?!;:").lower() for w in (text or "").split()]


def _differing(reference: list[str], heard: list[str]) -> int:
    matcher = difflib.SequenceMatcher(a=reference, b=heard, autojunk=False)
    same = sum(block.size for block in matcher.get_matching_blocks())
    return max(len(reference), len(heard)) - same


async def _round_trip(pcm24: bytes, application: str) -> tuple[bytes, float, int]:
    """``pcm24`` through the transport's encoder and a decoder; (48 kHz PCM, CPU s, frames)."""
    import av

    from processors.transports.webrtc.audio import OutgoingAudio

    track = OutgoingAudio(application=application, max_queued_ms=None)
    track.set_rate(RATE)
    frame_bytes = 2 * RATE // 50
    track.write(pcm24[: len(pcm24) - len(pcm24) % frame_bytes])
    decoder: Any = av.CodecContext.create("libopus", "r")
    decoder.format, decoder.layout, decoder.sample_rate = "s16", "mono", 48000
    out: list[bytes] = []
    cpu = 0.0
    frames = 0
    while track.queued_ms >= 20:
        pcm = await track._next_frame()
        started = time.process_time()
        packets = track._encode(pcm, frames * 960)
        cpu += time.process_time() - started
        frames += 1
        for packet in packets:
            out.extend(bytes(f.planes[0])[: 2 * f.samples] for f in decoder.decode(packet))
    track.stop()
    return b"".join(out), cpu, frames


async def measure(limit: int | None = None) -> dict[str, Any]:
    """Encode and decode the corpus's speech in every mode; the summary as a dict."""
    from benchmarks.latency.corpus import load_corpus
    from benchmarks.latency.generate import builtin_corpus
    from framework.audio.resample import resample
    from processors.stt._whisper_engine import PassOptions, default_model_dir, load_model

    model = load_model(default_model_dir(), "int8", 2)
    corpus = load_corpus(builtin_corpus())
    items = [i for c in corpus.conversations for i in c.items if i.transcript]
    items = items[:limit] if limit else items
    result: dict[str, Any] = {"turns": len(items), "words": 0, "modes": {}}
    totals = {m: {"cpu_s": 0.0, "frames": 0, "words_differing": 0} for m in MODES}
    for item in items:
        pcm16 = resample(item.pcm, item.sample_rate, 16000)
        reference = _words(model.transcribe(pcm16, PassOptions()))
        result["words"] += len(reference)
        pcm24 = resample(item.pcm, item.sample_rate, RATE)
        for mode in MODES:
            decoded, cpu, frames = await _round_trip(pcm24, mode)
            heard = _words(model.transcribe(resample(decoded, 48000, 16000), PassOptions()))
            totals[mode]["cpu_s"] += cpu
            totals[mode]["frames"] += frames
            totals[mode]["words_differing"] += _differing(reference, heard)
    for mode, t in totals.items():
        result["modes"][mode] = {
            "encode_us_per_frame": round(1e6 * t["cpu_s"] / max(t["frames"], 1), 1),
            "frames": t["frames"],
            "words_differing": t["words_differing"],
        }
    return result


def main(argv: list[str] | None = None) -> None:
    """Print one line per mode, then the JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webrtc.codec", description=__doc__)
    parser.add_argument("--limit", type=int, help="only the first N turns")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.limit))
    for mode, figures in result["modes"].items():
        print(
            f"{mode}: {figures['encode_us_per_frame']} us per 20 ms frame, "
            f"{figures['words_differing']} of {result['words']} words heard differently "
            f"({result['turns']} turns)"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
