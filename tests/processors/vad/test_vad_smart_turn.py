"""Smart Turn v3.2: its features, its verdicts on Piper speech, its use by the turn processor."""

from __future__ import annotations

import importlib.util
import sys
import time

import anyio
import numpy as np
import pytest

from benchmarks.turn.corpus import Clip, build_clips
from framework.audio import resample
from framework.frames import (
    InputAudioFrame,
    MetricsFrame,
    SettingsUpdateFrame,
    UserPausedSpeakingFrame,
    UserResumedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.stt._mel import N_MELS, log_mel_spectrogram
from processors.vad import TurnParams
from processors.vad.smart_turn import (
    SMART_TURN_FRAMES,
    SmartTurnModel,
    shared_model,
    smart_turn_features,
    smart_turn_model_path,
)
from tests.framework.helpers import wait_until
from tests.processors.vad.test_vad_turn import CHUNK, RATE, Harness, _run, _silence

pytestmark = pytest.mark.models

# Sentences whose complete form the model calls complete with a margin
# (measured: 0.70-0.99, see docs/turn-taking.md), with a hesitation point.
SENTENCES = (
    "My phone number is two nine three | four zero.",
    "What time does the | pharmacy close today?",
    "How far is the nearest | train station from here?",
)


@pytest.fixture(scope="module")
def clips() -> dict[tuple[int, str], Clip]:
    return {(c.sentence, c.kind): c for c in build_clips(SENTENCES)}


@pytest.fixture(scope="module")
def model() -> SmartTurnModel:
    m = shared_model()
    m.load()
    return m


def _pcm(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


# ------------------------------------------------------------------ features


def test_the_model_file_is_found_without_importing_pipecat() -> None:
    path = smart_turn_model_path()
    assert path.name == "smart-turn-v3.2-cpu.onnx"
    assert path.stat().st_size > 1_000_000
    assert "pipecat" not in sys.modules
    # find_spec of the top-level package gives its directory without executing it either.
    spec = importlib.util.find_spec("pipecat")
    assert spec is not None and "pipecat" not in sys.modules


def test_features_have_the_shape_the_model_takes(model: SmartTurnModel) -> None:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(smart_turn_model_path()))
    [inp] = session.get_inputs()
    features = smart_turn_features(np.zeros(RATE, dtype=np.float32))
    assert features.dtype == np.float32
    assert features.shape == (N_MELS, SMART_TURN_FRAMES) == tuple(inp.shape[1:])
    assert inp.name == "input_features"


def test_short_clips_are_padded_at_the_start_and_long_ones_keep_their_end() -> None:
    rng = np.random.default_rng(5)
    one_s = rng.normal(0.0, 0.1, RATE).astype(np.float32)
    features = smart_turn_features(one_s)
    # 7 s of padding first: constant frames; the clip fills the last ~100 frames.
    assert np.ptp(features[:, 100:600], axis=1).max() < 1e-3
    assert np.ptp(features[:, -90:], axis=1).min() > 0.1
    # A 10 s clip is judged on its last 8 s only.
    ten_s = rng.normal(0.0, 0.1, 10 * RATE).astype(np.float32)
    last_8_s = ten_s[-8 * RATE :]
    np.testing.assert_array_equal(smart_turn_features(ten_s), smart_turn_features(last_8_s))


def test_features_are_whisper_log_mel_of_the_normalised_padded_clip() -> None:
    rng = np.random.default_rng(9)
    clip = rng.normal(0.0, 0.2, 3 * RATE).astype(np.float32)
    padded = np.concatenate([np.zeros(5 * RATE, dtype=np.float32), clip])
    normalised = (padded - padded.mean()) / padded.std()
    expected = log_mel_spectrogram(normalised, n_frames=SMART_TURN_FRAMES)
    np.testing.assert_allclose(smart_turn_features(clip), expected, atol=1e-4)
    # Loudness does not matter: the clip is normalised first.
    np.testing.assert_allclose(smart_turn_features(clip * 0.1), expected, atol=1e-3)


# --------------------------------------------------------------------- model


def test_complete_sentences_score_above_the_same_sentences_cut_mid_phrase(
    model: SmartTurnModel, clips: dict[tuple[int, str], Clip]
) -> None:
    for index in range(len(SENTENCES)):
        complete = model.predict(clips[index, "complete"].samples)
        filler = model.predict(clips[index, "filler"].samples)
        cut = model.predict(clips[index, "audio-cut"].samples)
        assert complete >= 0.5, (SENTENCES[index], complete)
        # A hesitation ("..., um,") scored below 0.01 on every sentence measured.
        assert filler < 0.5, (SENTENCES[index], filler)
        assert cut < complete, (SENTENCES[index], cut, complete)


def test_predict_takes_pcm16_as_well(
    model: SmartTurnModel, clips: dict[tuple[int, str], Clip]
) -> None:
    samples = clips[0, "complete"].samples
    as_pcm = model.predict_pcm16(_pcm(samples))
    assert abs(as_pcm - model.predict(samples)) < 0.02


def test_a_missing_model_file_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError, match="not found"):
        SmartTurnModel(tmp_path / "none.onnx").load()


