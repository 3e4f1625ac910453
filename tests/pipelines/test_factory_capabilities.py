"""The factory decides by what the stages declare they can do (their capabilities).

Each test changes one capability and sees the pipeline change with it, so a factory
that went back to deciding by type or by the file's words would fail here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from framework import Capabilities, Processor
from pipelines import registry
from pipelines.config import ConfigError, load_pipeline_file
from pipelines.factory import Session, architecture_of, build_session
from processors.realtime.openai import OpenAIRealtime

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
REALTIME = PIPELINES / "realtime-openai.toml"
CASCADE = PIPELINES / "cascade-openai.toml"
TOOL = '[{name="lookup", description="Look a word up"}]'


class Deaf(OpenAIRealtime):
    """A realtime backend that declares it does not hear and answer by itself."""

    capabilities = Capabilities(server_vad=True, tools=True)


class Toolless(OpenAIRealtime):
    """A realtime backend that declares it runs no tools."""

    capabilities = Capabilities(server_vad=True, speech_to_speech=True)


class Hearing(Processor):
    """A stage that declares it hears and answers."""

    capabilities = Capabilities(speech_to_speech=True)


registry.register("realtime", "deaf-test", f"{__name__}:Deaf")
registry.register("realtime", "toolless-test", f"{__name__}:Toolless")


class _Transport:
    """The two ends the factory puts around the stages."""

    def input(self) -> Processor:
        return Processor(name="transport.in")

    def output(self) -> Processor:
        return Processor(name="transport.out")


def _session(path: Path, *overrides: str) -> Session:
    return build_session(load_pipeline_file(path, overrides), _Transport())


def _names(session: Session) -> list[str]:
    return [p.name for p in session.pipeline.processors]


def test_a_realtime_stage_that_detects_turns_goes_without_the_vad() -> None:
    session = _session(REALTIME)
    assert session.stages["realtime"].capabilities.server_vad
    assert "vad" not in session.stages
    assert _names(session)[:3] == ["transport.in", "realtime.openai", "transport.out"]


def test_a_realtime_stage_that_detects_no_turns_needs_the_vad() -> None:
    local = 'realtime.turn_detection={type="local"}'
    with pytest.raises(ConfigError, match=r"realtime-openai.toml: realtime.openai does not detect"):
        _session(REALTIME, local)
    session = _session(REALTIME, local, 'vad.backend="silero"')
    assert not session.stages["realtime"].capabilities.server_vad
    assert _names(session)[:4] == ["transport.in", "vad.silero", "realtime.openai", "transport.out"]


def test_a_configured_vad_stays_in_front_of_a_realtime_stage_that_detects_turns() -> None:
    session = _session(REALTIME, 'vad.backend="silero"')
    assert _names(session)[1:3] == ["vad.silero", "realtime.openai"]


def test_a_speech_to_speech_pipeline_needs_a_stage_that_hears_and_answers() -> None:
    with pytest.raises(ConfigError, match="realtime.deaf-test does not hear and answer"):
        _session(REALTIME, 'realtime.backend="deaf-test"')


def test_declared_tools_need_a_stage_that_runs_them() -> None:
    assert _session(REALTIME, f"tools={TOOL}").stages["realtime"].capabilities.tools
    with pytest.raises(ConfigError, match="realtime.toolless-test cannot run tools"):
        _session(REALTIME, 'realtime.backend="toolless-test"', f"tools={TOOL}")
    _session(REALTIME, 'realtime.backend="toolless-test"')  # no tools declared: fine


@pytest.mark.models
def test_a_cascade_llm_without_tools_refuses_declared_tools() -> None:
    assert _session(CASCADE, f"tools={TOOL}").stages["llm"].capabilities.tools
    with pytest.raises(ConfigError, match="llm.llama_cpp cannot run tools"):
        _session(CASCADE, 'llm.backend="llama_cpp"', f"tools={TOOL}")


def test_the_architecture_is_told_by_the_stages() -> None:
    assert architecture_of(_session(REALTIME).stages.values()) == "s2s"
    assert architecture_of(_session(CASCADE).stages.values()) == "cascade"
    stages: list[Any] = [Processor(), Hearing()]
    assert architecture_of(stages) == "s2s"
    assert architecture_of(stages[:1]) == "cascade"


def test_the_stt_stages_say_whether_they_transcribe_while_the_user_speaks() -> None:
    from processors.stt.openai import OpenAISTT

    assert not OpenAISTT.capabilities.interim_results  # one request per turn, at its end
    assert not OpenAIRealtime.capabilities.interim_results


def test_pause_bot_puts_the_onset_pause_in_front_of_a_server_that_detects_turns() -> None:
    assert "onset_pause" not in _names(_session(REALTIME))  # off unless asked for
    session = _session(REALTIME, "interruption.pause_bot=true")
    names = _names(session)[:4]
    assert names == ["transport.in", "onset_pause", "realtime.openai", "transport.out"]
    with pytest.raises(ConfigError, match=r"interruption.pause_bot .* remove one"):
        _session(REALTIME, "interruption.pause_bot=true", 'vad.backend="silero"')


def test_the_words_check_and_the_reply_name_the_same_conversation_to_the_llm_pool() -> None:
    # The check evaluates the conversation at a pause; the reply after it should land
    # on the same llama.cpp context, so both name the session's conversation.
    session = _session(PIPELINES / "cascade-local.toml")
    llm, words = session.stages["llm"], session.stages["end_of_utterance"]
    assert words.detector.affinity is llm.affinity is session.context
