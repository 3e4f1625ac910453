"""OpenAIRealtimeParams: validation, and the GA session.update it produces."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from processors.pricing import REALTIME_PRICES
from processors.realtime._params import OpenAIRealtimeParams, session_config
from processors.realtime.openai import OpenAIRealtime


def test_defaults_make_a_complete_ga_session() -> None:
    params = OpenAIRealtimeParams()
    session = session_config(params, instructions="Be brief.", tools=[])
    assert session["type"] == "realtime" and session["output_modalities"] == ["audio"]
    audio_in = session["audio"]["input"]
    assert audio_in["format"] == {"type": "audio/pcm", "rate": 24000}
    assert audio_in["turn_detection"] == {  # every field, not a partial object
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    }
    assert audio_in["noise_reduction"] is None
    assert audio_in["transcription"] == {"model": "gpt-4o-mini-transcribe"}
    assert session["audio"]["output"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "voice": "marin",
        "speed": 1.0,
    }
    assert session["instructions"] == "Be brief." and session["max_output_tokens"] == "inf"
    assert params.price() is REALTIME_PRICES["gpt-realtime"]
    assert OpenAIRealtime(params).capabilities.server_vad


def test_turn_detection_is_a_discriminated_union() -> None:
    local = OpenAIRealtimeParams.model_validate({"turn_detection": {"type": "local"}})
    assert (
        session_config(local, instructions="", tools=[])["audio"]["input"]["turn_detection"] is None
    )
    assert not OpenAIRealtime(local).capabilities.server_vad
    semantic = OpenAIRealtimeParams.model_validate(
        {
            "turn_detection": {"type": "semantic_vad", "eagerness": "low"},
            "noise_reduction": "far_field",
            "transcription_model": None,
            "tool_choice": "lookup",
            "max_output_tokens": 512,
            "model": "gpt-realtime-2025-08-28",
        }
    )
    session = session_config(semantic, instructions="", tools=[{"type": "function"}])
    assert session["audio"]["input"]["turn_detection"]["eagerness"] == "low"
    assert session["audio"]["input"]["noise_reduction"] == {"type": "far_field"}
    assert session["audio"]["input"]["transcription"] is None
    assert session["tool_choice"] == {"type": "function", "name": "lookup"}
    assert session["max_output_tokens"] == 512
    assert semantic.price() is REALTIME_PRICES["gpt-realtime"]  # dated snapshot


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"voice": "nova"}, "voice"),
        ({"model": ""}, "model"),
        ({"max_output_tokens": 5000}, "max_output_tokens"),
        ({"turn_detection": {"type": "server_vad", "eagerness": "low"}}, "eagerness"),
        ({"turn_detection": {"type": "push_to_talk"}}, "turn_detection"),
        ({"api_key": "sk-123"}, "api_key"),  # keys never go in settings
        ({"speed": 3}, "speed"),
    ],
)
def test_bad_settings_name_the_field(data: dict[str, object], where: str) -> None:
    with pytest.raises(ValidationError, match=where):
        OpenAIRealtimeParams.model_validate(data)


def test_prices_can_be_overridden_for_any_model() -> None:
    price = {
        "text_in": 1,
        "text_cached": 0,
        "text_out": 2,
        "audio_in": 3,
        "audio_cached": 0,
        "audio_out": 4,
    }
    params = OpenAIRealtimeParams.model_validate(
        {"model": "my-local-model", "prices": {"my-local-model": price}}
    )
    assert params.price() is not None and params.price().audio_out == 4  # type: ignore[union-attr]
    assert OpenAIRealtimeParams(model="my-local-model").price() is None
