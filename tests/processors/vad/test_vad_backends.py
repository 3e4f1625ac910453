"""The VAD analyzers alone, and the speech segmenter on hand-made windows."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from benchmarks.vad.measure import run_vad
from framework.audio import float32_to_pcm16, resample
from processors.vad import (
    SileroVAD,
    SpeechEvent,
    SpeechSegmenter,
    TurnParams,
    VADAnalyzer,
    VADParams,
    VADWindow,
    WebRTCVAD,
    create_analyzer,
)
from tests.speech import Utterance, make_noise

RATE = 16000
BACKENDS = ["silero", "webrtc"]


def _analyzer(backend: str, rate: int = RATE) -> VADAnalyzer:
    return create_analyzer(VADParams(), backend, rate)


def _speech_fraction(analyzer: VADAnalyzer, pcm: bytes, lo_s: float, hi_s: float) -> float:
    windows = analyzer.analyze(pcm)
    inside = [w for w in windows if w.start_s >= lo_s and w.end_s <= hi_s]
    assert inside
    return sum(w.confidence >= 0.5 for w in inside) / len(inside)


@pytest.mark.models
@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_flags_speech_but_not_silence(backend: str, speech: list[Utterance]) -> None:
    for u in speech:
        analyzer = _analyzer(backend)
        assert _speech_fraction(analyzer, u.pcm, u.start_s, u.end_s) > 0.8
    analyzer = _analyzer(backend)
    windows = analyzer.analyze(bytes(RATE * 2))  # one second of digital silence
    assert len(windows) == int(1.0 / analyzer.window_s)
    assert all(w.confidence < 0.5 for w in windows)
    assert all(w.dbfs == float("-inf") for w in windows)


@pytest.mark.models
@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_on_steady_noise_makes_no_turn(backend: str) -> None:
    noise = float32_to_pcm16(make_noise("white", -40.0, 3.0, RATE, seed=5))
    result = run_vad(_analyzer(backend), VADParams(), noise, RATE)
    assert result.starts == []
    assert sum(result.raw_flags) / len(result.raw_flags) < 0.1


@pytest.mark.models
def test_silero_ignores_noise_that_fools_webrtc() -> None:
    # Pink noise whose loudness swings at a syllable rate: webrtcvad calls most of
    # it speech (docs/vad.md), Silero none of it.
    noise = float32_to_pcm16(make_noise("pink-4hz", -30.0, 3.0, RATE, seed=6))
    silero = run_vad(SileroVAD(), VADParams(), noise, RATE)
    webrtc = run_vad(WebRTCVAD(), VADParams(), noise, RATE)
    assert not any(silero.raw_flags)
    assert sum(webrtc.raw_flags) / len(webrtc.raw_flags) > 0.5


@pytest.mark.models
def test_volume_gate_rejects_quiet_windows(speech: list[Utterance]) -> None:
    quiet = (np.frombuffer(speech[0].pcm, dtype="<i2") // 1000).astype("<i2").tobytes()
    loud_params = VADParams(min_volume_dbfs=-90.0)
    gated = run_vad(SileroVAD(), VADParams(min_volume_dbfs=-50.0), quiet, RATE)
    ungated = run_vad(SileroVAD(), loud_params, quiet, RATE)
    assert not any(gated.flags)  # about -80 dBFS: below the gate whatever the model says
    assert gated.raw_flags == ungated.raw_flags


@pytest.mark.models
@pytest.mark.parametrize("backend", BACKENDS)
def test_chunk_size_does_not_change_the_result(backend: str, speech: list[Utterance]) -> None:
    pcm = speech[0].pcm
    whole = _analyzer(backend).analyze(pcm)
    analyzer = _analyzer(backend)
    pieces: list[VADWindow] = []
    step = 2 * 113  # odd sample counts, never aligned with a window
    for i in range(0, len(pcm), step):
        pieces += analyzer.analyze(pcm[i : i + step])
    assert pieces == whole
    assert analyzer.analyze(b"") == []


@pytest.mark.models
@pytest.mark.parametrize(
    ("backend", "rate"), [("silero", 24000), ("silero", 8000), ("webrtc", 22050)]
)
def test_other_rates_are_resampled_or_native(
    backend: str, rate: int, speech: list[Utterance]
) -> None:
    u = speech[0]
    analyzer = _analyzer(backend, rate)
    expected_native = {24000: 16000, 8000: 8000, 22050: 16000}[rate]
    assert analyzer.native_rate == expected_native
    pcm = resample(u.pcm, RATE, rate)
    assert _speech_fraction(analyzer, pcm, u.start_s, u.end_s) > 0.8
    windows = _analyzer(backend, rate).analyze(pcm)
    # Window offsets are in input time: the last one ends within a window of the
    # clip's end, plus the resampler's own delay (about 12 ms) when it resamples.
    clip_s = len(pcm) / 2 / rate
    assert clip_s - 2 * analyzer.window_s - 0.02 <= windows[-1].end_s <= clip_s


@pytest.mark.models
def test_reset_restarts_offsets_and_state(speech: list[Utterance]) -> None:
    analyzer = SileroVAD()
    first = analyzer.analyze(speech[0].pcm)
    analyzer.reset()
    again = analyzer.analyze(speech[0].pcm)
    assert first == again


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValidationError):
        VADParams(aggressiveness=4)
    with pytest.raises(ValidationError):
        VADParams(threshold=0.0)
    with pytest.raises(ValidationError):
        TurnParams(vad="other")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        TurnParams(unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="aggressiveness"):
        WebRTCVAD(aggressiveness=7)
    with pytest.raises(ValueError, match="frame_ms"):
        WebRTCVAD(frame_ms=25)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sample_rate"):
        SileroVAD(0)
    with pytest.raises(ValueError, match="backend"):
        create_analyzer(VADParams(), "nope")
    with pytest.raises(ValueError, match="even"):
        SileroVAD().analyze(b"\x00")


# ------------------------------------------------------------- segmenter


def _windows(pattern: str, window_s: float = 0.032) -> list[VADWindow]:
    """'#' is a speech window, '.' a silent one."""
    return [
        VADWindow(i * window_s, (i + 1) * window_s, 0.9 if c == "#" else 0.1, -20.0)
        for i, c in enumerate(pattern)
    ]


def _events(
    segmenter: SpeechSegmenter, pattern: str, **kwargs: float
) -> list[tuple[str, float, float]]:
    out: list[tuple[str, float, float]] = []
    for w in _windows(pattern):
        event = segmenter.update(w, **kwargs)
        if event is not None:
            out.append((event.kind, round(event.speech_s, 3), round(event.decided_s, 3)))
    return out


def test_segmenter_needs_start_ms_of_speech_in_one_run() -> None:
    seg = SpeechSegmenter(VADParams(start_ms=200, stop_ms=200, start_gap_ms=100))
    # 6 windows = 192 ms is not enough, and a 128 ms gap restarts the count.
    assert _events(seg, "..######....######....") == []
    # A 64 ms dip does not: the start is the first speech window of the run.
    assert _events(seg, "..###..####") == [("start", 0.064, 0.352)]
    assert _events(SpeechSegmenter(VADParams(start_ms=200)), "..#######") == [
        ("start", 0.064, 0.288)
    ]


def test_a_word_too_short_to_start_begins_the_turn_it_runs_into() -> None:
    # "Wait," (6 windows, under start_ms), a 224 ms breath, then the sentence: the
    # turn starts at "Wait", as it would have had the word been long enough.
    pattern = "..######.......########"
    assert _events(SpeechSegmenter(VADParams(start_ms=200, stop_ms=400)), pattern) == [
        ("start", 0.064, 0.704)
    ]
    # A breath of stop_ms or more parts them: the short word was a sound of its own.
    assert _events(SpeechSegmenter(VADParams(start_ms=200, stop_ms=200)), pattern) == [
        ("start", 0.48, 0.704)
    ]
    # The stop_ms in effect counts (the turn processor sets it per window).
    seg = SpeechSegmenter(VADParams(start_ms=200, stop_ms=400))
    assert _events(seg, pattern, stop_ms=200) == [("start", 0.48, 0.704)]
    # After a turn, or a reset, nothing earlier is carried into the next one.
    seg = SpeechSegmenter(VADParams(start_ms=200, stop_ms=400))
    _events(seg, "..######")
    seg.reset()
    assert _events(seg, "########") == [("start", 0.0, 0.224)]


def test_a_started_words_quiet_tail_counts_towards_the_start_but_opens_nothing() -> None:
    def windows(levels: list[float]) -> list[VADWindow]:
        return [VADWindow(i * 0.032, (i + 1) * 0.032, 0.9, db) for i, db in enumerate(levels)]

    def starts(levels: list[float]) -> list[SpeechEvent]:
        seg = SpeechSegmenter(VADParams(start_ms=200, min_volume_dbfs=-50))
        return [e for w in windows(levels) if (e := seg.update(w)) is not None]

    # "Wait.": six loud windows (192 ms), then two the model still calls speech at -57
    # and -75 dBFS: the word's tail makes it 256 ms, and a turn.
    (start,) = starts([-20.0] * 6 + [-57.0, -75.0])
    assert start.kind == "start" and start.speech_s == 0.0
    # Quiet windows alone start nothing, however confident the model is.
    assert starts([-57.0] * 20) == []


def test_segmenter_stop_reports_the_end_of_the_last_speech_window() -> None:
    seg = SpeechSegmenter(VADParams(start_ms=64, stop_ms=200, pause_ms=0))
    events = _events(seg, "##.#....##........")
    # The short gap (3 windows = 96 ms) does not end the turn; 7 silent windows do.
    assert events == [("start", 0.0, 0.064), ("stop", 0.32, 0.544)]
    assert not seg.speaking


def test_segmenter_pauses_tentatively_and_resumes_before_the_stop() -> None:
    seg = SpeechSegmenter(VADParams(start_ms=64, stop_ms=200, pause_ms=64))
    events = _events(seg, "##.#....##........")
    assert events == [
        ("start", 0.0, 0.064),
        ("pause", 0.128, 0.192),  # two silent windows after the last speech
        ("resume", 0.256, 0.288),  # speech again before stop_ms: the turn goes on
        ("pause", 0.32, 0.384),
        ("stop", 0.32, 0.544),  # the stop confirms the last pause
    ]


def test_segmenter_min_start_raises_the_bar_and_gate_applies() -> None:
    seg = SpeechSegmenter(VADParams(start_ms=64))
    assert _events(seg, "######.", min_start_ms=300) == []
    assert _events(seg, "##########", min_start_ms=300)[0][0] == "start"
    gated = SpeechSegmenter(VADParams(start_ms=64, min_volume_dbfs=-10))
    assert _events(gated, "##########") == []
