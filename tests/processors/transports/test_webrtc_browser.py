"""The talk page in a real browser: Debian's chromium, headless, with a WAV as its microphone.

chromium is started with a fake capture device that plays a Piper-made WAV
into the page, which talks to a talk server on 127.0.0.1 running the offline
cascade. The page records the bot's track with a WebAudio tap; the test reads
the recording and the data channel events back through selenium.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framework import PipelineRunner
from framework.audio import resample, write_wav
from pipelines.config import load_pipeline_file
from pipelines.factory import build_session
from tests.pipelines.test_run_cascade import _transcribe_wav
from tests.speech import synthesize_speech

from .webrtc_helpers import ROOT, config_params, loud_seconds, serve

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.models,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
        reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
    ),
]
CASCADE = ROOT / "pipelines" / "cascade-local.toml"
# The fake microphone plays from the moment the page asks for it; the pipeline hears it
# only once its models have loaded (the 'ready' event), several seconds on a loaded machine.
LEAD_IN_S = 8.0
RATE = 48000
SCREENSHOT = os.environ.get("PARLEY_TALK_SCREENSHOT")  # e.g. docs/talk-page.png


def _microphone(path: Path, *parts: bytes | float) -> Path:
    """A 48 kHz WAV of Piper speech (bytes at 16 kHz) and silences (seconds)."""
    pcm = b"".join(
        resample(p, 16000, RATE) if isinstance(p, bytes) else bytes(2 * int(p * RATE))
        for p in parts
    )
    write_wav(path, pcm, RATE)
    return path


@contextmanager
def _chromium(microphone: Path, profile: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}%noloop",
        f"--user-data-dir={profile}",
        "--window-size=900,640",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _events(driver: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = driver.execute_script("return window.parley.events")
    return events


def _talk(
    url: str,
    microphone: Path,
    profile: Path,
    done: Any,
    timeout_s: float,
    query: str = "",
    min_recorded_s: float = 0.0,
) -> dict:
    """Open the page, press Talk, wait until ``done(events)``; return what the page saw.

    With ``min_recorded_s`` it also waits until the page has recorded that much.
    """
    from selenium.webdriver.common.by import By

    with _chromium(microphone, profile) as driver:
        driver.get(f"{url}/?record{query}")
        driver.find_element(By.ID, "talk").click()
        deadline = time.monotonic() + timeout_s
        recorded = "return window.parley.recording ? window.parley.recording.seconds() : 0"
        while not done(_events(driver)) or driver.execute_script(recorded) < min_recorded_s:
            assert time.monotonic() < deadline, f"the page saw only {_events(driver)}"
            time.sleep(0.2)
        time.sleep(1.0)  # the tail of the bot's audio
        recording = driver.execute_script("return window.parley.recording.take()")
        seen = {
            "events": _events(driver),
            "rate": recording["rate"],
            "pcm": base64.b64decode(recording["pcm"]),
            "status": driver.find_element(By.ID, "status").text,
            "log": driver.find_element(By.ID, "log").text,
        }
        screenshot = profile.parent / "talk-page.png"
        driver.save_screenshot(str(screenshot))
        seen["screenshot"] = screenshot
        driver.find_element(By.ID, "talk").click()  # hang up
    return seen


def _run_session_for(config: Any) -> Any:
    async def run_session(transport: Any) -> None:
        session = build_session(config, transport)
        await PipelineRunner(handle_signals=False).run(session.task)

    return run_session


def _of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


async def test_the_bot_answers_in_the_browser(tmp_path: Path) -> None:
    from processors.stt.whisper import WhisperSTT

    config = load_pipeline_file(CASCADE, ['transport.backend="webrtc"'])
    [question] = synthesize_speech(["What is the capital of France?"])
    mic = _microphone(tmp_path / "question.wav", LEAD_IN_S, question, 12.0)

    def answered(events: list[dict[str, Any]]) -> bool:
        return bool(_of(events, "latency")) and bool(_of(events, "bot_stopped"))

    async with serve(_run_session_for(config), config_params(config)) as server:
        seen = await asyncio.to_thread(_talk, server.url, mic, tmp_path / "profile", answered, 180)
        await server.wait_sessions(0)  # hanging up ended the session
    events = seen["events"]
    [final, *_] = [e for e in _of(events, "transcript") if e["final"]]
    assert "capital of france" in final["text"].lower()
    assert _of(events, "bot_text"), "the page got no bot words"
    assert "ms" in seen["log"], "the page shows no latency"
    # The bot's voice arrived in the browser, and it is words.
    pcm, rate = seen["pcm"], seen["rate"]
    start = int(_of(events, "bot_started")[0]["rec_s"] * rate) - rate // 2
    reply = pcm[2 * max(0, start) :]
    assert loud_seconds(reply, rate) > 0.5, "the browser recorded no reply"
    heard = await _transcribe_wav(WhisperSTT, reply, rate)
    assert len(heard.split()) >= 2, f"the recorded reply transcribes to {heard!r}"
    if SCREENSHOT:
        shutil.copy(seen["screenshot"], ROOT / SCREENSHOT)


async def test_a_barge_in_from_the_browser_stops_the_bot(tmp_path: Path) -> None:
    config = load_pipeline_file(
        CASCADE,
        [
            'transport.backend="webrtc"',
            'pipeline.system_prompt="You tell long stories of at least five sentences."',
            "llm.max_tokens=120",
        ],
    )
    [story, stop] = synthesize_speech(
        ["Please tell me a long story about a dragon and a knight.", "Stop, that is enough."]
    )
    # The user talks again 5 s after the request ends, while the bot tells its story; on a
    # loaded machine the story may pause between sentences just then, so once more later.
    mic = _microphone(tmp_path / "barge.wav", LEAD_IN_S, story, 5.0, stop, 4.0, stop, 5.0)

    def cut(events: list[dict[str, Any]]) -> bool:
        return any(e["interrupted"] for e in _of(events, "bot_stopped"))

    # The fake microphone has no echo path, and the browser's echo canceller, unsure of
    # one, holds the near end down while the bot plays: turn it off (?aec=0), as with
    # headphones.
    async with serve(_run_session_for(config), config_params(config)) as server:
        seen = await asyncio.to_thread(
            _talk, server.url, mic, tmp_path / "profile", cut, 180, "&aec=0", 20.0 + LEAD_IN_S
        )
        await server.wait_sessions(0)
    events = seen["events"]
    kinds = [e["type"] for e in events]
    pcm, rate = seen["pcm"], seen["rate"]
    timeline = [(e["type"], round(e["rec_s"], 2)) for e in events]
    # An interruption cuts the bot while it is heard, then the user's turn starts
    # (frame-flow order). On a loaded machine the story may pause between sentences when
    # the user speaks: such a cut is silent, so look at the first audible one.
    cuts = [
        i
        for i, e in enumerate(events)
        if e.get("interrupted") and _audible_before(pcm, rate, e["rec_s"])
    ]
    assert cuts, f"no barge-in while the bot was heard: {timeline}"
    barge = cuts[0]
    assert "bot_started" in kinds[:barge]
    assert kinds[barge + 1 :].index("user_started") <= 2, timeline
    # What the browser played goes quiet soon after the interruption reached the page (the
    # audio in flight and in the browser's jitter buffer still plays), and stays quiet
    # while the user speaks (a new reply waits for the end of the turn). The page counts
    # recorded samples in 4096-sample blocks, so its position lags by up to one block.
    at = int(events[barge]["rec_s"] * rate)
    tail_s = _last_loud_s(pcm[2 * at : 2 * (at + 12 * rate // 10)], rate)
    # Generous: on a loaded machine packets arrive unevenly and the browser's jitter buffer
    # grows to absorb it; what it holds plays out after the server has stopped sending.
    assert tail_s < 1.0, f"the bot played on for {tail_s:.2f} s after the barge-in"


def _audible_before(pcm: bytes, rate: int, at_s: float) -> bool:
    """True if the bot was heard for at least 0.3 s of the second before ``at_s``."""
    end = int(at_s * rate)
    return loud_seconds(pcm[2 * max(0, end - rate) : 2 * end], rate) > 0.3


def _last_loud_s(pcm: bytes, rate: int, threshold: int = 500) -> float:
    """End of the last 20 ms window above ``threshold``, in seconds from the clip's start."""
    x = np.abs(np.frombuffer(pcm, dtype="<i2"))
    hop = rate // 50
    loud = np.flatnonzero(x[: x.size // hop * hop].reshape(-1, hop).max(axis=1) > threshold)
    return float((loud[-1] + 1) * 0.02) if loud.size else 0.0


_INBOUND_AUDIO_STATS = """
const done = arguments[arguments.length - 1];
window.parley.pc.getStats().then((report) => {
  for (const s of report.values()) {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      done({delay: s.jitterBufferDelay, emitted: s.jitterBufferEmittedCount,
            target: s.jitterBufferTargetDelay, minimum: s.jitterBufferMinimumDelay,
            received: s.packetsReceived});
      return;
    }
  }
  done(null);
});
"""


def _open_and_close_the_tab(url: str, microphone: Path, profile: Path) -> dict[str, Any]:
    """Talk for a few seconds, read the browser's audio jitter buffer, then close the tab.

    The tab goes without a hang-up: the browser process ends with the connection open.
    """
    from selenium.webdriver.common.by import By

    with _chromium(microphone, profile) as driver:
        driver.get(url)
        driver.find_element(By.ID, "talk").click()
        deadline = time.monotonic() + 60
        while not _of(_events(driver), "ready"):
            assert time.monotonic() < deadline, f"the page saw only {_events(driver)}"
            time.sleep(0.2)
        time.sleep(5.0)  # the echo flows both ways
        stats: dict[str, Any] = driver.execute_async_script(_INBOUND_AUDIO_STATS)
        driver.close()  # the tab, then the browser with it (the context manager quits)
    return stats


async def test_a_closed_tab_ends_its_session_and_leaves_nothing(tmp_path: Path) -> None:
    """No hang-up: the tab closes mid-conversation; the server notices and cleans up.

    It also reads what the browser's adaptive jitter buffer (NetEq) held of the echoed
    audio on this loopback link (printed; ``benchmarks/RESULTS.md`` quotes it).
    """
    from benchmarks.webrtc.echo import run_echo_session
    from processors.transports.webrtc import WebRTCTransportParams

    from .webrtc_helpers import Census, settled_census, tone

    mic = _microphone(tmp_path / "hum.wav", tone(300, 20.0))
    async with serve(run_echo_session, WebRTCTransportParams(media_timeout_s=3.0)) as server:
        baseline = Census.take()
        stats = await asyncio.to_thread(_open_and_close_the_tab, server.url, mic, tmp_path / "p")
        await server.wait_sessions(0, timeout_s=30)
        [(_, reason)] = server.sessions.ended
        # Chromium says goodbye (RTCP BYE) as the tab closes, which ends the audio track;
        # had it not, the connection's state or the media timeout would end the session.
        ends = ("audio track ended", "peer connection is", "no audio from the peer")
        assert any(end in reason for end in ends), reason
        census = await settled_census(baseline)
        assert census == baseline, f"left behind: {census} (before: {baseline})"
    assert stats and stats["received"] > 100, stats
    held_ms = 1000 * stats["delay"] / stats["emitted"]
    print(f"browser jitter buffer on loopback: {held_ms:.1f} ms on average ({stats})")
