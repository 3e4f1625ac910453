"""The words' opinion on the end of a turn: SmolLM2's end-of-utterance probability.

Real SmolLM2-135M (the cascade's LLM) for the detector; the turn processor with
real Silero and Smart Turn on Piper speech, the words' verdict injected at the pause.
"""

from __future__ import annotations

import anyio
import numpy as np
import pytest

from benchmarks.turn.corpus import Clip, build_clips
from framework.frames import (
    EndOfUtteranceFrame,
    InterimTranscriptionFrame,
    MetricsFrame,
    TranscriptionFrame,
    UserPausedSpeakingFrame,
    UserResumedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.llm.llama_cpp import LlamaCppLLM, LlamaCppLLMParams
from processors.shared_models import MODELS
from processors.vad import TurnParams
from processors.vad.eou import (
    TranscriptEndOfTurn,
    asks_for_more,
    holds_the_turn,
    normalise_transcript,
)
from tests.framework.helpers import wait_until
from tests.processors.vad.test_vad_smart_turn import SettledHarness, _pcm
from tests.processors.vad.test_vad_turn import DOWN, UP, Harness, _run, _silence

pytestmark = pytest.mark.models

CASCADE_PROMPT = "You are a friendly voice assistant. Answer in one short sentence."
THRESHOLD = TurnParams().transcript_threshold
# (unfinished, finished): the corpus' hesitation turns, as Whisper writes them at the pause.
PAIRS = (
    ("For the camping trip I am packing", "For the camping trip I am packing a small stove."),
    ("Could you tell me, uh, what time the shop", "What time does the shop close tonight?"),
    ("I would like to order, um, a large pizza with", "I would like to order a large pizza."),
    ("I would like to book a table for", "I would like to book a table for two at seven."),
)


class _Replies:
    """Other callers' replies holding every context of the shared pool, as while generating."""

    def __init__(self, detector: TranscriptEndOfTurn) -> None:
        assert detector._shared is not None
        self.pool = detector._shared.model
        self.held: list[object] = []

    def __enter__(self) -> _Replies:
        while len(self.held) < self.pool.size:  # each, once its caller gives it back
            self.held.append(self.pool.take(owner=self))
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        self.__enter__()

    def release(self) -> None:
        held, self.held = self.held, []
        for context in held:
            self.pool.give(context, self)


def _history(user: str, assistant: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": CASCADE_PROMPT},
        {"role": "user", "content": user},
        {"role": "assistant", "content": assistant},
    ]


@pytest.fixture(scope="module")
def detector() -> TranscriptEndOfTurn:
    d = TranscriptEndOfTurn(system_prompt=CASCADE_PROMPT)
    d.load()
    yield d  # type: ignore[misc]
    d.release()


def test_transcripts_are_normalised() -> None:
    assert normalise_transcript("For the... camping trip, I'm  packing.") == (
        "for the camping trip i'm packing"
    )
    assert normalise_transcript("7.") == "seven"
    assert normalise_transcript("At 12:45, table 101 or 20") == (
        "at twelve forty five table one zero one or twenty"
    )
    assert normalise_transcript("Call 29340 or 007") == (
        "call two nine three four zero or zero zero seven"
    )


def test_a_one_word_answer_in_digits_is_a_finished_message(
    detector: TranscriptEndOfTurn,
) -> None:
    history = _history(
        "Could you tell me what time the shop closes tonight?",
        "At nine. What time would you like to come?",
    )
    probability = detector.probability("7.", history)
    assert probability is not None and probability >= THRESHOLD


@pytest.mark.parametrize(("unfinished", "finished"), PAIRS)
def test_unfinished_words_score_below_the_threshold_and_finished_above(
    detector: TranscriptEndOfTurn, unfinished: str, finished: str
) -> None:
    low = detector.probability(unfinished)
    high = detector.probability(finished)
    assert low is not None and high is not None
    assert low < THRESHOLD <= high, (low, high)


def test_the_prompt_is_the_conversation_then_the_open_user_message(
    detector: TranscriptEndOfTurn,
) -> None:
    history = _history("Hello.", "Hi there!")
    prompt = detector.prompt("Book a table, for", history)
    assert prompt.startswith(f"<|im_start|>system\n{CASCADE_PROMPT}<|im_end|>")
    assert "Hi there!<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>user\nbook a table for")
    # Without a history: the system prompt it was given.
    assert detector.prompt("yes").startswith(f"<|im_start|>system\n{CASCADE_PROMPT}")


