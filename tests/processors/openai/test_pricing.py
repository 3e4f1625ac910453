"""Price tables and cost arithmetic, checked by hand."""

from __future__ import annotations

import pytest

from processors.pricing import (
    CHAT_PRICES,
    REALTIME_PRICES,
    SPEECH_PRICES,
    TRANSCRIPTION_PRICES,
    ChatPrice,
    RealtimePrice,
    RealtimeUsage,
    chat_cost,
    lookup_price,
    speech_cost,
    transcription_cost,
)

# The usage block of reference/openai-realtime.md section 7.1.
USAGE = {
    "total_tokens": 821,
    "input_tokens": 789,
    "output_tokens": 32,
    "input_token_details": {
        "text_tokens": 313,
        "audio_tokens": 476,
        "image_tokens": 0,
        "cached_tokens": 640,
        "cached_tokens_details": {"text_tokens": 256, "audio_tokens": 384, "image_tokens": 0},
    },
    "output_token_details": {"text_tokens": 9, "audio_tokens": 23},
}


def test_realtime_cost_follows_the_reference_formula() -> None:
    usage = RealtimeUsage.from_usage(USAGE, REALTIME_PRICES["gpt-realtime"])
    assert (usage.text_in, usage.audio_in, usage.cached_text_in, usage.cached_audio_in) == (
        313,
        476,
        256,
        384,
    )
    assert (usage.text_out, usage.audio_out) == (9, 23)
    assert usage.input_tokens == 789 and usage.output_tokens == 32
    # (313-256)*4 + 256*0.4 + (476-384)*32 + 384*0.4 + 9*16 + 23*64 = 5044 per 1M
    assert usage.cost_usd == pytest.approx(5044 / 1e6)
    mini = RealtimeUsage.from_usage(USAGE, REALTIME_PRICES["gpt-realtime-mini"])
    # 57*0.6 + 256*0.06 + 92*10 + 384*0.3 + 9*2.4 + 23*20 = 1566.36 per 1M
    assert mini.cost_usd == pytest.approx(1566.36 / 1e6)


def test_usages_add_up_and_unknown_prices_cost_nothing() -> None:
    one = RealtimeUsage.from_usage(USAGE, REALTIME_PRICES["gpt-realtime"])
    total = one + one + RealtimeUsage.from_usage(USAGE, None)
    assert total.responses == 3 and total.audio_out == 69
    assert total.cost_usd == pytest.approx(2 * 5044 / 1e6)
    empty = RealtimeUsage.from_usage({}, REALTIME_PRICES["gpt-realtime"])
    assert empty.cost_usd == 0 and empty.input_tokens == 0
    odd = RealtimeUsage.from_usage(
        {"input_token_details": {"text_tokens": 10, "cached_tokens_details": {"text_tokens": 50}}},
        None,
    )
    assert odd.cached_text_in == 10  # cached tokens never exceed the input they belong to


def test_lookup_uses_overrides_and_snapshot_fallback() -> None:
    assert (
        lookup_price(REALTIME_PRICES, "gpt-realtime-2025-08-28") is REALTIME_PRICES["gpt-realtime"]
    )
    assert (
        lookup_price(REALTIME_PRICES, "gpt-realtime-mini-2025-12-15")
        is REALTIME_PRICES["gpt-realtime-mini"]
    )
    assert lookup_price(REALTIME_PRICES, "local-model") is None
    custom = RealtimePrice(
        text_in=1, text_cached=0, text_out=1, audio_in=1, audio_cached=0, audio_out=1
    )
    assert lookup_price(REALTIME_PRICES, "gpt-realtime", {"gpt-realtime": custom}) is custom
    assert (
        lookup_price(CHAT_PRICES, "llama", {"llama": ChatPrice(input=1, cached_input=1, output=1)})
        is not None
    )


def test_chat_transcription_and_speech_costs() -> None:
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 200,
        "prompt_tokens_details": {"cached_tokens": 400},
    }
    # (600*0.15 + 400*0.075 + 200*0.6) per 1M
    assert chat_cost(usage, CHAT_PRICES["gpt-4o-mini"]) == pytest.approx(240 / 1e6)
    assert chat_cost(usage, None) == 0.0

    tokens = {
        "type": "tokens",
        "input_tokens": 120,
        "output_tokens": 20,
        "total_tokens": 140,
        "input_token_details": {"audio_tokens": 100, "text_tokens": 20},
    }
    # 100*2.5 + 20*2.5 + 20*10 per 1M
    assert transcription_cost(tokens, TRANSCRIPTION_PRICES["gpt-4o-transcribe"]) == pytest.approx(
        500 / 1e6
    )
    duration = {"type": "duration", "seconds": 90}
    assert transcription_cost(duration, TRANSCRIPTION_PRICES["whisper-1"]) == pytest.approx(0.009)
    assert transcription_cost(None, TRANSCRIPTION_PRICES["whisper-1"], audio_s=30) == pytest.approx(
        0.003
    )

    assert speech_cost(SPEECH_PRICES["tts-1"], chars=1000, audio_s=60) == pytest.approx(0.015)
    # 1000 chars ~ 250 text tokens * 0.60 + 60 s * 20 tokens * 12, per 1M
    assert speech_cost(SPEECH_PRICES["gpt-4o-mini-tts"], chars=1000, audio_s=60) == pytest.approx(
        (250 * 0.6 + 1200 * 12) / 1e6
    )
    assert speech_cost(None, chars=10, audio_s=1) == 0.0


def test_every_default_names_its_source() -> None:
    for table in (REALTIME_PRICES, CHAT_PRICES, TRANSCRIPTION_PRICES, SPEECH_PRICES):
        for model, price in table.items():
            assert price.source and price.source != "configured", model
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        RealtimePrice(
            text_in=-1, text_cached=0, text_out=0, audio_in=0, audio_cached=0, audio_out=0
        )
