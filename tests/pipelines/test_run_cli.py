"""``parley run`` as a user runs it: a real subprocess, its exit code, stdout and stderr.

User mistakes end before anything loads, with one line on stderr naming the problem
and exit code 2. A run stopped by SIGINT or SIGTERM exits with 130 or 143 and its
output holds the conversation up to the stop. An output that cannot be written
ends the run with the error instead of leaving it running for good.

The runs that play audio use a pipeline with no model to load: WebRTC VAD and the
OpenAI stages pointed at a closed local port, on a silent input, so no stage past
the VAD is ever reached.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from framework.audio import read_wav, sine_wave, write_wav
from pipelines.stopping import Stopped, stop_on_signals

RATE = 16000
TIMEOUT_S = 120  # generous: a loaded machine is slow, only a hang comes near it

LIGHT = """
[pipeline]
name = "light"
architecture = "cascade"

[transport]
backend = "file"
end_after_s = 0.5

[vad]
backend = "webrtc"

[stt]
backend = "openai"
base_url = "http://127.0.0.1:9/v1"

[llm]
backend = "openai"
base_url = "http://127.0.0.1:9/v1"

[tts]
backend = "openai"
base_url = "http://127.0.0.1:9/v1"
"""


def _command() -> list[str]:
    script = Path(sys.executable).parent / "parley"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipelines.cli"]


def parley(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_command(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )


def silent_wav(path: Path, seconds: float) -> Path:
    write_wav(path, bytes(2 * int(RATE * seconds)), RATE)
    return path


@pytest.fixture
def light(tmp_path: Path) -> Path:
    path = tmp_path / "light.toml"
    path.write_text(LIGHT)
    return path


def assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0]
    return lines[0]


# ----------------------------------------------------------------- user mistakes


def _full_wav(path: Path) -> bytes:
    write_wav(path, sine_wave(300, RATE, 1.0), RATE)
    return path.read_bytes()


def _inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    whole = _full_wav(tmp_path / "whole.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.wav").write_text("these are notes, not audio\n")
    (tmp_path / "header-only.wav").write_bytes(whole[:44])
    (tmp_path / "zero.wav").write_bytes(whole[:40] + (0).to_bytes(4, "little"))
    (tmp_path / "folder.wav").mkdir()
    return {
        "missing": (tmp_path / "missing.wav", "no such file"),
        "empty": (tmp_path / "empty.wav", "the file is empty"),
        "not audio": (tmp_path / "notes.wav", "not a readable audio file"),
        "header only": (tmp_path / "header-only.wav", "the file ends after the header"),
        "no samples": (tmp_path / "zero.wav", "holds no audio"),
        "a folder": (tmp_path / "folder.wav", "is a folder"),
    }


@pytest.mark.parametrize(
    "case", ["missing", "empty", "not audio", "header only", "no samples", "a folder"]
)
def test_a_bad_input_wav_is_one_line_and_exit_code_2(tmp_path: Path, case: str) -> None:
    path, problem = _inputs(tmp_path)[case]
    result = parley("run", "cascade-local-fast", "--input", path, "--output", tmp_path / "out.wav")
    assert_one_line_error(result, "--input", str(path), problem)
    assert not (tmp_path / "out.wav").exists()


def test_a_wav_cut_in_the_middle_plays_with_a_warning_saying_how_much_is_missing(
    tmp_path: Path, light: Path
) -> None:
    whole = tmp_path / "whole.wav"
    silent_wav(whole, 2.0)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: 44 + RATE])  # half a second of the two
    result = parley("run", light, "--input", cut, "--output", tmp_path / "out.wav")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        f"{cut}: cut short: its header promises 2.000 s of audio, the file holds 0.500 s "
        "(1.500 s missing)" in result.stderr
    )
    assert "playing" in result.stdout and "(0.50 s)" in result.stdout


@pytest.mark.parametrize(
    ("option", "where", "problem"),
    [
        ("--output", "no-such-folder/out.wav", "the folder"),
        ("--output", ".", "is a folder"),
        ("--output", "/proc/out.wav", "cannot create a file in /proc"),
        ("--events", "no-such-folder/events.jsonl", "does not exist"),
        ("--events", "/proc/events.jsonl", "cannot create a file in /proc"),
        ("--events", "out.wav", "the same file as --output"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_before_anything_plays(
    tmp_path: Path, option: str, where: str, problem: str
) -> None:
    if where.startswith("/proc") and not Path("/proc/self").exists():
        pytest.skip("needs Linux /proc, a folder where no file can be created")
    wav = silent_wav(tmp_path / "in.wav", 1.0)
    paths = {"--output": str(tmp_path / "out.wav"), "--events": str(tmp_path / "ev.jsonl")}
    paths[option] = where if where.startswith("/") else str(tmp_path / where)
    result = parley(
        "run",
        "cascade-local-fast",
        "--input",
        wav,
        "--stereo",
        *[item for pair in paths.items() for item in pair],
    )
    line = assert_one_line_error(result, option, problem)
    assert line.startswith("parley run: ")
    assert result.stdout == ""  # nothing played
    assert not (tmp_path / "out.wav").exists()


def test_an_unknown_pipeline_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    wav = silent_wav(tmp_path / "in.wav", 1.0)
    result = parley("run", "no-such-pipeline", "--input", wav, "--output", tmp_path / "o.wav")
    assert_one_line_error(result, "no pipeline file 'no-such-pipeline'", "cascade-local")


# ------------------------------------------------------------- runs that end early


class Running:
    """A ``parley run`` subprocess, its stdout read line by line as it comes."""

    def __init__(self, *args: str | Path) -> None:
        self.process = subprocess.Popen(
            [*_command(), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._readers = [
            threading.Thread(
                target=self._read, args=(self.process.stdout, self.lines), daemon=True
            ),
            threading.Thread(
                target=self._read, args=(self.process.stderr, self.errors), daemon=True
            ),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: IO[str] | None, into: list[str]) -> None:
        assert stream is not None
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while not any(text in line for line in self.lines):
            assert self.process.poll() is None, f"exited early: {self.finish()}"
            assert time.monotonic() < deadline, f"no {text!r} within {TIMEOUT_S} s"
            time.sleep(0.05)

    def finish(self) -> tuple[int, list[str], str]:
        try:
            self.process.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"parley run did not exit within {TIMEOUT_S} s") from None
        for reader in self._readers:
            reader.join(timeout=10)
        return self.process.returncode, self.lines, "\n".join(self.errors)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_with_its_exit_code_and_the_output_ends_at_the_stop(
    tmp_path: Path, light: Path, signum: signal.Signals, code: int
) -> None:
    wav = silent_wav(tmp_path / "in.wav", 60.0)
    out, events = tmp_path / "out.wav", tmp_path / "events.jsonl"
    run = Running("run", light, "--input", wav, "--output", out, "--events", events, "--stereo")
    run.wait_for("light: playing")
    time.sleep(1.0)
    run.process.send_signal(signum)
    returncode, lines, stderr = run.finish()
    assert returncode == code, stderr
    assert "Traceback" not in stderr
    summary = lines[-2]
    assert summary.startswith(f"light: stopped by {signum.name} at ")
    assert summary.endswith(f"s of the 60.00 s input; wrote {out}")
    stopped_at = float(summary.split(" at ")[1].split(" s ")[0])
    assert 0.5 < stopped_at < 60
    recording = read_wav(out)
    assert recording.num_channels == 2
    # The recording ends where the run stopped, not at the end of the input.
    assert recording.duration_s == pytest.approx(stopped_at, abs=0.03)
    assert events.read_text().strip()


def test_an_output_that_becomes_unwritable_ends_the_run_and_is_not_reported_written(
    tmp_path: Path, light: Path
) -> None:
    wav = silent_wav(tmp_path / "in.wav", 1.0)
    out = tmp_path / "out.wav"
    run = Running("run", light, "--input", wav, "--output", out)
    run.wait_for("light: playing")
    out.mkdir()  # the WAV can no longer be written where it was named
    returncode, lines, stderr = run.finish()  # it used to stay alive for good here
    assert returncode == 1
    assert "Traceback" not in stderr
    assert any("file.output failed on EndFrame" in line for line in lines)
    assert lines[-1] == f"light: error after the 1.00 s input; {out} was not written"


def test_sigterm_does_not_claim_an_output_it_could_not_write(tmp_path: Path, light: Path) -> None:
    wav = silent_wav(tmp_path / "in.wav", 60.0)
    out = tmp_path / "out.wav"
    run = Running("run", light, "--input", wav, "--output", out)
    run.wait_for("light: playing")
    out.mkdir()
    run.process.send_signal(signal.SIGTERM)
    returncode, lines, stderr = run.finish()
    assert returncode == 143
    assert "Traceback" not in stderr
    assert lines[-1].endswith(f"; {out} was not written")
    assert not any("wrote" in line for line in lines)
    assert any("file.output failed in cleanup" in line for line in lines)


# ------------------------------------------------------------ before the runner


def _signal_self_and_wait() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(500):  # the handler runs at the next bytecode; never this long
        time.sleep(0.01)


def test_a_signal_before_the_run_starts_raises_stopped_with_its_exit_code() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Stopped) as info, stop_on_signals():
        _signal_self_and_wait()
    assert info.value.exit_code == 143
    assert info.value.signal is signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before