def test_it_uses_the_llm_stages_model_rather_than_a_second_copy() -> None:
    params = LlamaCppLLMParams(warmup=False)
    llm = LlamaCppLLM(params)
    llm.load()
    try:
        loaded = MODELS.loaded()
        [key] = [k for k in loaded if k[0] == "llama_cpp"]
        users = MODELS.users(key)
        detector = TranscriptEndOfTurn(params)
        detector.load()
        try:
            assert detector._shared is not None and detector._shared.model.first is llm.model
            assert MODELS.loaded() == loaded  # nothing more was loaded
            assert MODELS.users(key) == users + 1
            assert detector.probability("What is the capital of France?") is not None
        finally:
            detector.release()
    finally:
        assert llm._shared is not None
        MODELS.release(llm._shared)


def test_it_refuses_to_work_before_load() -> None:
    with pytest.raises(RuntimeError, match="load"):
        TranscriptEndOfTurn().probability("hello")


# ------------------------------------------------------- the turn processor


@pytest.fixture(scope="module")
def clip() -> Clip:
    [complete] = [
        c for c in build_clips(["What time does the | pharmacy close today?"]) if c.complete
    ]
    return complete


PARAMS = TurnParams(
    end_of_turn="smart_turn",
    complete_stop_ms=200,
    incomplete_stop_ms=1500,
    transcript_check=True,
    transcript_wait_ms=600,
)


def _wait_s(h: Harness) -> dict:  # type: ignore[type-arg]
    [extra] = [
        s.extra for m in h.down(MetricsFrame) for s in m.samples if s.name == "end_of_turn_s"
    ]
    return extra


async def _speak_and_judge(  # type: ignore[no-untyped-def]
    h: Harness,
    clip: Clip,
    words: float | None,
    *,
    stale: bool = False,
    text: str = "",
    sounds_complete: bool = True,
):
    """Feed the sentence; at its pause send the words' verdict ``words`` (None: none).

    ``sounds_complete``: the verdict Smart Turn gives the clip (checked)."""
    text = text or clip.text

    async def script(h: Harness) -> None:
        await h.feed(_silence(0.5) + _pcm(clip.samples) + _silence(0.06))
        await wait_until(lambda: bool(h.down(UserPausedSpeakingFrame)), limit_s=30.0)
        await wait_until(lambda: h.turn.probability is not None, limit_s=30.0)
        assert h.turn.probability is not None
        assert (h.turn.probability >= 0.5) is sounds_complete, h.turn.probability
        if words is not None:
            [pause] = h.down(UserPausedSpeakingFrame)
            end_ns = pause.speech_end_ns - (1 if stale else 0)
            await h.tail.inject(
                EndOfUtteranceFrame(probability=words, speech_end_ns=end_ns, text=text), UP
            )
        await h.feed(_silence(2.0))

    await _run(h, script)
    assert len(h.down(UserStoppedSpeakingFrame)) == 1
    return _wait_s(h)


@pytest.mark.anyio
async def test_finished_words_end_a_complete_sounding_turn_after_the_short_wait(
    clip: Clip,
) -> None:
    extra = await _speak_and_judge(SettledHarness(PARAMS), clip, 0.01)
    assert extra["end_of_turn_words_probability"] == 0.01
    assert 0.2 <= extra["audio_wait_s"] <= 0.2 + 0.1


@pytest.mark.anyio
async def test_unfinished_words_make_a_complete_sounding_turn_wait_the_long_wait(
    clip: Clip,
) -> None:
    extra = await _speak_and_judge(SettledHarness(PARAMS), clip, 1e-9)
    assert extra["end_of_turn_probability"] >= 0.5
    assert 1.5 <= extra["audio_wait_s"] <= 1.5 + 0.15