def test_smart_turn_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="complete_stop_ms"):
        TurnParams(complete_stop_ms=900, incomplete_stop_ms=800)
    with pytest.raises(ValueError, match="end_of_turn"):
        TurnParams(end_of_turn="llm")  # type: ignore[arg-type]
    TurnParams(end_of_turn="silence", complete_stop_ms=900, incomplete_stop_ms=800)


# ------------------------------------------------------- the turn processor


class SettledHarness(Harness):
    """Feeds audio frame by frame and lets the model answer before the next frame.

    The verdict then lands at the audio time of the pause, as if inference were
    instant: the timeline is the same on a loaded machine as on an idle one.
    """

    async def feed(self, pcm: bytes, pace: bool = False) -> None:
        for i in range(0, len(pcm), CHUNK):
            await super().feed(pcm[i : i + CHUNK])
            if self.turn.judging:
                await wait_until(lambda: not self.turn.judging, limit_s=30.0)


def _waits(h: Harness) -> list[dict]:  # type: ignore[type-arg]
    return [s.extra for m in h.down(MetricsFrame) for s in m.samples if s.name == "end_of_turn_s"]


PARAMS = TurnParams(end_of_turn="smart_turn", complete_stop_ms=200, incomplete_stop_ms=1500)


@pytest.mark.anyio
async def test_a_complete_sentence_ends_after_the_short_wait(
    clips: dict[tuple[int, str], Clip],
) -> None:
    h = SettledHarness(PARAMS)

    async def script(h: Harness) -> None:
        await h.feed(_silence(0.5) + _pcm(clips[1, "complete"].samples) + _silence(1.0))

    await _run(h, script)
    assert len(h.down(UserStartedSpeakingFrame)) == len(h.down(UserStoppedSpeakingFrame)) == 1
    [extra] = _waits(h)
    assert extra["end_of_turn_probability"] >= 0.5
    # complete_stop_ms after the speech (plus the trailing silence in the clip, a window or two).
    assert 0.2 <= extra["audio_wait_s"] <= 0.2 + 0.1


@pytest.mark.anyio
async def test_a_hesitation_waits_and_the_resumed_sentence_is_one_turn(
    clips: dict[tuple[int, str], Clip],
) -> None:
    # "What time does the, um, [0.9 s] pharmacy close today?" (Piper pauses at the comma
    # too: "What time does the" is judged incomplete there as well, 0.18 measured.)
    h = SettledHarness(PARAMS)
    complete = clips[1, "complete"].samples
    rest = complete[len(clips[1, "audio-cut"].samples) - 1536 :]  # the words after the cut

    async def script(h: Harness) -> None:
        await h.feed(_silence(0.5) + _pcm(clips[1, "filler"].samples) + _silence(0.9))
        assert h.turn.user_speaking, "the turn ended during the hesitation"
        assert h.turn.probability is not None and h.turn.probability < 0.5
        # After the 0.9 s hesitation the end waits 0.3 s longer than it (hesitation_ms).
        await h.feed(_pcm(rest) + _silence(1.5))

    await _run(h, script)
    assert len(h.down(UserStartedSpeakingFrame)) == 1
    assert len(h.down(UserStoppedSpeakingFrame)) == 1, (h.turn.probability, _waits(h))
    assert len(h.down(UserPausedSpeakingFrame)) >= 2  # the hesitation, then the end
    assert len(h.down(UserResumedSpeakingFrame)) >= 1


