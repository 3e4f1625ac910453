"""WhisperSTT with the real tiny.en model: accuracy, one final per turn, interims, a free loop."""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from framework.frames import InputAudioFrame, UserStartedSpeakingFrame, UserStoppedSpeakingFrame
from processors.stt import WhisperSTT, WhisperSTTParams

from .stt_helpers import (
    MS,
    RATE,
    Utterance,
    corpus_wer,
    run_paced,
    run_unpaced,
    spoken_turns,
    turn_frames,
)

pytestmark = [pytest.mark.anyio, pytest.mark.models]


async def test_whisper_transcribes_each_turn_once(speech: list[Utterance]) -> None:
    frames = spoken_turns(speech)
    recorder = await run_unpaced(WhisperSTT(), frames)
    finals = recorder.finals
    assert len(finals) == len(speech)
    error = corpus_wer([u.text for u in speech], [f.text for f in finals])
    print(f"\nwhisper WER {error:.3f}: {[f.text for f in finals]}")
    assert error <= 0.2
    starts = [f.speech_start_ns for f in frames if isinstance(f, UserStartedSpeakingFrame)]
    for final, start in zip(finals, starts, strict=True):
        assert start is not None
        assert final.start_ns == start - 300 * MS  # the default pre-roll
        assert final.end_ns is not None and final.end_ns > start
    assert len(recorder.metrics("stt_final_s")) == len(speech)
    assert all(cpu > 0 for cpu in recorder.metrics("cpu_s"))
    # Every input frame passes on, in order.
    audio_in = [f for f in frames if isinstance(f, InputAudioFrame)]
    assert recorder.of(InputAudioFrame) == audio_in


async def test_whisper_interims_while_speaking_and_loop_stays_free(
    speech: list[Utterance],
) -> None:
    utterance = speech[3]  # the longest, 2.7 s
    frames = spoken_turns([utterance], tail_ms=300)
    run = await run_paced(WhisperSTT(), frames)
    recorder = run.recorder
    assert len(recorder.finals) == 1
    assert corpus_wer([utterance.text], [recorder.finals[0].text]) <= 0.2
    stop = run.stopped_at_ns[0]
    early = [t for t, f in recorder.seen if type(f).__name__ == "InterimTranscriptionFrame"]
    assert early and early[0] < stop  # interims come while the user speaks
    final_at = next(t for t, f in recorder.seen if f is recorder.finals[0])
    assert final_at > stop
    [latency] = recorder.metrics("stt_final_s")
    print(f"\nwhisper final {latency * 1000:.0f} ms after the stop; loop gap {run.max_gap_s:.3f} s")
    assert run.max_gap_s < 0.1  # loose: the model runs in threads, never on the loop


async def test_whisper_without_interim_passes_transcribes_the_same_in_fewer_passes(
    speech: list[Utterance], monkeypatch: pytest.MonkeyPatch
) -> None:
    utterance = speech[3]  # the longest, 2.7 s: several interval passes with them on
    frames = spoken_turns([utterance], tail_ms=300)
    passes: list[bool] = []
    one_pass = WhisperSTT._pass

    def counted(self: WhisperSTT, *args: Any) -> str | None:
        passes.append(self.params.interim_passes)
        return one_pass(self, *args)

    monkeypatch.setattr(WhisperSTT, "_pass", counted)
    texts = {}
    for interim in (True, False):
        run = await run_paced(WhisperSTT(WhisperSTTParams(interim_passes=interim)), frames)
        [final] = run.recorder.finals
        assert corpus_wer([utterance.text], [final.text]) <= 0.2
        texts[interim] = final.text
    with_interims, without = passes.count(True), passes.count(False)
    print(f"\nwhisper passes: {with_interims} with interim passes, {without} without; {texts}")
    assert 1 <= without < with_interims