@pytest.fixture(scope="module")
def held_back_clip() -> Clip:
    """A finished sentence Smart Turn calls unfinished in Piper's voice (p ~0.02)."""
    text = "I was wondering whether you could | help me with my homework."
    [complete] = [c for c in build_clips([text]) if c.complete]
    return complete


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("words", "update", "text", "wait_s"),
    [
        (0.01, {}, "", 0.2),  # sure enough: the words overrule the voice
        (1e-4, {}, "", 1.5),  # finished, but not surely enough
        (0.01, {"transcript_complete_threshold": None}, "", 1.5),  # overruling off
        (0.01, {"transcript_check": False}, "", 1.5),  # words not asked
        (0.01, {}, "I was wondering whether you could help me with,", 1.5),  # ends open
    ],
)
async def test_words_sure_of_their_end_overrule_smart_turns_incomplete(
    held_back_clip: Clip, words: float, update: dict, text: str, wait_s: float
) -> None:
    params = PARAMS.model_copy(update=update)
    extra = await _speak_and_judge(
        SettledHarness(params), held_back_clip, words, text=text, sounds_complete=False
    )
    assert extra["end_of_turn_probability"] < 0.5
    assert wait_s <= extra["audio_wait_s"] <= wait_s + (0.1 if wait_s < 1 else 0.15)


@pytest.mark.anyio
async def test_words_that_ask_for_time_make_the_turn_wait_whatever_the_model_says(
    clip: Clip,
) -> None:
    # "Wait." after stopping the bot: the model scores it finished (3e-6), the user
    # goes on after a breath.
    extra = await _speak_and_judge(SettledHarness(PARAMS), clip, 0.01, text="Wait.")
    assert 1.5 <= extra["audio_wait_s"] <= 1.5 + 0.15
    params = PARAMS.model_copy(update={"hold_phrases": []})
    extra = await _speak_and_judge(SettledHarness(params), clip, 0.01, text="Wait.")
    assert 0.2 <= extra["audio_wait_s"] <= 0.2 + 0.1


@pytest.mark.anyio
async def test_a_transcript_that_ends_open_makes_the_turn_wait(clip: Clip) -> None:
    # Whisper heard the list go on; the words without punctuation read finished (2e-5).
    text = "For the camping trip I am packing, a tent, two sleeping bags,"
    extra = await _speak_and_judge(SettledHarness(PARAMS), clip, 2e-5, text=text)
    assert 1.5 <= extra["audio_wait_s"] <= 1.5 + 0.15
    params = PARAMS.model_copy(update={"open_endings": []})
    extra = await _speak_and_judge(SettledHarness(params), clip, 2e-5, text=text)
    assert 0.2 <= extra["audio_wait_s"] <= 0.2 + 0.1


@pytest.mark.parametrize(
    ("text", "more"),
    [
        ("I am packing, a tent, two sleeping bags,", True),
        ("Could you tell me, uh...", True),
        ("My number is 2-", True),
        ("Wait.", True),
        ("I am packing a tent and two sleeping bags.", False),
        ("What time is it?", False),
        ("Seven.", False),
    ],
)
def test_a_transcript_asks_for_more_when_it_ends_open_or_holds(text: str, more: bool) -> None:
    p = TurnParams()
    assert asks_for_more(text, p.hold_phrases, p.open_endings) is more


@pytest.mark.parametrize(
    ("text", "holds"),
    [
        ("Wait.", True),
        ("Um, hold on...", True),
        ("Wait a second", True),
        ("HANG ON!", True),
        ("Wait, explain it to me.", False),
        ("Hold the door.", False),
        ("", False),
        ("Sorry.", False),
    ],
)
def test_a_transcript_holds_the_turn_only_when_made_of_hold_phrases(text: str, holds: bool) -> None:
    assert holds_the_turn(text, TurnParams().hold_phrases) is holds


@pytest.mark.anyio
async def test_unfinished_words_wait_their_own_wait_not_smart_turns_incomplete_one(
    clip: Clip,
) -> None:
    # parley serve's semantic_vad has a 4 s incomplete wait; words that misjudge a
    # one-word answer must not cost that much.
    params = PARAMS.model_copy(
        update={"incomplete_stop_ms": 3000.0, "transcript_incomplete_stop_ms": 1000.0}
    )
    extra = await _speak_and_judge(SettledHarness(params), clip, 1e-9)
    assert 1.0 <= extra["audio_wait_s"] <= 1.0 + 0.15


