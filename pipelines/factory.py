"""The factory: turns a validated pipeline file into processors, a pipeline and a task.

:func:`build_stage` makes one stage's processor from its ``[stage]`` table;
:func:`build_session` assembles a whole runnable conversation around a transport:

    cascade:  transport.in -> vad -> stt -> [end of utterance] -> interruption
              -> user context -> llm -> tts -> transport.out -> assistant context
    s2s:      transport.in -> vad | onset pause -> realtime -> transport.out
              -> assistant context

What a stage can do decides what the pipeline gets (see
:class:`~framework.capabilities.Capabilities`): a realtime stage that does not
detect the user's turns itself (``server_vad``) gets the pipeline's ``[vad]`` in
front and cannot go without one; declared ``[[tools]]`` need a replying stage
that runs them (``tools``); a speech-to-speech pipeline's realtime stage must
hear and answer by itself (``speech_to_speech``), and :func:`architecture_of`
tells from the stages, not from the file, how a pipeline's replies are made.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from framework import Pipeline, PipelineTask, Processor, TaskParams
from framework.observer import Observer
from pipelines import registry
from pipelines.config import Architecture, ConfigError, PipelineConfig
from processors.llm.context import LLMContext

__all__ = [
    "Session",
    "Transport",
    "architecture_of",
    "build_session",
    "build_stage",
    "task_params",
]


class Transport(Protocol):
    """What a session needs from a transport: its input and output processors."""

    def input(self) -> Processor:
        """The processor that brings the user's audio into the pipeline."""
        ...

    def output(self) -> Processor:
        """The processor that plays the bot's audio out of the pipeline."""
        ...


T = TypeVar("T", bound=Transport)


def build_stage(config: PipelineConfig, stage: str, **shared: Any) -> Processor:
    """Instantiate the backend of ``stage`` with its validated parameters.

    ``shared`` offers collaborators (the conversation ``context``, the ``tools``); each
    backend receives those its constructor has a keyword parameter for.
    """
    stage_config = config.stage(stage)
    backend = registry.get(stage, stage_config.backend)
    cls = backend.load()
    values = {**stage_config.params, **backend.preset}
    params = backend.params_model().model_validate(values)
    accepted = inspect.signature(cls).parameters
    offered = {k: v for k, v in shared.items() if k in accepted}
    built = cls(params, name=f"{stage}.{stage_config.backend}", **offered)
    if not isinstance(built, Processor):
        raise ConfigError(
            f"{config.source}: [{stage}] backend {stage_config.backend!r} made a "
            f"{type(built).__name__}, not a processor"
        )
    return built


def task_params(config: PipelineConfig) -> TaskParams:
    """The task settings a pipeline file asks for."""
    return TaskParams(
        audio_in_sample_rate=config.audio.input_sample_rate,
        audio_out_sample_rate=config.audio.output_sample_rate,
        allow_interruptions=config.task.allow_interruptions,
        error_policy=config.task.error_policy,
        idle_timeout_s=config.task.idle_timeout_s,
        name=config.pipeline.name,
    )


def architecture_of(stages: Iterable[Processor]) -> Architecture:
    """``"s2s"`` when one of ``stages`` hears and answers by itself, else ``"cascade"``."""
    return "s2s" if any(s.capabilities.speech_to_speech for s in stages) else "cascade"


def _speech_to_speech_stages(config: PipelineConfig, **shared: Any) -> dict[str, Processor]:
    """The realtime stage, behind the pipeline's ``[vad]`` when there is one.

    A realtime stage that does not detect turns itself needs that ``[vad]``: without
    it nothing would ever tell the stage that the user spoke. One whose server does
    gets the onset pause in front when ``[interruption] pause_bot`` asks for it.
    """
    realtime = build_stage(config, "realtime", **shared)
    if not realtime.capabilities.speech_to_speech:
        raise ConfigError(
            f"{config.source}: {realtime.name} does not hear and answer by itself "
            "(no speech_to_speech capability): it cannot be an s2s pipeline's [realtime]"
        )
    stages: dict[str, Processor] = {}
    if "vad" in config.stages:
        stages["vad"] = build_stage(config, "vad")
    elif not realtime.capabilities.server_vad:
        raise ConfigError(
            f"{config.source}: {realtime.name} does not detect the user's turns "
            "(turn_detection local): add a [vad] table, or let the server detect turns"
        )
    if config.interruption.pause_bot:
        if "vad" in stages:
            raise ConfigError(
                f"{config.source}: interruption.pause_bot pauses the bot until the server "
                "decides a barge-in; with a [vad] table the pipeline's VAD decides it "
                "(min_interruption_ms): remove one of the two"
            )
        from processors.realtime.onset import OnsetPauseProcessor

        stages["onset_pause"] = OnsetPauseProcessor(config.interruption)
    stages["realtime"] = realtime
    return stages