@pytest.mark.slow
async def test_whisper_latency_with_and_without_incremental_passes(
    speech: list[Utterance],
) -> None:
    """Measured and printed, not asserted tightly: the machine is shared."""
    frames = spoken_turns(speech[1:3])
    results = {}
    for incremental in (True, False):
        run = await run_paced(WhisperSTT(WhisperSTTParams(incremental=incremental)), frames)
        assert len(run.recorder.finals) == 2
        results[incremental] = statistics.median(run.recorder.metrics("stt_final_s"))
    print(
        f"\nwhisper final latency: incremental {results[True] * 1000:.0f} ms, "
        f"one pass {results[False] * 1000:.0f} ms"
    )


async def test_whisper_gives_empty_finals_for_empty_and_silent_turns() -> None:
    noise = np.random.default_rng(1).normal(0, 100, RATE).astype("<i2").tobytes()  # -50 dBFS
    frames = [
        UserStartedSpeakingFrame(),  # a turn without any audio
        UserStoppedSpeakingFrame(),
        *turn_frames(bytes(RATE * 2), 2_000 * MS)[0],  # digital silence
        *turn_frames(noise, 5_000 * MS)[0],
    ]
    recorder = await run_unpaced(WhisperSTT(), frames)
    assert [f.text for f in recorder.finals] == ["", "", ""]


async def test_whisper_turn_over_30_seconds(speech: list[Utterance]) -> None:
    first, second = speech[0], speech[2]
    gap = bytes(2 * (31 * RATE) - len(first.pcm))  # the second sentence starts past 30 s
    pcm = first.pcm + gap + second.pcm
    frames, _ = turn_frames(pcm, 0, speech=(first.speech[0], len(pcm) // 2 - 4000))
    params = WhisperSTTParams(incremental=False)
    recorder = await run_unpaced(WhisperSTT(params), frames)
    [final] = recorder.finals
    assert corpus_wer([f"{first.text} {second.text}"], [final.text]) <= 0.2


async def test_whisper_stop_without_start_is_passed_on_and_ignored() -> None:
    recorder = await run_unpaced(WhisperSTT(), [UserStoppedSpeakingFrame()])
    assert recorder.finals == []
    assert len(recorder.of(UserStoppedSpeakingFrame)) == 1


def test_whisper_params_are_validated() -> None:
    assert WhisperSTT.Params is WhisperSTTParams
    with pytest.raises(ValidationError):
        WhisperSTTParams(window_s=0.5)
    with pytest.raises(ValidationError):
        WhisperSTTParams(beam_sise=2)  # type: ignore[call-arg]
    assert WhisperSTT.capabilities.interim_results


def test_whisper_text_and_repetition_helpers() -> None:
    from processors.stt._whisper_engine import drop_repeats, tokens_to_text

    assert tokens_to_text(["ĠCaf", "Ã©", "<|endoftext|>", "!"]) == "Café!"
    assert drop_repeats(["ĠHi", ".", "ĠHi", "."]) == ["ĠHi", "."]
    assert drop_repeats(["ĠTurn", "Ġoff", ".", "ĠTurn"]) == ["ĠTurn", "Ġoff", "."]
    kept = ["ĠNo", ",", "Ġno", "."]
    assert drop_repeats(kept) == kept


def test_whisper_features_match_the_model_input_layout() -> None:
    from processors.stt._mel import N_FRAMES, N_MELS, log_mel_spectrogram, mel_filterbank

    silence = log_mel_spectrogram(np.zeros(RATE, dtype=np.float32))
    assert silence.shape == (N_MELS, N_FRAMES) and np.allclose(silence, -1.5)  # (-10 + 4) / 4
    tone = np.sin(2 * np.pi * 1000 * np.arange(RATE) / RATE).astype(np.float32)
    features = log_mel_spectrogram(tone, 200)
    assert features.shape == (N_MELS, 200)
    loudest = int(features[:, 50].argmax())
    centres = mel_filterbank().argmax(axis=1) * RATE / 400  # peak frequency of each filter
    assert abs(centres[loudest] - 1000) < 60
    assert features[:, 150:].min() >= features.max() - 2.0 - 1e-6  # 8 decades below, scaled