@pytest.mark.anyio
@pytest.mark.parametrize("stale", [False, True])
async def test_without_the_words_verdict_the_turn_ends_after_transcript_wait_ms(
    clip: Clip, stale: bool
) -> None:
    # No verdict, or one about an earlier pause: Smart Turn's verdict decides, late.
    words = 1e-9 if stale else None
    extra = await _speak_and_judge(SettledHarness(PARAMS), clip, words, stale=stale)
    assert "end_of_turn_words_probability" not in extra
    assert 0.6 <= extra["audio_wait_s"] <= 0.6 + 0.1


@pytest.mark.anyio
async def test_with_transcript_check_off_the_words_change_nothing(clip: Clip) -> None:
    params = PARAMS.model_copy(update={"transcript_check": False})
    extra = await _speak_and_judge(SettledHarness(params), clip, 1e-9)
    assert 0.2 <= extra["audio_wait_s"] <= 0.2 + 0.1


def test_the_threshold_is_a_probability() -> None:
    with pytest.raises(ValueError, match="transcript_threshold"):
        TurnParams(transcript_threshold=0.0)
    assert np.isclose(TurnParams(transcript_threshold=1e-5).transcript_threshold, 1e-5)


# ------------------------------------------------------------- the stage


HISTORY = _history(
    "Can you describe all the pizzas on your menu?",
    "We have a margherita, a pepperoni and a veggie pizza.",
)


def test_prefill_leaves_only_the_users_words_to_evaluate(detector: TranscriptEndOfTurn) -> None:
    detector.probability("hello")  # the cache now holds another prompt
    assert detector.prefill(HISTORY) > 20  # the conversation, evaluated ahead
    detector.probability("I would like the", HISTORY)
    assert 0 < detector.last_tokens <= 6  # "i would like the"
    with _Replies(detector):  # other stages generating: no prefill, no wait
        assert detector.prefill([]) == 0


def test_a_prefill_for_another_owner_warms_that_owners_context(
    detector: TranscriptEndOfTurn,
) -> None:
    # A reply that runs beside the check prefers its own context: the conversation is
    # evaluated there too, so the reply's prompt (which starts with the check's) finds it.
    reply = object()
    pool = detector._shared.model  # type: ignore[union-attr]
    history = _history("Which trains go to the coast on Sundays?", "Two, at nine and at noon.")
    assert detector.prefill(history, owner=reply) > 20  # a conversation no context holds
    context = pool.take(owner=reply, wait=False)  # the one the prefill gave back for it
    assert context is not None
    try:
        prompt = detector.prompt("", history)
        tokens = context.tokenize(prompt.encode(), add_bos=False, special=True)
        assert context._input_ids[: context.n_tokens].tolist() == tokens
    finally:
        pool.give(context, reply)
    assert detector.prefill(history, owner=reply) <= 1  # already there: nothing new


@pytest.fixture
def own_detector(detector: TranscriptEndOfTurn) -> TranscriptEndOfTurn:
    """A detector for one stage (the stage releases it), on the already loaded model."""
    d = TranscriptEndOfTurn(system_prompt=CASCADE_PROMPT)
    d.load()
    return d


async def _stage_run(detector: TranscriptEndOfTurn, script):  # type: ignore[no-untyped-def]
    from framework import Pipeline, PipelineTask, TaskParams
    from processors.llm.context import LLMContext
    from processors.vad.eou import EndOfUtteranceProcessor
    from tests.framework.helpers import Recorder

    head, sink = Recorder("head"), Recorder("sink")
    stage = EndOfUtteranceProcessor(detector, context=LLMContext(system_prompt=CASCADE_PROMPT))
    task = PipelineTask(Pipeline([head, stage, sink]), TaskParams())
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        with anyio.fail_after(60):
            while not task.running:
                await anyio.sleep(0.005)
            await script(task, head)
            await task.stop_when_done()
    verdicts = head.frames(UP, EndOfUtteranceFrame)
    return verdicts, [t.text for t in sink.frames(DOWN, TranscriptionFrame)]