@pytest.mark.anyio
async def test_an_incomplete_turn_ends_after_the_long_wait(
    clips: dict[tuple[int, str], Clip],
) -> None:
    h = SettledHarness(PARAMS)

    async def script(h: Harness) -> None:
        await h.feed(_silence(0.5) + _pcm(clips[1, "filler"].samples) + _silence(2.0))

    await _run(h, script)
    assert len(h.down(UserStoppedSpeakingFrame)) == 1
    [extra] = _waits(h)
    assert extra["end_of_turn_probability"] < 0.5
    assert 1.5 <= extra["audio_wait_s"] <= 1.5 + 0.15


@pytest.mark.anyio
@pytest.mark.parametrize(
    "params",
    [
        TurnParams(end_of_turn="silence", stop_ms=300),
        # Without pauses the model has no moment to run: stop_ms decides (parley serve).
        TurnParams(end_of_turn="smart_turn", pause_ms=0, stop_ms=300),
    ],
)
async def test_silence_mode_ignores_the_model(
    params: TurnParams, clips: dict[tuple[int, str], Clip]
) -> None:
    h = SettledHarness(params)

    async def script(h: Harness) -> None:
        await h.feed(_silence(0.5) + _pcm(clips[2, "filler"].samples) + _silence(1.0))

    await _run(h, script)
    [extra] = _waits(h)
    assert "end_of_turn_probability" not in extra
    assert 0.3 <= extra["audio_wait_s"] <= 0.3 + 0.15


@pytest.mark.anyio
async def test_the_model_can_be_switched_on_at_run_time(
    clips: dict[tuple[int, str], Clip],
) -> None:
    h = SettledHarness(TurnParams(end_of_turn="silence", stop_ms=1000))

    async def script(h: Harness) -> None:
        await h.task.queue_frame(SettingsUpdateFrame(settings={"end_of_turn": "smart_turn"}))
        await wait_until(lambda: h.turn.params.end_of_turn == "smart_turn")
        await h.feed(_silence(0.5) + _pcm(clips[1, "complete"].samples) + _silence(1.0))

    await _run(h, script)
    [extra] = _waits(h)
    assert extra["end_of_turn_probability"] >= 0.5
    assert extra["audio_wait_s"] < 0.5  # complete_stop_ms, not stop_ms


@pytest.mark.anyio
async def test_a_late_verdict_ends_the_turn_without_waiting_for_more_audio(
    clips: dict[tuple[int, str], Clip],
) -> None:
    # All the audio is in before the model answers (no settling): the input then
    # stops, so only the verdict itself can end the turn (the silence is shorter than
    # unjudged_stop_ms).
    h = Harness(PARAMS)

    async def script(h: Harness) -> None:
        await h.feed(_silence(0.5) + _pcm(clips[1, "complete"].samples) + _silence(0.3))
        await wait_until(lambda: bool(h.down(UserStoppedSpeakingFrame)), limit_s=30.0)

    await _run(h, script)
    [extra] = _waits(h)
    assert extra["end_of_turn_probability"] >= 0.5
    assert extra["audio_wait_s"] >= 0.2


