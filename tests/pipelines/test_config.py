"""Pipeline files: validation errors name the file, the key and what is allowed."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from framework import Processor
from pipelines import registry
from pipelines.config import ConfigError, apply_overrides, load_pipeline_file, parse_pipeline


class EchoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gain: float = 1.0
    label: str = "x"


class Echo(Processor):
    """A stand-in backend for configuration tests."""

    Params = EchoParams


class OtherParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    depth: int = 3


class Other(Processor):
    Params = OtherParams


registry.register("stt", "echo-test", f"{__name__}:Echo")
registry.register("stt", "other-test", f"{__name__}:Other")


def test_unknown_key_names_file_key_and_allowed(tmp_path: Path) -> None:
    data = {
        "pipeline": {"name": "t", "architecture": "cascade"},
        "stt": {"backend": "echo-test", "gian": 2},
    }
    with pytest.raises(ConfigError) as err:
        parse_pipeline(data, source="my.toml")
    message = str(err.value)
    assert "my.toml" in message
    assert "stt.gian" in message
    assert "allowed: gain, label" in message


def test_bad_value_names_the_key() -> None:
    data = {
        "pipeline": {"name": "t", "architecture": "cascade"},
        "stt": {"backend": "echo-test", "gain": "loud"},
    }
    with pytest.raises(ConfigError, match=r"my.toml: stt.gain: .*'loud'"):
        parse_pipeline(data, source="my.toml")


def test_unknown_backend_lists_the_available_ones() -> None:
    data = {"pipeline": {"name": "t", "architecture": "cascade"}, "stt": {"backend": "nope"}}
    with pytest.raises(ConfigError, match="unknown stt backend 'nope'; available: .*echo-test"):
        parse_pipeline(data, source="f.toml")


def test_unknown_top_level_table() -> None:
    with pytest.raises(ConfigError, match="f.toml: unknown table or key 'stt2'"):
        parse_pipeline({"stt2": {}}, source="f.toml")


def test_architecture_must_be_known() -> None:
    with pytest.raises(ConfigError, match="pipeline.architecture"):
        parse_pipeline({"pipeline": {"name": "t", "architecture": "hybrid"}}, source="f.toml")


def test_alternative_backend_tables_are_checked_too() -> None:
    data = {
        "pipeline": {"name": "t", "architecture": "cascade"},
        "stt": {"backend": "echo-test", "other-test": {"depht": 2}},
    }
    with pytest.raises(ConfigError, match="stt.other-test.depht"):
        parse_pipeline(data, source="f.toml")


def test_overrides_swap_backend_and_drop_old_settings() -> None:
    data = {"stt": {"backend": "echo-test", "gain": 2.0, "other-test": {"depth": 5}}}
    out = apply_overrides(data, ["stt.backend=other-test", "llm.max_tokens=40", 'tts.voice="joe"'])
    assert out["stt"] == {"backend": "other-test", "other-test": {"depth": 5}, "echo-test": {}}
    assert out["llm"] == {"max_tokens": 40}
    assert out["tts"] == {"voice": "joe"}
    assert data["stt"]["backend"] == "echo-test"  # the input is not modified


@pytest.mark.parametrize("bad", ["stt.backend", "=x", "stt..a=1"])
def test_malformed_overrides_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="override"):
        apply_overrides({}, [bad])


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such pipeline file"):
        load_pipeline_file(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[pipeline\nname=1")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        load_pipeline_file(broken)


def test_the_interruption_table_defaults_validates_and_overrides() -> None:
    cascade = Path(__file__).resolve().parents[2] / "pipelines" / "cascade-local.toml"
    config = load_pipeline_file(cascade, ["interruption.min_words=2"])
    assert config.interruption.rule == "words"
    assert config.interruption.min_words == 2
    assert "yeah" in config.interruption.backchannels
    base = tomllib.loads(cascade.read_text())
    del base["interruption"]
    assert parse_pipeline(base).interruption.min_words == 1  # absent: the defaults
    with pytest.raises(ConfigError, match=r"unknown key 'interruption.min_word'.*min_words"):
        parse_pipeline({**base, "interruption": {"min_word": 2}}, source="my.toml")
    with pytest.raises(ConfigError, match=r"interruption.min_words"):
        parse_pipeline({**base, "interruption": {"min_words": 0}}, source="my.toml")


def test_a_speech_to_speech_pipeline_keeps_the_time_rule() -> None:
    s2s = {
        "pipeline": {"name": "t", "architecture": "s2s"},
        "transport": {"backend": "file"},
        "realtime": {"backend": "openai"},
    }
    assert parse_pipeline(s2s).interruption.rule == "speech"
    # the onset pause is asked for by name, not taken from the cascade's defaults
    assert not parse_pipeline(s2s).interruption.pause_bot
    assert not parse_pipeline({**s2s, "interruption": {"onset_ms": 120}}).interruption.pause_bot
    assert parse_pipeline({**s2s, "interruption": {"pause_bot": True}}).interruption.pause_bot
    with pytest.raises(ConfigError, match=r"no transcript to decide barge-in on.*speech"):
        parse_pipeline({**s2s, "interruption": {"rule": "words"}}, source="my.toml")