@pytest.mark.anyio
@pytest.mark.parametrize("model_free_at_first", [True, False])
async def test_a_pause_transcript_waits_for_its_check_only_while_the_model_is_free(
    own_detector: TranscriptEndOfTurn, monkeypatch: pytest.MonkeyPatch, model_free_at_first: bool
) -> None:
    detector = own_detector
    # The second pause's check has to wait for the model (held here, as by a reply
    # being generated) and the user resumes meanwhile. If the model looked free when
    # the transcript came, the check held it: it is dropped (the next transcript
    # covers the turn). If it was busy, the transcript went on at once.
    replies = _Replies(detector)
    if model_free_at_first:
        monkeypatch.setattr(detector, "busy", lambda: False)

    async def script(task, head) -> None:  # type: ignore[no-untyped-def]
        await task.queue_frame(UserStartedSpeakingFrame(speech_start_ns=1))
        await task.queue_frame(UserPausedSpeakingFrame(speech_end_ns=10))
        await task.queue_frame(TranscriptionFrame(text="Book a table for", user_id="u"))
        await wait_until(lambda: bool(head.frames(UP, EndOfUtteranceFrame)), limit_s=30.0)
        replies.acquire()
        try:
            await task.queue_frame(UserPausedSpeakingFrame(speech_end_ns=20))
            await task.queue_frame(TranscriptionFrame(text="Book a table for two", user_id="u"))
            await anyio.sleep(0.3)
            await task.queue_frame(UserResumedSpeakingFrame(speech_start_ns=30))
            await wait_until(lambda: len(head.frames(UP, EndOfUtteranceFrame)) == 2, limit_s=30)
        finally:
            replies.release()

    (first, second), passed = await _stage_run(detector, script)
    assert first.speech_end_ns == 10 and first.probability is not None
    assert first.probability < THRESHOLD
    assert second.speech_end_ns == 20 and second.probability is None  # gave up waiting
    if model_free_at_first:
        assert passed == ["Book a table for"]
    else:
        assert passed == ["Book a table for", "Book a table for two"]


@pytest.mark.anyio
async def test_a_check_behind_a_reply_is_sent_once_the_model_is_free(
    own_detector: TranscriptEndOfTurn,
) -> None:
    detector = own_detector

    async def script(task, head) -> None:  # type: ignore[no-untyped-def]
        await task.queue_frame(UserStartedSpeakingFrame(speech_start_ns=1))
        await anyio.sleep(0.3)  # the background prefill
        with _Replies(detector):
            await task.queue_frame(UserPausedSpeakingFrame(speech_end_ns=10))
            await task.queue_frame(TranscriptionFrame(text="What time is it?", user_id="u"))
            await anyio.sleep(0.3)
            assert not head.frames(UP, EndOfUtteranceFrame)
        await wait_until(lambda: bool(head.frames(UP, EndOfUtteranceFrame)), limit_s=30.0)

    [verdict], passed = await _stage_run(detector, script)
    assert passed == ["What time is it?"]
    assert verdict.probability is not None and verdict.probability >= THRESHOLD


def test_parley_serve_asks_the_words_only_when_the_pause_is_transcribed() -> None:
    # The session judges each pause's transcript when it speculates; without one
    # (no speculation, or no reply to follow) every turn would wait transcript_wait_ms.
    from pipelines.serve.session_config import SemanticVad, ServerVad
    from pipelines.serve.turn_settings import turn_settings

    base = TurnParams(transcript_threshold=1e-6, transcript_wait_ms=900.0)
    semantic = SemanticVad(type="semantic_vad")
    settings = turn_settings(semantic, base, speculate=True, words=True)
    assert settings["transcript_check"] is True
    assert settings["transcript_threshold"] == 1e-6
    assert settings["transcript_wait_ms"] == 900.0
    TurnParams.model_validate({**base.model_dump(), **settings})
    silent = SemanticVad(type="semantic_vad", create_response=False)
    assert turn_settings(silent, base, speculate=True, words=True)["transcript_check"] is False
    assert turn_settings(semantic, base, speculate=False)["transcript_check"] is False
    server = turn_settings(ServerVad(type="server_vad"), base, speculate=True, words=True)
    assert "transcript_check" not in server


def test_its_own_prefill_does_not_count_as_the_model_being_busy(
    detector: TranscriptEndOfTurn,
) -> None:
    import threading

    busy_during: list[bool] = []
    real_evaluate = detector._evaluate

    def watching(llm, prompt):  # type: ignore[no-untyped-def]
        busy_during.append(detector.busy())
        return real_evaluate(llm, prompt)

    detector._evaluate = watching  # type: ignore[method-assign]
    try:
        detector.probability("hello")  # the cache holds another prompt: prefill works
        thread = threading.Thread(target=detector.prefill, args=(HISTORY,))
        thread.start()
        thread.join()
    finally:
        del detector._evaluate
    assert busy_during[-1] is False  # inside the prefill, holding a context
    with _Replies(detector):
        assert detector.busy()  # everyone else holding them all
    assert not detector.busy()
    pool = detector._shared.model if detector._shared is not None else None
    assert pool is not None
    mine = pool.take(owner=detector.affinity)  # this conversation's reply generating
    try:
        assert detector.busy()
    finally:
        pool.give(mine, detector.affinity)