@pytest.mark.anyio
async def test_input_at_another_rate_is_resampled_for_the_model(
    clips: dict[tuple[int, str], Clip],
) -> None:
    rate = 8000
    pcm = resample(_silence(0.5) + _pcm(clips[1, "complete"].samples) + _silence(1.0), RATE, rate)
    heard: list[float] = []

    class Recording(SmartTurnModel):
        def predict_pcm16(self, pcm: bytes) -> float:
            heard.append(len(pcm) / 2 / RATE)  # seconds, if the model gets 16 kHz
            return super().predict_pcm16(pcm)

    h = Harness(PARAMS)
    h.turn._smart_turn = Recording()
    chunk = rate // 50 * 2

    async def script(h: Harness) -> None:
        for i in range(0, len(pcm), chunk):
            at = h.at(i // 2 / rate)
            frame = InputAudioFrame(audio=pcm[i : i + chunk], sample_rate=rate, timestamp_ns=at)
            await h.task.queue_frame(frame)
            if h.turn.judging:
                await wait_until(lambda: not h.turn.judging, limit_s=30.0)

    await _run(h, script)
    [extra] = _waits(h)
    assert extra["end_of_turn_probability"] >= 0.5
    assert 0.2 <= extra["audio_wait_s"] <= 0.2 + 0.1
    # The model heard the turn at 16 kHz: the speech plus pre-roll and the pause.
    speech_s = len(clips[1, "complete"].samples) / RATE
    assert heard and speech_s < heard[-1] < speech_s + 0.5


@pytest.mark.anyio
async def test_without_a_verdict_the_turn_ends_on_unjudged_stop_ms(
    clips: dict[tuple[int, str], Clip],
) -> None:
    class Slow(SmartTurnModel):  # a CPU too busy to answer in time
        def predict_pcm16(self, pcm: bytes) -> float:
            time.sleep(1.0)
            return super().predict_pcm16(pcm)

    h = Harness(PARAMS.model_copy(update={"unjudged_stop_ms": 400}))
    h.turn._smart_turn = Slow()

    async def script(h: Harness) -> None:
        await h.feed(_silence(0.5) + _pcm(clips[1, "filler"].samples) + _silence(1.0))
        await anyio.sleep(1.2)  # the late verdict changes nothing

    await _run(h, script)
    [extra] = _waits(h)
    assert extra["end_of_turn_probability"] is None
    assert 0.4 <= extra["audio_wait_s"] <= 0.4 + 0.1
    assert len(h.down(UserStoppedSpeakingFrame)) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("hesitation_ms", [500.0, 0.0])
async def test_after_a_hesitation_a_complete_pause_waits_longer_than_the_hesitation(
    hesitation_ms: float, clips: dict[tuple[int, str], Clip]
) -> None:
    # "What time does the, um, [0.9 s] pharmacy close today? [0.8 s] How far is the
    # nearest train station from here?": the second pause is judged complete; after a
    # 0.9 s hesitation the turn waits ~1.2 s and the user's next question joins it.
    # With hesitation_ms = 0 the turn ends 200 ms into that pause: two turns.
    h = SettledHarness(PARAMS.model_copy(update={"hesitation_ms": hesitation_ms}))
    complete = clips[1, "complete"].samples
    rest = complete[len(clips[1, "audio-cut"].samples) - 1536 :]

    async def script(h: Harness) -> None:
        await h.feed(_silence(0.5) + _pcm(clips[1, "filler"].samples) + _silence(0.9))
        await h.feed(_pcm(rest) + _silence(0.8))
        await h.feed(_pcm(clips[2, "complete"].samples) + _silence(2.0))
        # A new turn starts afresh: its complete pause waits the short time again.
        await h.feed(_pcm(clips[0, "complete"].samples) + _silence(1.0))

    await _run(h, script)
    waits = _waits(h)
    if hesitation_ms:
        assert len(h.down(UserStoppedSpeakingFrame)) == 2, waits
        first, second = waits
        assert 0.9 <= first["hesitation_s"] <= 0.9 + 0.2
        assert first["end_of_turn_probability"] >= 0.5
        wait = first["hesitation_s"] + 0.3  # hesitation_margin_ms
        assert wait <= first["audio_wait_s"] <= wait + 0.1
        assert "hesitation_s" not in second and 0.2 <= second["audio_wait_s"] <= 0.3
    else:
        assert len(h.down(UserStoppedSpeakingFrame)) == 3, waits
        assert all("hesitation_s" not in w for w in waits)
        assert 0.2 <= waits[0]["audio_wait_s"] <= 0.3


@pytest.mark.anyio
async def test_a_short_pause_is_not_a_hesitation(clips: dict[tuple[int, str], Clip]) -> None:
    # "What time does the, um, [~0.3 s] pharmacy close today?": a pause as short as the
    # gap between two sentences is not a hesitation, and the end waits only 200 ms.
    h = SettledHarness(PARAMS)
    rest = clips[1, "complete"].samples[len(clips[1, "audio-cut"].samples) - 1536 :]

    async def script(h: Harness) -> None:
        await h.feed(_silence(0.5) + _pcm(clips[1, "filler"].samples) + _silence(0.2))
        assert h.turn.probability is not None and h.turn.probability < 0.5
        await h.feed(_pcm(rest) + _silence(1.0))

    await _run(h, script)
    [extra] = _waits(h)
    assert "hesitation_s" not in extra
    assert 0.2 <= extra["audio_wait_s"] <= 0.3