def _check_tools(config: PipelineConfig, replier: Processor) -> None:
    """Declared ``[[tools]]`` need a replying stage that runs them."""
    if config.tools and not replier.capabilities.tools:
        raise ConfigError(
            f"{config.source}: [[tools]] are declared but {replier.name} cannot run tools; "
            "remove them or choose a backend that runs tools"
        )


@dataclass
class Session(Generic[T]):
    """A conversation ready to run: the pipeline, its task and the pieces worth reaching."""

    config: PipelineConfig
    pipeline: Pipeline
    task: PipelineTask
    transport: T
    stages: dict[str, Processor] = field(default_factory=dict)
    context: LLMContext | None = None


def _end_of_utterance_stage(
    vad: Processor, llm: Processor, context: LLMContext
) -> Processor | None:
    """The stage that judges pause transcripts, when the turn settings ask for it.

    It shares the LLM stage's model when that is llama-cpp (same settings, one
    ``Llama`` in the process); otherwise it takes SmolLM2 with the default settings.
    """
    from processors.llm.llama_cpp import LlamaCppLLM
    from processors.vad.eou import EndOfUtteranceProcessor, TranscriptEndOfTurn
    from processors.vad.turn import TurnProcessor

    if not isinstance(vad, TurnProcessor):
        return None
    if not (vad.params.transcript_check and vad.params.end_of_turn == "smart_turn"):
        return None

    if isinstance(llm, LlamaCppLLM):  # its model and its conversation's context in the pool
        detector = TranscriptEndOfTurn(
            llm.params, system_prompt=context.system_prompt, affinity=llm.affinity
        )
    else:
        detector = TranscriptEndOfTurn(system_prompt=context.system_prompt)
    return EndOfUtteranceProcessor(detector, context=context)


def build_session(
    config: PipelineConfig,
    transport: T,
    *,
    observers: list[Observer] | None = None,
) -> Session[T]:
    """Assemble the conversation of ``config`` around ``transport``.

    ``transport`` provides ``input()`` and ``output()`` processors (a file transport,
    a WebSocket session). The user and assistant context aggregators share one context.
    """
    from processors.interruption import InterruptionProcessor
    from processors.llm.context import AssistantContextAggregator, UserContextAggregator
    from processors.toolset import ToolSet

    stages: dict[str, Processor] = {}
    tools = ToolSet.from_declarations(config.tools)
    context = LLMContext(
        system_prompt=config.pipeline.system_prompt or None, tools=tools.chat_tools()
    )
    shared = {"context": context, "tools": tools}
    middle: list[Processor]
    if config.pipeline.architecture == "cascade":
        rules = config.interruption
        on_words = rules.rule == "words"
        # Barge-in on the words: the turn processor only starts the turn, and the
        # interruption stage after speech-to-text decides (docs/turn-taking.md).
        onset = {"barge_in_start_ms": rules.onset_ms} if on_words else {}
        stages["vad"] = build_stage(config, "vad", **onset)
        stages["stt"] = build_stage(config, "stt")
        if on_words:
            stages["interruption"] = InterruptionProcessor(rules, name="interruption")
        stages["user_context"] = UserContextAggregator(context)
        stages["llm"] = build_stage(config, "llm", **shared)
        stages["tts"] = build_stage(config, "tts")
        words = _end_of_utterance_stage(stages["vad"], stages["llm"], context)
        if words is not None:
            stages["end_of_utterance"] = words
        order = ("vad", "stt", "end_of_utterance", "interruption", "user_context", "llm", "tts")
        middle = [stages[k] for k in order if k in stages]
    else:
        stages.update(_speech_to_speech_stages(config, **shared))
        middle = [stages[k] for k in ("vad", "onset_pause", "realtime") if k in stages]
    _check_tools(config, stages["llm"] if "llm" in stages else stages["realtime"])
    stages["assistant_context"] = AssistantContextAggregator(context)
    pipeline = Pipeline(
        [transport.input(), *middle, transport.output(), stages["assistant_context"]],
        name=config.pipeline.name,
    )
    task = PipelineTask(pipeline, task_params(config), observers=observers or [])
    return Session(config, pipeline, task, transport, stages, context)