def test_the_words_heard_so_far_leave_only_the_rest_to_evaluate(
    detector: TranscriptEndOfTurn,
) -> None:
    whole = "I would like the veggie pizza with extra cheese, please."
    detector.probability("hello")  # the cache holds another prompt
    detector.prefill(HISTORY)
    cold = detector.probability(whole, HISTORY)
    all_words = detector.last_tokens
    detector.probability("hello")
    assert detector.prefill(HISTORY, "I would like the veggie pizza") > 20
    warm = detector.probability(whole, HISTORY)
    assert detector.last_tokens <= all_words - 5  # "i would like the veggie pizza" was in
    assert warm == pytest.approx(cold, rel=1e-3)  # the same verdict, sooner


def test_a_prefill_waits_for_nothing_and_a_check_waits_for_a_prefill(
    detector: TranscriptEndOfTurn,
) -> None:
    import threading

    detector.probability("hello")
    entered, go_on = threading.Event(), threading.Event()
    real_evaluate = detector._evaluate

    def slow(llm, prompt):  # type: ignore[no-untyped-def]
        entered.set()
        go_on.wait(10)
        return real_evaluate(llm, prompt)

    detector._evaluate = slow  # type: ignore[method-assign]
    prefilling = threading.Thread(target=detector.prefill, args=(HISTORY, "I would like"))
    prefilling.start()
    try:
        assert entered.wait(10)
        del detector._evaluate
        assert detector.prefill(HISTORY, "I would") == 0  # the model is in use: skipped
        result: list[float | None] = []
        check = threading.Thread(
            target=lambda: result.append(detector.probability("I would like the", HISTORY))
        )
        check.start()
        check.join(0.3)
        assert check.is_alive()  # behind the prefill, not on another context
        go_on.set()
        check.join(30)
    finally:
        go_on.set()
        prefilling.join(30)
        if "_evaluate" in vars(detector):
            del detector._evaluate
    assert result and result[0] is not None
    assert detector.last_tokens <= 2  # "the": the rest was prefilled


@pytest.mark.anyio
async def test_interim_transcripts_are_evaluated_ahead_of_the_pause(
    own_detector: TranscriptEndOfTurn,
) -> None:
    detector = own_detector
    whole = "Could you tell me a little bit about the history of Rome?"
    detector.probability("hello")
    detector.prefill([{"role": "system", "content": CASCADE_PROMPT}])
    cold = detector.probability(whole)
    all_words = detector.last_tokens
    detector.probability("hello")
    events: list[dict] = []  # type: ignore[type-arg]

    async def script(task, head) -> None:  # type: ignore[no-untyped-def]
        await task.queue_frame(UserStartedSpeakingFrame(speech_start_ns=1))
        await anyio.sleep(0.3)  # the conversation's prefill
        await task.queue_frame(InterimTranscriptionFrame(text="Could you tell me", user_id="u"))
        await anyio.sleep(0.3)
        await task.queue_frame(
            InterimTranscriptionFrame(
                text="Could you tell me a little bit about the hist", user_id="u"
            )
        )
        await anyio.sleep(0.3)
        await task.queue_frame(UserPausedSpeakingFrame(speech_end_ns=10))
        await task.queue_frame(TranscriptionFrame(text=whole, user_id="u"))
        await wait_until(lambda: bool(head.frames(UP, EndOfUtteranceFrame)), limit_s=30.0)
        events.append({"tokens": detector.last_tokens})

    [verdict], passed = await _stage_run(detector, script)
    assert passed == [whole]
    assert verdict.probability == pytest.approx(cold, rel=1e-3)
    # "could you tell me a little bit about the" was evaluated before the pause;
    # the unfinished last word ("hist") was not.
    assert events[0]["tokens"] <= all_words - 8
