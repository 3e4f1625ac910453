"""PocketSphinxSTT with the bundled en-US model: streaming, one final per turn, a free loop."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError

from framework import EndReason, Pipeline, PipelineTask
from framework.frames import UserStartedSpeakingFrame, UserStoppedSpeakingFrame
from processors.stt import PocketSphinxSTT, PocketSphinxSTTParams

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


@pytest.mark.parametrize(("fast_final", "bound"), [(False, 0.4), (True, 0.5)])
async def test_pocketsphinx_transcribes_each_turn_once(
    speech: list[Utterance], fast_final: bool, bound: float
) -> None:
    stt = PocketSphinxSTT(PocketSphinxSTTParams(fast_final=fast_final))
    recorder = await run_unpaced(stt, spoken_turns(speech))
    finals = recorder.finals
    assert len(finals) == len(speech)
    error = corpus_wer([u.text for u in speech], [f.text for f in finals])
    print(f"\npocketsphinx fast_final={fast_final} WER {error:.3f}: {[f.text for f in finals]}")
    assert error <= bound
    assert all(f.start_ns is not None and f.end_ns is not None for f in finals)
    assert all(cpu > 0 for cpu in recorder.metrics("cpu_s"))


async def test_pocketsphinx_streams_interims_and_loop_stays_free(speech: list[Utterance]) -> None:
    utterance = speech[3]
    run = await run_paced(PocketSphinxSTT(), spoken_turns([utterance], tail_ms=300))
    recorder = run.recorder
    assert len(recorder.finals) == 1
    assert corpus_wer([utterance.text], [recorder.finals[0].text]) <= 0.3
    stop = run.stopped_at_ns[0]
    interim_times = [t for t, f in recorder.seen if type(f).__name__ == "InterimTranscriptionFrame"]
    assert len(interim_times) >= 2 and interim_times[0] < stop
    texts = [f.text for f in recorder.interims]
    assert all(a != b for a, b in itertools.pairwise(texts))  # only changes are pushed
    [latency] = recorder.metrics("stt_final_s")
    print(f"\npocketsphinx final {latency * 1000:.0f} ms after the stop; gap {run.max_gap_s:.3f} s")
    assert run.max_gap_s < 0.1


async def test_pocketsphinx_gives_empty_finals_for_empty_and_silent_turns() -> None:
    frames = [
        UserStartedSpeakingFrame(),
        UserStoppedSpeakingFrame(),
        *turn_frames(bytes(RATE * 2), 2_000 * MS)[0],
    ]
    recorder = await run_unpaced(PocketSphinxSTT(), frames)
    assert [f.text for f in recorder.finals] == ["", ""]


async def test_pocketsphinx_bad_model_path_is_a_fatal_error() -> None:
    params = PocketSphinxSTTParams(decoder_options={"hmm": "/no/such/model"})
    task = PipelineTask(Pipeline([PocketSphinxSTT(params)]))
    assert await task.run() is EndReason.ERROR
    assert "could not load its model" in task.errors[0].message


def test_pocketsphinx_params_are_validated() -> None:
    assert PocketSphinxSTT.Params is PocketSphinxSTTParams
    with pytest.raises(ValidationError):
        PocketSphinxSTTParams(interim_interval_ms=0)
    with pytest.raises(ValidationError):
        PocketSphinxSTTParams(fastfinal=True)  # type: ignore[call-arg]


def test_a_decoder_process_hands_on_the_cepstral_mean_it_adapted_to(
    speech: list[Utterance],
) -> None:
    """What a restarted decoder starts from: the mean read after the last utterance."""
    from processors.stt._sphinx_worker import SphinxProcess

    options = {"loglevel": "FATAL", "samprate": RATE}
    first = SphinxProcess(options)
    try:
        first.start()
        first.feed(speech[0].pcm, False)
        assert first.finish()
        after_one = first.cmn
        first.start()
        first.feed(speech[1].pcm, False)
        first.finish()
        adapted = first.cmn
    finally:
        first.close()
    assert adapted and after_one and adapted != after_one  # it follows the voice
    second = SphinxProcess({**options, "cmninit": adapted})
    try:
        second.start()
        second.finish()  # an empty utterance leaves the mean as it started
        assert second.cmn == adapted
    finally:
        second.close()
