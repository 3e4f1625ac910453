"""The turn-taking processor: voice activity to user turns and barge-in interruptions.

See the "Turn-taking (VAD)" section of docs/frame-flow.md for the contract and
docs/vad.md for the defaults and how they were measured.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

import anyio
from pydantic import ValidationError

from framework import Direction, Frame, Processor, handles
from framework.audio import resample, to_mono
from framework.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndOfUtteranceFrame,
    InputAudioFrame,
    MetricSample,
    MetricsFrame,
    SettingsUpdateFrame,
    StartFrame,
    UserPausedSpeakingFrame,
    UserResumedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.vad.base import SpeechEvent, SpeechSegmenter, VADAnalyzer, VADParams, VADWindow
from processors.vad.eou import asks_for_more
from processors.vad.smart_turn import SMART_TURN_SECONDS, SmartTurnModel, shared_model
from processors.vad.turn_params import TurnParams

__all__ = ["TurnParams", "TurnProcessor", "create_analyzer"]

DOWNSTREAM = Direction.DOWNSTREAM
UPSTREAM = Direction.UPSTREAM
_BUILD_FIELDS = ("vad", "aggressiveness", "webrtc_frame_ms")
_MODEL_RATE = 16000
_PRE_ROLL_S = 0.2  # audio before the detected start that the model also hears

log = logging.getLogger("parley.turn")


def create_analyzer(params: VADParams, backend: str, sample_rate: int = 16000) -> VADAnalyzer:
    """Build the analyzer named ``backend`` ("silero" or "webrtc") from ``params``."""
    if backend == "silero":
        from processors.vad.silero import SileroVAD

        return SileroVAD(sample_rate)
    if backend == "webrtc":
        from processors.vad.webrtc import WebRTCVAD

        return WebRTCVAD(
            sample_rate, aggressiveness=params.aggressiveness, frame_ms=params.webrtc_frame_ms
        )
    raise ValueError(f"unknown VAD backend {backend!r}: use 'silero' or 'webrtc'")


class TurnProcessor(Processor):
    """Detects user turns in the input audio and interrupts the bot on barge-in.

    Consumes :class:`InputAudioFrame` (passed on unchanged, before any event it
    causes) and emits :class:`UserStartedSpeakingFrame` / :class:`UserStoppedSpeakingFrame`
    both ways, the same frame object in each direction (upstream first, so the
    input transport knows a turn is in progress). ``speech_start_ns`` and
    ``speech_end_ns`` are the true start of the first speech window and the end
    of the last one, on the input frames' clock. A ``MetricsFrame`` with
    ``end_of_turn_s`` (decision time minus speech end) follows each stop.

    Bot speech is learnt from ``BotStartedSpeakingFrame``/``BotStoppedSpeakingFrame``.
    While the bot speaks a user start needs ``max(start_ms, min_interruption_ms)``
    of speech and then calls :meth:`broadcast_interruption` before the start frame
    goes out; shorter sounds make no turn at all. While the bot is silent a start
    interrupts too when ``interrupt_on_start`` is set. Nothing interrupts when the
    task's ``StartFrame`` says ``allow_interruptions=False``.

    With ``barge_in_start_ms`` set, barge-in is decided after speech-to-text, on
    the user's words (:class:`processors.interruption.InterruptionProcessor`):
    while the bot speaks (or is silent in the middle of a reply,
    ``BotStoppedSpeakingFrame.mid_reply``), a user turn starts after that much
    speech and interrupts nothing itself (docs/turn-taking.md, "Interruptions").

    The analysis runs inline: Silero costs about 0.1 ms per 32 ms window, far
    below a frame's budget (measured in docs/vad.md).

    With ``end_of_turn="smart_turn"`` (the default) each pause (``pause_ms`` of
    silence) sends the turn's audio, up to its last 8 s, to the Smart Turn
    model in a worker thread. Judged complete, the turn ends after
    ``complete_stop_ms`` of silence (at once when the verdict comes later);
    incomplete, after ``incomplete_stop_ms``; while the model has not answered,
    after ``unjudged_stop_ms``. With ``transcript_check`` the pause's words are a
    second opinion both ways: unfinished words hold a turn judged complete, and words
    sure of their end (``transcript_complete_threshold``) end one judged incomplete
    as if complete (docs/turn-taking.md).
    """

    Params: ClassVar[type[TurnParams]] = TurnParams

    def __init__(
        self,
        params: TurnParams | None = None,
        *,
        analyzer: VADAnalyzer | None = None,
        smart_turn: SmartTurnModel | None = None,
        barge_in_start_ms: float | None = None,
        name: str | None = None,
    ) -> None:
        """Create the processor.

        ``analyzer`` overrides the backend named by ``params.vad``; ``smart_turn``
        the end-of-turn model (default: one Smart Turn model shared in the process).
        ``barge_in_start_ms`` leaves barge-in to a stage after speech-to-text (see
        the class docstring); None keeps the time rule (``min_interruption_ms``).
        """
        super().__init__(name=name)
        if barge_in_start_ms is not None and not 0 < barge_in_start_ms <= 5000:
            raise ValueError(f"barge_in_start_ms must be in (0, 5000], got {barge_in_start_ms!r}")
        self.barge_in_start_ms = barge_in_start_ms
        self.params = params or TurnParams()
        self._analyzer = analyzer
        self._smart_turn = smart_turn
        self._history = bytearray()  # recent mono input audio, for the end-of-turn model
        self._history_start = 0  # stream sample of its first sample
        self._turn_start_s = 0.0
        self._pause_id = 0  # which pause a verdict belongs to
        self._judging = False
        self._probability: float | None = None
        self._infer_s: float | None = None
        self._pause_end_ns: int | None = None  # the pause being judged
        self._words: EndOfUtteranceFrame | None = None  # the words' verdict on it
        self._hesitation_s = 0.0  # the longest pause this turn went on from (hesitation_ms)
        self._windows_lock = anyio.Lock()  # a verdict may end the turn between frames
        self._segmenter = SpeechSegmenter(self.params)
        self._allow_interruptions = True
        self._bot_speaking = False
        self._barge_s = 0.0
        self._interrupted_turn = False
        self._stream_samples = 0
        self._anchor_ns = 0
        self._anchor_s = 0.0

    @property
    def analyzer(self) -> VADAnalyzer | None:
        """The analyzer in use (created at start when none was passed in)."""
        return self._analyzer

    @property
    def user_speaking(self) -> bool:
        """True between a user start and its stop."""
        return self._segmenter.speaking

    @property
    def judging(self) -> bool:
        """True while the end-of-turn model is judging the current pause."""
        return self._judging

    @property
    def probability(self) -> float | None:
        """The model's verdict on the current pause (None before it answers, or between pauses)."""
        return self._probability

    @property
    def uses_words(self) -> bool:
        """True when the words' verdict on a pause can change when the turn ends.

        Only with the end-of-turn model and ``transcript_check`` on; otherwise a
        verdict given to :meth:`judge_words` is only recorded in the metrics.
        """
        return self._smart() and self.params.transcript_check

    @property
    def bot_speaking(self) -> bool:
        """True between the bot's started and stopped speaking frames."""
        return self._bot_speaking

    def update_params(self, settings: dict[str, Any]) -> None:
        """Change settings at run time; raises ValueError if invalid.

        The fields that build the analyzer (``vad``, ``aggressiveness``,
        ``webrtc_frame_ms``) cannot change on a running processor.
        """
        fixed = [
            k for k in _BUILD_FIELDS if k in settings and settings[k] != getattr(self.params, k)
        ]
        if fixed:
            raise ValueError(
                f"{', '.join(fixed)} cannot change while running: create a new TurnProcessor"
            )
        try:
            params = TurnParams.model_validate({**self.params.model_dump(), **settings})
        except ValidationError as exc:
            raise ValueError(f"invalid turn settings {settings!r}: {exc}") from exc
        self.params = params
        self._segmenter.params = params

    # -------------------------------------------------------------- lifecycle

    async def on_start(self, frame: StartFrame) -> None:
        """Take the input rate and interruption policy; load the VAD model in a thread."""
        self._allow_interruptions = frame.allow_interruptions
        rate = frame.audio_in_sample_rate
        if self.params.end_of_turn == "smart_turn" and self._smart_turn is None:
            self._smart_turn = shared_model()
        if self._analyzer is None:
            self._analyzer = create_analyzer(self.params, self.params.vad, rate)
        elif self._analyzer.sample_rate != rate:
            self._analyzer.set_sample_rate(rate)
        await self.run_blocking(self._analyzer.load)
        if self._smart_turn is not None and self.params.end_of_turn == "smart_turn":
            await self.run_blocking(self._smart_turn.load)
        self._restart_stream()

    async def cleanup(self) -> None:
        """Let go of the VAD model (a server reuses it for its next session)."""
        if self._analyzer is not None:
            self._analyzer.close()

    def _restart_stream(self) -> None:
        if self._analyzer is not None:
            self._analyzer.reset()
        self._segmenter.reset()
        self._stream_samples = 0
        self._barge_s = 0.0
        self._interrupted_turn = False
        self._history.clear()
        self._history_start = 0
        self._forget_verdict()

    # ----------------------------------------------------------------- frames

    @handles(BotStartedSpeakingFrame)
    async def _bot_started(self, frame: BotStartedSpeakingFrame, direction: Direction) -> None:
        self._bot_speaking = True
        self._barge_s = 0.0
        self._interrupted_turn = False
        await self.push(frame, direction)

    @handles(BotStoppedSpeakingFrame)
    async def _bot_stopped(self, frame: BotStoppedSpeakingFrame, direction: Direction) -> None:
        # Barge-in decided on the words: between two sentences of a reply the bot still
        # has the floor, and speech there is judged by the same rules.
        self._bot_speaking = frame.mid_reply and self.barge_in_start_ms is not None
        await self.push(frame, direction)

    @handles(SettingsUpdateFrame)
    async def _settings(self, frame: SettingsUpdateFrame, direction: Direction) -> None:
        if frame.target == self.name:
            settings = frame.settings
        elif not frame.target:  # a broadcast: take the keys that are ours
            settings = {k: v for k, v in frame.settings.items() if k in TurnParams.model_fields}
        else:
            settings = {}
        if settings:
            try:
                self.update_params(settings)
            except ValueError as exc:
                await self.push_error(f"{self.name}: {exc}")
        await self.push(frame, direction)

    @handles(InputAudioFrame)
    async def _audio(self, frame: InputAudioFrame, direction: Direction) -> None:
        await self.push(frame, direction)
        if direction is not DOWNSTREAM:
            return
        analyzer = self._analyzer
        if analyzer is None:  # no StartFrame yet: nothing to analyse with
            return
        if frame.sample_rate != analyzer.sample_rate:
            analyzer.set_sample_rate(frame.sample_rate)
            self._restart_stream()
        audio = frame.audio if frame.num_channels == 1 else to_mono(frame.audio, frame.num_channels)
        self._anchor_ns = frame.timestamp_ns
        self._anchor_s = self._stream_samples / frame.sample_rate
        self._stream_samples += len(audio) // 2
        self._remember(audio, frame.sample_rate)
        async with self._windows_lock:
            await self._windows(analyzer.analyze(audio), frame.sample_rate)

    async def _windows(self, windows: list[VADWindow], rate: int) -> None:
        for window in windows:
            min_start_ms, start_ms = 0.0, None
            if self._bot_speaking and self.barge_in_start_ms is not None:
                start_ms = self.barge_in_start_ms
            elif self._bot_speaking:
                min_start_ms = self.params.min_interruption_ms
            event = self._segmenter.update(
                window, min_start_ms=min_start_ms, stop_ms=self._stop_ms(), start_ms=start_ms
            )
            if event is None:
                if self._segmenter.speaking and self._segmenter.is_speech(window):
                    await self._maybe_barge_in(window.end_s - window.start_s)
            elif event.kind == "start":
                await self._user_started(event)
            elif event.kind == "stop":
                await self._user_stopped(event)
            elif event.kind == "pause":
                self._judge(rate)
                self._pause_end_ns = self._to_ns(event.speech_s)
                await self._both_ways(UserPausedSpeakingFrame(speech_end_ns=self._pause_end_ns))
            else:
                self._note_hesitation(event.speech_s)
                self._forget_verdict()
                await self._both_ways(
                    UserResumedSpeakingFrame(speech_start_ns=self._to_ns(event.speech_s))
                )

    # ------------------------------------------------------------ end of turn

    def _smart(self) -> bool:
        """True when the model decides (it runs at the pause: none without pauses)."""
        return self.params.end_of_turn == "smart_turn" and self.params.pause_ms > 0

    def _stop_ms(self) -> float:
        """The silence that ends the turn now: stop_ms, or what the model's verdict asks."""
        p = self.params
        if not self._smart():
            return p.stop_ms
        if self._probability is None:  # no verdict yet: a CPU too busy for the model
            return max(p.unjudged_stop_ms, self._complete_stop_ms())
        if self._probability < p.end_of_turn_threshold:
            if self._words_finished():  # the words are sure: they overrule the voice
                return self._complete_stop_ms()
            return p.incomplete_stop_ms
        if not p.transcript_check:
            return self._complete_stop_ms()
        if self._words is None:  # complete by the voice: wait for the words' verdict
            return max(p.transcript_wait_ms, p.complete_stop_ms)
        if self._words_unfinished(self._words):
            return max(p.transcript_incomplete_stop_ms, p.complete_stop_ms)
        return self._complete_stop_ms()

    def _complete_stop_ms(self) -> float:
        """The silence that ends a turn judged complete: longer after a hesitation.

        ``complete_stop_ms``; once the user has gone on from a pause of at least
        ``hesitation_ms`` in this turn, ``hesitation_margin_ms`` more than the longest
        such pause (at most ``incomplete_stop_ms``): the next pause of a speaker who
        stops to think is judged by the speaker's own pauses, not the models' alone.
        """
        p = self.params
        if self._hesitation_s <= 0.0:
            return p.complete_stop_ms
        wait_ms = self._hesitation_s * 1000.0 + p.hesitation_margin_ms
        return max(p.complete_stop_ms, min(wait_ms, p.incomplete_stop_ms))

    def _note_hesitation(self, resumed_s: float) -> None:
        """The user went on at ``resumed_s``: remember the pause if it was a hesitation."""
        hesitation_ms = self.params.hesitation_ms
        if self._pause_end_ns is None or hesitation_ms <= 0:
            return
        pause_s = (self._to_ns(resumed_s) - self._pause_end_ns) / 1e9
        if pause_s * 1000.0 + 1e-6 >= hesitation_ms:
            self._hesitation_s = max(self._hesitation_s, pause_s)

    def _words_unfinished(self, verdict: EndOfUtteranceFrame) -> bool:
        """The pause's words ask for more: a hold phrase, an open ending, a low probability."""
        p = self.params
        if asks_for_more(verdict.text, p.hold_phrases, p.open_endings):
            return True
        return verdict.probability is not None and verdict.probability < p.transcript_threshold

    def _words_finished(self) -> bool:
        """The pause's words read finished surely enough to overrule Smart Turn's 'incomplete'."""
        p, verdict = self.params, self._words
        threshold = p.transcript_complete_threshold
        if not p.transcript_check or threshold is None or verdict is None:
            return False
        sure = verdict.probability is not None and verdict.probability >= threshold
        return sure and not self._words_unfinished(verdict)

    @handles(EndOfUtteranceFrame)
    async def _words_verdict(self, frame: EndOfUtteranceFrame, direction: Direction) -> None:
        """The end-of-utterance stage's verdict on a pause's transcript (ends here)."""
        if direction is UPSTREAM:
            await self.judge_words(frame)
        else:
            await self.push(frame, direction)

    async def judge_words(self, verdict: EndOfUtteranceFrame) -> bool:
        """Take the words' verdict on the current pause; True if it was for this pause.

        A verdict on an earlier pause (the user has spoken since) is dropped. With
        ``transcript_check`` off it is only recorded. Ends the turn at once when the
        silence already reaches what the verdicts ask.
        """
        if verdict.speech_end_ns is None or verdict.speech_end_ns != self._pause_end_ns:
            return False
        if not self._segmenter.speaking:
            return False
        self._words = verdict
        await self._end_if_due(self._pause_id)
        return True

    def _remember(self, audio: bytes, rate: int) -> None:
        """Keep the last ~8 s (plus pre-roll) of input for the end-of-turn model."""
        if not self._smart():
            return
        self._history += audio
        keep = int((SMART_TURN_SECONDS + 2 * _PRE_ROLL_S) * rate) * 2
        extra = len(self._history) - keep
        if extra > 0:
            extra += extra % 2
            del self._history[:extra]
            self._history_start += extra // 2

    def _judge(self, rate: int) -> None:
        """Start the model on the turn so far (up to its last 8 s) in a worker thread."""
        if not self._smart():
            return
        if self._smart_turn is None:  # switched on at run time: loads on first use
            self._smart_turn = shared_model()
        first = max(int((self._turn_start_s - _PRE_ROLL_S) * rate), self._history_start)
        pcm = bytes(self._history[(first - self._history_start) * 2 :])
        if rate != _MODEL_RATE:
            pcm = resample(pcm, rate, _MODEL_RATE)
        self._forget_verdict()
        self._judging = True
        self.context.task_group.start_soon(self._run_model, self._smart_turn, pcm, self._pause_id)

    async def _run_model(self, model: SmartTurnModel, pcm: bytes, pause_id: int) -> None:
        began = time.perf_counter()
        try:
            probability = await self.run_blocking(model.predict_pcm16, pcm)
        except Exception as exc:  # the turn still ends, on unjudged_stop_ms
            if pause_id == self._pause_id:
                self._judging = False
            await self.push_error(f"{self.name}: end-of-turn model failed: {exc}", exception=exc)
            return
        if pause_id != self._pause_id:  # the user resumed meanwhile: stale
            return
        self._probability = probability
        self._infer_s = time.perf_counter() - began
        log.debug("%s: Smart Turn %.3f in %.0f ms", self.name, probability, self._infer_s * 1e3)
        self._judging = False
        await self._end_if_due(pause_id)

    async def _end_if_due(self, pause_id: int) -> None:
        """End the turn now if the silence already reaches what the verdicts ask.

        Rather than at the next window, which may be 20-30 ms away, or never come if
        the input stops.
        """
        async with self._windows_lock:
            enough = self._segmenter.silence_s * 1000.0 + 1e-6 >= self._stop_ms()
            if pause_id == self._pause_id and enough:
                event = self._segmenter.stop_now()
                if event is not None:
                    await self._user_stopped(event)

    def _forget_verdict(self) -> None:
        self._pause_id += 1
        self._judging = False
        self._probability = None
        self._infer_s = None
        self._pause_end_ns = None
        self._words = None

    # -------------------------------------------------------------- internals

    async def _both_ways(self, frame: Frame) -> None:
        await self.push(frame, UPSTREAM)
        await self.push(frame, DOWNSTREAM)

    def _to_ns(self, offset_s: float) -> int:
        return self._anchor_ns + round((offset_s - self._anchor_s) * 1e9)

    async def _user_started(self, event: SpeechEvent) -> None:
        self._turn_start_s = event.speech_s
        self._hesitation_s = 0.0
        self._forget_verdict()
        self._interrupted_turn = False
        self._barge_s = 0.0
        if self._bot_speaking and self.barge_in_start_ms is not None:
            self._interrupted_turn = True  # decided downstream, on the words
        elif self._allow_interruptions and (self._bot_speaking or self.params.interrupt_on_start):
            self._interrupted_turn = True
            await self.broadcast_interruption()
        started = UserStartedSpeakingFrame(speech_start_ns=self._to_ns(event.speech_s))
        await self.push(started, UPSTREAM)
        await self.push(started, DOWNSTREAM)

    async def _maybe_barge_in(self, window_s: float) -> None:
        """The bot began talking during a user turn: interrupt once the user persists.

        Not when barge-in is decided on the words: the output holds a reply while the
        user holds the floor, and pauses it during a turn that began over the bot.
        """
        if self.barge_in_start_ms is not None:
            return
        if not (self._bot_speaking and self._allow_interruptions) or self._interrupted_turn:
            return
        self._barge_s += window_s
        if self._barge_s * 1000.0 + 1e-6 >= self.params.min_interruption_ms:
            self._interrupted_turn = True
            await self.broadcast_interruption()

    async def _user_stopped(self, event: SpeechEvent) -> None:
        self._interrupted_turn = False
        self._barge_s = 0.0
        end_ns = self._to_ns(event.speech_s)
        stopped = UserStoppedSpeakingFrame(speech_end_ns=end_ns)
        await self.push(stopped, UPSTREAM)
        await self.push(stopped, DOWNSTREAM)
        extra: dict[str, Any] = {"audio_wait_s": round(event.decided_s - event.speech_s, 4)}
        log.debug(
            "%s: turn ended after %.0f ms of silence (Smart Turn %s, words %s, hesitation %.2f s)",
            self.name,
            extra["audio_wait_s"] * 1000.0,
            _fmt(self._probability),
            _fmt(None if self._words is None else self._words.probability),
            self._hesitation_s,
        )
        if self._smart():
            extra["end_of_turn_probability"] = self._probability
            extra["end_of_turn_model_s"] = self._infer_s
            if self._hesitation_s > 0.0:
                extra["hesitation_s"] = round(self._hesitation_s, 4)
            if self._words is not None:
                extra["end_of_turn_words_probability"] = self._words.probability
                extra["end_of_turn_words_s"] = round(self._words.model_s, 4)
        self._forget_verdict()
        self._hesitation_s = 0.0
        sample = MetricSample(
            processor=self.name,
            name="end_of_turn_s",
            value=(stopped.timestamp_ns - end_ns) / 1e9,
            extra=extra,
        )
        await self.push(MetricsFrame(samples=[sample]), DOWNSTREAM)


def _fmt(probability: float | None) -> str:
    return "none" if probability is None else f"{probability:.3g}"
