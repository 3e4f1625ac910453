"""The offline cascade end to end, the way a user runs it: WAV in, WAV and events out.

Real models throughout (Silero, Whisper, SmolLM2, Piper). The user's speech is
synthesised by Piper; the bot's reply is transcribed back with Whisper.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import numpy as np
import pytest

from framework import EndReason, PipelineRunner
from framework.audio import read_wav, write_wav
from pipelines.cli import main as parley
from pipelines.config import load_pipeline_file
from pipelines.run import build_file_session
from tests.speech import speech_bounds, synthesize_speech

pytestmark = pytest.mark.anyio
RATE = 16000
CASCADE = Path(__file__).resolve().parents[2] / "pipelines" / "cascade-local.toml"


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds), dtype=np.int16)


def pcm(samples: bytes) -> np.ndarray:
    return np.frombuffer(samples, dtype="<i2")


def write(path: Path, *parts: np.ndarray) -> Path:
    write_wav(path, np.concatenate(parts).tobytes(), RATE)
    return path


def events_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def question() -> np.ndarray:
    [clip] = synthesize_speech(["What is the capital of France?"])
    return pcm(clip)


def test_a_spoken_question_gets_a_spoken_reply(tmp_path: Path, question: np.ndarray) -> None:
    wav = write(tmp_path / "question.wav", silence(1.0), question, silence(1.0))
    out, events = tmp_path / "reply.wav", tmp_path / "events.jsonl"
    code = parley(
        [
            "run",
            "cascade-local",
            "--input",
            str(wav),
            "--output",
            str(out),
            "--events",
            str(events),
            "--stereo",
        ]
    )
    assert code == 0
    records = events_of(events)
    [user] = [r for r in records if r["event"] == "transcription"]
    assert "capital of france" in user["text"].lower()
    assert [r for r in records if r["event"] == "bot_first_audio"]
    reply_text = " ".join(r["text"] for r in records if r["event"] == "tts_text")
    assert reply_text.strip()
    # The reply is in the right channel of the output, after the question ended.
    audio = read_wav(out)
    assert audio.num_channels == 2
    stereo = pcm(audio.pcm).reshape(-1, 2)
    bot = stereo[:, 1]
    loud = np.nonzero(np.abs(bot) > 500)[0]
    assert loud.size > audio.sample_rate // 2  # at least half a second of speech
    end_of_question = 1.0 + speech_bounds(question.tobytes(), RATE)[1]
    assert loud[0] / audio.sample_rate > end_of_question
    # What the bot said is intelligible: Whisper hears words in it.
    from processors.stt.whisper import WhisperSTT

    heard = anyio.run(_transcribe_wav, WhisperSTT, bot.tobytes(), audio.sample_rate)
    assert heard.strip(), "the reply audio transcribes to nothing"


async def _transcribe_wav(cls: type, audio: bytes, rate: int) -> str:
    from framework import Pipeline, PipelineTask
    from framework.audio import resample
    from framework.frames import (
        InputAudioFrame,
        TranscriptionFrame,
        UserStartedSpeakingFrame,
        UserStoppedSpeakingFrame,
    )
    from tests.processors.stt.stt_helpers import Recorder

    clip = resample(audio, rate, RATE)
    recorder = Recorder()
    task = PipelineTask(Pipeline([cls(), recorder]))
    frames = [UserStartedSpeakingFrame()]
    frames += [
        InputAudioFrame(audio=clip[k : k + 640], sample_rate=RATE)
        for k in range(0, len(clip) // 640 * 640, 640)
    ]
    frames.append(UserStoppedSpeakingFrame())
    await task.queue_frames(frames)
    await task.stop_when_done()
    await task.run()
    return " ".join(f.text for f in recorder.of(TranscriptionFrame))


async def test_barge_in_stops_the_bot_and_the_context_keeps_what_was_heard(
    tmp_path: Path, question: np.ndarray
) -> None:
    [story, stop] = synthesize_speech(
        ["Please tell me a long story about a dragon and a knight.", "Stop, that is enough."]
    )
    # The user talks over the reply: 2.2 s after the request ends, while the bot speaks.
    wav = write(
        tmp_path / "barge.wav", silence(1.0), pcm(story), silence(2.2), pcm(stop), silence(2.0)
    )
    config = load_pipeline_file(
        CASCADE,
        [
            'pipeline.system_prompt="You tell long stories of at least five sentences."',
            "llm.max_tokens=120",
        ],
    )
    session, events = build_file_session(
        config, input_path=wav, output_path=tmp_path / "out.wav", stereo=True
    )
    assert await PipelineRunner(handle_signals=False).run(session.task) is EndReason.ENDED
    records = events.records  # type: ignore[attr-defined]
    first_audio = [r for r in records if r["event"] == "bot_first_audio"]
    assert first_audio, "the bot never answered"
    interruptions = [r["t_ns"] for r in records if r["event"] == "interruption"]
    barge = [t for t in interruptions if t > first_audio[0]["t_ns"]]
    assert barge, "no interruption while the bot spoke"
    stops = [r for r in records if r["event"] == "bot_audio_stopped"]
    cuts = [r for r in stops if r["interrupted"]]
    # The last bot sample of the interrupted reply: the cut; or, when the barge-in fell
    # between two pieces of the reply (the output had played all it had and stopped,
    # mid-reply), that stop: nothing was playing to cut.
    gap = [r for r in stops if first_audio[0]["t_ns"] < r["t_ns"] <= barge[0]]
    assert cuts or gap, "the reply was not cut off"
    cut = cuts[0] if cuts else gap[-1]
    # The bot paused at the onset of the user's speech, before the words confirmed the
    # barge-in: its last sample left no later than one 20 ms chunk (plus scheduling
    # slack) after the interruption, and usually before it.
    assert (cut["t_ns"] - barge[0]) / 1e6 <= 60
    # The context keeps only the words that were played before the cut.
    spoken = " ".join(r["text"] for r in records if r["event"] == "tts_text")
    assistant = [m["content"] for m in session.context.messages if m["role"] == "assistant"]
    assert assistant, "nothing of the cut reply reached the context"
    heard = assistant[0]
    assert heard.split() and len(heard.split()) < len(spoken.split())
    # The barge-in's first word reached the user's message.
    users = [m["content"] for m in session.context.messages if m["role"] == "user"]
    assert "stop" in users[-1].lower(), users


async def test_noisy_silence_makes_no_turn(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    noise = rng.normal(0.0, 32768 * 10 ** (-40 / 20), RATE * 6)  # white noise at -40 dBFS
    wav = write(tmp_path / "noise.wav", noise.astype(np.int16))
    config = load_pipeline_file(CASCADE)
    session, events = build_file_session(config, input_path=wav, output_path=tmp_path / "o.wav")
    assert await PipelineRunner(handle_signals=False).run(session.task) is EndReason.ENDED
    names = [r["event"] for r in events.records]  # type: ignore[attr-defined]
    assert "user_started_speaking" not in names
    assert "bot_first_audio" not in names
